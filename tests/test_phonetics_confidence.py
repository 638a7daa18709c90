"""flamesync.phonetics.confidence: when a transcript is refused, and the measures behind it."""

import math

import numpy as np
import pytest

from flamesync.phonetics.confidence import (MAX_UNEXPLAINED_SPEECH, MIN_PHONE_RATE, MIN_SCORE, AlignmentConfidence,
                                            score_alignment, transcript_mismatch)


def conf(**kw):
    base = dict(words=(-1.0, -0.5, -1.2), score=-0.9, speech_in_pauses=0.0, unexplained_speech=0.05, phone_rate=9.0)
    return AlignmentConfidence(**{**base, **kw})


def test_a_good_fit_passes_and_each_measure_alone_refuses():
    assert transcript_mismatch(conf()) is None
    assert "unaligned" in transcript_mismatch(conf(unexplained_speech=MAX_UNEXPLAINED_SPEECH + 0.01))
    assert "poorly" in transcript_mismatch(conf(score=MIN_SCORE - 0.01))
    assert "poorly" in transcript_mismatch(conf(score=-math.inf))
    assert "not found" in transcript_mismatch(conf(words=(-1.0, -6.0, -7.0)))
    assert "stretched" in transcript_mismatch(conf(phone_rate=MIN_PHONE_RATE - 0.1))
    assert transcript_mismatch(conf(phone_rate=float("nan"))) is None  # rate unknown: not held against it


def _speechy(n_frames, loud_frames):
    x = np.full(n_frames * 160, 1e-4)
    rng = np.random.default_rng(0)
    for a, b in loud_frames:
        x[a * 160: b * 160] = 0.3 * rng.standard_normal((b - a) * 160)
    return x


def test_score_alignment_measures_speech_left_in_pauses_and_phone_rate():
    # 200 frames, speech in frames 20-180. A transcript covering all of it, and one covering a
    # tenth of it (the rest aligned as a pause), with equal acoustic fit.
    audio = _speechy(200, [(20, 180)])
    loop = [("AH", 0, 199, -200.0 * 1024)]
    full = [[-1, 0, 19, -20.0 * 1024], [0, 20, 179, -160.0 * 1024], [-1, 180, 199, -20.0 * 1024]]
    part = [[-1, 0, 19, -20.0 * 1024], [0, 20, 35, -16.0 * 1024], [-1, 36, 199, -164.0 * 1024]]
    good = score_alignment(full, loop, audio, n_words=1, n_phones=16)
    bad = score_alignment(part, loop, audio, n_words=1, n_phones=16)
    assert good.unexplained_speech == pytest.approx(0.0)
    assert bad.unexplained_speech == pytest.approx(144 / 160)
    assert good.phone_rate == pytest.approx(16 / 1.6) and bad.phone_rate == pytest.approx(16 / 0.16)
    assert transcript_mismatch(good) is None and "unaligned" in transcript_mismatch(bad)
