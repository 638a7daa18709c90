"""Counter-based random numbers: the same draw for the same (seed, stream, index) in any chunking.

A stream processed in pieces must make the same random choices as one pass over the whole file,
so draws are a hash of what they are for (the frame, or the n-th event of a layer) rather than the
next value of a generator whose position would depend on how the work was split.
"""

from __future__ import annotations

import math

import numpy as np

_MASK = (1 << 64) - 1


def _mix(z: int) -> int:
    """SplitMix64's finaliser: a bijection of 64-bit integers with good avalanche."""
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & _MASK
    return z ^ (z >> 31)


def uniform(seed: int, stream: int, index: int, k: int = 0) -> float:
    """A uniform number in [0, 1) determined by ``(seed, stream, index, k)``."""
    z = _mix((seed * 0x9E3779B97F4A7C15 + stream) & _MASK)
    z = _mix((z + index * 0xD1B54A32D192ED03) & _MASK)
    z = _mix((z + k * 0xABC98388FB8FAC03 + 1) & _MASK)
    return (z >> 11) * (1.0 / (1 << 53))


def between(lo: float, hi: float, seed: int, stream: int, index: int, k: int = 0) -> float:
    """A uniform number in [lo, hi)."""
    return lo + (hi - lo) * uniform(seed, stream, index, k)


def exponential(mean: float, seed: int, stream: int, index: int, k: int = 0) -> float:
    """An exponentially distributed number with the given mean."""
    return -mean * math.log(1.0 - uniform(seed, stream, index, k))


def _mix_array(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniforms(seed: int, stream: int, indices: np.ndarray, k: int = 0) -> np.ndarray:
    """:func:`uniform` for many indices at once (the same numbers), shape of ``indices``."""
    idx = np.asarray(indices, np.int64).astype(np.uint64)
    head = np.uint64(_mix((seed * 0x9E3779B97F4A7C15 + stream) & _MASK))
    with np.errstate(over="ignore"):
        z = _mix_array(head + idx * np.uint64(0xD1B54A32D192ED03))
        z = _mix_array(z + np.uint64((k * 0xABC98388FB8FAC03 + 1) & _MASK))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
