"""Reading the synthetic corpus made by :mod:`flamesync.data.synth`.

>>> corpus = Corpus(path)
>>> corpus.manifest["fps"], corpus.manifest["channels"]
>>> for item in corpus.items("train"):
...     item.audio      # int16 (N,) at item.sample_rate (16000)
...     item.targets    # float32 (T, C) at fps (50): frame i is the pose at i / fps seconds
...     item.phones     # list of PhoneSegment
...     item.meta       # engine, voice, language, rate, split, text, words, ...

A shard is one ``.npz`` (read without pickle) of concatenated arrays with offsets: ``audio`` and
``audio_offsets``, ``targets`` and ``target_offsets``, ``phone_start``/``phone_end``/``phone_label``
and ``phone_offsets``, plus JSON strings ``meta`` (a list, one dict per utterance), ``header`` and
``stats``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from .synth import FORMAT, SPLITS, VERSION


@dataclass(frozen=True)
class CorpusItem:
    """One utterance of the corpus."""

    audio: np.ndarray            # (N,) int16
    sample_rate: int
    targets: np.ndarray          # (T, C) float32 at the corpus fps
    channels: tuple[str, ...]
    phones: list                 # list[PhoneSegment]
    meta: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.audio) / float(self.sample_rate)

    def audio_float(self) -> np.ndarray:
        """Samples as float32 in [-1, 1], shape (N,)."""
        return self.audio.astype(np.float32) / 32768.0


class Corpus:
    """A corpus folder: its manifest and its shards per split.

    Parameters
    ----------
    path : str or Path
        Folder holding ``manifest.json`` and the shards.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        mpath = self.path / "manifest.json"
        if not mpath.is_file():
            raise InputError(f"{self.path} is not a flamesync corpus (no manifest.json); make one with 'flamesync data synth'")
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(f"{mpath} is not valid JSON ({exc})") from None
        if manifest.get("format") != FORMAT:
            raise InputError(f"{mpath} is not a flamesync corpus manifest")
        if int(manifest.get("version", 0)) > VERSION:
            raise InputError(f"{self.path} was made by a newer flamesync; upgrade flamesync")
        self.manifest: dict = manifest
        self.channels: tuple[str, ...] = tuple(manifest["channels"])
        self.fps: float = float(manifest["fps"])
        self.sample_rate: int = int(manifest["sample_rate"])

    def shards(self, split: str) -> list[Path]:
        """Shard files of ``split`` that exist, in index order."""
        if split not in SPLITS:
            raise InputError(f"unknown corpus split {split!r}; choose from {', '.join(SPLITS)}")
        listed = self.manifest.get("shards", {}).get(split) or []
        found = {p.relative_to(self.path).as_posix() for p in (self.path / split).glob("shard-*.npz")}
        return [self.path / n for n in sorted(set(listed) | found) if (self.path / n).is_file()]

    def items(self, split: str) -> Iterator[CorpusItem]:
        """Every utterance of ``split``, shard by shard."""
        for shard in self.shards(split):
            yield from read_shard(shard)

    def __repr__(self) -> str:
        st = self.manifest.get("stats") or {}
        return f"Corpus({self.path}, {st.get('seconds', 0) / 3600:.2f} h, fps={self.fps:g})"


def read_shard(path: str | Path) -> Iterator[CorpusItem]:
    """The utterances of one shard file."""
    from ..phonetics.types import PhoneSegment

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            metas = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in ("audio", "audio_offsets", "targets", "target_offsets", "phone_start",
                                        "phone_end", "phone_label", "phone_offsets")}
    except Exception as exc:
        raise InputError(f"{path} is not a readable corpus shard ({exc.__class__.__name__}: {exc})") from None
    channels = tuple(header["channels"])
    sr = int(header["sample_rate"])
    ao, to, po = arrays["audio_offsets"], arrays["target_offsets"], arrays["phone_offsets"]
    for u, meta in enumerate(metas):
        phones = [
            PhoneSegment(float(s), float(e), str(l), str(l))
            for s, e, l in zip(arrays["phone_start"][po[u]:po[u + 1]], arrays["phone_end"][po[u]:po[u + 1]],
                               arrays["phone_label"][po[u]:po[u + 1]])
        ]
        yield CorpusItem(
            audio=arrays["audio"][ao[u]:ao[u + 1]],
            sample_rate=sr,
            targets=np.asarray(arrays["targets"][to[u]:to[u + 1]], np.float32),
            channels=channels,
            phones=phones,
            meta=meta,
        )
