"""The "alive face" layer: blinks, gaze, brows, head motion and emotion from the speech's prosody.

The mouth comes from whichever backend animated the speech; this package adds what a face does
besides talking, driven by the same audio (loudness, F0, pauses and stressed syllables; see
:mod:`.prosody`) and by human statistics (see ``docs/expressive.md``). It is deterministic for a
seed, causal apart from a 20 ms analysis look-ahead (so :class:`LayerStream` runs inside the
streaming budget and gives the frames of a whole-file pass), and it never touches the channels
that close and open the lips.

Imports only downward: :mod:`flamesync.animation`, :mod:`flamesync.channels`, errors.
"""

from .emotion import EMOTIONS, EmotionKey, load_keys
from .engine import (LAYERS, OUTPUT_CHANNELS, BlockLayers, LayerFrames, Layers, LayerStream, ShiftStream, add_layers,
                     apply_frames, head_rotvec, shift_animation)

__all__ = [
    "BlockLayers", "EMOTIONS", "EmotionKey", "LAYERS", "Layers", "LayerFrames", "LayerStream", "OUTPUT_CHANNELS",
    "ShiftStream", "add_layers", "apply_frames", "head_rotvec", "load_keys", "shift_animation",
]
