from dataclasses import replace

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


def test_change_tempo_keeps_pitch_and_moves_events_to_t_over_rate():
    sr = 16000
    t = np.arange(2 * sr) / sr
    tone = (0.5 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)

    def f0(x):
        seg = x[4000:8000]
        ac = np.correlate(seg, seg, "full")[len(seg) - 1:]
        return sr / (int(np.argmax(ac[50:400])) + 50)

    for rate in (0.8, 1.3, 1.5):
        out = A.change_tempo(tone, rate=rate, sample_rate=sr)
        assert len(out) == round(len(tone) / rate)
        assert f0(out) == pytest.approx(150, rel=0.02)  # resampling would give 150 x rate
        # Overlap-add of aligned periods: no dips or build-up in the level.
        mid = out[2000:2000 + (len(out) - 4000) // 400 * 400]
        rms = np.sqrt(np.mean(mid.reshape(-1, 400) ** 2, axis=1))
        assert rms.min() > 0.3 and rms.max() < 0.4
    bursts = np.zeros(3 * sr, np.float32)
    onsets = [8000 * c for c in range(1, 6)]
    for c, at in enumerate(onsets):
        bursts[at: at + 400] = 0.5 * np.random.default_rng(c).standard_normal(400)
    out = A.change_tempo(bursts, rate=1.5, sample_rate=sr)
    found = np.flatnonzero(np.convolve(np.abs(out) > 0.05, np.ones(40), "same") > 0)
    starts = found[np.r_[True, np.diff(found) > 1000]]
    assert len(starts) == 5
    assert np.all(np.abs(starts - np.array(onsets) / 1.5) < 0.012 * sr)  # within the window's shift
    assert np.array_equal(out, A.change_tempo(bursts, rate=1.5, sample_rate=sr))  # deterministic


def test_change_tempo_keeps_closures_as_dips_in_real_voice_audio(utt):
    sr = utt.sample_rate
    fast = A.change_tempo(utt.audio, rate=1.4, sample_rate=sr)
    slowed = replace(utt, audio=fast, phones=[replace(p, start=p.start / 1.4, end=p.end / 1.4) for p in utt.phones],
                     words=[replace(w, start=w.start / 1.4, end=w.end / 1.4) for w in utt.words])
    assert max(_p_energy_dips(utt)) < -25
    assert max(_p_energy_dips(slowed)) < -25  # every /p/ still a quiet stretch where the labels say


def test_change_tempo_rejects_absurd_rates():
    with pytest.raises(InputError, match="tempo"):
        A.change_tempo(np.zeros(100, np.float32), rate=0.0)
    assert len(A.change_tempo(np.zeros(0, np.float32), rate=1.2)) == 0


def _hum_item(sr=16000):
    """A recording laid out as phones: pause, /ʌ/ (a 150 Hz tone), pause, /ɪmɪ/ (tones of 200, 120 and
    200 Hz), pause."""
    from flamesync.phonetics.types import PhoneSegment

    t = np.arange(int(1.0 * sr)) / sr
    x = np.zeros_like(t, dtype=np.float32)
    vowel = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    hum = (0.1 * np.sin(2 * np.pi * 120 * t)).astype(np.float32)
    x[int(0.2 * sr): int(0.3 * sr)] = vowel[int(0.2 * sr): int(0.3 * sr)]
    x[int(0.55 * sr): int(0.7 * sr)] = (0.3 * np.sin(2 * np.pi * 200 * t[int(0.55 * sr): int(0.7 * sr)]))
    x[int(0.6 * sr): int(0.66 * sr)] = hum[int(0.6 * sr): int(0.66 * sr)]
    phones = [PhoneSegment(0.0, 0.2, "_", "SIL"), PhoneSegment(0.2, 0.3, "ʌ", "AH"), PhoneSegment(0.3, 0.55, "_", "SIL"),
              PhoneSegment(0.55, 0.6, "ɪ", "IH"), PhoneSegment(0.6, 0.66, "m", "M"), PhoneSegment(0.66, 0.7, "ɪ", "IH"),
              PhoneSegment(0.7, 1.0, "_", "SIL")]
    return x, phones


def test_insert_hesitation_splices_the_speakers_own_vowel_and_held_m_into_a_pause():
    sr, spf = 16000, 320
    x, phones = _hum_item(sr)
    seen_pauses = set()
    for seed in range(12):
        out, new, src = A.insert_hesitation(x, phones, rng=np.random.default_rng(seed), sample_rate=sr,
                                            hold_seconds=(0.2, 0.4))
        k = len(out) - len(x)
        assert k > 0 and k % spf == 0 and len(src) == -(-len(out) // spf)
        # Phones still tile the recording, in order, and gained exactly a vowel and an /m/.
        assert new[0].start == 0.0 and new[-1].end == pytest.approx(len(out) / sr)
        assert all(abs(a.end - b.start) < 1e-9 for a, b in zip(new, new[1:]))
        assert [p.phone for p in new].count("m") == 2 and [p.phone for p in new].count("ʌ") == 2
        (v, m) = [(a, b) for a, b in zip(new, new[1:]) if a.phone == "ʌ" and b.phone == "m"][0]
        assert 0.2 - 1e-9 <= m.end - m.start <= 0.4 + 1e-9
        seen_pauses.add(round(v.start, 2))
        assert new[new.index(v) - 1].phone == "_" and new[new.index(m) + 1].phone == "_"  # inside a pause
        # The held /m/ is the speaker's murmur at its own pitch and level, all along.
        d = int((m.end - m.start) * sr)
        seg = out[int(m.start * sr) + d // 5: int(m.end * sr) - d // 5]  # edges: the tones switch abruptly
        rms = np.sqrt(np.mean(seg[: len(seg) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
        steady = (rms > 0.05) & (rms < 0.09)  # a 0.1 sine: rms 0.071
        assert len(rms) >= 5 and steady.mean() >= 0.9
        ac = np.correlate(seg[:1600], seg[:1600], "full")[1599:]
        assert sr / (int(np.argmax(ac[60:300])) + 60) == pytest.approx(120, rel=0.03)
        # Frames map back: the original audio is untouched around the insert, shifted by whole frames.
        at = int(round(v.start * sr))
        assert np.array_equal(out[:at], x[:at]) and np.array_equal(out[at + k:], x[at:])
        j0, j1 = int(round(m.start * 50)), int(round(m.end * 50))
        assert set(src[j0:j1]) <= {30, 31, 32} and set(src[int(round(v.start * 50)): j0]) <= set(range(10, 15))
        assert np.array_equal(src[j1:], np.arange(j1 - k // spf, len(src) - k // spf))
    assert len(seen_pauses) == 3  # leading, inner and trailing pauses all get used
    # Deterministic, and nothing to make an "um" from means no change.
    a = A.insert_hesitation(x, phones, rng=np.random.default_rng(1), sample_rate=sr)
    b = A.insert_hesitation(x, phones, rng=np.random.default_rng(1), sample_rate=sr)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    no_m = [p if p.phone != "m" else type(p)(p.start, p.end, "n", "N") for p in phones]
    assert A.insert_hesitation(x, no_m, rng=np.random.default_rng(0), sample_rate=sr) is None
    # A murmur next to a pause often trails off: not one to hold.
    at_pause = phones[:3] + [type(p)(p.start, p.end, "_", "SIL") for p in phones[3:4]] + phones[4:]
    assert A.insert_hesitation(x, at_pause, rng=np.random.default_rng(0), sample_rate=sr) is None
    no_pause = [p for p in phones if p.phone != "_"]
    assert A.insert_hesitation(x, no_pause, rng=np.random.default_rng(0), sample_rate=sr) is None
