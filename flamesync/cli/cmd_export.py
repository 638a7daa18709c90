"""``flamesync export``: convert a saved animation (``.npz``) to any registered format."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    from ..export import FORMATS

    formats = "\n".join(f"  {f.suffix:<14} {f.description}" for f in sorted(FORMATS.values(), key=lambda f: f.suffix))
    p = sub.add_parser(
        "export",
        help="convert a saved animation to glTF/FBX/Alembic/USD/CSV/...",
        description="Convert a flamesync animation file to another format, chosen by the output's extension.\n\n"
                    "Formats:\n" + formats,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("animation", help="a flamesync animation file (.npz)")
    p.add_argument("-o", "--output", required=True, help="output file; its extension picks the format")
    from . import FACE_HELP

    p.add_argument("--face", default=None,
                   help="face model for formats with geometry: " + FACE_HELP)
    p.add_argument("--fps", type=float, default=None, help="resample to this frame rate before writing")
    p.add_argument("--audio", default=None,
                   help="audio to carry alongside the output (default: the one the animation references)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..animation import Animation
    from ..export import export, format_for

    format_for(args.output)  # unknown extensions fail before any work
    anim = Animation.load(args.animation)
    if args.fps is not None:
        anim = anim.resample(args.fps)
    audio = args.audio or anim.audio_path
    if audio and not args.audio:
        from pathlib import Path

        # Animations store the audio path as given when they were made; resolve it next to the file too.
        p = Path(audio)
        if not p.is_file() and (Path(args.animation).parent / p.name).is_file():
            audio = str(Path(args.animation).parent / p.name)
        elif not p.is_file():
            import sys

            print(f"flamesync: warning: audio {audio} not found; exporting without it", file=sys.stderr)
            audio = None
    out = export(anim, args.output, face=args.face, audio_path=audio)
    print(out)
    return 0
