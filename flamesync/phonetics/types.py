"""Value types for speech with known timings: phone and word segments, and utterances.

Times are seconds from the first sample of the utterance's audio. An :class:`Utterance` covers its
audio contiguously with phones: the first starts at 0, each starts where the previous ended and the
last ends at the audio's duration; silences and pauses carry the phone ``"_"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from ..errors import InputError

SILENCE = "_"


@dataclass(frozen=True, slots=True)
class PhoneSegment:
    """One phone of an utterance.

    Parameters
    ----------
    start, end : float
        Seconds, ``0 <= start <= end``.
    phone : str
        Unified label: broad IPA from the inventory of :mod:`flamesync.phonetics.phoneset`
        (``"p"``, ``"ʃ"``, ``"aɪ"``, ``"iː"``...), ``"_"`` for silence.
    label : str
        The engine's own symbol for it (``"aa"``, ``"t͡ʃ"``, ``"pau"``...), kept for debugging.
    """

    start: float
    end: float
    phone: str
    label: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class WordSegment:
    """One word of an utterance, spanning its phones (seconds)."""

    start: float
    end: float
    word: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Utterance:
    """Audio with its phones and words.

    Parameters
    ----------
    audio : np.ndarray, shape (N,), float32
        Mono samples in [-1, 1].
    sample_rate : int
        Samples per second.
    phones : list of PhoneSegment
        Contiguous cover of ``[0, N / sample_rate]``, gaps filled with ``"_"``.
    words : list of WordSegment
        Words in spoken order, each within the phones' span; pauses have no word.
    text : str
        The text that was spoken (or aligned).
    language : str
        Language code (``"en"``, ``"en-us"``, ``"de"``...).
    voice : str
        Voice name as the engine knows it.
    engine : str
        Engine name (``"espeak"``, ``"flite"``, ``"festival"``, ``"pocketsphinx"``...).
    """

    audio: np.ndarray
    sample_rate: int
    phones: list[PhoneSegment]
    words: list[WordSegment]
    text: str = ""
    language: str = ""
    voice: str = ""
    engine: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.audio) / float(self.sample_rate)

    def with_audio(self, audio: np.ndarray, **changes) -> "Utterance":
        """The same utterance with other samples (same length unless timings change too)."""
        return replace(self, audio=np.ascontiguousarray(audio, dtype=np.float32), **changes)

    def phone_array(self) -> tuple[np.ndarray, list[str]]:
        """Boundaries and labels as arrays.

        Returns
        -------
        times : np.ndarray, shape (P, 2), float64
            Start and end of each phone.
        phones : list of str, length P
        """
        times = np.array([[p.start, p.end] for p in self.phones], dtype=np.float64).reshape(-1, 2)
        return times, [p.phone for p in self.phones]


def fill_gaps(
    phones: Sequence[PhoneSegment], duration: float, *, min_gap: float = 1e-6
) -> list[PhoneSegment]:
    """Make phones a contiguous cover of ``[0, duration]``.

    Gaps become ``"_"`` segments, overlaps are cut at the later phone's start, adjacent silences are
    merged, zero-length phones are dropped and the last phone is stretched or cut to ``duration``.

    Parameters
    ----------
    phones : sequence of PhoneSegment
        In time order.
    duration : float
        Seconds of audio to cover.
    min_gap : float
        Gaps shorter than this are closed by moving the earlier phone's end rather than inserting
        a silence.
    """
    out: list[PhoneSegment] = []
    t = 0.0
    for p in phones:
        start, end = min(max(p.start, 0.0), duration), min(max(p.end, 0.0), duration)
        if end <= t:
            continue
        if start > t + min_gap:
            out.append(PhoneSegment(t, start, SILENCE, ""))
        else:
            start = t
        out.append(PhoneSegment(start, end, p.phone, p.label))
        t = end
    if t < duration - min_gap or not out:
        out.append(PhoneSegment(t, duration, SILENCE, ""))
    else:
        out[-1] = replace(out[-1], end=duration)
    merged: list[PhoneSegment] = []
    for p in out:
        if p.end <= p.start:
            continue
        if merged and p.phone == SILENCE and merged[-1].phone == SILENCE:
            merged[-1] = PhoneSegment(merged[-1].start, p.end, SILENCE, merged[-1].label or p.label)
        else:
            merged.append(p)
    return merged


def check_utterance(utt: Utterance, *, tol: float | None = None) -> None:
    """Raise InputError unless the phones cover the audio contiguously and words lie within.

    Parameters
    ----------
    utt : Utterance
    tol : float or None
        Allowed mismatch in seconds between the last phone's end and the audio's duration; default
        one sample.
    """
    if utt.audio.ndim != 1:
        raise InputError(f"utterance audio must be 1-D, got shape {utt.audio.shape}")
    if not utt.phones:
        raise InputError("utterance has no phones")
    tol = 1.0 / utt.sample_rate if tol is None else tol
    if abs(utt.phones[0].start) > 1e-9:
        raise InputError(f"first phone starts at {utt.phones[0].start:.4f} s, not 0")
    for a, b in zip(utt.phones, utt.phones[1:]):
        if abs(a.end - b.start) > 1e-9:
            raise InputError(f"phones not contiguous at {a.end:.4f}/{b.start:.4f} s")
    for p in utt.phones:
        if not (math.isfinite(p.start) and math.isfinite(p.end)) or p.end < p.start:
            raise InputError(f"bad phone interval {p}")
    if abs(utt.phones[-1].end - utt.duration) > tol:
        raise InputError(
            f"phones end at {utt.phones[-1].end:.4f} s but the audio lasts {utt.duration:.4f} s"
        )
    last = 0.0
    for w in utt.words:
        if w.start < last - 1e-9 or w.end < w.start or w.end > utt.duration + tol:
            raise InputError(f"word {w.word!r} at {w.start:.3f}-{w.end:.3f} s out of order or range")
        last = w.end
