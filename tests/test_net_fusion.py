"""Fusing the word recogniser's /p b m/ and vowel evidence with the network's closure probability."""

import json

import numpy as np
import pytest

from flamesync.errors import InputError, ModelFileError
from flamesync.net.closure import ClosureDecoder, closure_scores, decode_closures
from flamesync.net.fusion import (FusionSettings, calibrate_fusion, fuse_closure_prob, heard_evidence,
                                  predict_fused)
from flamesync.phonetics.types import PhoneSegment


def _phones():
    # 0.0-0.2 silence, "ma" at 0.2-0.5: /m/ 0.2-0.3, /a/ 0.3-0.5, silence to 0.6
    return [PhoneSegment(0.0, 0.2, "", "SIL"), PhoneSegment(0.2, 0.3, "m", "M"), PhoneSegment(0.3, 0.5, "a", "AA"),
            PhoneSegment(0.5, 0.6, "", "SIL")]


def test_evidence_marks_heard_closures_with_slack_and_vowels_apart():
    ev = heard_evidence(_phones(), 30, fps=50.0)
    assert ev.shape == (2, 30) and ev.dtype == bool
    # /m/ covers frames 10-14; one frame of slack either side
    assert np.flatnonzero(ev[0]).tolist() == list(range(9, 16))
    # the vowel's frames 15-24, less the slack frame that belongs to the closure
    assert np.flatnonzero(ev[1]).tolist() == list(range(16, 25))
    assert not (ev[0] & ev[1]).any()
    assert not ev[:, :9].any() and not ev[:, 25:].any()  # silence is no evidence either way


def test_fusion_moves_the_logit_and_nothing_else():
    rng = np.random.default_rng(0)
    prob = rng.uniform(0.05, 0.95, 30).astype(np.float32)
    ev = heard_evidence(_phones(), 30)
    same = fuse_closure_prob(prob, ev, bonus=0.0, penalty=0.0)
    np.testing.assert_allclose(same, prob, atol=1e-6)
    up = fuse_closure_prob(prob, ev, bonus=2.0, penalty=1.0)
    assert (up[ev[0]] > prob[ev[0]]).all() and (up[ev[1]] < prob[ev[1]]).all()
    neither = ~ev[0] & ~ev[1]
    np.testing.assert_allclose(up[neither], prob[neither], atol=1e-6)
    # logit shift of exactly `bonus`
    lg = lambda p: np.log(p / (1 - p))
    np.testing.assert_allclose(lg(up[ev[0]].astype(np.float64)) - lg(prob[ev[0]].astype(np.float64)), 2.0, atol=1e-4)
    # evidence one frame shorter than the probabilities (frame-count rounding) is no evidence there
    short = fuse_closure_prob(prob, ev[:, :29], bonus=2.0, penalty=1.0)
    assert short[29] == pytest.approx(prob[29], abs=1e-6)


def _closure_set(n_utts=40, seed=0):
    """Utterances with one labelled closure each; the network sees only half of them clearly."""
    rng = np.random.default_rng(seed)
    probs, evidence, labels, speech = [], [], [], []
    for i in range(n_utts):
        t = 60
        lab = np.zeros(t, np.float32)
        lab[25:29] = 1
        p = rng.uniform(0.0, 0.5, t).astype(np.float32)  # no threshold at 0.35 keeps false closures rare
        p[25:29] = 0.9 if i % 2 else 0.35  # every other closure is under-confident
        ev = np.zeros((2, t), bool)
        ev[0, 24:30] = True  # the recogniser heard them all
        ev[1, 35:50] = True
        probs.append(p), evidence.append(ev), labels.append(lab), speech.append(np.ones(t, bool))
    return probs, evidence, labels, speech


def test_calibration_uses_evidence_that_finds_the_missed_closures():
    probs, evidence, labels, speech = _closure_set()
    alone = calibrate_fusion(probs, evidence, labels, speech, max_false_rate=0.02, bonuses=(0.0,), penalties=(0.0,))
    fused, report = calibrate_fusion(probs, evidence, labels, speech, max_false_rate=0.02)
    assert alone[1]["calibrated"]["recall"] == pytest.approx(0.5)
    assert fused.bonus > 0 and report["calibrated"]["recall"] == 1.0
    assert report["calibrated"]["false_rate"] <= 0.02
    assert len(report["grid"]) == 7 * 4
    # the chosen settings reproduce the reported recall
    masks = [decode_closures(fuse_closure_prob(p, e, bonus=fused.bonus, penalty=fused.penalty),
                             on=fused.decoder.on, off=fused.decoder.off, min_frames=fused.decoder.min_frames)[0]
             for p, e in zip(probs, evidence)]
    assert closure_scores(masks, labels, speech)["recall"] == 1.0


def test_calibration_ignores_evidence_that_is_noise():
    probs, _, labels, speech = _closure_set()
    rng = np.random.default_rng(1)
    noise = [rng.random((2, 60)) < 0.3 for _ in probs]
    settings, report = calibrate_fusion(probs, noise, labels, speech, max_false_rate=0.02, penalties=(0.0,))
    # Random "closures" cannot buy recall within the false-closure budget: zero or a small bonus wins.
    best_zero = [g for g in report["grid"] if g["bonus"] == 0.0][0]
    assert report["calibrated"]["recall"] <= best_zero["recall"] + 0.1


def test_settings_round_trip_and_predict_needs_them():
    s = FusionSettings(bonus=1.5, penalty=0.5, decoder=ClosureDecoder(on=0.4, off=0.3, min_frames=2))
    assert FusionSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s

    class NoFusion:
        meta = {}

    with pytest.raises(InputError, match="--fusion"):
        predict_fused(NoFusion(), np.zeros(16000, np.float32))


def test_fused_prediction_closes_where_the_recogniser_heard_pbm():
    from flamesync.net.infer import load_default_model

    model = load_default_model()
    rng = np.random.default_rng(0)
    # 1 s of a loud vowel-like tone with noise: the network opens the jaw and hears no closure.
    t = np.arange(16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
             + 0.01 * rng.standard_normal(16000)).astype(np.float32)
    phones = [PhoneSegment(0.0, 0.4, "a", "AA"), PhoneSegment(0.4, 0.5, "m", "M"), PhoneSegment(0.5, 1.0, "a", "AA")]
    decoder = ClosureDecoder(on=0.5, off=0.4, min_frames=2)
    plain = predict_fused(model, audio, settings=FusionSettings(decoder=decoder), phones=phones)
    fused = predict_fused(model, audio, settings=FusionSettings(bonus=40.0, decoder=decoder), phones=phones)
    inside = slice(22, 25)  # frames 20-24 hold the /m/; the lips seal within two frames
    moved = 0
    for name, target in model.pose.items():
        j = plain.channels.index(name)
        before = np.abs(plain.values[inside, j] - target)
        after = np.abs(fused.values[inside, j] - target)
        assert (after <= 0.1 * before + 1e-3).all(), name  # pulled to the closure pose
        moved += bool(before.min() > 0.05)
    assert moved  # and the pose differs from what the network made of the tone
    np.testing.assert_array_equal(fused.values[:19], plain.values[:19])  # before the evidence, the same
    assert fused.meta["phones"][1][2] == "m"


def test_checkpoint_schema_checks_the_fusion_block():
    from flamesync.net.schema import check_description

    ok = {"fusion": {"bonus": 1.0, "penalty": 0.5, "decoder": {"on": 0.4, "off": 0.3, "min_frames": 2}}}
    assert check_description(ok, "x.json") is ok
    for bad, msg in (({"fusion": [1, 2]}, "fusion must be a JSON object"),
                     ({"fusion": {"bonus": "big"}}, "fusion.bonus"),
                     ({"fusion": {"bonus": -1}}, "fusion.bonus"),
                     ({"fusion": {"decoder": {"on": "high"}}}, "fusion.decoder")):
        with pytest.raises(ModelFileError, match=msg):
            check_description(bad, "x.json")
