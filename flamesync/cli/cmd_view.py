"""``flamesync view``: watch a take on the head in a browser, in sync with its audio."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

HELP = "watch a take (.npz) on the head in your browser, with its audio; scrub, play, pause"

EPILOG = """\
examples:
  flamesync view take.npz                   audio found from the take (if its file still exists)
  flamesync view take.npz --audio speech.wav
  flamesync view take.npz --face head:myhead.npz --port 8080 --no-browser

The page is served from this machine only (http://127.0.0.1:PORT/); nothing is downloaded. It needs
a browser with WebGL2 (any current Chrome, Firefox, Safari or Edge). Stop with Ctrl-C.
For a live stream use 'flamesync live ... --view'.
"""


def register(sub) -> None:
    import argparse

    p = sub.add_parser("view", help=HELP, description=HELP, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("take", help="an animation file written by 'flamesync animate -o take.npz' or 'live --record'")
    p.add_argument("--audio", default=None, metavar="FILE",
                   help="audio to play with it (default: the take's own audio file, when it exists)")
    from . import FACE_HELP

    p.add_argument("--face", default="default", help="head to show: " + FACE_HELP.split(", 'flame:")[0]
                   + " or 'head:/path/head.npz' (a head made by 'flamesync retarget')")
    p.add_argument("--port", type=int, default=0, help="port of the page (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="print the page's address, do not open a browser")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys
    import time

    from ..animation import Animation
    from ..live.viewer import ViewerServer

    take = Animation.load(args.take)
    audio = args.audio
    if audio is None and take.audio_path and Path(take.audio_path).is_file():
        audio = take.audio_path
    if args.face.startswith("flame:"):
        raise InputError("the viewer shows blendshape heads: the default head or a 'head:' file from 'flamesync retarget'")
    from ..channels import ARKIT_52

    if not any(c in take.channels for c in ARKIT_52):
        raise InputError(f"{args.take} has no ARKit channels to show (a FLAME take? view the ARKit take it came from)")
    server = ViewerServer(port=args.port, take=take, audio=audio, face=args.face)
    print(f"flamesync view: {Path(args.take).name} ({take.n_frames} frames)"
          + (f" with {Path(audio).name}" if audio else " (no audio)") + f" at {server.url}  (Ctrl-C stops)",
          file=sys.stderr, flush=True)
    if not args.no_browser:
        server.open_browser()
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("flamesync view: stopped", file=sys.stderr)
        return 0
    finally:
        server.close()
