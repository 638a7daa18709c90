"""Comparing two phone segmentations of the same audio (engine timings vs an aligner, say).

The two sides rarely have the same phone sequence (espeak's lexicon is not cmudict's, "the" may be
/ðə/ or /ði/), so the sequences are matched first by an edit-distance alignment in which phones of
the same broad class cost less to substitute; a boundary is comparable when the phones on both of
its sides are matched pairs. Boundaries into and out of silence count too.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .phoneset import inventory
from .types import SILENCE, PhoneSegment


def _class(phone: str) -> str:
    info = inventory().get(phone)
    if info is None:
        return "?"
    if info.is_silence:
        return "sil"
    if info.is_vowel:
        return "vowel"
    return info.manner or "cons"


def _sub_cost(a: str, b: str) -> float:
    if a == b:
        return 0.0
    if _class(a) == _class(b):
        return 0.5
    return 1.0


def match_phones(ref: Sequence[str], hyp: Sequence[str], *, max_cost: float = 0.5) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of matched phones between two label sequences, in order.

    Parameters
    ----------
    ref, hyp : sequence of str
        Unified phone labels.
    max_cost : float
        Substitutions costing more than this (different broad classes) are not reported as pairs.
    """
    n, m = len(ref), len(hyp)
    cost = np.zeros((n + 1, m + 1))
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(
                cost[i - 1, j - 1] + _sub_cost(ref[i - 1], hyp[j - 1]),
                cost[i - 1, j] + 1.0,
                cost[i, j - 1] + 1.0,
            )
    pairs = []
    i, j = n, m
    while i > 0 and j > 0:
        c = _sub_cost(ref[i - 1], hyp[j - 1])
        if cost[i, j] == cost[i - 1, j - 1] + c:
            if c <= max_cost:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1.0:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def boundary_pairs(ref: Sequence[PhoneSegment], hyp: Sequence[PhoneSegment]) -> np.ndarray:
    """Times of the boundaries both segmentations share.

    A boundary between phones ``k`` and ``k+1`` of ``ref`` is shared when both phones are matched
    (by :func:`match_phones`) to consecutive phones ``l``, ``l+1`` of ``hyp``.

    Returns
    -------
    np.ndarray, shape (B, 2), float64
        ``(ref_time, hyp_time)`` per shared boundary.
    """
    pairs = match_phones([p.phone for p in ref], [p.phone for p in hyp])
    out = []
    for (i0, j0), (i1, j1) in zip(pairs, pairs[1:]):
        if i1 == i0 + 1 and j1 == j0 + 1:
            if ref[i0].phone == SILENCE and ref[i1].phone == SILENCE:
                continue
            out.append((ref[i0].end, hyp[j0].end))
    return np.array(out, dtype=np.float64).reshape(-1, 2)
