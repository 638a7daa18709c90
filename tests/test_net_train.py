import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flamesync.net.checkpoint import load_weights
from flamesync.net.infer import load_model
from flamesync.net.train import load_config, train
from net_standin import StandinCorpus, torch_single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("torch_single_thread")

REPO = Path(__file__).resolve().parents[1]


def _cfg(steps=30):
    return load_config(REPO / "configs" / "tiny.yaml", {"train": {"steps": steps}})


@pytest.fixture(scope="module")
def corpus():
    return StandinCorpus(n_train=16, n_val=4, seconds=2.5)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("full")
    summary = train(_cfg(), corpus=corpus, out_dir=out, show_progress=False)
    return out, summary


def _log(out):
    rows = (out / "log.csv").read_text().splitlines()
    head = rows[0].split(",")
    return [dict(zip(head, r.split(","))) for r in rows[1:]]


def test_tiny_config_learns(full_run):
    out, summary = full_run
    rows = _log(out)
    first = np.mean([float(r["loss"]) for r in rows[:2]])
    last = np.mean([float(r["loss"]) for r in rows[-2:]])
    assert last < 0.75 * first, (first, last)



def test_trained_beats_untrained_on_held_out_noisy_val(full_run, corpus):
    from flamesync.audio.features import FeatureConfig
    from flamesync.net.model import FlameSyncNet, ModelConfig
    from flamesync.net.train import _fixed_val_batches, evaluate_loss, prepare_examples

    out, _ = full_run
    cfg = _cfg()
    mcfg = ModelConfig.from_dict(cfg["model"])
    val = prepare_examples(corpus.items("val"), mcfg.channels)
    batches = [b for b in _fixed_val_batches(val, seed=99, fcfg=FeatureConfig(), crop_frames=100, n=4)]
    torch.manual_seed(cfg["seed"])
    fresh = evaluate_loss(FlameSyncNet(mcfg), batches, cfg["train"]["loss"], "cpu")
    trained = evaluate_loss(load_model(out / "final").net, batches, cfg["train"]["loss"], "cpu")
    assert trained["noisy_l_weights"] < 0.7 * fresh["noisy_l_weights"]
    assert trained["noisy_loss"] < 0.8 * fresh["noisy_loss"]


def test_final_checkpoint_is_calibrated_and_usable(full_run):
    out, summary = full_run
    assert summary["step"] == 30
    meta = json.loads((out / "final.json").read_text())
    assert 0.0 < meta["closure_decoder"]["on"] < 1.0
    assert "noisy" in meta["calibration"]["data"] or "noise" in meta["calibration"]["data"]
    assert set(meta["closure_pose"]) >= {"jawOpen", "mouthClose"}
    assert set(meta["amplitude_map"]) == {"jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight",
                                          "mouthUpperUpLeft", "mouthUpperUpRight"}
    for m in meta["amplitude_map"].values():
        assert np.all(np.diff(m["x"]) > 0) and np.all(np.diff(m["y"]) >= 0)
    model = load_model(out / "final")
    assert model.amplitude_map == meta["amplitude_map"]
    anim = model.predict(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1)
    assert anim.n_frames == 50


def test_resume_after_interruption_matches_uninterrupted(full_run, corpus, tmp_path):
    out_full, _ = full_run
    cfg = _cfg()
    train(cfg, corpus=corpus, out_dir=tmp_path, stop_after=13, show_progress=False)  # "interrupted" at 13
    meta = json.loads((tmp_path / "last.json").read_text())
    assert meta["step"] == 13 and (tmp_path / "last.optim.pt").is_file()
    first_part = meta["train_seconds"]
    summary = train(cfg, corpus=corpus, out_dir=tmp_path, show_progress=False)
    a, b = load_weights(out_full / "last"), load_weights(tmp_path / "last")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["loss"] for r in _log(out_full)] == [r["loss"] for r in _log(tmp_path)]
    # The training time reported covers both parts of the run.
    final = json.loads((tmp_path / "final.json").read_text())
    assert 0 < first_part < final["train_seconds"] == pytest.approx(summary["seconds"], abs=1.0)
    # Running a finished run again only recalibrates: same weights, the time carried over.
    again = train(cfg, corpus=corpus, out_dir=tmp_path, show_progress=False)
    assert again["seconds"] == pytest.approx(final["train_seconds"], abs=1.0)
    for k, v in load_weights(tmp_path / "final").items():
        assert torch.equal(v, b[k]), k


def test_config_errors(tmp_path):
    from flamesync.errors import InputError

    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("trian: {steps: 3}\n")
    with pytest.raises(InputError, match="unknown"):
        load_config(tmp_path / "bad.yaml")


def test_batch_worker_process_gives_identical_training(corpus, tmp_path):
    runs = []
    for workers in (0, 1):
        cfg = load_config(REPO / "configs" / "tiny.yaml",
                          {"data_workers": workers, "train": {"steps": 6, "log_every": 1, "val_every": 100}})
        train(cfg, corpus=corpus, out_dir=tmp_path / f"w{workers}", stop_after=6, show_progress=False)
        runs.append(load_weights(tmp_path / f"w{workers}" / "last"))
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k


def test_several_corpora_train_together(corpus, tmp_path):
    from flamesync.net.checkpoint import load_meta
    from flamesync.net.train import _interleave

    assert _interleave([[1, 2, 3], ["a"]]) == [1, "a", 2, 3]
    other = StandinCorpus(n_train=4, n_val=2, seconds=2.5, seed=5)
    cfg = _cfg(steps=4)
    cfg["calibration"]["max_items"] = 4
    summary = train(cfg, corpus=[corpus, other], out_dir=tmp_path, show_progress=False)
    meta = load_meta(Path(summary["final"]))
    assert len(meta["extra_corpora"]) == 1
    assert meta["calibration"]["n_items"] == 4  # two validation items from each corpus


def test_config_corpus_extra_entries_open_each_folder(tmp_path, monkeypatch):
    from flamesync.net import train as train_mod

    opened = []
    monkeypatch.setattr(train_mod, "_open_one", lambda spec, seed: opened.append((spec["name"], seed)) or spec["name"])
    cfg = load_config(REPO / "configs" / "default.yaml")
    assert train_mod.open_corpora(cfg) == ["default", "natural"]
    assert opened == [("default", 0), ("natural", 0)]


def test_a_corpus_with_fewer_hours_than_asked_is_extended(tmp_path, monkeypatch):
    import flamesync.data.corpus as corpus_mod
    import flamesync.data.synth as synth_mod
    from flamesync.net.train import _open_one

    calls = []
    monkeypatch.setattr(synth_mod, "synthesize_corpus", lambda path, **kw: calls.append(kw))
    monkeypatch.setattr(corpus_mod, "Corpus", lambda path: path)
    (tmp_path / "manifest.json").write_text(json.dumps({"complete": True, "config": {"hours": 1.0}}))
    spec = {"path": str(tmp_path), "synth": {"hours": 1.0, "engines": ["flite"]}}
    assert _open_one(spec, 0) == tmp_path and calls == []
    spec["synth"]["hours"] = 2.0
    _open_one(spec, 3)
    assert calls == [{"hours": 2.0, "engines": ["flite"], "seed": 3}]


def _example(n_frames=150):
    from flamesync.net.train import Example

    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(n_frames * 320)).astype(np.float32)
    speech = np.ones(n_frames, bool)
    speech[:10] = speech[-10:] = False
    audio[:10 * 320] = 0.0
    audio[-10 * 320:] = 0.0
    closure = np.zeros(n_frames, np.float32)
    closure[60:70] = 1.0
    weights = np.tile(np.linspace(0, 1, n_frames, dtype=np.float32)[:, None], (1, 3))
    weights[:10] = weights[-10:] = 0.0
    return Example(audio=audio, weights=weights, channel_mask=np.ones(3, np.float32), closure=closure,
                   visemes=speech.astype(np.int64), speech=speech)


def _batch(ex, **kw):
    from flamesync.audio.features import FeatureConfig
    from flamesync.net.augment import AugmentConfig
    from flamesync.net.train import make_batch

    args = dict(batch_size=1, crop_frames=200, p_clean=1.0, aug=AugmentConfig(), fcfg=FeatureConfig(),
                silence_seconds=(1.0, 1.0))
    args.update(kw)
    return make_batch([ex], rng=np.random.default_rng(3), **args)


def test_pause_crops_hold_the_utterance_end_a_rest_pause_and_its_start():
    ex = _example()
    b = _batch(ex, p_pause=1.0)
    w, valid, closure = b["weights"][0].numpy(), b["valid"][0].numpy(), b["closure"][0].numpy()
    assert valid.shape == (200,) and valid.all()  # both sides silent, so the pause is a known rest
    # 150 speech frames on both sides of a 50-frame pause: the end of the ramp, rest, its start.
    still = np.flatnonzero(np.all(w == 0.0, axis=1))
    runs = np.split(still, np.flatnonzero(np.diff(still) > 1) + 1)
    longest = max(runs, key=len)
    assert len(longest) == 10 + 50 + 10  # the end's silence, the pause, the start's silence
    assert w[longest[0] - 1, 0] > 0.9  # just before the pause: the end of the ramp
    assert w[longest[-1] + 1, 0] < 0.2  # just after it: the utterance's start
    assert closure[longest].max() == 0.0
    # An utterance that does not end in silence never gets a pause (its targets there are unknown).
    ex.speech[-1] = True
    b = _batch(ex, p_pause=1.0)
    assert b["valid"][0].numpy().sum() == 150  # a plain crop of the 150 frames, padded


def test_speed_perturbation_scales_audio_and_targets_together():
    # Examples exactly as long as the stretched crop, so the whole utterance is in it.
    ex_slow, ex_fast = _example(160), _example(250)
    slow = _batch(ex_slow, p_speed=1.0, speed=(0.8, 0.8))
    fast = _batch(ex_fast, p_speed=1.0, speed=(1.25, 1.25))
    for b in (slow, fast):
        assert b["feats"].shape[1] == 400 and b["weights"].shape == (1, 200, 3)  # features at 100 fps
        assert b["valid"].numpy().all()
    # The 10-frame closure lasts 1 / speed times as long.
    assert int(slow["closure"].sum()) in (12, 13) and int(fast["closure"].sum()) == 8
    # The whole ramp now spans the 200 output frames.
    for b, ex in ((slow, ex_slow), (fast, ex_fast)):
        w = b["weights"][0, :, 0].numpy()
        assert w.max() == ex.weights.max() and w[:5].max() == 0.0 and w[-5:].max() == 0.0
    # The audio is squeezed or stretched with the targets: a silent lead-in of 10 frames lasts 10 / speed.
    from flamesync.net.train import change_speed

    audio = _example(160).audio
    for k_out in (200, 128):
        out, (lab,) = change_speed(audio, [np.arange(160)], k_out)
        assert out.shape == (k_out * 320,) and lab.shape == (k_out,) and lab[0] == 0 and lab[-1] == 159
        onset = int(np.argmax(np.abs(out) > 0.05))
        assert abs(onset - 10 * 320 * k_out / 160) < 160


def test_tempo_shortens_crop_and_targets_together_and_keeps_old_streams():
    ex = _example(260)
    fast = _batch(ex, p_tempo=1.0, tempo=(1.3, 1.3))
    assert fast["feats"].shape[1] == 400 and fast["weights"].shape == (1, 200, 3)
    assert fast["valid"].numpy().all()
    assert int(fast["closure"].sum()) in (7, 8)  # the 10-frame closure, 1.3 times faster
    # Tempo and speed together: 1.25 x 1.3 input frames per output frame.
    both = _batch(_example(325), p_tempo=1.0, tempo=(1.3, 1.3), p_speed=1.0, speed=(1.25, 1.25))
    assert int(both["closure"].sum()) in (6, 7)
    # A config without tempo draws no extra random numbers: same batch as before tempo existed.
    plain = _batch(_example(250), p_speed=1.0, speed=(1.25, 1.25))
    off = _batch(_example(250), p_speed=1.0, speed=(1.25, 1.25), p_tempo=0.0, tempo=(1.5, 1.5))
    assert torch.equal(plain["feats"], off["feats"]) and torch.equal(plain["closure"], off["closure"])


def test_closure_detection_loss_is_noisy_or_over_each_closure():
    from flamesync.net.train import closure_detection_loss

    labels = torch.tensor([[0, 1, 1, 0, 0, 1, 0], [1, 1, 0, 0, 0, 0, 0]], dtype=torch.float32)
    p = torch.tensor([[0.9, 0.5, 0.2, 0.9, 0.9, 0.7, 0.9], [0.1, 0.3, 0.9, 0.9, 0.9, 0.9, 0.9]])
    logits = torch.logit(p).requires_grad_(True)
    loss = closure_detection_loss(logits, labels)
    # Closures: frames 1-2 of row 0, frame 5 of row 0, frames 0-1 of row 1; frames outside them do not count.
    detected = [1 - 0.5 * 0.8, 0.7, 1 - 0.9 * 0.7]
    assert float(loss.detach()) == pytest.approx(float(np.mean([-np.log(d) for d in detected])), rel=1e-5)
    loss.backward()
    assert torch.all(logits.grad[labels == 0] == 0)
    assert torch.all(logits.grad[labels == 1] < 0)  # every closure frame is pushed up
    assert float(closure_detection_loss(logits.detach(), torch.zeros_like(labels))) == 0.0


def test_acceleration_term_penalises_wobble_the_targets_do_not_have():
    from flamesync.net.train import compute_loss

    b, t, c = 2, 20, 3
    target = torch.linspace(0, 1, t)[None, :, None].expand(b, t, c).contiguous()  # constant velocity
    wobble = target + 0.01 * (-1.0) ** torch.arange(t)[None, :, None]
    batch = {"valid": torch.ones(b, t), "channel_mask": torch.ones(b, c), "weights": target,
             "closure": torch.zeros(b, t), "visemes": torch.zeros(b, t, dtype=torch.long)}
    lw = {"weights": 0.0, "velocity": 0.0, "acceleration": 1.0, "closure": 0.0, "closure_pos_weight": 4.0,
          "visemes": 0.0}
    outs = lambda w: (w, torch.zeros(b, t), torch.zeros(b, t, 4))  # noqa: E731
    _, exact = compute_loss(outs(target), batch, lw)
    _, wobbly = compute_loss(outs(wobble), batch, lw)
    assert exact["l_acceleration"] == pytest.approx(0.0, abs=1e-7)
    assert wobbly["l_acceleration"] == pytest.approx(0.04, rel=1e-4)  # |+-0.01 - 2(-+0.01) +- 0.01| = 0.04
    assert wobbly["loss"] == pytest.approx(wobbly["l_acceleration"])


def test_range_term_penalises_a_shrunk_output_and_is_not_bought_by_wobble():
    from flamesync.net.train import compute_loss, range_loss

    b, t, c = 2, 60, 3
    time = torch.arange(t, dtype=torch.float32)
    target = (0.4 + 0.3 * torch.sin(2 * np.pi * time / 30))[None, :, None].expand(b, t, c).contiguous()
    mean = target.mean(dim=1, keepdim=True)
    shrunk = mean + 0.6 * (target - mean)  # the median-seeking network: right shape, 60% of the range
    wobbly = shrunk + 0.1 * (-1.0) ** time[None, :, None]  # the same, plus frame-to-frame wobble
    valid, cmask = torch.ones(b, t), torch.ones(b, c)
    assert float(range_loss(target, target, valid, cmask)) == pytest.approx(0.0, abs=1e-4)
    shortfall = float(range_loss(shrunk, target, valid, cmask))
    # Standard deviation of a sine of amplitude 0.3 is 0.3/sqrt(2); 40% of it is missing (smoothing
    # over 5 of 30 frames per period shrinks both curves alike, by about 5%).
    assert shortfall == pytest.approx(0.4 * 0.3 / np.sqrt(2), rel=0.1)
    # Wobble of +-0.1 would make up most of the missing spread in the raw std (0.127 -> 0.162 of 0.212);
    # after the 5-frame average it barely counts.
    assert float(range_loss(wobbly, target, valid, cmask)) > 0.9 * shortfall
    # Padding and undefined channels are ignored: garbage there changes nothing.
    junk_valid = torch.cat([valid, torch.zeros(b, 10)], dim=1)
    junk = torch.cat([shrunk, torch.full((b, 10, c), 5.0)], dim=1)
    junk_target = torch.cat([target, torch.zeros(b, 10, c)], dim=1)
    assert float(range_loss(junk, junk_target, junk_valid, cmask)) == pytest.approx(shortfall, rel=1e-4)
    extra = torch.cat([shrunk, torch.rand(b, t, 1)], dim=2)
    extra_target = torch.cat([target, torch.zeros(b, t, 1)], dim=2)
    assert float(range_loss(extra, extra_target, valid, torch.cat([cmask, torch.zeros(b, 1)], dim=1))) == \
        pytest.approx(shortfall, rel=1e-4)
    # Through compute_loss, with only this term weighted, and a gradient that widens the output.
    batch = {"valid": valid, "channel_mask": cmask, "weights": target,
             "closure": torch.zeros(b, t), "visemes": torch.zeros(b, t, dtype=torch.long)}
    lw = {"weights": 0.0, "velocity": 0.0, "range": 1.0, "closure": 0.0, "closure_pos_weight": 4.0, "visemes": 0.0}
    pred = shrunk.clone().requires_grad_(True)
    loss, parts = compute_loss((pred, torch.zeros(b, t), torch.zeros(b, t, 4)), batch, lw)
    assert parts["l_range"] == pytest.approx(shortfall, rel=1e-5)
    assert parts["loss"] == pytest.approx(shortfall, rel=1e-5)
    loss.backward()
    step = (pred - 0.5 * pred.grad).detach()
    assert float(range_loss(step, target, valid, cmask)) < shortfall
    assert float(step[:, 7].mean()) > float(shrunk[:, 7].mean())  # near a peak (frame 7.5): pushed up


def test_hard_negative_weight_counts_other_stops_and_nasals_more():
    from flamesync.net.targets import VISEME_CLASSES, viseme_of
    from flamesync.net.train import compute_loss

    phones = ["a", "n", "m", "k", "s"]
    vis = torch.tensor([[viseme_of(p) for p in phones]])
    batch = {"valid": torch.ones(1, 5), "channel_mask": torch.ones(1, 1), "weights": torch.zeros(1, 5, 1),
             "closure": torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]]), "visemes": vis}
    logits = torch.tensor([[0.0, 2.0, 0.0, 2.0, 2.0]])
    outs = (torch.zeros(1, 5, 1), logits, torch.zeros(1, 5, len(VISEME_CLASSES)))
    lw = {"weights": 0.0, "velocity": 0.0, "closure": 1.0, "closure_pos_weight": 4.0, "visemes": 0.0}
    bce = [np.log(2), np.log1p(np.e ** 2), np.log(2), np.log1p(np.e ** 2), np.log1p(np.e ** 2)]
    for hard, w in ((None, [1, 1, 4, 1, 1]), (3.0, [1, 3, 4, 3, 1])):  # /n/ and /k/ are hard, /s/ is not
        _, parts = compute_loss(outs, batch, lw if hard is None else {**lw, "closure_hard_negative": hard})
        assert parts["l_closure"] == pytest.approx(np.dot(w, bce) / sum(w), rel=1e-5)
    # The classes are the config's to choose: the vowel /a/ as well, /n/ no longer.
    _, parts = compute_loss(outs, batch, {**lw, "closure_hard_negative": 3.0,
                                          "closure_hard_negative_visemes": ["A", "KG"]})
    assert parts["l_closure"] == pytest.approx(np.dot([3, 1, 4, 3, 1], bce) / 12, rel=1e-5)


def test_hard_negative_classes_are_checked_when_the_config_loads():
    from flamesync.errors import InputError
    from flamesync.net.train import load_config

    with pytest.raises(InputError, match="unknown viseme classes Q"):
        load_config(None, {"train": {"loss": {"closure_hard_negative_visemes": ["A", "Q"]}}})
    assert load_config(None)["train"]["loss"]["closure_hard_negative_visemes"] == ["TDNL", "KG"]


def test_check_share_leaves_those_speakers_out_of_training():
    from types import SimpleNamespace

    from flamesync.data.real import in_check_set
    from flamesync.errors import InputError
    from flamesync.net.train import _training_items, load_config

    items = [SimpleNamespace(meta={"speaker": f"spk{k // 3}"}) for k in range(120)]
    corpus = SimpleNamespace(manifest={"seed": 0}, items=lambda split: list(items) if split == "train" else [])
    kept = _training_items(corpus, {"check_share": 0.2})
    assert 0 < len(kept) < len(items)
    assert not any(in_check_set(it.meta, share=0.2) for it in kept)
    assert len(kept) + sum(in_check_set(it.meta, share=0.2) for it in items) == len(items)
    assert _training_items(corpus, {}) == items  # no check_share: every train item, as before
    for bad in (1.0, -0.1, "0.1"):
        with pytest.raises(InputError, match="check_share"):
            load_config(None, {"corpus": {"real": [{"name": "r", "check_share": bad}]}})
    band = _training_items(corpus, {"check_share": 0.2, "check_offset": 0.2})
    assert not any(in_check_set(it.meta, share=0.2, offset=0.2) for it in band)
    assert any(in_check_set(it.meta, share=0.2) for it in band)  # the first set's speakers train here
    for bad in (-0.1, 0.9, True):
        with pytest.raises(InputError, match="check_offset"):
            load_config(None, {"corpus": {"real": [{"name": "r", "check_share": 0.2, "check_offset": bad}]}})
    # the message names the interval, open or closed at each end, and where a computed bound comes from
    with pytest.raises(InputError, match=r"check_offset must be a number in \[0, 1 - check_share\], got 0.9$"):
        load_config(None, {"corpus": {"real": [{"name": "r", "check_share": 0.2, "check_offset": 0.9}]}})
    with pytest.raises(InputError, match=r"check_share must be a number in \[0, 1\), got 1.0$"):
        load_config(None, {"corpus": {"real": [{"name": "r", "check_share": 1.0}]}})


def test_vowel_budget_is_checked_before_training(tmp_path):
    from flamesync.errors import InputError

    for bad in (1.5, -0.1, "0.1", True):
        with pytest.raises(InputError, match="max_vowel_rate"):
            load_config(None, {"calibration": {"max_vowel_rate": bad}})
    cfg = load_config(None, {"calibration": {"max_vowel_rate": 0.1}})  # synthetic calibration: no phones
    with pytest.raises(InputError, match="calibration.data: real"):
        train(cfg, corpus=StandinCorpus(n_train=2, n_val=1), out_dir=tmp_path, show_progress=False)
    assert not any(tmp_path.iterdir())  # failed before writing anything


def test_opening_smoothing_setting_is_checked_at_load():
    from flamesync.errors import InputError
    from flamesync.net.train import opening_smoothing

    for bad in (0, 1.5, -0.2, "0.7", True):
        with pytest.raises(InputError, match="opening_smoothing"):
            load_config(None, {"calibration": {"opening_smoothing": bad, "amplitude_map": True}})
    with pytest.raises(InputError, match=r"opening_smoothing must be a number in \(0, 1\] \(the smoothing's alpha\)"):
        load_config(None, {"calibration": {"opening_smoothing": 0.0, "amplitude_map": True}})
    with pytest.raises(InputError, match="amplitude_map"):  # the smoothing is only ever paired with its map
        load_config(None, {"calibration": {"opening_smoothing": 0.7, "amplitude_map": False}})
    cal = load_config(None, {"calibration": {"opening_smoothing": 0.7, "amplitude_map": True}})["calibration"]
    assert opening_smoothing(cal, ("jawOpen", "mouthClose", "mouthUpperUpLeft")) == {
        "alpha": 0.7, "channels": ["jawOpen", "mouthUpperUpLeft"]}
    for bad in (0, 1.5, "1", True):
        with pytest.raises(InputError, match="opening_smoothing_closing"):
            load_config(None, {"calibration": {"opening_smoothing": 0.7, "opening_smoothing_closing": bad,
                                               "amplitude_map": True}})
    with pytest.raises(InputError, match="needs calibration.opening_smoothing"):
        load_config(None, {"calibration": {"opening_smoothing_closing": 1.0, "amplitude_map": True}})
    assert opening_smoothing({"opening_smoothing": 0.7, "opening_smoothing_closing": 1.0}, ("jawOpen",)) == {
        "alpha": 0.7, "alpha_closing": 1.0, "channels": ["jawOpen"]}
    assert opening_smoothing({"opening_smoothing": 0.7, "opening_smoothing_closing": 0.7}, ("jawOpen",)) == {
        "alpha": 0.7, "channels": ["jawOpen"]}
    assert opening_smoothing({"opening_smoothing": 1.0}, ("jawOpen",)) is None
    assert opening_smoothing({}, ("jawOpen",)) is None
    for bad in (0.2, 3, "1.1", True):
        with pytest.raises(InputError, match="opening_gain"):
            load_config(None, {"calibration": {"opening_gain": bad, "amplitude_map": True}})
    with pytest.raises(InputError, match="amplitude_map"):
        load_config(None, {"calibration": {"opening_gain": 1.1, "amplitude_map": False}})


def test_closure_attack_setting():
    from flamesync.errors import InputError
    from flamesync.net.train import closure_base

    for bad in (0, 1.5, "0.8", True):
        with pytest.raises(InputError, match="closure_attack"):
            load_config(None, {"calibration": {"closure_attack": bad}})
    cal = load_config(None, {"calibration": {"closure_attack": 0.85}})["calibration"]
    assert closure_base(cal).attack == 0.85 and closure_base({}).attack == 0.7
    assert closure_base(cal).release == closure_base({}).release


def test_closure_removes_gain_setting():
    from flamesync.errors import InputError
    from flamesync.net.train import closure_removes_gain

    for bad in ("yes", 1, 0.5):
        with pytest.raises(InputError, match="closure_removes_gain must be true or false"):
            load_config(None, {"calibration": {"closure_removes_gain": bad, "opening_gain": 1.1, "amplitude_map": True}})
    with pytest.raises(InputError, match="needs calibration.opening_gain"):
        load_config(None, {"calibration": {"closure_removes_gain": True, "amplitude_map": True}})
    cal = load_config(None, {"calibration": {"closure_removes_gain": True, "opening_gain": 1.06,
                                             "amplitude_map": True}})["calibration"]
    assert closure_removes_gain(cal, ("jawOpen", "mouthClose", "mouthUpperUpLeft")) == {
        "gain": 1.06, "channels": ["jawOpen", "mouthUpperUpLeft"]}
    assert closure_removes_gain({**cal, "closure_removes_gain": False}, ("jawOpen",)) is None
    assert closure_removes_gain({"opening_gain": 1.06}, ("jawOpen",)) is None


def test_hesitations_splice_an_um_into_real_crops_only_and_keep_old_streams():
    from flamesync.net.train import with_hesitation
    from flamesync.phonetics.types import PhoneSegment

    ex = _example(150)
    # The example as a real recording: a pause, then /ʌ/, a steady murmur between two vowels, ...
    ex.audio[:] = 0.0
    t = np.arange(150 * 320) / 16000
    ex.audio[10 * 320:140 * 320] = (0.2 * np.sin(2 * np.pi * 130 * t[10 * 320:140 * 320])).astype(np.float32)
    ex.phones = (PhoneSegment(0.0, 0.2, "_", "SIL"), PhoneSegment(0.2, 1.2, "ʌ", "AH"), PhoneSegment(1.2, 1.4, "m", "M"),
                 PhoneSegment(1.4, 2.8, "ɪ", "IH"), PhoneSegment(2.8, 3.0, "_", "SIL"))
    h = with_hesitation(ex, np.random.default_rng(0))
    k = h.n_frames - ex.n_frames
    assert k >= 8 and len(h.audio) == h.n_frames * 320 and h.weights.shape == (h.n_frames, 3)
    # The inserted /m/ is a labelled closure with the targets of the murmur it was made of.
    runs = np.flatnonzero(np.diff(np.r_[0, h.closure, 0]))
    assert len(runs) == 4  # the original closure label span and the new one
    (a, b) = [(s, e) for s, e in zip(runs[::2], runs[1::2]) if not (s == 60 and e == 70)][0]
    assert 7 <= b - a <= 23
    assert np.allclose(h.weights[a:b], ex.weights[60:70].mean(axis=0), atol=0.05)
    # Synthetic speech (no phones) is left alone, and a config without hesitations draws nothing extra.
    ex.phones = None
    assert with_hesitation(ex, np.random.default_rng(0)) is ex
    plain = _batch(_example(250), p_speed=1.0, speed=(1.25, 1.25))
    off = _batch(_example(250), p_speed=1.0, speed=(1.25, 1.25), p_hesitation=1.0)
    assert torch.equal(plain["feats"], off["feats"]) and torch.equal(plain["closure"], off["closure"])
