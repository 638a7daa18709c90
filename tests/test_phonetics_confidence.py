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


def _random_alignment(rng, n_frames):
    """Word-score rows over ``n_frames`` (pauses -1, words in order, a word sometimes in two
    rows), a phone loop over the same frames, and speech-like audio."""
    rows, loop, f, w = [], [], 0, 0
    while f < n_frames:
        k = int(rng.integers(1, 40))
        b = min(n_frames, f + k) - 1
        if rng.random() < 0.3:
            rows.append([-1, f, b, float(-rng.random() * 3000)])
        else:
            rows.append([w, f, b, float(-rng.random() * 9000)])
            w += int(rng.random() < 0.8)
        f = b + 1
    f = 0
    while f < n_frames:
        b = min(n_frames, f + int(rng.integers(1, 25))) - 1
        loop.append(("AH", f, b, float(-rng.random() * 5000)))
        f = b + 1
    audio = 0.2 * rng.standard_normal(n_frames * 160) * (rng.random(n_frames).repeat(160) > 0.3)
    return rows, loop, audio, w + 1


def _reference_word_fit(rows, per_frame, n_words):
    # The fit as it was computed before the sums were streamed: one cumulative sum of all frames.
    ref = np.cumsum(np.concatenate([[0.0], per_frame]))
    words, frames = np.full(n_words, np.nan), np.zeros(n_words)
    for wi, a, b, ll in rows:
        if b < a or wi < 0:
            continue
        total = ll - (ref[b + 1] - ref[a])
        prev = 0.0 if np.isnan(words[wi]) else words[wi] * frames[wi]
        frames[wi] += b - a + 1
        words[wi] = (prev + total) / frames[wi]
    return words, frames


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streamed_loop_sums_are_the_cumulative_sum(seed):
    # Sums fed a stretch at a time (any cuts; the frames after the loop's last never fed) are
    # np.cumsum's numbers at the words' frames, bit for bit.
    from flamesync.phonetics.confidence import _LoopSums, _loop_per_frame, _word_fit

    rng = np.random.default_rng(seed)
    rows, loop, _, n_words = _random_alignment(rng, 5000)
    loop = [seg for seg in loop if seg[2] < 4000]
    per_frame = _loop_per_frame(loop, 5000)
    want_words, want_frames = _reference_word_fit(rows, per_frame, n_words)
    n_loop = max(seg[2] for seg in loop) + 1
    for scores in (rows, np.array(rows, np.float64)):
        sums = _LoopSums(scores)
        cuts = np.sort(rng.integers(0, n_loop, 7))
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, n_loop]):
            sums.feed(per_frame[a:b])
        words, frames, n_frames = _word_fit(scores, sums, n_loop, n_words)
        assert n_frames == 5000
        np.testing.assert_array_equal(words, want_words)
        np.testing.assert_array_equal(frames, want_frames)


@pytest.mark.parametrize("seed", [0, 1])
def test_score_alignment_takes_rows_as_an_array(seed):
    rng = np.random.default_rng(seed)
    rows, loop, audio, n_words = _random_alignment(rng, 3000)
    want = score_alignment(rows, loop, audio, n_words=n_words, n_phones=400)
    assert score_alignment(np.array(rows, np.float64), loop, audio, n_words=n_words, n_phones=400) == want
    from flamesync.phonetics.confidence import _loop_per_frame

    spread = _loop_per_frame(loop, 3000)
    assert score_alignment(rows, spread, audio, n_words=n_words, n_phones=400) == want


def test_compact_is_boolean_indexing_in_place():
    from flamesync.phonetics.confidence import _compact

    rng = np.random.default_rng(3)
    x = rng.standard_normal(1000)
    keep = rng.random(1000) > 0.4
    want = x[keep]
    got = _compact(x.copy(), keep, block=64)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(_compact(x.copy(), np.zeros(1000, bool)), np.zeros(0))


def _confidence_as_before(rows, per_frame, audio, n_words, n_phones):
    """The check as computed before it was streamed: the loop's values over every frame at once,
    one cumulative sum, the frame energies copied for each percentile."""
    from flamesync.phonetics.confidence import SCALE, frame_energy_db

    n_frames = max([int(b) + 1 for _, _, b, _ in rows] + [len(per_frame), 1])
    per_frame = np.concatenate([per_frame, np.zeros(n_frames - len(per_frame))])
    words, frames = _reference_word_fit(rows, per_frame, n_words)
    words = np.where(np.isnan(words), -np.inf, words) * SCALE
    ok = np.isfinite(words)
    score = float(np.sum(words[ok] * frames[ok]) / max(frames[ok].sum(), 1.0)) if ok.all() else float("-inf")
    pause = np.zeros(n_frames, bool)
    for wi, a, b, _ in rows:
        if wi < 0 and b >= a:
            pause[max(0, int(a)): int(b) + 1] = True
    energy = frame_energy_db(audio, n_frames)
    loud_any = energy > float(np.percentile(energy, 90)) - 15.0
    level = float(energy.max()) if pause.all() else float(np.percentile(energy[~pause], 70))
    loud = energy > level - 15.0
    talk = int((~pause).sum())
    return AlignmentConfidence(words=tuple(float(w) for w in words), score=score,
                               speech_in_pauses=float((loud & pause).sum() / max(pause.sum(), 1)),
                               unexplained_speech=float((loud_any & pause).sum() / max(loud_any.sum(), 1)),
                               phone_rate=float(n_phones / (talk * 160 / 16000.0)) if talk else float("nan"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_alignment_as_before(seed):
    from flamesync.phonetics.confidence import _loop_per_frame

    rng = np.random.default_rng(seed)
    rows, loop, audio, n_words = _random_alignment(rng, 4000)
    loop = [seg for seg in loop if seg[2] < 3500]  # the last frames left to the word rows
    want = _confidence_as_before(rows, _loop_per_frame(loop, 3500), audio, n_words, 500)
    assert want.speech_in_pauses > 0 and math.isfinite(want.phone_rate)
    for r in (rows, np.array(rows, np.float64)):
        assert score_alignment(r, loop, audio, n_words=n_words, n_phones=500) == want


def test_alignment_confidence_as_before_on_segmented_speech():
    # The phone loop run segment by segment, its sums taken as the segments end: the same numbers as
    # spreading it all over one array of every frame first.
    pytest.importorskip("pocketsphinx")
    from pathlib import Path

    from flamesync.audio.io import load_audio
    from flamesync.phonetics.align import align, phone_loop
    from flamesync.phonetics.confidence import alignment_confidence

    ex = Path(__file__).resolve().parents[1] / "assets" / "examples"
    one = load_audio(ex / "hello.wav")
    x = np.concatenate([one, np.zeros(16000, np.float32), one, np.zeros(16000, np.float32), one])
    utt = align(x, 16000, " ".join([(ex / "hello.txt").read_text().strip()] * 3), segment_seconds=9.0)
    assert len(utt.meta["segments"]) >= 3
    per_frame, top = np.zeros(0), 0
    for a, b in utt.meta["segments"]:
        f0 = a // 160
        for _, s, e, ll in phone_loop(utt.audio[a:b]):
            s, e = max(0, f0 + s), f0 + e
            per_frame = np.concatenate([per_frame, np.zeros(max(0, e + 1 - len(per_frame)))])
            if e >= s:
                per_frame[s: e + 1] = ll / (e - s + 1)
            top = max(top, e + 1)
    want = _confidence_as_before(utt.meta["word_scores"], per_frame[:top], utt.audio, len(utt.meta["dict_words"]),
                                 sum(p.phone != "_" for p in utt.phones))
    assert math.isfinite(want.score)
    assert alignment_confidence(utt) == want
