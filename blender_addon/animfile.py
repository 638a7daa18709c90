"""Read a flamesync animation file (``.npz``) with numpy only: no torch, no flamesync.

The file holds ``values`` (T, C) float32 and ``header``, a JSON string with ``format`` ==
``"flamesync.animation"``, ``version``, ``fps``, ``channels``, ``audio_path``, ``audio_offset`` and
``meta`` (see flamesync/animation.py). Read with ``allow_pickle=False``: nothing in the file runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

FORMAT_NAME = "flamesync.animation"
MAX_VERSION = 1
ROTATIONS = {"jaw": ("jaw.rx", "jaw.ry", "jaw.rz"), "head": ("head.rx", "head.ry", "head.rz")}


class AnimationFileError(ValueError):
    pass


@dataclass
class AnimationFile:
    fps: float
    channels: list
    values: object  # numpy (T, C) float32
    audio_path: str | None = None
    audio_offset: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])

    def column(self, name):
        return self.values[:, self.channels.index(name)]

    @property
    def expression_channels(self) -> list:
        rot = {c for names in ROTATIONS.values() for c in names}
        return [c for c in self.channels if c not in rot]

    def resolved_audio(self, anim_path: str) -> str | None:
        """The audio file: as recorded, else a file of that name next to the animation."""
        if not self.audio_path:
            return None
        if os.path.isfile(self.audio_path):
            return self.audio_path
        beside = os.path.join(os.path.dirname(anim_path), os.path.basename(self.audio_path))
        return beside if os.path.isfile(beside) else None


def read_animation(path: str) -> AnimationFile:
    import numpy as np

    if not os.path.isfile(path):
        raise AnimationFileError(f"animation file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            values = np.asarray(z["values"], dtype=np.float32)
    except Exception as exc:
        raise AnimationFileError(f"{os.path.basename(path)} is not a flamesync animation file ({exc})") from None
    if header.get("format") != FORMAT_NAME:
        raise AnimationFileError(f"{os.path.basename(path)} is not a flamesync animation file")
    if int(header.get("version", 0)) > MAX_VERSION:
        raise AnimationFileError(f"{os.path.basename(path)} needs a newer flamesync add-on")
    channels = list(header["channels"])
    if values.ndim != 2 or values.shape[1] != len(channels):
        raise AnimationFileError(f"{os.path.basename(path)}: values do not match the channel list")
    return AnimationFile(fps=float(header["fps"]), channels=channels, values=values,
                         audio_path=header.get("audio_path"), audio_offset=float(header.get("audio_offset") or 0.0),
                         meta=header.get("meta") or {})


def write_animation(path: str, *, fps: float, channels, values, audio_path=None, meta=None) -> None:
    """Write the same format (used to ask flamesync for a neutral head)."""
    import numpy as np

    values = np.asarray(values, np.float32)
    header = {"format": FORMAT_NAME, "version": 1, "fps": float(fps), "channels": list(channels),
              "n_frames": int(values.shape[0]), "audio_path": audio_path, "audio_offset": 0.0, "meta": meta or {}}
    with open(path, "wb") as fh:
        np.savez_compressed(fh, values=values, header=np.array(json.dumps(header, sort_keys=True)))
