"""Frame-level training targets derived from phone segments: lip closure and viseme classes.

The corpus gives phones as IPA strings with start/end times. Two things are derived from them at the
network's frame rate:

- closure: 1 on frames inside a bilabial closure (/p b m/, any diacritics), else 0;
- visemes: one of :data:`VISEME_CLASSES` per frame, a coarse grouping by visible articulation that
  serves as an auxiliary classification target (it gives the encoder a phonetic signal that is
  independent of the teacher's blendshape conventions).
"""

from __future__ import annotations

import unicodedata
from typing import Iterable

import numpy as np

VISEME_CLASSES: tuple[str, ...] = (
    "sil",       # silence, pauses
    "PBM",       # bilabial closure
    "FV",        # labiodental
    "TH",        # dental
    "TDNL",      # alveolar stops, nasals, laterals, flaps
    "SZ",        # alveolar fricatives/affricates
    "SH",        # postalveolar / palatal fricatives and affricates
    "KG",        # velar, uvular, glottal
    "R",         # rhotics
    "W",         # labial-velar glides, rounded close vowels
    "Y",         # palatal glide, close front vowels
    "E",         # mid front vowels
    "A",         # open vowels
    "O",         # mid back rounded vowels
    "U",         # central / lax vowels, schwa
)

_SILENCE = {"", "sil", "sp", "spn", "pau", "_", "#", "<sil>", "SIL"}

# Base IPA symbol (first letter after dropping diacritics) -> class. Multi-letter symbols (affricates,
# diphthongs) are classed by their first letter, which is where the mouth shape starts.
_CLASS_OF: dict[str, str] = {}
for _cls, _chars in {
    "PBM": "pbmɓ",
    "FV": "fvɱʋɸβ",
    "TH": "θð",
    "TDNL": "tdnlɾɫɗʈɖɳɭɬɮ",
    "SZ": "szʦʣ",
    "SH": "ʃʒʧʤɕʑçʝʂʐɲʎ",
    "KG": "kgŋxɣqɢχʁhɦʔɡɰ",
    "R": "rɹɻʀɚɝ",
    "W": "wʍuʉɥ",
    "Y": "jiyɨ",
    "E": "eɛæøœɪʏ",
    "A": "aɑɐɒ",
    "O": "oɔɤ",
    "U": "əʊʌɵɘɜɞɯ",
}.items():
    for _c in _chars:
        _CLASS_OF[_c] = _cls

CLOSURE_BASES = frozenset("pbm")


def base_symbol(phone: str) -> str:
    """First base letter of an IPA phone, with diacritics, length and stress marks removed."""
    for ch in unicodedata.normalize("NFD", phone or ""):
        if unicodedata.category(ch) in ("Lu", "Ll", "Lo"):  # not Lm: stress, length, aspiration marks
            return ch
    return ""


def viseme_of(phone: str) -> int:
    """Index into :data:`VISEME_CLASSES` for one IPA phone (unknown symbols count as ``U``)."""
    if (phone or "").strip() in _SILENCE:
        return 0
    base = base_symbol(phone)
    if not base:
        return 0
    if base in "td" and any(ch in phone for ch in "ʃʒɕʑ"):
        return VISEME_CLASSES.index("SH")  # postalveolar affricates t͡ʃ d͡ʒ: the mouth shape is ʃ's
    return VISEME_CLASSES.index(_CLASS_OF.get(base, "U"))


def is_closure(phone: str) -> bool:
    """True for bilabial closures /p b m/ (with any diacritics)."""
    return base_symbol(phone) in CLOSURE_BASES and (phone or "").strip() not in _SILENCE


def frame_labels(phones: Iterable, n_frames: int, *, fps: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame closure and viseme labels.

    Parameters
    ----------
    phones : iterable of objects with ``start``, ``end`` (seconds) and ``phone`` (IPA)
    n_frames : int
    fps : float

    Returns
    -------
    closure : np.ndarray, shape (n_frames,), float32 in {0, 1}
    visemes : np.ndarray, shape (n_frames,), int64 (0 = silence where no phone covers a frame)
    """
    closure = np.zeros(n_frames, np.float32)
    visemes = np.zeros(n_frames, np.int64)
    t = np.arange(n_frames) / fps
    for seg in phones:
        inside = (t >= float(seg.start)) & (t < float(seg.end))
        if not inside.any():
            # Phones shorter than a frame still mark the nearest frame.
            j = int(round(0.5 * (float(seg.start) + float(seg.end)) * fps))
            if not 0 <= j < n_frames:
                continue
            inside = np.zeros(n_frames, bool)
            inside[j] = True
        visemes[inside] = viseme_of(seg.phone)
        if is_closure(seg.phone):
            closure[inside] = 1.0
    return closure, visemes


def closure_segments(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in a boolean frame mask as ``(start, stop)`` frame pairs."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))
