"""The native animation file (see :class:`flamesync.Animation`)."""

from __future__ import annotations

from ..animation import Animation


def write(animation: Animation, path, *, face=None, audio_path=None, fmt=None, **_):
    anim = animation if audio_path is None else animation.replace(audio_path=str(audio_path))
    anim.write_npz(path)
