import numpy as np
import pytest

from flamesync.net.augment import AugmentConfig, add_pause_sounds, augment, breath, click, mask_frequencies, rumble

SR = 16000


def _speechlike(seconds, rng):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_breath_is_band_limited_noise_that_swells_and_fades():
    x = breath(8000, rng=np.random.default_rng(0))
    assert x.shape == (8000,) and x.dtype == np.float32
    assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)
    env = np.abs(x).reshape(20, 400).mean(axis=1)
    assert env[0] < 0.3 * env.max() and env[-1] < 0.3 * env.max()  # fades in and out
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    assert spec[freqs < 100].sum() < 0.01 * spec.sum()  # no rumble: it is a breath, not a hum
    r = rumble(8000, rng=np.random.default_rng(2))
    spec = np.abs(np.fft.rfft(r)) ** 2
    assert spec[freqs > 400].sum() < 0.05 * spec.sum()  # all low: the opposite of a breath
    c = click(160, rng=np.random.default_rng(1))
    assert np.abs(c[:40]).mean() > 3 * np.abs(c[-40:]).mean()  # decays fast


def test_pause_sounds_stay_in_the_pause_at_a_level_relative_to_the_speech():
    rng = np.random.default_rng(3)
    speech = _speechlike(1.0, rng)
    audio = np.concatenate([np.zeros(SR, np.float32), speech])
    cfg = AugmentConfig(breath_db=(-20.0, -20.0))
    out = add_pause_sounds(audio, 0, SR, rng=np.random.default_rng(4), config=cfg)
    assert np.array_equal(out[SR:], audio[SR:])
    added = out[:SR]
    assert np.any(added != 0)
    # The breath's RMS over its own span is 20 dB under the speech; louder speech, louder breath.
    loud = add_pause_sounds(audio * 4, 0, SR, rng=np.random.default_rng(4), config=cfg)
    assert np.allclose(loud[:SR], 4 * added, atol=1e-5)
    # Nothing to measure the level against, or no room: unchanged.
    silent = np.zeros(2 * SR, np.float32)
    assert np.array_equal(add_pause_sounds(silent, 0, SR, rng=rng), silent)
    assert np.array_equal(add_pause_sounds(audio, 0, 100, rng=rng), audio)


def test_frequency_mask_zeroes_whole_bands_only():
    f = np.random.default_rng(0).standard_normal((50, 80)).astype(np.float32)
    out = mask_frequencies(f, rng=np.random.default_rng(1), max_bins=8)
    zero_cols = np.where(np.all(out == 0, axis=0))[0]
    assert 1 <= len(zero_cols) <= 16
    keep = np.setdiff1d(np.arange(80), zero_cols)
    assert np.array_equal(out[:, keep], f[:, keep])
    assert not np.all(f == out)


def test_augment_is_a_pure_function_of_the_generator():
    audio = _speechlike(0.5, np.random.default_rng(0))
    a = augment(audio, rng=np.random.default_rng(7))
    b = augment(audio, rng=np.random.default_rng(7))
    assert np.array_equal(a, b) and np.max(np.abs(a)) <= 1.0
