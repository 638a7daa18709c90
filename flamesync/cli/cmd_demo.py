"""``flamesync demo``: animate the bundled example end to end."""

from __future__ import annotations

from pathlib import Path

HELP = "animate the bundled example recording and write the results to out/"


def example_paths() -> tuple[Path, Path]:
    root = Path(__file__).resolve().parents[2] / "assets" / "examples"
    return root / "hello.wav", root / "hello.txt"


def register(sub) -> None:
    p = sub.add_parser("demo", help=HELP, description=HELP + ". Use it to check an installation.")
    p.add_argument("--out", default="out", help="output folder (default ./out)")
    p.add_argument("--no-preview", action="store_true", help="skip rendering the preview video")
    p.set_defaults(func=run)


def run(args) -> int:
    import importlib.util

    from ..errors import FlamesyncError
    from ..export import export
    from ..pipeline import animate

    wav, txt = example_paths()
    if not wav.is_file():
        raise FlamesyncError(f"the bundled example is missing ({wav}); reinstall flamesync from a checkout")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        anim = animate(wav, fps=30)
        how = "audio-to-face network, audio only"
    except FlamesyncError as exc:
        # No trained network installed: the transcript path still shows the whole pipeline.
        print(f"note: {exc}; using the bundled transcript instead")
        anim = animate(wav, text=txt.read_text(encoding="utf-8"), fps=30)
        how = "transcript aligned to the audio"
    print(f"animated {wav.name} ({anim.duration:.1f} s, {anim.n_frames} frames at 30 fps) with the {how}")
    written = [export(anim, out / name, face="default")
               for name in ("hello.npz", "hello.glb", "hello.csv", "hello.meshes.npz")]
    # The preview needs the optional render extra; without it the demo still writes the rest.
    if not args.no_preview and importlib.util.find_spec("pyrender"):
        from ..render import render_video

        written.append(render_video(anim, out / "hello.mp4", face="default"))
    for path in written:
        print(f"wrote {path}")
    return 0
