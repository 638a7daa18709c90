"""``flamesync render``: a preview MP4 of a saved animation, with its sound."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub) -> None:
    from ..render.camera import PRESETS

    cams = "\n".join(f"  {k:<14} {v.description}" for k, v in PRESETS.items())
    p = sub.add_parser(
        "render",
        help="render a preview video (MP4 with sound) of an animation",
        description="Render an animation on the default head (or a FLAME head) to an H.264 MP4 with the audio "
                    "muxed in sync. Works headless on a CPU through OpenGL (EGL/OSMesa).\n\nCameras:\n" + cams,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("animation", help="a flamesync animation file (.npz)")
    p.add_argument("-o", "--output", default=None, help="output .mp4 (default: next to the animation)")
    p.add_argument("--camera", default="front", help="camera preset (default: front)")
    p.add_argument("--size", default="512", help="pixels per view: N or WxH (default: 512)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of the video (default: the animation's)")
    from . import FACE_HELP

    p.add_argument("--face", default=None, help="face model (default: the default head): " + FACE_HELP)
    p.add_argument("--side-by-side", metavar="OTHER.npz", default=None,
                   help="show a second take on the right (e.g. model vs teacher), labelled with the file names")
    p.add_argument("--labels", default=None, help="captions for the two takes, comma separated")
    p.add_argument("--plot", action="store_true", help="add a strip plot of the main mouth channels")
    p.add_argument("--audio", default=None, help="audio to use (default: the one the animation references)")
    p.add_argument("--no-audio", action="store_true", help="render a silent video")
    p.add_argument("--backend", default="pyrender", choices=("pyrender", "pytorch3d"),
                   help="renderer (default: pyrender; pytorch3d if installed, GPU)")
    p.add_argument("--workers", type=int, default=None, help="render processes (default: one per core)")
    p.add_argument("--antialias", type=int, default=None, choices=(0, 4),
                   help="MSAA samples for pyrender (default: 4 on a GPU, 0 on a CPU, where 4 takes twice as long)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..animation import Animation
    from ..render import render_video, resolve_audio
    from ..render.camera import preset
    from ..render.frames import parse_size

    preset(args.camera)  # bad options fail before any work
    parse_size(args.size)
    src = Path(args.animation)
    anim = Animation.load(src)
    other = Animation.load(args.side_by_side) if args.side_by_side else None
    labels = None
    if other is not None:
        labels = [s.strip() for s in args.labels.split(",")] if args.labels else [src.stem, Path(args.side_by_side).stem]
        if len(labels) != 2:
            from ..errors import InputError

            raise InputError(f"--labels needs two captions separated by a comma, got {args.labels!r}")
    if args.no_audio:
        audio = None
    elif args.audio:
        audio = resolve_audio(anim, args.audio)
    else:
        audio = resolve_audio(anim, "auto", base=src.parent)
        if audio is None and anim.audio_path:
            print(f"flamesync: warning: audio {anim.audio_path} not found; rendering without sound", file=sys.stderr)
    out = Path(args.output) if args.output else src.with_suffix(".mp4")
    kwargs = {}
    if args.antialias is not None:
        kwargs["antialias"] = args.antialias
    render_video(anim, out, audio=audio, face=args.face, camera=args.camera, size=args.size, fps=args.fps,
                 other=other, labels=labels, plot=args.plot, backend=args.backend, workers=args.workers, **kwargs)
    print(out)
    return 0
