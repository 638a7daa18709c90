"""``flamesync animate``: speech audio to animation files."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..pipeline import BACKENDS

HELP = "animate a speech recording (optionally with its transcript) and write animation files"

EPILOG = """\
examples:
  flamesync animate speech.wav -o speech.glb
  flamesync animate speech.wav --text "the child almost hurt the small dog" -o take.npz -o take.csv
  flamesync animate speech.flac -o take.fbx --fps 24 --preview
  flamesync animate speech.wav --face head:myhead_arkit.npz -o take.glb
  flamesync animate speech.wav --face flame:generic_model.pkl -o take.flame.npz
  flamesync animate speech.wav -o take.glb --emotion happy --intensity 0.8 --head 1.5
  flamesync animate speech.wav -o take.csv --mouth-only

Output formats follow the extension of each -o (see 'flamesync export --help' for the list).
Without --text the audio-to-face network animates the audio alone; with --text the transcript is
aligned to the audio and animated phone by phone. Blinks, gaze, brows and head motion follow the
speech's prosody (on by default; --mouth-only leaves only the speech channels).
"""


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "animate", help=HELP, description=HELP, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("audio", help="speech audio file (WAV, FLAC, OGG, MP3; any sample rate)")
    p.add_argument("-o", "--output", action="append", required=True, metavar="FILE",
                   help="output file; repeat for several formats (.npz, .glb, .fbx, .abc, .usd, .csv, ...)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--text", help="the transcript of the audio (improves accuracy)")
    g.add_argument("--text-file", metavar="FILE", help="read the transcript from a UTF-8 text file")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of the animation (default 30)")
    from . import FACE_HELP

    p.add_argument("--face", default="default", help="face model for geometry outputs: " + FACE_HELP)
    p.add_argument("--landmarks", metavar="FILE", default=None,
                   help="with --face flame:...: landmarks on the FLAME template (JSON/CSV, as for "
                        "'flamesync retarget'), needed when they are not found automatically")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="auto: text alignment when a transcript is given, else the network; "
                        "phones: phone recognition baseline; words: English word recognition "
                        "(pocketsphinx language model, about real time) aligned and animated like a transcript")
    p.add_argument("--on-mismatch", choices=("fallback", "error", "ignore"), default="fallback",
                   help="when the transcript does not fit the audio (scored against free phone "
                        "recognition): fallback = warn and animate the audio alone (default), "
                        "error = refuse, ignore = do not check")
    p.add_argument("--language", default="en", help="language of the speech (default en)")
    p.add_argument("--preview", nargs="?", const="", metavar="MP4",
                   help="also render a preview video (default: next to the first output)")
    from ._layers import add_layer_options

    add_layer_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..animation import check_fps
    from ..export import export, format_for
    from ..fileio import transaction
    from ..pipeline import animate
    from ._checks import check_outputs, check_preview, read_transcript
    from ._layers import layer_options

    # Everything that can be checked is checked before any work, so a bad option never costs the
    # analysis and never leaves a file.
    outputs = check_outputs(args.output)
    fps = check_fps(args.fps)
    layer_kw = layer_options(args)
    video = None
    if args.preview is not None:
        video = check_preview(args.preview or str(Path(outputs[0]).with_suffix("")) + ".mp4")
    text = args.text
    if args.text_file:
        text = read_transcript(args.text_file)
    if text is not None and not text.strip():
        raise InputError("--text is empty: give the transcript, or leave --text out")
    if args.landmarks is not None:
        if not args.face.startswith("flame:"):
            raise InputError("--landmarks is for FLAME faces (--face flame:PATH)")
        if not Path(args.landmarks).is_file():
            raise InputError(f"landmark file not found: {args.landmarks}")
    face = None
    # The default head is needed only for geometry (and costs a second to build on a new machine);
    # a FLAME face also changes the animation itself, so it is always loaded.
    if args.face != "default" or video is not None or any(format_for(o).needs_face for o in outputs):
        from ..face import load_face

        face = load_face(args.face)
    from .. import progress

    def report(done, total):  # JSON progress for tools (the Blender add-on); a no-op otherwise
        progress.emit("progress", task="animate", done=int(done), total=int(total))

    options = dict(text=text, fps=fps, backend=args.backend, language=args.language, face=face,
                   landmarks=args.landmarks, progress=report, on_mismatch=args.on_mismatch, **layer_kw)
    if video is None and face is None and all(format_for(o).module == "animation_npz" for o in outputs):
        # Animation files only: written while the audio is read (animate_to_npz), so a recording
        # of hours takes no more memory than one of minutes. Further copies are the same bytes.
        import shutil

        from ..fileio import atomic_path, pending
        from ..pipeline import animate_to_npz

        with transaction():
            animate_to_npz(args.audio, outputs[0], **options)
            for out in outputs[1:]:
                with atomic_path(out) as tmp:
                    shutil.copyfile(pending(outputs[0]) or outputs[0], tmp)
        for out in outputs:
            print(f"wrote {out}")
        return 0
    anim = animate(args.audio, **options)
    # One transaction: every output, the audio carried beside them and the preview appear together,
    # or none of them does.
    with transaction():
        for out in outputs:
            export(anim, out, face=face)
        if video is not None:
            from ..render import render_video

            render_video(anim, video, face=face)
    for out in outputs:
        print(f"wrote {out}")
    if video is not None:
        print(f"wrote {video}")
    return 0
