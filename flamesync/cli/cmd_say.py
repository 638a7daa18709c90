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
    p.add_argument("-o", "--output", action="append", required=True, metavar="FILE",
                   help="output file (.npz, .glb, .csv, ...); repeat for several formats")
    p.add_argument("--voice", default=None, help="engine voice (espeak: en-us, en-us+f3, de, ...)")
    p.add_argument("--engine", default="espeak", choices=("espeak", "flite", "festival"),
                   help="speech engine (default espeak)")
    p.add_argument("--rate", type=float, default=1.0, help="speaking-rate factor (default 1.0)")
    p.add_argument("--pitch", type=float, default=None, help="pitch factor (espeak)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    p.add_argument("--wav", default=None, help="where to write the speech (default: the first OUTPUT's name with .wav)")
    p.add_argument("--face", default=None, help="face model for formats with geometry (default head)")
    from ._layers import add_layer_options

    add_layer_options(p)
    p.set_defaults(func=run)


def default_wav_path(output: str | Path) -> Path:
    """``take.npz`` -> ``take.wav``; ``take.meshes.npz`` -> ``take.wav``."""
    from ..export import format_for

    output = Path(output)
    suffix = format_for(output).suffix
    return output.with_name(output.name[: len(output.name) - len(suffix)] + ".wav")


def run(args) -> int:
    from ..animation import check_fps
    from ..errors import InputError
    from ..export import check_writable, export
    from ..fileio import transaction
    from ..phonetics.textanimate import SAY_CHUNK_WORDS, say, say_to_wav
    from ._checks import check_outputs
    from ._layers import apply_layer_options, layer_options

    # Everything is checked before the speech is made, so a bad option leaves no file.
    outputs = check_outputs(args.output)
    fps = check_fps(args.fps)
    layer_kw = layer_options(args)
    wav = Path(args.wav) if args.wav else default_wav_path(outputs[0])
    check_writable(wav)
    if wav.suffix.lower() != ".wav":
        raise InputError(f"--wav must name a .wav file, got {wav.name}")
    for out in outputs:
        if wav.resolve() == Path(out).resolve():
            raise InputError(f"--wav and the output are the same file: {wav}")
    face = None
    if args.face is not None:
        from ..face import load_face

        face = load_face(args.face)
    voice = args.voice or {"espeak": "en-us"}.get(args.engine)
    kwargs = {"voice": voice} if voice else {}
    if args.engine != "espeak" and args.voice is None:
        from ..phonetics.engines import get_engine

        kwargs = {"voice": get_engine(args.engine).default_voice}
    # The speech and every output appear together once all are written, or none does.
    with transaction():
        if len(args.text.split()) <= SAY_CHUNK_WORDS:
            anim, utt = say(args.text, engine=args.engine, fps=fps, wav_path=wav, rate=args.rate,
                            pitch=args.pitch, **kwargs)
            anim = apply_layer_options(anim, utt.audio, utt.sample_rate, **layer_kw)
            duration = utt.duration
            del utt
        else:
            # A long text is spoken a run of sentences at a time straight into the WAV, and the
            # layers read it back a block at a time: memory does not grow with the speech.
            from ..fileio import pending

            anim, duration = say_to_wav(args.text, wav, engine=args.engine, fps=fps, rate=args.rate,
                                        pitch=args.pitch, **kwargs)
            anim = apply_layer_options(anim, pending(wav) or wav, None, **layer_kw)
        for out in outputs:
            export(anim, out, face=face, audio_path=str(wav))
    for out in outputs:
        print(f"wrote {out} ({anim.n_frames} frames @ {anim.fps:g} fps, {duration:.2f} s)")
    print(f"wrote {wav}")
    return 0
