"""The expressive-layer options shared by commands that animate speech (``flamesync animate``)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

LAYER_HELP = {
    "blinks": "eye blinks, placed preferentially at pauses",
    "gaze": "eye saccades and fixations",
    "brows": "brow raises on pitch accents",
    "head": "head nods, sway and F0-following pitch",
}


def add_layer_options(p) -> None:
    """Add the layer, emotion, seed, timing and --mouth-only options to a sub-parser."""
    from ..expressive import EMOTIONS

    g = p.add_argument_group("alive face (blinks, gaze, brows, head, emotion; see docs/expressive.md)")
    for name, what in LAYER_HELP.items():
        g.add_argument(f"--{name}", type=float, default=1.0, metavar="S",
                       help=f"strength of {what}: 0 off, 1 default, up to 2")
        g.add_argument(f"--no-{name}", dest=name, action="store_const", const=0.0, help=f"switch off {what}")
    # Checked by Layers (one-line error) rather than argparse choices (a usage dump).
    g.add_argument("--emotion", default="neutral", metavar="NAME",
                   help="emotion held for the take: " + ", ".join(EMOTIONS) + " (default neutral)")
    g.add_argument("--intensity", type=float, default=0.6, metavar="X", help="emotion intensity 0..1 (default 0.6)")
    g.add_argument("--emotion-keys", metavar="FILE",
                   help="time-varying emotion: TSV/CSV lines 'time emotion intensity' or a JSON list")
    g.add_argument("--mouth-only", action="store_true",
                   help="speech channels only: no layers, no emotion (for layering over mocap or hand keys)")
    g.add_argument("--seed", type=int, default=0, help="seed of the layers' random choices (default 0)")
    g.add_argument("--timing-offset", type=float, default=0.0, metavar="SEC",
                   help="move the whole animation this many seconds later (negative: earlier)")
    g.add_argument("--blink-rate", type=float, default=20.0, metavar="PER_MIN",
                   help="base blinks per minute while talking (default 20)")
    g.add_argument("--head-degrees", type=float, default=3.0, metavar="DEG",
                   help="peak nod in degrees for an ordinary stress (default 3); sway scales with it")


def layer_options(args) -> dict:
    """Keyword arguments for :func:`flamesync.animate` from parsed options, checked before any work."""
    import math

    from ..expressive import Layers, load_keys

    if not math.isfinite(args.timing_offset) or abs(args.timing_offset) > 10.0:
        raise InputError(f"--timing-offset must be within 10 seconds either way, got {args.timing_offset}")
    keys = load_keys(args.emotion_keys) if args.emotion_keys else None
    if keys is not None and args.emotion != "neutral":
        raise InputError("give either --emotion or --emotion-keys, not both")
    layers = Layers(blinks=args.blinks, gaze=args.gaze, brows=args.brows, head=args.head, emotion=args.emotion,
                    intensity=args.intensity, keys=keys, seed=args.seed, blink_rate=args.blink_rate,
                    head_degrees=args.head_degrees)
    return {"layers": layers, "mouth_only": args.mouth_only, "timing_offset": args.timing_offset}


def apply_layer_options(anim, audio, sample_rate: int, *, layers, mouth_only: bool, timing_offset: float):
    """The layers and timing offset of :func:`layer_options` applied to an animation made from ``audio``
    (for commands that animate without :func:`flamesync.animate`, such as ``say``): samples at
    ``sample_rate``, or an audio file (``sample_rate`` None), read a block at a time."""
    from ..audio.io import AudioBlocks, load_audio
    from ..expressive import BlockLayers, add_layers, shift_animation

    if not mouth_only:
        if isinstance(audio, np.ndarray):
            anim = add_layers(anim, load_audio(audio, source_rate=sample_rate, allow_silent=True), layers)
        else:
            # add_layers' own blocks (60 s), fed from the file: its result without the whole audio.
            layer_pass = BlockLayers(anim.fps, layers)
            for block in AudioBlocks(audio):
                layer_pass.feed(block)
            anim = layer_pass.finish(anim)
    return shift_animation(anim, timing_offset)
