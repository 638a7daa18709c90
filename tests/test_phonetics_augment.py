import numpy as np
import pytest

from flamesync.errors import InputError
from flamesync.phonetics import check_utterance, get_engine
from flamesync.phonetics import augment as A

pytest.importorskip("parselmouth")


@pytest.fixture(scope="module")
def utt():
    return get_engine("espeak").synthesize("A papa sat by the map.", voice="en-us")


def _p_energy_dips(u):
    """Mean level inside each /p/ interval minus the utterance level (dB): closures are quiet."""
    from flamesync.phonetics.closure import frame_level_db

    hop = 0.005
    lv = frame_level_db(u.audio, sample_rate=u.sample_rate, hop=hop)
    return [float(np.min(lv[int(p.start / hop): int(p.end / hop)])) for p in u.phones if p.phone == "p"]


@pytest.mark.parametrize("factor", [0.8, 1.3])
def test_change_voice_duration_scales_timings(utt, factor):
    out = A.change_voice(utt, duration_factor=factor, formant_ratio=1.1)
    check_utterance(out)
    assert len(out.audio) / len(utt.audio) == pytest.approx(factor, rel=0.02)
    k = len(out.audio) / len(utt.audio)
    for p, q in zip(utt.phones, out.phones):
        assert q.phone == p.phone
        assert q.start == pytest.approx(p.start * k, abs=1e-9)
    for w, v in zip(utt.words, out.words):
        assert v.start == pytest.approx(w.start * k) and v.word == w.word
    # the scaled /p/ intervals still hold their (quiet) closures
    assert all(d < -25 for d in _p_energy_dips(out))


def test_change_voice_pitch_factor(utt):
    f0 = A.median_pitch(utt.audio, sample_rate=utt.sample_rate)
    up = A.change_voice(utt, pitch_factor=1.4)
    assert len(up.audio) == len(utt.audio)
    assert [p.end for p in up.phones] == [p.end for p in utt.phones]
    assert A.median_pitch(up.audio, sample_rate=utt.sample_rate) / f0 == pytest.approx(1.4, rel=0.08)
    with pytest.raises(InputError):
        A.change_voice(utt, pitch_factor=-1)
    with pytest.raises(InputError):
        A.change_voice(utt, duration_factor=0)


def test_timing_preserving_augmentations_keep_length(utt):
    x, sr = utt.audio, utt.sample_rate
    rng = np.random.default_rng(0)
    outs = [
        A.add_noise(x, snr_db=10, rng=rng),
        A.add_noise(x, snr_db=20, rng=rng, color="pink"),
        A.add_reverb(x, sample_rate=sr, rt60=0.5, rng=rng),
        A.band_limit(x, sample_rate=sr, low_hz=300, high_hz=3400),
        A.random_eq(x, sample_rate=sr, rng=rng),
        A.apply_gain(x, gain_db=-6),
    ]
    for y in outs:
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
        assert np.abs(y).max() <= 1.0
    assert np.abs(outs[-1]).max() == pytest.approx(np.abs(x).max() / 2, rel=0.01)


def test_noise_snr_is_as_requested(utt):
    x = utt.audio
    y = A.add_noise(x, snr_db=15, rng=np.random.default_rng(1))
    noise = y.astype(np.float64) - x
    snr = 10 * np.log10(A._active_power(x.astype(np.float64)) / np.mean(noise**2))
    assert snr == pytest.approx(15, abs=0.5)


def test_reverb_does_not_delay_speech(utt):
    x, sr = utt.audio, utt.sample_rate
    y = A.add_reverb(x, sample_rate=sr, rt60=0.6, rng=np.random.default_rng(2))
    # cross-correlation peaks at lag 0: the direct path dominates and timing is kept
    xs, ys = x.astype(np.float64), y.astype(np.float64)
    lags = np.arange(-40, 41)
    c = [np.dot(ys[100 + k: 20100 + k], xs[100:20100]) for k in lags]
    assert abs(int(lags[int(np.argmax(c))])) <= 1
    ir = A.room_impulse_response(sample_rate=sr, rt60=0.6, rng=np.random.default_rng(3))
    assert ir[0] == 1.0 and len(ir) == int(0.6 * sr)


def test_band_limit_removes_out_of_band_energy():
    sr = 16000
    t = np.arange(sr) / sr
    x = (0.4 * np.sin(2 * np.pi * 100 * t) + 0.4 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    y = A.band_limit(x, sample_rate=sr, low_hz=300, high_hz=3400)
    spec = np.abs(np.fft.rfft(y))
    assert spec[100] < 0.05 * spec[1000]


def test_random_augment_is_seeded_and_keeps_consistency(utt):
    a = A.random_augment(utt, rng=np.random.default_rng(7), p_voice=1.0)
    b = A.random_augment(utt, rng=np.random.default_rng(7), p_voice=1.0)
    c = A.random_augment(utt, rng=np.random.default_rng(8), p_voice=1.0)
    assert np.array_equal(a.audio, b.audio) and a.meta["augment"] == b.meta["augment"]
    assert not np.array_equal(a.audio, c.audio[: len(a.audio)]) or len(a.audio) != len(c.audio)
    for u in (a, c):
        check_utterance(u)
        assert u.meta["augment"][0]["op"] == "change_voice"
