"""Small numeric helpers in plain numpy.

``flamesync animate`` resamples every animation it writes; doing that with ``scipy.ndimage`` and
``scipy.spatial.transform`` costs about a quarter of a second of imports per process, more than
the network needs for minutes of audio. These are the two operations it needs, written out, and
the one test of a number read from a file that the file checks share.
"""

from __future__ import annotations

import math

import numpy as np


def is_finite_number(x) -> bool:
    """Whether ``x`` is a finite int or float, and not a bool (which JSON readers and YAML treat as
    numbers, but no header or config field means as one)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def gaussian_smooth(x: np.ndarray, sigma: float, *, truncate: float = 4.0) -> np.ndarray:
    """Gaussian filter along axis 0 with edge values repeated (``scipy.ndimage.gaussian_filter1d``,
    ``mode="nearest"``: same kernel, same radius ``int(truncate * sigma + 0.5)``).

    Parameters
    ----------
    x : np.ndarray, shape (T, ...)
    sigma : float, in samples (> 0)

    Returns
    -------
    np.ndarray, shape (T, ...), float64
    """
    x = np.asarray(x, np.float64)
    radius = int(truncate * float(sigma) + 0.5)
    if radius < 1 or len(x) == 0:
        return x.copy()
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / float(sigma)) ** 2)
    k /= k.sum()
    pad = np.concatenate([np.repeat(x[:1], radius, axis=0), x, np.repeat(x[-1:], radius, axis=0)])
    out = np.zeros_like(x)
    for i, w in enumerate(k):
        out += w * pad[i:i + len(x)]
    return out


def rotvec_to_quat(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle (N, 3) to unit quaternions (N, 4), scalar first (w, x, y, z)."""
    v = np.asarray(rotvec, np.float64)
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    small = angle < 1e-6
    # sin(a/2)/a, with its Taylor series where a is tiny
    scale = np.where(small, 0.5 - angle ** 2 / 48.0, np.sin(angle / 2) / np.where(small, 1.0, angle))
    return np.concatenate([np.cos(angle / 2), v * scale], axis=-1)


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (N, 4), scalar first, to axis-angle (N, 3) with angle in [0, pi]."""
    q = np.asarray(q, np.float64)
    q = np.where(q[..., :1] < 0, -q, q)  # the same rotation; picks the shorter way round
    xyz = q[..., 1:]
    s = np.linalg.norm(xyz, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    small = s < 1e-9
    scale = np.where(small, 2.0 / np.maximum(q[..., :1], 1e-12), angle / np.where(small, 1.0, s))
    return xyz * scale


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of quaternions (N, 4), scalar first: rotation ``b`` then ``a``."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, np.float64), -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def slerp_rotvec(start: np.ndarray, end: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Spherical interpolation from rotations ``start`` to ``end`` (both (N, 3) axis-angle) by
    ``frac`` (N,) in [0, 1], along the shorter arc. Returns (N, 3) axis-angle."""
    q0 = rotvec_to_quat(start)
    q1 = rotvec_to_quat(end)
    conj = q0 * np.array([1.0, -1.0, -1.0, -1.0])
    delta = quat_to_rotvec(quat_multiply(conj, q1))
    step = rotvec_to_quat(delta * np.asarray(frac, np.float64)[:, None])
    return quat_to_rotvec(quat_multiply(q0, step))
