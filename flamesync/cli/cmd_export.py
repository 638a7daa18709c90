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
    p.add_argument("-o", "--output", action="append", required=True, metavar="FILE",
                   help="output file; its extension picks the format; repeat for several formats")
    from . import FACE_HELP

    p.add_argument("--face", default=None,
                   help="face model for formats with geometry: " + FACE_HELP)
    p.add_argument("--fps", type=float, default=None, help="resample to this frame rate before writing")
    p.add_argument("--audio", default=None,
                   help="audio to carry alongside the output (default: the one the animation references)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys
    from pathlib import Path

    from ..animation import Animation, check_fps
    from ..errors import InputError
    from ..export import export
    from ..fileio import transaction
    from ._checks import check_outputs

    outputs = check_outputs(args.output)  # bad outputs fail before any work
    fps = check_fps(args.fps) if args.fps is not None else None
    if args.audio and not Path(args.audio).is_file():
        raise InputError(f"audio file not found: {args.audio}")
    face = None
    if args.face is not None:
        from ..face import load_face

        face = load_face(args.face)
    anim = Animation.load(args.animation)
    if fps is not None:
        anim = anim.resample(fps)
    audio = args.audio or anim.audio_path
    if audio and not args.audio:
        # Animations store the audio path as given when they were made; resolve it next to the file too.
        p = Path(audio)
        if not p.is_file() and (Path(args.animation).parent / p.name).is_file():
            audio = str(Path(args.animation).parent / p.name)
        elif not p.is_file():
            print(f"flamesync: warning: audio {audio} not found; exporting without it", file=sys.stderr)
            audio = None
            anim = anim.replace(audio_path=None)  # or the exporters would look for it again
    with transaction():  # all outputs (and the carried audio) or none
        for out in outputs:
            export(anim, out, face=face, audio_path=audio)
    for out in outputs:
        print(out)
    return 0
