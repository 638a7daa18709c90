import numpy as np
import pytest

from flamesync.audio.features import FeatureConfig, LogMelStream, log_mel, n_feature_frames
from flamesync.errors import InputError


def _speechy(seconds, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    env = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float64)
    return ((np.sin(2 * np.pi * 180 * t) * 0.3 + rng.standard_normal(n) * 0.05) * env + 1e-3 * rng.standard_normal(n)).astype(np.float32)


def test_shape_two_frames_per_output_frame():
    for n in (1, 319, 320, 321, 16000, 16123):
        f = log_mel(np.ones(n, np.float32) * 0.1)
        assert f.shape == (2 * int(np.ceil(n / 320)), 80) == (n_feature_frames(n), 80)
        assert f.dtype == np.float32 and np.isfinite(f).all()


def test_stream_equals_offline():
    audio = _speechy(7.3)
    ref = log_mel(audio)
    rng = np.random.default_rng(1)
    s = LogMelStream()
    out, i = [], 0
    while i < len(audio):
        k = int(rng.integers(1, 3000))
        out.append(s.push(audio[i:i + k]))
        i += k
    out.append(s.finish())
    got = np.concatenate(out)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)


def test_stream_emits_frames_with_fixed_lookahead():
    cfg = FeatureConfig()
    s = LogMelStream(config=cfg)
    emitted = len(s.push(np.zeros(1000, np.float32) + 0.01))
    # Frame k is out once samples up to k*160 + 200 exist.
    assert emitted == (1000 - cfg.lookahead_samples) // cfg.hop + 1


def test_future_samples_do_not_change_earlier_frames():
    audio = _speechy(3.0)
    ref = log_mel(audio)
    changed = audio.copy()
    k = 150  # frame 150 needs samples < 150*160 + 200
    changed[k * 160 + 200:] = np.random.default_rng(5).standard_normal(len(audio) - k * 160 - 200) * 0.5
    got = log_mel(changed)
    np.testing.assert_array_equal(got[: k + 1], ref[: k + 1])
    assert np.abs(got[k + 2:] - ref[k + 2:]).max() > 0.1


def test_gain_invariance():
    audio = _speechy(4.0)
    a = log_mel(audio)
    b = log_mel(audio * 0.05)
    # Exact up to float32 input rounding, which matters only in deep spectral nulls (single cells, then
    # slightly, that band's running mean).
    d = np.abs(a - b)
    assert np.quantile(d, 0.99) < 1e-5 and d.mean() < 1e-4


def test_fixed_equalisation_is_removed_after_warm_up():
    from scipy import signal

    audio = _speechy(12.0, seed=3)
    b, a = signal.butter(2, 2000, fs=16000)
    coloured = signal.lfilter(b, a, audio).astype(np.float32) * 2
    fa, fb = log_mel(audio), log_mel(coloured)
    # A fixed filter is an additive offset per band in log-mel; the running mean removes most of it.
    raw_offset = np.abs(np.mean(fb - fa, axis=0)).max() * FeatureConfig().scale
    assert raw_offset < 0.5 * np.abs(np.log(np.maximum(np.abs(np.fft.rfft(b, 512) / np.fft.rfft(a, 512)) ** 2, 1e-10))).max()


def test_bad_shape():
    with pytest.raises(InputError):
        log_mel(np.zeros((10, 2), np.float32))


FLOOR = FeatureConfig(floor_rise_db=6.0)


def test_noise_floor_channels_follow_their_recursion_and_stream_exactly():
    from flamesync.audio.features import above_noise_floor

    audio = _speechy(6.1, seed=3)
    whole = log_mel(audio, config=FLOOR)
    assert whole.shape == (n_feature_frames(len(audio)), 160)
    np.testing.assert_array_equal(whole[:, :80], log_mel(audio))  # the first 80 are unchanged
    rng = np.random.default_rng(2)
    s, out, i = LogMelStream(config=FLOOR), [], 0
    while i < len(audio):
        k = int(rng.integers(1, 4000))
        out.append(s.push(audio[i:i + k]))
        i += k
    out.append(s.finish())
    np.testing.assert_allclose(np.concatenate(out), whole, atol=1e-6, rtol=0)
    # The closed form equals the plain recursion f_n = min(x_n, f_{n-1} + r).
    x = np.random.default_rng(4).normal(size=(300, 3)).cumsum(axis=0)
    r = 6.0 * np.log(10) / 10 / 100
    f = x[0].copy()
    want = []
    for row in x:
        f = np.minimum(row, f + r)
        want.append((row - f) / FLOOR.scale)
    got1, st = above_noise_floor(x[:120], state=None, config=FLOOR)
    got2, _ = above_noise_floor(x[120:], state=st, config=FLOOR)
    np.testing.assert_allclose(np.concatenate([got1, got2]), np.array(want), atol=1e-5)
    assert above_noise_floor(x[:0], state=st, config=FLOOR)[1] is st


def test_a_pause_reads_as_the_floor_in_silence_and_in_noise_alike():
    rng = np.random.default_rng(5)
    t = np.arange(32000) / 16000
    on = np.sin(2 * np.pi * 1.5 * t) > 0  # 1/3 s of tone, 1/3 s of pause
    tone = (0.3 * np.sin(2 * np.pi * 200 * t) * on).astype(np.float32)
    n = len(log_mel(tone))
    state = np.array([on[min(len(on) - 1, f * 160)] for f in range(n)])
    settled = np.array([f > 40 and len(set(state[max(0, f - 8): f + 9])) == 1 for f in range(n)])
    for noise in (0.0, 0.01):
        audio = tone + noise * rng.standard_normal(len(tone)).astype(np.float32)
        heights = log_mel(audio, config=FLOOR)[:, 80:]
        assert heights.min() >= 0
        # Pauses sit near the floor (noise fluctuates a few dB about it); the tone stands far above.
        assert np.median(heights[settled & ~state]) < 0.6
        assert np.median(heights[settled & state].max(axis=1)) > 1.5
