"""``--record``: everything streamed, saved as an animation file when the stream ends (also after
Ctrl-C), then exportable like any take (``flamesync export take.npz -o take.glb``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...animation import Animation
from ...errors import InputError


class Recorder:
    """Collect the stream's animation chunks; :meth:`save` writes them as one ``.npz`` atomically.

    Unlike the network sinks it keeps every frame (memory: about 10 KB per second of audio).
    """

    def __init__(self, path, *, audio_path: str | None = None):
        from ...export import check_writable

        self.path = Path(path)
        if self.path.suffix.lower() != ".npz":
            raise InputError(f"--record writes an animation file ending in .npz, got {self.path.name}")
        check_writable(self.path)
        self.audio_path = audio_path
        self._chunks: list[Animation] = []
        self.name = f"record {self.path}"

    @property
    def n_frames(self) -> int:
        return sum(c.n_frames for c in self._chunks)

    def add(self, anim: Animation) -> None:
        if anim.n_frames:
            self._chunks.append(anim)

    def animation(self, *, meta: dict | None = None) -> Animation:
        if not self._chunks:
            raise InputError("nothing was streamed, so there is no take to record")
        first = self._chunks[0]
        for c in self._chunks[1:]:
            if c.channels != first.channels:  # the stream keeps one layout; anything else is a bug
                raise RuntimeError("live chunks changed their channel layout")
        values = np.concatenate([c.values for c in self._chunks])
        return Animation(fps=first.fps, channels=first.channels, values=values, audio_path=self.audio_path,
                         audio_offset=0.0, meta={**first.meta, "source": "flamesync live", **(meta or {})})

    def save(self, *, meta: dict | None = None) -> Path | None:
        """Write the take (None when nothing was streamed)."""
        if not self._chunks:
            return None
        return self.animation(meta=meta).save(self.path)
