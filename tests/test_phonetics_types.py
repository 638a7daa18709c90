import numpy as np
import pytest

from flamesync.errors import InputError
from flamesync.phonetics.compare import boundary_pairs, match_phones
from flamesync.phonetics.types import PhoneSegment, Utterance, WordSegment, check_utterance, fill_gaps


def P(a, b, ph):
    return PhoneSegment(a, b, ph, ph)


def test_fill_gaps_makes_a_contiguous_cover():
    phones = [P(0.1, 0.2, "p"), P(0.2, 0.3, "a"), P(0.5, 0.6, "m"), P(0.58, 0.7, "a")]
    out = fill_gaps(phones, 1.0)
    assert out[0].start == 0.0 and out[0].phone == "_"
    assert all(abs(x.end - y.start) < 1e-12 for x, y in zip(out, out[1:]))
    assert out[-1].end == 1.0 and out[-1].phone == "_"
    assert [p.phone for p in out] == ["_", "p", "a", "_", "m", "a", "_"]
    # overlapping phone cut at the earlier one's end, not dropped
    assert out[5].start == pytest.approx(0.6)


def test_fill_gaps_merges_silences_and_trims_overrun():
    out = fill_gaps([P(0, 0.1, "_"), P(0.1, 0.2, "_"), P(0.2, 0.5, "a")], 0.4)
    assert [p.phone for p in out] == ["_", "a"]
    assert out[-1].end == 0.4


def test_check_utterance_detects_problems():
    audio = np.zeros(1600, np.float32)
    good = Utterance(audio, 16000, fill_gaps([P(0.02, 0.08, "a")], 0.1), [WordSegment(0.02, 0.08, "a")])
    check_utterance(good)
    bad = Utterance(audio, 16000, [P(0, 0.05, "a"), P(0.06, 0.1, "b")], [])
    with pytest.raises(InputError, match="contiguous"):
        check_utterance(bad)
    short = Utterance(audio, 16000, [P(0, 0.05, "a")], [])
    with pytest.raises(InputError, match="audio lasts"):
        check_utterance(short)


def test_boundary_pairs_match_equal_and_shifted_segmentations():
    ref = fill_gaps([P(0.1, 0.2, "p"), P(0.2, 0.35, "aː"), P(0.35, 0.4, "t")], 0.5)
    same = boundary_pairs(ref, ref)
    assert len(same) == 4 and np.allclose(same[:, 0], same[:, 1])
    # hyp spells the vowel differently and is 10 ms late: boundaries still pair up
    hyp = fill_gaps([P(0.11, 0.21, "p"), P(0.21, 0.36, "ɑː"), P(0.36, 0.41, "t")], 0.5)
    b = boundary_pairs(ref, hyp)
    assert len(b) == 4 and np.allclose(b[:, 1] - b[:, 0], 0.01)
    assert match_phones(["p", "a"], ["s", "a"]) == [(1, 1)]
