"""The native animation file (see :class:`flamesync.Animation`)."""

from __future__ import annotations

import numpy as np

from ..animation import Animation


def write(animation: Animation, path, *, face=None, audio_path=None, fmt=None, **_):
    anim = animation if audio_path is None else animation.replace(audio_path=str(audio_path))
    import json

    with open(path, "wb") as fh:
        np.savez_compressed(fh, values=anim.values, header=np.array(json.dumps(anim.header(), sort_keys=True)))
