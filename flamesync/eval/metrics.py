"""Lip-sync metrics as pure functions.

All curves are sampled at ``fps``; ``opening`` is the lip gap in metres per frame (from
``FaceModel.mouth_opening``), ``phones`` a list of segments with ``start``, ``end`` (seconds) and
``phone`` (unified IPA, silence ``"_"``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

BILABIALS = frozenset({"p", "b", "m"})
OPEN_VOWELS = frozenset({"a", "aː", "ɑ", "ɑː", "æ", "ɒ", "aɪ", "aʊ", "ʌ"})
SILENCE = "_"


def lip_vertex_error(pred: np.ndarray, ref: np.ndarray, lip_vertices: np.ndarray) -> float:
    """Lip vertex error (FaceFormer/CodeTalker definition).

    Per frame the maximal squared L2 distance over lip vertices, averaged over frames.

    Parameters
    ----------
    pred, ref : (T, V, 3) vertices in metres
    lip_vertices : (L,) vertex indices

    Returns
    -------
    float, square metres
    """
    d = np.sum((pred[:, lip_vertices] - ref[:, lip_vertices]) ** 2, axis=-1)  # (T, L)
    return float(np.mean(np.max(d, axis=1)))


def _frames(seg, fps: float, n: int) -> slice:
    return _span(seg.start, seg.end, fps, n)


def _span(start: float, end: float, fps: float, n: int) -> slice:
    """Frames overlapping ``[start, end]`` s, clipped to ``n`` frames and never empty."""
    a = int(np.floor(start * fps))
    b = int(np.ceil(end * fps))
    return slice(max(0, min(a, n - 1)), max(1, min(b, n)))


def closure_rate(opening: np.ndarray, fps: float, phones, *, threshold: float = 0.002) -> tuple[float, int]:
    """Share of /p b m/ segments during which the lips close (gap below ``threshold`` metres).

    A segment counts as closed when any frame overlapping it has a gap below the threshold.

    Returns
    -------
    (rate, count) : float in [0, 1] (NaN when there are none), number of segments
    """
    segs = [s for s in phones if s.phone in BILABIALS]
    if not segs:
        return float("nan"), 0
    closed = [np.min(opening[_frames(s, fps, len(opening))]) < threshold for s in segs]
    return float(np.mean(closed)), len(segs)


def vowel_closure_rate(opening: np.ndarray, fps: float, phones, *, threshold: float = 0.002) -> tuple[float, int]:
    """Share of vowels during whose middle half the lips close (gap below ``threshold`` metres).

    The other side of :func:`closure_rate`: a system that shuts the lips whenever it is unsure
    closes every /p b m/ and many vowels. Only the middle half counts, because a vowel next to
    /p b m/ legitimately starts or ends with the lips still closing or opening.

    Returns
    -------
    (rate, count) : float in [0, 1] (NaN when there are none), number of vowels
    """
    # The spans are the ones closure calibration budgets (one definition, so the budget and this
    # metric count the same vowels).
    from ..net.closure import vowel_middles

    spans = vowel_middles(phones, len(opening), fps=fps)
    closed = [np.min(opening[a:b]) < threshold for a, b in spans]
    if not closed:
        return float("nan"), 0
    return float(np.mean(closed)), len(closed)


def open_vowel_opening(opening: np.ndarray, fps: float, phones) -> float:
    """Mean over open vowels of the largest lip gap during the vowel, in metres (NaN if none)."""
    segs = [s for s in phones if s.phone in OPEN_VOWELS]
    if not segs:
        return float("nan")
    return float(np.mean([np.max(opening[_frames(s, fps, len(opening))]) for s in segs]))


def silence_at_rest(
    opening: np.ndarray,
    weights: np.ndarray,
    fps: float,
    phones,
    *,
    min_silence: float = 0.4,
    margin: float = 0.12,
    rest_opening: float = 0.004,
    rest_weight: float = 0.15,
) -> tuple[float, int]:
    """Share of long silences during which the face is at rest.

    Silences of at least ``min_silence`` s are checked away from their edges (``margin`` s each
    side, where coarticulation legitimately moves the mouth): at rest means the lip gap stays below
    ``rest_opening`` m and no expression weight exceeds ``rest_weight`` on at least 80% of frames.

    Returns
    -------
    (share, count)
    """
    n = len(opening)
    results = []
    for s in phones:
        if s.phone != SILENCE or s.end - s.start < min_silence:
            continue
        a = int(np.ceil((s.start + margin) * fps))
        b = int(np.floor((s.end - margin) * fps))
        a, b = max(0, a), min(n, b)
        if b <= a:
            continue
        still = (opening[a:b] < rest_opening) & (np.max(np.abs(weights[a:b]), axis=1) < rest_weight)
        results.append(np.mean(still) >= 0.8)
    if not results:
        return float("nan"), 0
    return float(np.mean(results)), len(results)


@functools.lru_cache(maxsize=1)
def _openness_table() -> dict[str, float]:
    from ..tables import config_path, read_tsv

    table = {row["phone"]: float(row["openness"]) for row in read_tsv(config_path("eval", "openness.tsv"))}
    return table


_VOWEL_CHARS = set("aeiouyæɑɒɔəɛɜɪʊʌɐɘɵɤɯœøɶɨʉɚ")


def phone_openness(phone: str) -> float:
    """Reference openness of a phone (0 closed .. 1 wide open), from configs/eval/openness.tsv."""
    table = _openness_table()
    if phone in table:
        return table[phone]
    if phone and phone[0] in table:
        return table[phone[0]]
    return 0.6 if phone and phone[0] in _VOWEL_CHARS else 0.3


def openness_curve(phones, fps: float, n_frames: int, *, smooth: float = 0.03) -> np.ndarray:
    """Phone-derived openness sampled at ``fps``, Gaussian-smoothed with ``smooth`` s, shape (n_frames,)."""
    from scipy.ndimage import gaussian_filter1d

    curve = np.zeros(n_frames)
    t = (np.arange(n_frames) + 0.5) / fps
    for s in phones:
        curve[(t >= s.start) & (t < s.end)] = phone_openness(s.phone)
    return gaussian_filter1d(curve, smooth * fps, mode="nearest") if smooth > 0 else curve


def av_lag(opening: np.ndarray, reference: np.ndarray, fps: float, *, max_lag: float = 0.25) -> tuple[float, float]:
    """Audio-to-motion lag: the shift maximising the correlation of ``opening`` with ``reference``.

    Returns
    -------
    (lag, correlation) : lag in seconds, positive when the motion comes later than the audio
    (ITU-R BT.1359 puts detectability near 45 ms audio lead / 125 ms audio lag); the correlation
    at that lag.
    """
    k = int(round(max_lag * fps))
    lags = np.arange(-k, k + 1)
    corr = np.full(len(lags), -np.inf)
    for i, lag in enumerate(lags):
        a, b = (opening[lag:], reference[: len(reference) - lag]) if lag >= 0 else (opening[:lag], reference[-lag:])
        if len(a) >= 10:
            c = correlation(a, b)
            corr[i] = -np.inf if np.isnan(c) else c
    i = int(np.argmax(corr))
    if not np.isfinite(corr[i]):
        return float("nan"), float("nan")
    shift = 0.0
    if 0 < i < len(lags) - 1 and np.isfinite(corr[i - 1]) and np.isfinite(corr[i + 1]):
        # A parabola through the peak and its neighbours gives the lag to a fraction of a frame.
        den = corr[i - 1] - 2 * corr[i] + corr[i + 1]
        if den < 0:
            shift = 0.5 * (corr[i - 1] - corr[i + 1]) / den
    return float((lags[i] + shift) / fps), float(corr[i])


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-12 or b.std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def jitter(opening: np.ndarray, fps: float) -> float:
    """Mean absolute second derivative of the lip gap, in m/s^2 (lower is smoother)."""
    if len(opening) < 3:
        return 0.0
    return float(np.mean(np.abs(np.diff(opening, n=2))) * fps * fps)
