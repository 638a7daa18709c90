"""The native animation file (see :class:`flamesync.Animation`)."""

from __future__ import annotations

from ..animation import Animation


def write(animation: Animation, path, *, face=None, audio_path=None, fmt=None, audio_label=None, **_):
    # audio_label: the path to record when the audio read here is a copy (a batch line sent to
    # another machine records where the audio lives on the machine that keeps the outputs).
    recorded = audio_label or audio_path
    anim = animation if recorded is None else animation.replace(audio_path=str(recorded))
    anim.write_npz(path)
