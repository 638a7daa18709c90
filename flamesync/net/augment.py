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
    # Sounds in pauses that TTS never makes (breaths, lip smacks, clicks, microphone rumble and
    # pops), over rest targets.
    p_pause_sound: float = 0.7
    breath_db: tuple[float, float] = (-40.0, -12.0)
    p_rumble: float = 0.4
    rumble_db: tuple[float, float] = (-35.0, -5.0)
    # Frequency masking of the features (SpecAugment): bands a room or microphone may lose.
    p_freq_mask: float = 0.3
    freq_mask_bins: int = 8

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


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x ** 2)))
    return (x / rms if rms > 0 else x).astype(np.float32)


def breath(n: int, *, rng: np.random.Generator, sample_rate: int = SR) -> np.ndarray:
    """A synthetic breath: band-passed noise under a smooth rise-and-fall envelope, RMS 1.

    Parameters
    ----------
    n : int
        Length in samples.

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    from scipy.signal import butter, sosfilt

    noise = rng.standard_normal(n + 512)
    centre = float(rng.uniform(700.0, 2600.0))
    width = float(rng.uniform(1.5, 3.0))  # ratio of the band's upper to lower edge
    lo, hi = centre / np.sqrt(width), min(centre * np.sqrt(width), 0.45 * sample_rate)
    x = sosfilt(butter(2, [lo, hi], btype="band", fs=sample_rate, output="sos"), noise)[512:]
    # Inhalations swell and fade; the skew puts the peak anywhere in the middle half.
    t = np.linspace(0.0, 1.0, n)
    peak = float(rng.uniform(0.25, 0.75))
    env = np.where(t < peak, np.sin(0.5 * np.pi * t / peak), np.cos(0.5 * np.pi * (t - peak) / (1 - peak))) ** 2
    return _unit_rms(x * env)


def rumble(n: int, *, rng: np.random.Generator, sample_rate: int = SR) -> np.ndarray:
    """A low-frequency bump: handling noise, a breath hitting the microphone, a door; RMS 1.

    Low-passed noise (cut-off 30-200 Hz) under a smooth envelope. Shape (n,), float32.
    """
    from scipy.signal import butter, sosfilt

    noise = rng.standard_normal(n + 2048)
    x = sosfilt(butter(2, float(rng.uniform(30.0, 200.0)), btype="low", fs=sample_rate, output="sos"), noise)[2048:]
    return _unit_rms(x * np.sin(np.pi * np.linspace(0.0, 1.0, n)) ** 2)


def click(n: int, *, rng: np.random.Generator, sample_rate: int = SR) -> np.ndarray:
    """A lip smack or tongue click: a few ms of high-passed noise with a fast decay, RMS 1."""
    from scipy.signal import butter, sosfilt

    x = rng.standard_normal(n) * np.exp(-np.arange(n) / (float(rng.uniform(0.001, 0.006)) * sample_rate))
    return _unit_rms(sosfilt(butter(2, float(rng.uniform(800.0, 3000.0)), btype="high", fs=sample_rate, output="sos"), x))


def add_pause_sounds(audio: np.ndarray, start: int, stop: int, *, rng: np.random.Generator,
                     config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Put a breath, maybe a low rumble and maybe a click into the pause ``audio[start:stop]`` (16 kHz).

    Levels are relative to the RMS of the speech outside the pause, so they hold under any gain.

    Returns
    -------
    np.ndarray, same shape as ``audio``, float32
    """
    x = np.array(audio, np.float32, copy=True)
    span = stop - start
    speech = np.abs(np.concatenate([x[:start], x[stop:]]))
    peak = float(speech.max()) if len(speech) else 0.0
    if span < SR // 10 or peak <= 0:
        return x
    speech = speech[speech > 1e-3 * peak]  # the speech, not the digital silence around it
    ref = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2)))

    def place(sound, n: int, db: tuple[float, float]) -> None:
        at = start + int(rng.integers(0, span - n + 1))
        level = ref * 10.0 ** (float(rng.uniform(*db)) / 20.0)
        x[at:at + n] += level * sound(n, rng=rng)

    place(breath, int(min(span, rng.uniform(0.25, 0.8) * SR)), config.breath_db)
    if rng.random() < config.p_rumble:
        place(rumble, int(min(span, rng.uniform(0.05, 0.6) * SR)), config.rumble_db)
    if rng.random() < 0.3:
        m = int(rng.uniform(0.004, 0.02) * SR)
        if span > m:
            place(click, m, (-30.0, -10.0))
    return x


def mask_frequencies(feats: np.ndarray, *, rng: np.random.Generator, max_bins: int, groups: int = 1) -> np.ndarray:
    """Zero one or two random bands of (normalised) features, shape (T, groups * n_mels); a copy.

    ``groups`` stacked channel groups that describe the same mel bands (the log-mel and its height
    above the noise floor) lose the same band.
    """
    out = np.array(feats, copy=True)
    n_mels = out.shape[1] // groups
    for _ in range(int(rng.integers(1, 3))):
        w = int(rng.integers(1, max_bins + 1))
        f0 = int(rng.integers(0, max(1, n_mels - w)))
        for g in range(groups):
            out[:, g * n_mels + f0: g * n_mels + f0 + w] = 0.0
    return out
