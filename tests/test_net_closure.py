import numpy as np
import pytest

from flamesync.net.closure import (
    ClosureDecoder, apply_closures, calibrate_threshold, closure_strength, decode_closures, vowel_closure_rate,
    vowel_middles,
)
from flamesync.net.targets import VISEME_CLASSES, closure_segments, frame_labels, is_closure, viseme_of


def test_hysteresis_and_minimum_duration():
    p = np.array([0.1, 0.6, 0.1, 0.1, 0.1, 0.1, 0.45, 0.6, 0.5, 0.45, 0.2, 0.1])
    m, _ = decode_closures(p, on=0.55, off=0.4, min_frames=3)
    # A one-frame spike still closes for 3 frames; a dip to 0.45 (above off) does not reopen.
    assert m.tolist() == [0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0]


def test_decoding_in_pieces_equals_whole():
    rng = np.random.default_rng(0)
    p = rng.random(500)
    whole, _ = decode_closures(p, on=0.6, off=0.3, min_frames=3)
    state, parts = None, []
    for a in range(0, 500, 37):
        m, state = decode_closures(p[a:a + 37], on=0.6, off=0.3, min_frames=3, state=state)
        parts.append(m)
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_strength_is_smooth_and_applies_pose():
    mask = np.array([0, 0, 1, 1, 1, 0, 0, 0], bool)
    s, _ = closure_strength(mask, attack=0.85, release=0.5)
    assert s[1] == 0 and 0 < s[2] < s[3] < s[4] <= 1 and s[5] < s[4] and s[7] < s[6]
    w = np.full((8, 2), 0.5, np.float32)
    out = apply_closures(w, s, channels=("jawOpen", "mouthFunnel"), pose={"jawOpen": 0.0})
    assert out[4, 0] < 0.05 and np.all(out[:, 1] == 0.5)


def test_calibration_finds_a_separating_threshold():
    rng = np.random.default_rng(1)
    labels, probs, speech = [], [], []
    for _ in range(20):
        lab = np.zeros(200, np.float32)
        for a in rng.integers(5, 190, size=5):
            lab[a:a + 4] = 1
        # Closures score 0.7-0.9, other speech 0-0.6: a threshold near 0.65 separates them.
        p = np.where(lab > 0, rng.uniform(0.7, 0.9, 200), rng.uniform(0.0, 0.6, 200))
        labels.append(lab), probs.append(p), speech.append(np.ones(200, bool))
    dec, report = calibrate_threshold(probs, labels, speech)
    assert 0.6 <= dec.on <= 0.7
    assert report["calibrated"]["recall"] > 0.95 and report["calibrated"]["false_rate"] < 0.01
    assert report["naive_0.5"]["false_rate"] > report["calibrated"]["false_rate"]


def test_vowel_middles_are_the_middle_half_of_trusted_vowels():
    from flamesync.phonetics.types import PhoneSegment as P

    phones = [P(0.0, 0.2, "_"), P(0.2, 0.28, "m"), P(0.28, 0.52, "æ"), P(0.52, 0.6, "p"), P(0.6, 1.0, "u")]
    spans = vowel_middles(phones, 50)
    # 50 fps: /æ/ 14-26 -> middle half 17-23; /u/ 30-50 -> 35-45. Consonants and silence give none.
    assert spans.tolist() == [[17, 23], [35, 45]]
    trusted = np.ones(50, bool)
    trusted[40] = False
    assert vowel_middles(phones, 50, trusted=trusted).tolist() == [[17, 23]]
    mask = np.zeros(50, bool)
    mask[22] = True  # closes inside /æ/'s middle, not /u/'s
    assert vowel_closure_rate([mask], [spans]) == 0.5


def test_vowel_budget_lowers_the_threshold_choice():
    rng = np.random.default_rng(3)
    labels, probs, speech, vowels = [], [], [], []
    for _ in range(20):
        lab = np.zeros(200, np.float32)
        for a in (20, 80, 140):
            lab[a:a + 2] = 1
        p = np.where(lab > 0, rng.uniform(0.3, 0.55, 200), rng.uniform(0.0, 0.2, 200))
        # Vowels score up to 0.5: closing more /p b m/ costs vowels, a budget stops it.
        for a in (40, 100, 160):
            p[a:a + 6] = rng.uniform(0.25, 0.5)
        labels.append(lab), probs.append(p), speech.append(np.ones(200, bool))
        vowels.append(np.array([[40, 46], [100, 106], [160, 166]]))
    free, rep_free = calibrate_threshold(probs, labels, speech, max_false_rate=0.2, vowels=vowels)
    tight, rep = calibrate_threshold(probs, labels, speech, max_false_rate=0.2, vowels=vowels, max_vowel_rate=0.1)
    assert rep["calibrated"]["vowel_rate"] <= 0.1 < rep_free["calibrated"]["vowel_rate"]
    assert tight.on > free.on and "vowel_rate <= 0.1" in rep["rule"]
    with pytest.raises(ValueError):
        calibrate_threshold(probs, labels, speech, max_vowel_rate=0.1)


def test_phone_classes():
    assert is_closure("p") and is_closure("bʲ") and is_closure("mː") and is_closure("pʰ")
    assert not is_closure("f") and not is_closure("") and not is_closure("ɱ")
    assert VISEME_CLASSES[viseme_of("")] == "sil"
    assert VISEME_CLASSES[viseme_of("ʃ")] == "SH" and VISEME_CLASSES[viseme_of("aɪ")] == "A"
    assert VISEME_CLASSES[viseme_of("t͡ʃ")] == "SH" and VISEME_CLASSES[viseme_of("_")] == "sil"
    assert VISEME_CLASSES[viseme_of("uː")] == "W" and VISEME_CLASSES[viseme_of("ˈɛ")] == "E"


def test_frame_labels():
    class Seg:
        def __init__(self, s, e, p):
            self.start, self.end, self.phone = s, e, p

    closure, vis = frame_labels([Seg(0.0, 0.1, "a"), Seg(0.1, 0.18, "m"), Seg(0.18, 0.185, "p")], 12)
    assert closure.tolist() == [0] * 5 + [1] * 5 + [0] * 2 and vis[0] == viseme_of("a") and vis[11] == 0
    assert closure_segments(closure > 0) == [(5, 10)]


def test_scores_tell_spurious_closures_from_long_ones():
    from flamesync.net.closure import closure_scores

    lab = np.zeros(3000, np.float32)  # one minute of speech at 50 fps
    lab[100:104] = 1
    speech = np.ones(3000, bool)
    held_long = np.zeros(3000, bool)
    held_long[100:110] = True  # overlaps the closure, six frames too long
    on_a_vowel = np.zeros(3000, bool)
    on_a_vowel[100:104] = on_a_vowel[1000:1003] = on_a_vowel[2000:2002] = True
    long_scores = closure_scores([held_long], [lab], [speech])
    vowel_scores = closure_scores([on_a_vowel], [lab], [speech])
    assert long_scores["recall"] == vowel_scores["recall"] == 1.0
    assert long_scores["spurious_per_min"] == 0.0 and long_scores["false_rate"] > 0
    assert vowel_scores["spurious_per_min"] == 2.0
