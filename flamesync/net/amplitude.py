"""Amplitude calibration of the mouth-opening channels.

A network trained with an L1 loss predicts the conditional median of its targets; where the audio
leaves it unsure which vowel it hears (noise, reverb, an unfamiliar voice) the median is a
half-open mouth, so open vowels come out under-opened (about 17% on noisy synthetic validation).
A per-channel monotone map from the network's output quantiles to the teacher's quantiles,
fitted on the same noisy validation speech as the closure decoder, restores the teacher's range.
It acts frame by frame, so streaming and offline output stay identical.
"""

from __future__ import annotations

import numpy as np

# The channels that open the mouth; the others (rounding, smiles, ...) are left as predicted.
OPENING_CHANNELS: tuple[str, ...] = (
    "jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
)


def fit_quantile_map(pred: np.ndarray, target: np.ndarray, *, n_quantiles: int = 21) -> dict[str, list[float]]:
    """Monotone map sending the quantiles of ``pred`` to those of ``target``.

    Parameters
    ----------
    pred, target : np.ndarray, shape (N,)
        One channel's predictions and teacher values over the same frames.
    n_quantiles : int
        Number of evenly spaced quantiles (0 and 1 included) used as knots.

    Returns
    -------
    dict with ``x`` (prediction knots, strictly increasing) and ``y`` (teacher values,
    non-decreasing), both of length ``n_quantiles``
    """
    pred = np.asarray(pred, np.float64).ravel()
    target = np.asarray(target, np.float64).ravel()
    if pred.size == 0 or target.size == 0:
        raise ValueError("cannot fit a quantile map on no frames")
    q = np.linspace(0.0, 1.0, n_quantiles)
    x = np.quantile(pred, q)
    y = np.quantile(target, q)
    # np.interp needs increasing knots; a tie (a channel stuck at 0 for many frames) is split by a hair.
    x = np.maximum.accumulate(x + np.arange(n_quantiles) * 1e-9)
    return {"x": [float(v) for v in x], "y": [float(v) for v in y]}


def apply_quantile_maps(weights: np.ndarray, maps: dict[str, dict], *, channels: tuple[str, ...]) -> np.ndarray:
    """Apply per-channel maps from :func:`fit_quantile_map`; values outside the knots are held flat.

    Parameters
    ----------
    weights : np.ndarray, shape (T, C)
    maps : channel name -> {"x": [...], "y": [...]} (channels absent from it are untouched)
    channels : names of the C columns

    Returns
    -------
    np.ndarray, shape (T, C), float32
    """
    out = np.array(weights, np.float32, copy=True)
    for name, m in maps.items():
        if name in channels:
            j = channels.index(name)
            out[:, j] = np.interp(out[:, j], m["x"], m["y"]).astype(np.float32)
    return out


def smooth_channels(weights: np.ndarray, *, alpha: float, columns: list[int],
                    state: np.ndarray | None = None, alpha_closing: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Causal one-pole smoothing ``y[t] = y[t-1] + alpha * (x[t] - y[t-1])`` of some columns.

    Causal, so it adds no look-ahead (a streamed frame cannot wait for later ones); the state
    carries across calls, so a stream in pieces gives the whole take's numbers. Without a state
    the filter starts at the first frame's value (no ramp from zero).

    Parameters
    ----------
    weights : np.ndarray, shape (T, C)
    alpha : float in (0, 1]; 1 leaves the columns as they are
    columns : indices of the columns to smooth
    state : np.ndarray, shape (len(columns),), or None
        The last output of the previous call.
    alpha_closing : float in (0, 1], or None (the same as ``alpha``)
        The rate on frames where the input falls below the last output (the mouth closing). A
        symmetric filter fills in brief dips, so the network's own short near-closures that the
        closure decoder misses stay open; 1 follows every fall at once and smooths only the rises.

    Returns
    -------
    weights : np.ndarray, shape (T, C), float32 (a copy)
    state : np.ndarray, shape (len(columns),), float64
    """
    out = np.array(weights, np.float32, copy=True)
    if not len(out) or not columns:
        return out, (np.zeros(len(columns)) if state is None else state)
    x = out[:, columns].astype(np.float64)
    prev = x[0] if state is None else np.asarray(state, np.float64)
    if alpha_closing is not None and alpha_closing != alpha:
        # The rate depends on the sign of each step, so no linear filter does it: a loop over frames
        # on plain floats, column by column (numpy calls on five values cost more than the arithmetic).
        y = np.empty_like(x)
        for j in range(x.shape[1]):
            v, up, down = float(prev[j]), float(alpha), float(alpha_closing)
            col = []
            for xt in x[:, j].tolist():
                d = xt - v
                v += (down if d < 0.0 else up) * d
                col.append(v)
            y[:, j] = col
        out[:, columns] = y.astype(np.float32)
        return out, y[-1].copy()
    from scipy.signal import lfilter  # only this path needs it; scipy.signal takes a second to import

    # y[t] = alpha x[t] + (1 - alpha) y[t-1]; lfilter's initial condition for that is (1-alpha) y[-1].
    y, _ = lfilter([alpha], [1.0, alpha - 1.0], x, axis=0, zi=((1.0 - alpha) * prev)[None])
    out[:, columns] = y.astype(np.float32)
    return out, y[-1].copy()
