from types import SimpleNamespace as Seg

import numpy as np

from flamesync.eval import metrics as m


def seg(start, end, phone):
    return Seg(start=start, end=end, phone=phone)


def test_lip_vertex_error_is_max_over_lips_mean_over_frames():
    ref = np.zeros((2, 4, 3))
    pred = ref.copy()
    pred[0, 1, 0] = 0.003  # 3 mm on a lip vertex in frame 0
    pred[1, 3, 1] = 0.5  # not a lip vertex: ignored
    assert np.isclose(m.lip_vertex_error(pred, ref, np.array([0, 1, 2])), (0.003**2 + 0) / 2)


def test_closure_rate_counts_bilabials_that_close():
    fps = 100
    opening = np.full(100, 0.01)
    opening[20:25] = 0.0005  # first /p/ closes
    phones = [seg(0.18, 0.28, "p"), seg(0.5, 0.6, "m"), seg(0.3, 0.4, "a")]
    rate, n = m.closure_rate(opening, fps, phones)
    assert n == 2 and rate == 0.5


def test_vowel_closure_rate_counts_vowels_shut_in_their_middle_half():
    fps = 100
    opening = np.full(100, 0.01)
    opening[10:12] = 0.0005  # shut at the very start of the first vowel: coarticulation, not counted
    opening[45:47] = 0.0005  # shut in the middle of the second vowel
    phones = [seg(0.1, 0.3, "a"), seg(0.3, 0.4, "m"), seg(0.4, 0.5, "ɪ"), seg(0.5, 0.6, "s"), seg(0.6, 0.8, "oʊ")]
    rate, n = m.vowel_closure_rate(opening, fps, phones)
    assert n == 3 and rate == 1 / 3
    assert np.isnan(m.vowel_closure_rate(opening, fps, [seg(0.0, 0.2, "m")])[0])


def test_vowel_closure_rate_counts_the_spans_calibration_budgets():
    # Calibration's vowel budget and this metric must count the same vowels, vowels that run past
    # the last frame included; an empty curve has no vowels to count rather than failing.
    from flamesync.net.closure import vowel_closure_rate as mask_rate, vowel_middles

    fps = 50
    opening = np.full(40, 0.01)
    opening[[5, 30]] = 0.0005  # the first vowel shut mid-vowel; frame 30 lies between vowels
    phones = [seg(0.0, 0.2, "a"), seg(0.3, 0.4, "ɪ"), seg(0.4, 0.5, "m"), seg(0.7, 0.9, "u"), seg(0.75, 1.2, "oʊ")]
    rate, n = m.vowel_closure_rate(opening, fps, phones)
    spans = vowel_middles(phones, len(opening), fps=fps)
    assert n == len(spans) == 4
    assert rate == mask_rate([opening < 0.002], [spans]) == 0.25
    assert m.vowel_closure_rate(np.zeros(0), fps, phones)[1] == 0


def test_silence_at_rest():
    fps = 50
    opening = np.zeros(100)
    weights = np.zeros((100, 3))
    weights[60:70, 0] = 0.5  # movement inside the second silence
    phones = [seg(0.0, 1.0, "_"), seg(1.0, 1.1, "a"), seg(1.1, 2.0, "_")]
    share, n = m.silence_at_rest(opening, weights, fps, phones)
    assert n == 2 and share == 0.5


def test_av_lag_recovers_a_known_delay():
    fps = 100
    rng = np.random.default_rng(0)
    from scipy.ndimage import gaussian_filter1d

    ref = gaussian_filter1d(rng.random(600), 4)
    delayed = np.concatenate([np.full(7, ref[0]), ref[:-7]])  # motion 70 ms late
    lag, corr = m.av_lag(delayed, ref, fps)
    assert abs(lag - 0.07) < 0.006 and corr > 0.95


def test_openness_curve_follows_phones():
    phones = [seg(0.0, 0.2, "_"), seg(0.2, 0.4, "ɑ"), seg(0.4, 0.5, "m")]
    c = m.openness_curve(phones, 100, 50, smooth=0.0)
    assert c[5] == 0 and c[30] == 1.0 and c[45] == 0


def test_jitter_separates_smooth_from_noisy():
    t = np.arange(200) / 50
    smooth = 0.01 * (1 + np.sin(2 * np.pi * t))
    noisy = smooth + np.random.default_rng(1).normal(0, 0.001, len(t))
    assert m.jitter(noisy, 50) > 5 * m.jitter(smooth, 50)
