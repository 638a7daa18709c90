"""Acoustic augmentation for training on clean synthetic speech.

The corpus is clean TTS. Real recordings differ in room, microphone, bandwidth, noise and level, and a
model trained on digital silence learns to detect lip closures from it (a closure in TTS is a stretch
of exact zeros; in a room it is reverb tail and noise). Each training crop therefore goes through a
random chain of: reverberation, random equalisation, band-limiting, additive noise at 5-35 dB SNR and
a random gain. All functions take an explicit ``numpy.random.Generator`` so a crop is a pure function
of (seed, step).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import signal

SR = 16000


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation (stored in the training config)."""

    p_reverb: float = 0.6
    rt60: tuple[float, float] = (0.1, 0.9)
    drr_db: tuple[float, float] = (-3.0, 12.0)
    p_eq: float = 0.7
    eq_bands: tuple[int, int] = (1, 4)
    eq_gain_db: float = 10.0
    p_bandlimit: float = 0.5
    lowpass_hz: tuple[float, float] = (3000.0, 7600.0)
    highpass_hz: tuple[float, float] = (50.0, 350.0)
    p_noise: float = 0.9
    snr_db: tuple[float, float] = (5.0, 35.0)
    gain_db: tuple[float, float] = (-30.0, 6.0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentConfig":
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in cls.__dataclass_fields__})


def synthetic_rir(*, rng: np.random.Generator, rt60: float, drr_db: float, sr: int = SR) -> np.ndarray:
    """A room impulse response: a direct path plus exponentially decaying noise.

    Parameters
    ----------
    rt60 : float
        Seconds for the tail to decay by 60 dB.
    drr_db : float
        Direct-to-reverberant energy ratio in dB.

    Returns
    -------
    np.ndarray, shape (L,), float64, with the direct path at index 0
    """
    length = max(16, int(min(rt60, 1.2) * sr))
    t = np.arange(length) / sr
    tail = rng.standard_normal(length) * np.exp(-6.9078 * t / rt60)
    # High frequencies die out faster in real rooms: a gentle low-pass on the tail.
    b, a = signal.butter(1, rng.uniform(2500, 7000) / (sr / 2))
    tail = signal.lfilter(b, a, tail)
    pre = int(rng.uniform(0.001, 0.004) * sr)  # first reflections arrive a little after the direct path
    tail[:pre] = 0.0
    tail_energy = float(np.sum(tail**2)) + 1e-12
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / tail_energy)
    tail[0] = 1.0
    return tail


def reverb(audio: np.ndarray, *, rng: np.random.Generator, rt60: float, drr_db: float) -> np.ndarray:
    """Convolve with a :func:`synthetic_rir`, keeping the length. Shape (N,) -> (N,)."""
    rir = synthetic_rir(rng=rng, rt60=rt60, drr_db=drr_db)
    return signal.fftconvolve(audio, rir)[: len(audio)]


def random_eq(audio: np.ndarray, *, rng: np.random.Generator, bands: int, gain_db: float) -> np.ndarray:
    """Cascade of ``bands`` peaking filters with random centre (100 Hz-6 kHz), gain (+-gain_db), Q."""
    out = audio
    for _ in range(bands):
        f0 = float(np.exp(rng.uniform(np.log(100.0), np.log(6000.0))))
        g = rng.uniform(-gain_db, gain_db)
        q = rng.uniform(0.5, 2.5)
        out = signal.lfilter(*_peaking(f0, g, q), out)
    return out


def _peaking(f0: float, gain_db: float, q: float, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    # RBJ audio-EQ-cookbook peaking biquad.
    a_ = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * f0 / sr
    alpha = np.sin(w0) / (2.0 * q)
    b = np.array([1 + alpha * a_, -2 * np.cos(w0), 1 - alpha * a_])
    a = np.array([1 + alpha / a_, -2 * np.cos(w0), 1 - alpha / a_])
    return b / a[0], a / a[0]


def band_limit(audio: np.ndarray, *, low_hz: float | None, high_hz: float | None, order: int = 4) -> np.ndarray:
    """High-pass at ``low_hz`` and/or low-pass at ``high_hz`` (Butterworth, zero-phase not needed)."""
    out = audio
    if low_hz:
        out = signal.sosfilt(signal.butter(order, low_hz, "highpass", fs=SR, output="sos"), out)
    if high_hz and high_hz < SR / 2 - 100:
        out = signal.sosfilt(signal.butter(order, high_hz, "lowpass", fs=SR, output="sos"), out)
    return out


def coloured_noise(n: int, *, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS. Shape (n,)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SR)
    f[0] = f[1] if n > 1 else 1.0
    spec *= f ** (-exponent / 2.0)
    x = np.fft.irfft(spec, n=n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def add_noise(audio: np.ndarray, *, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """Add coloured noise at ``snr_db`` relative to the power of the active (non-silent) samples."""
    if len(audio) == 0:
        return audio
    power = _active_power(audio)
    noise = coloured_noise(len(audio), rng=rng, exponent=rng.uniform(0.0, 2.0))
    if rng.random() < 0.3:
        # Slowly varying level, like traffic or a fan changing speed.
        env = signal.resample(rng.uniform(0.5, 1.5, size=8), len(audio))
        noise *= np.clip(env, 0.2, None)
    return audio + noise * np.sqrt(power / 10.0 ** (snr_db / 10.0))


def _active_power(audio: np.ndarray) -> float:
    frames = audio[: len(audio) // 320 * 320].reshape(-1, 320) if len(audio) >= 320 else audio[None, :]
    p = np.mean(frames**2, axis=1)
    active = p[p > 0.01 * p.max()] if p.max() > 0 else p
    return float(np.mean(active)) + 1e-12


def augment(audio: np.ndarray, *, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Apply the random chain to float audio at 16 kHz. Shape (N,) -> (N,), float32, clipped to [-1, 1]."""
    x = np.asarray(audio, np.float64)
    c = config
    if rng.random() < c.p_reverb:
        x = reverb(x, rng=rng, rt60=rng.uniform(*c.rt60), drr_db=rng.uniform(*c.drr_db))
    if rng.random() < c.p_eq:
        x = random_eq(x, rng=rng, bands=int(rng.integers(c.eq_bands[0], c.eq_bands[1] + 1)), gain_db=c.eq_gain_db)
    if rng.random() < c.p_bandlimit:
        low = rng.uniform(*c.highpass_hz) if rng.random() < 0.7 else None
        high = rng.uniform(*c.lowpass_hz) if rng.random() < 0.7 else None
        x = band_limit(x, low_hz=low, high_hz=high)
    if rng.random() < c.p_noise:
        x = add_noise(x, rng=rng, snr_db=rng.uniform(*c.snr_db))
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0:
        # Random level, expressed relative to a -3 dBFS peak, then clipped like a real ADC would.
        x = x * (10.0 ** (rng.uniform(*c.gain_db) / 20.0) * 0.7 / peak)
    return np.clip(x, -1.0, 1.0).astype(np.float32)
