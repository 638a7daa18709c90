"""Moving stop onsets back over their closure silence.

Synthesisers (espeak-ng in particular) time a stop by its release burst: the silent closure that
precedes it is reported as the end of the previous phone. For animation that is wrong in the way
that shows most: the lips of /p b/ must be shut during the closure, not after it. These functions
find the low-energy stretch right before each stop's reported start and give it to the stop.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from .phoneset import inventory
from .types import SILENCE, PhoneSegment, WordSegment


def frame_level_db(
    audio: np.ndarray, *, sample_rate: int, hop: float = 0.0025, win: float = 0.005,
    block_frames: int = 1 << 15,
) -> np.ndarray:
    """Short-time RMS level in dB relative to the loud part of the signal.

    Parameters
    ----------
    audio : np.ndarray, shape (N,)
    sample_rate : int
    hop, win : float
        Frame step and window length in seconds.
    block_frames : int
        Frames computed at a time. Each block sums its own samples' squares in float64, so long
        audio needs no float64 copies of its whole length (five of them took 40 bytes per sample:
        860 MB for 16 minutes of 22 kHz speech); audio of one block gives the same numbers as ever.

    Returns
    -------
    np.ndarray, shape (F,), float64
        Level of frame ``i`` (centred at ``i * hop``) in dB below the 95th percentile frame.
    """
    h = max(1, int(round(hop * sample_rate)))
    w = max(h, int(round(win * sample_rate)))
    n = len(audio)
    n_frames = max(1, int(np.ceil(n / h)))
    energy = np.empty(n_frames, np.float64)
    for a in range(0, n_frames, max(1, int(block_frames))):
        b = min(n_frames, a + max(1, int(block_frames)))
        # Frame i covers samples [i * h - w // 2, i * h - w // 2 + w), zero outside the audio.
        lo, hi = a * h - w // 2, (b - 1) * h + w - w // 2
        seg = np.asarray(audio[max(lo, 0): min(hi, n)], dtype=np.float64)
        seg = np.pad(seg * seg, (max(0, -lo), max(0, hi - max(n, lo))))
        csum = np.concatenate([[0.0], np.cumsum(seg)])
        starts = np.arange(b - a) * h
        energy[a:b] = (csum[starts + w] - csum[starts]) / w
    db = 10.0 * np.log10(energy + 1e-12)
    ref = np.percentile(db, 95) if db.size else 0.0
    return db - ref


def refine_closures(
    audio: np.ndarray,
    *,
    sample_rate: int,
    phones: Sequence[PhoneSegment],
    threshold_db: float = -25.0,
    relative_drop_db: float = 20.0,
    max_closure: float = 0.15,
    max_closure_after_pause: float = 0.08,
    min_closure: float = 0.01,
    keep_previous: float = 0.02,
    hop: float = 0.0025,
) -> list[PhoneSegment]:
    """Give each stop, affricate or nasal the quiet closure that precedes its reported start.

    Starting at the stop's reported onset (its release, for most synthesisers), walk back through
    frames quieter than ``threshold_db`` (and ``relative_drop_db`` below the previous phone's
    loudest frame); if that quiet stretch lasts at least ``min_closure``, the
    stop starts where it began (at most ``max_closure`` earlier, and leaving the previous phone at
    least ``keep_previous`` seconds). After a pause the closure cannot be told from the silence, so
    it is taken as ``max_closure_after_pause``.

    Parameters
    ----------
    audio : np.ndarray, shape (N,)
    sample_rate : int
    phones : sequence of PhoneSegment
        Contiguous, in time order.
    threshold_db : float
        Level, relative to the loud part of the utterance, below which a frame counts as closure.

    Returns
    -------
    list of PhoneSegment
        Same phones and labels; only stop onsets (and the previous phones' ends) move.
    """
    inv = inventory()
    out = list(phones)
    level = frame_level_db(audio, sample_rate=sample_rate, hop=hop)
    for i in range(1, len(out)):
        info = inv.get(out[i].phone)
        if info is None or not (info.has_closure or info.manner == "nasal"):
            continue
        prev = out[i - 1]
        # Quiet relative to the phone before too, so a soft fricative (/f/ in "after") is not
        # mistaken for the closure of the stop after it.
        a, b = int(prev.start / hop), max(int(prev.start / hop) + 1, int(prev.end / hop))
        prev_peak = float(level[a:b].max()) if b <= len(level) and b > a else 0.0
        quiet_level = min(threshold_db, prev_peak - relative_drop_db)
        onset = out[i].start
        longest = max_closure_after_pause if prev.phone == SILENCE else max_closure
        earliest = max(prev.start + keep_previous, onset - longest)
        if prev.phone != SILENCE:
            # Two stops in a row (/kt/, /pt/) share one closure; do not take all of the first.
            if inv.get(prev.phone) is not None and inv[prev.phone].has_closure:
                earliest = max(earliest, (prev.start + onset) / 2)
        if earliest >= onset:
            continue
        f = int(np.floor(onset / hop + 1e-9)) - 1  # last frame wholly before the reported onset
        # Allow the reported onset to sit a frame or two inside the burst or before silence ends.
        first = f
        def quiet(k: int) -> bool:
            return bool(level[min(k, len(level) - 1)] < quiet_level)

        while first > 0 and first >= f - 2 and not quiet(first):
            first -= 1
        if first < 0 or not quiet(first):
            continue
        g = first
        while g - 1 >= 0 and quiet(g - 1) and (g - 1) * hop >= earliest:
            g -= 1
        new_start = max(g * hop, earliest)
        if onset - new_start < min_closure:
            continue
        out[i - 1] = replace(prev, end=new_start)
        out[i] = replace(out[i], start=new_start)
    return out


def remap_words(
    words: Sequence[WordSegment], before: Sequence[PhoneSegment], after: Sequence[PhoneSegment]
) -> list[WordSegment]:
    """Move word boundaries along with the phone boundaries they sit on.

    ``before`` and ``after`` are the same phones before and after a retiming (same length).
    """
    starts = {p.start: q.start for p, q in zip(before, after)}
    ends = {p.end: q.end for p, q in zip(before, after)}
    return [replace(w, start=starts.get(w.start, w.start), end=ends.get(w.end, w.end)) for w in words]
