"""``flamesync say``: text to speech to facial animation, with the TTS audio written alongside."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "say", help="speak text with a TTS engine and animate it",
        description="Speak TEXT with espeak-ng, flite or festival and animate the exact phone timings "
        "with the coarticulation teacher. Writes the animation (any export format) and the speech "
        "as a WAV next to it.",
    )
    p.add_argument("text", help="what to say")
    p.add_argument("-o", "--output", required=True, help="output file (.npz, .glb, .csv, ...)")
    p.add_argument("--voice", default=None, help="engine voice (espeak: en-us, en-us+f3, de, ...)")
    p.add_argument("--engine", default="espeak", choices=("espeak", "flite", "festival"),
                   help="speech engine (default espeak)")
    p.add_argument("--rate", type=float, default=1.0, help="speaking-rate factor (default 1.0)")
    p.add_argument("--pitch", type=float, default=None, help="pitch factor (espeak)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    p.add_argument("--wav", default=None, help="where to write the speech (default: OUTPUT's name with .wav)")
    p.add_argument("--face", default=None, help="face model for formats with geometry (default head)")
    p.set_defaults(func=run)


def default_wav_path(output: str | Path) -> Path:
    """``take.npz`` -> ``take.wav``; ``take.meshes.npz`` -> ``take.wav``."""
    from ..export import format_for

    output = Path(output)
    suffix = format_for(output).suffix
    return output.with_name(output.name[: len(output.name) - len(suffix)] + ".wav")


def run(args) -> int:
    from ..errors import InputError
    from ..export import export
    from ..phonetics.textanimate import say

    out = Path(args.output)
    wav = Path(args.wav) if args.wav else default_wav_path(out)
    if wav.resolve() == out.resolve():
        raise InputError(f"--wav and the output are the same file: {wav}")
    voice = args.voice or {"espeak": "en-us"}.get(args.engine)
    kwargs = {"voice": voice} if voice else {}
    if args.engine != "espeak" and args.voice is None:
        from ..phonetics.engines import get_engine

        kwargs = {"voice": get_engine(args.engine).default_voice}
    anim, utt = say(args.text, engine=args.engine, fps=args.fps, wav_path=wav, rate=args.rate,
                    pitch=args.pitch, **kwargs)
    export(anim, out, face=args.face, audio_path=str(wav))
    print(f"wrote {out} ({anim.n_frames} frames @ {anim.fps:g} fps, {utt.duration:.2f} s) and {wav}")
    return 0
