"""Frame-level prosody for the expressive layers: loudness, F0, speech activity, accents.

Everything here is causal apart from the analysis window, which reaches ``LOOKAHEAD_SECONDS``
(20 ms) past a frame's time, so the same code runs on a whole file and on a live stream and gives
the same frames (see :class:`FrameAnalyzer` and :class:`ProsodyTracker`).

F0 is a YIN-style estimate (cumulative-mean-normalised difference function, computed from an FFT
autocorrelation) on 40 ms windows decimated to 4 kHz, only where the window is loud enough to be
speech: a few microseconds a frame, hundreds of times faster than probabilistic YIN, and accurate
enough to find pitch accents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
_DECIM = 4  # analysis at 4 kHz: F0 and loudness live far below 2 kHz
_RATE = SAMPLE_RATE // _DECIM
_HALF = 80  # analysis samples each side of a frame's time: a 40 ms window
HALF_WINDOW = _HALF * _DECIM  # the same in 16 kHz samples
LOOKAHEAD_SECONDS = HALF_WINDOW / SAMPLE_RATE
_W = 2 * _HALF
_LAG_MIN, _LAG_MAX = 10, 67  # lags at 4 kHz: 400 Hz down to 60 Hz
_NFFT = 256  # >= _W + _LAG_MAX, so no lag that is used wraps around the circular autocorrelation
_DIP = 0.15  # YIN's absolute threshold on the normalised difference
_VOICED = 0.35  # a window whose best normalised difference is above this is unvoiced
_FLOOR_DB = -55.0  # below this level (dB re full scale) a window is silence whatever else


def frame_centres(first: int, stop: int, fps: float) -> np.ndarray:
    """Analysis-rate (4 kHz) sample index of the time of frames ``first .. stop - 1``, shape (n,)."""
    return np.round(np.arange(first, stop) * (_RATE / fps)).astype(np.int64)


def yin_f0(x: np.ndarray) -> np.ndarray:
    """F0 of 4 kHz windows by YIN's cumulative-mean-normalised difference.

    Parameters
    ----------
    x : np.ndarray, shape (m, 160)
        Windows of 40 ms at 4 kHz.

    Returns
    -------
    np.ndarray, shape (m,)
        F0 in Hz (60-400), NaN where the window is not periodic enough to be voiced.
    """
    n = len(x)
    if n == 0:
        return np.zeros(0)
    x = np.asarray(x, np.float32)
    x = x - x.mean(axis=1, keepdims=True)
    sq = x * x
    spec = np.fft.rfft(x, _NFFT, axis=1)
    acf = np.fft.irfft(spec.real ** 2 + spec.imag ** 2, _NFFT, axis=1)[:, : _LAG_MAX + 1]
    cs = np.concatenate([np.zeros((n, 1)), np.cumsum(sq, axis=1, dtype=np.float64)], axis=1)
    taus = np.arange(_LAG_MAX + 1)
    # YIN difference d(tau) = sum_j (x_j - x_{j+tau})^2 over the overlap, from the energies and the ACF.
    diff = cs[:, _W - taus] + (cs[:, _W:] - cs[:, taus]) - 2.0 * acf
    diff[:, 0] = 0.0
    cum = np.cumsum(diff[:, 1:], axis=1)
    norm = np.ones_like(diff)
    norm[:, 1:] = diff[:, 1:] * taus[1:] / np.maximum(cum, 1e-12)
    seg = norm[:, _LAG_MIN: _LAG_MAX + 1]
    below = seg < _DIP
    any_below = below.any(axis=1)
    first = np.where(any_below, np.argmax(below, axis=1), 0)
    # The first dip under the threshold, refined to its local minimum (avoids octave-low errors).
    idx = np.arange(seg.shape[1])
    reach = np.where(any_below, first + first // 4 + 2, seg.shape[1])
    masked = np.where((idx >= first[:, None]) & (idx <= reach[:, None]), seg, np.inf)
    best = np.argmin(masked, axis=1)
    rows = np.arange(n)
    val = seg[rows, best]
    lo = seg[rows, np.maximum(best - 1, 0)]
    hi = seg[rows, np.minimum(best + 1, seg.shape[1] - 1)]
    curv = lo + hi - 2.0 * val
    shift = np.where(curv > 1e-9, 0.5 * (lo - hi) / np.where(curv > 1e-9, curv, 1.0), 0.0)
    tau = _LAG_MIN + best + np.clip(shift, -0.5, 0.5)
    return np.where(val < _VOICED, _RATE / tau, np.nan)


class FrameAnalyzer:
    """Audio in, per-frame loudness and F0 out, at any frame rate, in any chunking.

    Frame ``i`` is analysed once the audio reaches ``i / fps + LOOKAHEAD_SECONDS`` (or at the end,
    with silence after the last sample, as a whole-file pass pads). Only the samples still needed
    are kept, so memory does not grow with the length of the stream. The audio is decimated to
    4 kHz by averaging groups of four samples counted from the start of the stream, so every
    chunking sees the same analysis samples.

    Parameters
    ----------
    fps : float
        Frame rate of the animation the frames belong to.
    """

    def __init__(self, fps: float):
        self.fps = float(fps)
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0  # absolute 16 kHz index of _buf[0], always a multiple of _DECIM
        self._n_samples = 0
        self.frames_done = 0

    def feed(self, samples: np.ndarray) -> None:
        """Append 16 kHz mono samples, shape (n,)."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, samples])
        self._n_samples += len(samples)

    def ready(self, *, final: bool = False) -> int:
        """How many frames (counted from 0) have all their audio."""
        if final:
            return 1 << 62
        have = self._n_samples // _DECIM  # complete analysis samples
        last = math.floor((have - _HALF + 0.5) * self.fps / _RATE) + 1
        while last >= 0 and round(last * _RATE / self.fps) + _HALF > have:
            last -= 1
        return max(0, last + 1)

    def analyse(self, stop: int, *, block: int = 3000) -> tuple[np.ndarray, np.ndarray]:
        """Loudness (dB) and F0 (Hz or NaN) of frames ``frames_done .. stop - 1``, shape (m,) each."""
        first = self.frames_done
        levels, f0s = [], []
        base = self._buf_start // _DECIM
        for a in range(first, stop, block):  # bounded memory: ``block`` frames at a time
            b = min(stop, a + block)
            centres = frame_centres(a, b, self.fps) - base
            lo = int(centres[0]) - _HALF
            hi = int(centres[-1]) + _HALF
            d = self._decimated(max(lo, 0), hi)
            if lo < 0:
                d = np.concatenate([np.zeros(-lo, np.float32), d])
            offs = centres - _HALF - lo
            # Per-window sums (not differences of a running sum), so a frame's numbers never
            # depend on where a block began.
            win = d[offs[:, None] + np.arange(_W)[None, :]]
            level_db = 10.0 * np.log10(win.var(axis=1, dtype=np.float64) + 1e-12)
            f0 = np.full(len(centres), np.nan)
            loud = np.nonzero(level_db > _FLOOR_DB)[0]  # silence has no pitch: skip the work
            if len(loud):
                f0[loud] = yin_f0(win[loud])
            levels.append(level_db)
            f0s.append(f0)
        self.frames_done = max(first, stop)
        keep_from = (int(frame_centres(self.frames_done, self.frames_done + 1, self.fps)[0]) - _HALF) * _DECIM
        drop = min(max(0, keep_from - self._buf_start), len(self._buf) // _DECIM * _DECIM)
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        if not levels:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(levels), np.concatenate(f0s)

    def _decimated(self, lo: int, hi: int) -> np.ndarray:
        """Analysis samples ``lo .. hi - 1`` relative to the buffer start, zeros past the audio."""
        raw = self._buf[lo * _DECIM: hi * _DECIM]
        if len(raw) < (hi - lo) * _DECIM:
            raw = np.concatenate([raw, np.zeros((hi - lo) * _DECIM - len(raw), np.float32)])
        return raw.reshape(-1, _DECIM).mean(axis=1)


def ema(x: np.ndarray, alpha: float, state: float) -> np.ndarray:
    """Exponential moving average ``y_i = y_{i-1} + alpha * (x_i - y_{i-1})`` from ``y_{-1} = state``.

    A plain loop (a few microseconds a frame at most): sequential, so a stream split anywhere
    gives the same numbers, and it spares importing scipy.signal (over a second at start-up).
    """
    out = np.empty(len(x))
    y = float(state)
    for i, v in enumerate(np.asarray(x, np.float64).tolist()):
        y += alpha * (v - y)
        out[i] = y
    return out


@dataclass
class Prosody:
    """Per-frame prosodic state, every array of shape (n,), for frames ``first .. first + n - 1``.

    Attributes
    ----------
    first : int
        Index of the first frame.
    level : loudness relative to the running speech peak, 0 (30 dB below or less) .. 1 (at the peak)
    active : bool, speech present (level above the activity threshold, with a short hangover)
    pause : float, seconds since speech last stopped (0 while speaking)
    speech : float, seconds since speech last started (0 while paused)
    pitch : semitones of F0 above the speaker's running baseline (4 s average), 0 where unvoiced
    voiced : bool, F0 found in the frame
    accent : float, 0 or the strength (>0) of a stressed syllable found at this frame (its loudness
        peaked one frame earlier: a peak is known once the level starts to fall)
    pitch_accent : float, 0 or the F0 excursion in semitones of an accent with raised pitch
    """

    first: int
    level: np.ndarray
    active: np.ndarray
    pause: np.ndarray
    speech: np.ndarray
    pitch: np.ndarray
    voiced: np.ndarray
    accent: np.ndarray
    pitch_accent: np.ndarray

    def __len__(self) -> int:
        return len(self.level)


class ProsodyTracker:
    """Causal speech activity, pitch baseline and accent detection on analysed frames.

    Parameters
    ----------
    fps : float
        Frame rate.

    Notes
    -----
    Loudness is judged against a peak tracker that decays 3 dB a second, so quiet and loud
    recordings behave alike; speech is active within 30 dB of that peak (and above -55 dBFS), with
    an 80 ms hangover that bridges stop closures. The pitch baseline is an exponential average of
    voiced semitones (4 s). A stressed syllable is a local maximum of the loudness (smoothed over
    30 ms) that rises at least 4 dB over the valley since the previous one and comes at least
    150 ms after it; its strength grows with its prominence over the running mean of syllable
    peaks and with its F0 excursion. Pitch accents are stresses at least 2 semitones above the
    baseline. All state is carried between calls, so any split of the frames gives the same result.
    """

    def __init__(self, fps: float):
        self.fps = float(fps)
        self._dt = 1.0 / self.fps
        self._decay = 3.0 * self._dt
        self._alpha = 1.0 - math.exp(-self._dt / 0.03)  # 30 ms loudness smoothing
        self._beta = 1.0 - math.exp(-self._dt / 4.0)  # pitch baseline
        self._peak_key = -40.0 - self._decay  # running max of level + decay * frame
        self._smooth = -100.0
        self._prev = (-100.0, -100.0)  # smoothed loudness of the two frames before the block
        self._prev_pitch = 0.0
        self._last_on = -(1 << 40)
        self._last_active = -(1 << 40)
        self._last_inactive = -1
        self._valley = -100.0
        self._peak_mean: float | None = None
        self._base: float | None = None
        self._last_syll = -(1 << 40)
        self._n = 0

    def update(self, level_db: np.ndarray, f0: np.ndarray) -> Prosody:
        """Track frames ``n .. n + len(level_db) - 1``; returns their :class:`Prosody`."""
        m = len(level_db)
        first = self._n
        idx = first + np.arange(m)
        dt = self._dt
        db = np.asarray(level_db, np.float64)
        key = np.maximum.accumulate(np.concatenate([[self._peak_key], db + self._decay * idx]))[1:]
        peak = key - self._decay * idx
        smooth = ema(db, self._alpha, self._smooth)
        on = db > np.maximum(peak - 30.0, _FLOOR_DB)
        last_on = np.maximum.accumulate(np.concatenate([[self._last_on], np.where(on, idx, -(1 << 40))]))[1:]
        active = (idx - last_on) * dt < 0.08 - 1e-9
        last_active = np.maximum.accumulate(np.concatenate([[self._last_active], np.where(active, idx, -(1 << 40))]))[1:]
        last_inactive = np.maximum.accumulate(np.concatenate([[self._last_inactive], np.where(active, -(1 << 40), idx)]))[1:]
        pause = np.where(active, 0.0, (idx - last_active) * dt)
        speech = np.where(active, (idx - last_inactive) * dt, 0.0)
        level = np.clip((smooth - (peak - 30.0)) / 30.0, 0.0, 1.0)

        voiced = np.isfinite(f0)
        pitch = np.zeros(m)
        vi = np.nonzero(voiced)[0]
        if len(vi):
            st = 12.0 * np.log2(np.asarray(f0)[vi] / 100.0)
            if self._base is None:
                self._base = float(st[0])
            base = ema(st, self._beta, self._base)
            self._base = float(base[-1])
            pitch[vi] = np.clip(st - base, -12.0, 12.0)

        accent = np.zeros(m)
        pitch_accent = np.zeros(m)
        ext = np.concatenate([self._prev, smooth])  # ext[k + 2] is frame k
        cand = np.nonzero((ext[1:-1] > ext[:-2]) & (ext[1:-1] >= ext[2:]) & active)[0]
        valley_from = 0  # the valley runs over smoothed frames from here (block index) ...
        valley_carry = self._valley  # ... and over this, from before the block
        for k in cand:
            if idx[k] - self._last_syll < 0.15 * self.fps - 1e-9:
                continue
            p1 = ext[k + 1]  # the peak: the frame before k
            lo_k = k - 1  # valley covers frames up to the peak's predecessor
            seg = ext[valley_from + 2: lo_k + 2]
            valley = min(valley_carry, float(seg.min())) if len(seg) else valley_carry
            if p1 - valley < 4.0:
                continue
            if self._peak_mean is None:
                self._peak_mean = p1
            prominence = p1 - self._peak_mean
            self._peak_mean += 0.2 * (p1 - self._peak_mean)
            excursion = pitch[k - 1] if k > 0 else self._prev_pitch
            accent[k] = max(0.0, 0.5 + prominence / 6.0 + max(0.0, excursion) / 4.0)
            if excursion >= 2.0 and prominence > -3.0:
                pitch_accent[k] = excursion
            self._last_syll = int(idx[k])
            valley_from, valley_carry = k, float("inf")
        tail = ext[valley_from + 2:]
        self._valley = min(valley_carry, float(tail.min())) if len(tail) else valley_carry
        if m:
            self._peak_key = float(key[-1])
            self._smooth = float(smooth[-1])
            self._prev = (float(ext[-2]), float(ext[-1]))
            self._prev_pitch = float(pitch[-1])
            self._last_on = int(last_on[-1])
            self._last_active = int(last_active[-1])
            self._last_inactive = int(last_inactive[-1])
        self._n += m
        return Prosody(first, level, active, pause, speech, pitch, voiced, accent, pitch_accent)
