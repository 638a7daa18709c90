"""The acoustic augmentation chain used to train the network on clean synthetic speech.

The corpus is clean TTS. Real recordings differ in room, microphone, bandwidth, noise and level, and
a model trained on digital silence learns to detect lip closures from it (a closure in TTS is a
stretch of exact zeros; in a room it is a reverb tail under noise). Each training crop therefore
goes through a random chain of reverberation, equalisation, band-limiting, additive noise at 5-35 dB
SNR and a random level. The building blocks are :mod:`flamesync.phonetics.augment`'s; this module
only draws their parameters (more often and over wider ranges than that module's defaults, which
the issue's experiment showed closure transfer needs) and adds a slowly varying noise level.

Everything takes an explicit ``numpy.random.Generator``, so a crop is a pure function of
``(seed, step)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..phonetics import augment as pa

SR = 16000


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each step (stored in the training config)."""

    p_reverb: float = 0.6
    rt60: tuple[float, float] = (0.1, 0.9)
    drr_db: tuple[float, float] = (-3.0, 12.0)
    p_eq: float = 0.7
    eq_gain_db: float = 10.0
    p_bandlimit: float = 0.4
    lowpass_hz: tuple[float, float] = (3000.0, 7600.0)
    highpass_hz: tuple[float, float] = (50.0, 350.0)
    p_noise: float = 0.9
    snr_db: tuple[float, float] = (5.0, 35.0)
    p_noise_level_drift: float = 0.3
    gain_db: tuple[float, float] = (-30.0, 0.0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentConfig":
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()
                      if k in cls.__dataclass_fields__})


def augment(audio: np.ndarray, *, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Apply the random chain to float audio at 16 kHz.

    Parameters
    ----------
    audio : np.ndarray, shape (N,)
    rng : np.random.Generator
    config : AugmentConfig

    Returns
    -------
    np.ndarray, shape (N,), float32 in [-1, 1]
    """
    c = config
    x = np.asarray(audio, np.float32)
    if not len(x) or not np.any(x):
        return x.copy()
    if rng.random() < c.p_reverb:
        x = pa.add_reverb(x, sample_rate=SR, rt60=float(rng.uniform(*c.rt60)), rng=rng,
                          direct_to_reverb_db=float(rng.uniform(*c.drr_db)))
    if rng.random() < c.p_eq:
        x = pa.random_eq(x, sample_rate=SR, rng=rng, max_gain_db=c.eq_gain_db)
    if rng.random() < c.p_bandlimit:
        low = float(rng.uniform(*c.highpass_hz)) if rng.random() < 0.7 else 0.0
        high = float(rng.uniform(*c.lowpass_hz))
        x = pa.band_limit(x, sample_rate=SR, low_hz=low, high_hz=high)
    if rng.random() < c.p_noise:
        snr = float(rng.uniform(*c.snr_db))
        color = str(rng.choice(["white", "pink", "brown"]))
        noisy = pa.add_noise(x, snr_db=snr, rng=rng, color=color)
        if rng.random() < c.p_noise_level_drift:
            # A slowly varying noise level, like traffic or a fan changing speed.
            from scipy.signal import resample

            env = np.clip(resample(rng.uniform(0.3, 1.7, size=6), len(x)), 0.1, None)
            noisy = x + (noisy - x) * env.astype(np.float32)
        x = noisy
    peak = float(np.max(np.abs(x)))
    if peak > 0:
        # Level relative to a peak at -1 dBFS: quiet recordings as well as hot ones.
        x = x * np.float32(10.0 ** (float(rng.uniform(*c.gain_db)) / 20.0) * 0.89 / peak)
    return np.clip(x, -1.0, 1.0).astype(np.float32)
