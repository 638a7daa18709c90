"""Real-speech corpus: layouts, alignment confidence, speaker-disjoint splits, training on it.

The "recordings" are espeak-ng speech written to disk in each layout users have; what is tested is
the reading, aligning, filtering and splitting, which do not care who spoke.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from flamesync.data import real
from flamesync.data.corpus import Corpus
from net_standin import torch_single_thread  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
SENTENCES = [
    "maybe the boy bought more paper", "put the map on the table please", "a small blue box",
    "bring me my umbrella", "the baby is happy", "move the lamp a bit",
]
VOICES = ("en-us", "en-us+f3", "en-gb+m3")


@pytest.fixture(scope="module")
def utterances():
    from flamesync.audio import load_audio
    from flamesync.phonetics import get_engine

    eng = get_engine("espeak")
    out = []
    for i, text in enumerate(SENTENCES):
        utt = eng.synthesize(text, voice=VOICES[i % len(VOICES)], seed=i)
        x = load_audio(np.asarray(utt.audio, np.float32), sample_rate=16000, source_rate=utt.sample_rate)
        # Real recordings start and end in room tone, not digital silence.
        x = np.concatenate([np.zeros(4000), x, np.zeros(4000)]) + 1e-4 * np.random.default_rng(i).standard_normal(len(x) + 8000)
        out.append((f"spk{i % len(VOICES)}", f"utt{i}", text, x.astype(np.float32)))
    return out


def _write(path: Path, x):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, 16000, subtype="PCM_16")


def _layouts(root: Path, utts) -> dict[str, Path]:
    """The same recordings in every supported layout."""
    d = {}
    f = root / "folder"
    for k, (spk, uid, text, x) in enumerate(utts):
        _write(f / spk / f"{uid}.wav", x)
        (f / spk / f"{uid}{'.txt' if k % 2 else '.lab'}").write_text(text + "\n")
    d["folder"] = f
    ls = root / "librispeech"
    for spk in sorted({u[0] for u in utts}):
        rows = [u for u in utts if u[0] == spk]
        chap = ls / spk[3:] / "7"
        lines = []
        for _, uid, text, x in rows:
            lid = f"{spk[3:]}-7-{uid[3:].zfill(4)}"
            _write(chap / f"{lid}.flac", x)
            lines.append(f"{lid} {text.upper()}")
        (chap / f"{spk[3:]}-7.trans.txt").write_text("\n".join(lines) + "\n")
    d["librispeech"] = ls
    cv = root / "commonvoice"
    rows = ["client_id\tpath\tsentence\tup_votes"]
    for spk, uid, text, x in utts:
        _write(cv / "clips" / f"{uid}.wav", x)
        rows.append(f"{spk}\t{uid}.wav\t{text.capitalize()}.\t2")
    (cv / "validated.tsv").write_text("\n".join(rows) + "\n")
    d["commonvoice"] = cv
    lj = root / "ljspeech"
    meta = []
    for spk, uid, text, x in utts:
        _write(lj / "wavs" / f"{uid}.wav", x)
        meta.append(f"{uid}|{text}|{text}")
    (lj / "metadata.csv").write_text("\n".join(meta) + "\n")
    d["ljspeech"] = lj
    mf = root / "manifest"
    rows = ["file\tsource\tspeaker\tduration_s\tlanguage\tstyle\ttranscript\tlabels\tlicence"]
    for spk, uid, text, x in utts:
        _write(mf / "src" / f"{uid}.wav", x)
        rows.append(f"src/{uid}.wav\tsrc\t{spk}\t{len(x) / 16000:.3f}\ten\tread\t{text}\t\tCC0")
    (mf / "MANIFEST.tsv").write_text("\n".join(rows) + "\n")
    d["manifest"] = mf
    return d


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, utterances):
    return _layouts(tmp_path_factory.mktemp("layouts"), utterances)


@pytest.mark.parametrize("layout", ["folder", "librispeech", "commonvoice", "ljspeech", "manifest"])
def test_every_layout_reads_the_same_recordings(layouts, utterances, layout):
    found, clips = real.read_clips(layouts[layout])
    assert found == layout  # detected, not told
    assert len(clips) == len(utterances)
    texts = sorted(c.text.lower().strip(".") for c in clips)
    assert texts == sorted(t for _, _, t, _ in utterances)
    for c in clips:
        assert c.path.is_file()
    speakers = {c.speaker for c in clips}
    if layout == "ljspeech":
        assert speakers == {"ljspeech"}
    else:
        assert len(speakers) == len(VOICES)


def test_reader_errors(tmp_path):
    with pytest.raises(real.InputError, match="not found"):
        real.read_clips(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(real.InputError, match="no transcribed recordings"):
        real.read_clips(tmp_path / "empty")
    with pytest.raises(real.InputError, match="unknown real-speech layout"):
        real.read_clips(tmp_path / "empty", layout="kaldi")


def test_speaker_disjoint_splits():
    clips = [real.RealClip(Path(f"/x/{s}_{k}.wav"), "a", "src", f"s{s}") for s in range(200) for k in range(4)]
    clips += [real.RealClip(Path(f"/x/lj{k}.wav"), "a", "lj", "reader") for k in range(5)]
    clips += [real.RealClip(Path(f"/x/anon{k}.wav"), "a", "anon", "") for k in range(100)]
    splits = real.assign_splits(clips, seed=3, val_share=0.2, val_sources=["lj"])
    per_speaker = {}
    for c in clips:
        per_speaker.setdefault(c.group, set()).add(real.split_key(c, splits))
    assert all(len(v) == 1 for v in per_speaker.values())  # nobody on both sides
    val = {g for g, v in per_speaker.items() if v == {"val"}}
    assert "lj:reader" in val
    named = [g for g in val if g.startswith("src:")]
    assert 25 <= len(named) <= 55  # about 20% of 200 speakers
    assert 8 <= sum(g.startswith("anon:") for g in val) <= 35  # files without a speaker: split by file
    assert real.assign_splits(clips, seed=3, val_share=0.2, val_sources=["lj"]) == splits
    assert real.assign_splits(clips, seed=4, val_share=0.2, val_sources=["lj"]) != splits
    one = [real.RealClip(Path(f"/x/{k}.wav"), "a", "solo", "me") for k in range(40)]
    with pytest.warns(UserWarning, match="one speaker"):
        s1 = real.assign_splits(one, seed=0, val_share=0.25)
    assert 0 < sum(real.split_key(c, s1) == "val" for c in one) < 40


def test_check_set_is_a_fresh_draw_of_speakers():
    metas = [{"speaker": f"src:s{k}"} for k in range(400)]
    held = [m for m in metas if real.in_check_set(m, seed=0, share=0.12)]
    assert 25 <= len(held) <= 75  # about 12% of 400
    assert held == [m for m in metas if real.in_check_set(m, seed=0, share=0.12)]  # deterministic
    assert not any(real.in_check_set(m, seed=0, share=0.0) for m in metas)  # share 0: nobody left out
    # Salted apart from the val halves: the check speakers fall in both of val_role's halves.
    assert {real.val_role(m) for m in held} == {"select", "calibrate"}
    grown = [m for m in metas if real.in_check_set(m, seed=0, share=0.3)]
    assert all(m in grown for m in held)  # a larger share holds out the smaller one's speakers too
    # A band above the old share is a new draw: no speaker of the old set, all the rest of the larger one.
    band = [m for m in metas if real.in_check_set(m, seed=0, share=0.18, offset=0.12)]
    assert band and not any(m in held for m in band)
    assert sorted(map(str, held + band)) == sorted(map(str, grown))


def test_confidence_separates_right_and_wrong_transcripts(utterances):
    from flamesync.phonetics.align import align
    from flamesync.phonetics.confidence import alignment_confidence

    th = real.Thresholds()
    right, wrong = [], []
    for i, (_, _, text, x) in enumerate(utterances[:4]):
        right.append(alignment_confidence(align(x, 16000, text)))
        other = utterances[(i + 3) % len(utterances)][2]
        try:
            wrong.append(alignment_confidence(align(x, 16000, other)).score)
        except real.InputError:  # too long for the audio: refused outright, as good as a low score
            wrong.append(float("-inf"))
    for c in right:
        assert c.score > th.min_score and c.speech_in_pauses <= th.max_speech_in_pauses
        assert len(c.words) > 2
    assert min(c.score for c in right) > max(wrong)
    assert sum(w < th.min_score for w in wrong) >= 3
    # One word of a sentence: the rest of the speech is left to the pauses.
    short = alignment_confidence(align(utterances[0][3], 16000, "maybe"))
    assert short.speech_in_pauses > th.max_speech_in_pauses


def test_build_drops_bad_alignments_masks_bad_words_and_splits_by_speaker(layouts, utterances, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("FLAMESYNC_CACHE", str(tmp_path / "cache"))
    src = layouts["folder"]
    # A recording whose transcript is of other speech: it must be dropped, not trained on.
    bad = src / "spk9" / "wrong.wav"
    _write(bad, utterances[1][3])
    bad.with_suffix(".txt").write_text("go forward ten meters and then stop\n")
    try:
        m = real.build_real_corpus(src, tmp_path / "c", seed=0, val_share=0.34, workers=1)
        assert m["config"]["recordings"] == len(utterances) + 1
        assert sum(m["dropped"].values()) >= 1
        assert m["stats"]["utterances"] == len(utterances) + 1 - sum(m["dropped"].values())
        c = Corpus(tmp_path / "c")
        items = {s: list(c.items(s)) for s in ("train", "val")}
        texts = [it.meta["text"] for s in items for it in items[s]]
        assert "go forward ten meters and then stop" not in texts
        spk = {s: {it.meta["speaker"] for it in items[s]} for s in items}
        assert spk["train"] and spk["val"] and not (spk["train"] & spk["val"])
        for it in items["train"] + items["val"]:
            assert it.targets.shape[1] == len(c.channels) and abs(it.targets.shape[0] - len(it.audio) / 320) <= 1
            assert it.meta["confidence"] > real.Thresholds().min_score
            assert any(p.phone == "m" for p in it.phones) or any(p.phone in ("p", "b") for p in it.phones)
        # Rebuilding uses the cached alignments and gives the same corpus.
        m2 = real.build_real_corpus(src, tmp_path / "c2", seed=0, val_share=0.34, workers=1)
        assert m2["stats"] == m["stats"] and m2["dropped"] == m["dropped"]
        # A word that fits badly is masked: with a strict word threshold every item carries masks or is dropped.
        strict = real.Thresholds(mask_word_below=0.5, max_masked_share=1.0)
        m3 = real.build_real_corpus(src, tmp_path / "c3", seed=0, val_share=0.34, workers=1, thresholds=strict)
        masked = [it for s in ("train", "val") for it in Corpus(tmp_path / "c3").items(s)]
        assert masked and all(it.meta["mask"] for it in masked)
        assert m3["stats"]["utterances"] == len(masked)
    finally:
        bad.unlink()
        bad.with_suffix(".txt").unlink()


def test_trusted_frames_and_masked_crops():
    from flamesync.net.train import trusted_frames

    assert trusted_frames([], 10) is None
    ok = trusted_frames([[0.1, 0.2]], 15)  # frames whose centre lies in [0.1, 0.2) at 50 fps
    assert ok.tolist() == [True] * 5 + [False] * 5 + [True] * 5


def test_intent_grammar_keeps_labelled_slots_only():
    exprs = ["[can I get, give me] [a, an] $size:size $coffeeDrink:coffeeDrink with $milkAmount:milkAmount",
             "[can I get, give me] [a, an] $size:size $coffeeDrink:coffeeDrink",
             "[can I get] $coffeeDrink:coffeeDrink $size:size"]
    g = real.intent_grammar(exprs, {"size": "large", "coffeeDrink": "iced mocha"})
    assert g.startswith("#JSGF V1.0;")
    body = g.split("=", 1)[1]
    assert "( large )" in body and "( iced mocha )" in body and "milk" not in body
    assert "[ can i get | give me ]" in body and "[ a | an ]" in body
    # The two expressions that use exactly these slots, in their own word orders.
    assert "( large ) ( iced mocha )" in body and "[ can i get ] ( iced mocha ) ( large )" in body
    assert real.intent_grammar(exprs, {"roast": "dark roast"}) is None


def test_cli_data_real(layouts, tmp_path, monkeypatch, capsys):
    from flamesync.cli import main

    monkeypatch.setenv("FLAMESYNC_CACHE", str(tmp_path / "cache"))
    assert main(["data", "real", str(layouts["ljspeech"]), "--out", str(tmp_path / "lj"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "kept:" in out and "val" in out
    m = json.loads((tmp_path / "lj" / "manifest.json").read_text())
    assert m["kind"] == "real" and m["layout"] == "ljspeech"
    assert main(["data", "real", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) != 0


def test_tiny_training_mixes_real_and_synthetic(layouts, tmp_path, monkeypatch):
    from flamesync.net.checkpoint import load_meta
    from flamesync.net.train import load_config, make_batch, prepare_examples, train
    from flamesync.net.augment import AugmentConfig
    from flamesync.audio.features import FeatureConfig
    from net_standin import StandinCorpus

    monkeypatch.setenv("FLAMESYNC_CACHE", str(tmp_path / "cache"))
    cfg = load_config(REPO / "configs" / "tiny.yaml", {
        "train": {"steps": 6, "val_every": 6, "ckpt_every": 6},
        "corpus": {"real": [{"path": str(tmp_path / "realc"), "source": str(layouts["manifest"]), "val_share": 0.5}],
                   "real_share": 0.5},
        "calibration": {"max_items": 4, "data": "real", "amplitude_map": False},
    })
    synthetic = StandinCorpus(n_train=8, n_val=2, seconds=2.5)
    summary = train(cfg, corpus=synthetic, out_dir=tmp_path / "run", show_progress=False)
    meta = load_meta(Path(summary["final"]))
    assert meta["real_corpora"] and meta["real_corpora"][0]["layout"] == "manifest"
    assert "real speech" in meta["calibration"]["data"]
    val_rows = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any(k.startswith("real_") for k in val_rows[-1]["val"])
    # Crops come from both pools, in the share asked for.
    c = Corpus(tmp_path / "realc")
    chans = tuple(synthetic.manifest["channels"])
    real_ex = prepare_examples(c.items("train"), chans)
    syn_ex = prepare_examples(synthetic.items("train"), chans)
    rng = np.random.default_rng(0)
    b = make_batch(syn_ex, rng=rng, batch_size=64, crop_frames=50, p_clean=1.0, aug=AugmentConfig(),
                   fcfg=FeatureConfig(), real=real_ex, real_share=0.5)
    assert b["feats"].shape[0] == 64
    only_real = make_batch(syn_ex, rng=np.random.default_rng(1), batch_size=4, crop_frames=50, p_clean=1.0,
                           aug=AugmentConfig(), fcfg=FeatureConfig(), real=real_ex, real_share=1.0)
    only_syn = make_batch(syn_ex, rng=np.random.default_rng(1), batch_size=4, crop_frames=50, p_clean=1.0,
                          aug=AugmentConfig(), fcfg=FeatureConfig(), real=real_ex, real_share=0.0)
    same = make_batch(syn_ex, rng=np.random.default_rng(1), batch_size=4, crop_frames=50, p_clean=1.0,
                      aug=AugmentConfig(), fcfg=FeatureConfig())
    assert np.array_equal(only_syn["feats"], same["feats"])  # share 0 draws exactly as before
    assert not np.array_equal(only_real["feats"], same["feats"])


def test_cli_fine_tunes_on_your_own_recordings_and_recalibrates(layouts, tmp_path, monkeypatch):
    from flamesync.cli import main
    from flamesync.net import train as train_mod
    from flamesync.net.checkpoint import load_meta, load_weights
    from net_standin import StandinCorpus

    monkeypatch.setenv("FLAMESYNC_CACHE", str(tmp_path / "cache"))
    synthetic = StandinCorpus(n_train=8, n_val=2, seconds=2.5)
    monkeypatch.setattr(train_mod, "open_corpora", lambda cfg: [synthetic])
    tiny = str(REPO / "configs" / "tiny.yaml")
    base = train_mod.train(train_mod.load_config(tiny, {"train": {"steps": 4}}), corpus=synthetic,
                           out_dir=tmp_path / "base", show_progress=False)["final"]
    assert main(["train", "--config", tiny, "--real", str(layouts["folder"]), "--init", base, "--steps", "4",
                 "--out", str(tmp_path / "ft")]) == 0
    meta = load_meta(tmp_path / "ft" / "final")
    assert meta["init"] == base
    assert [rc["layout"] for rc in meta["real_corpora"]] == ["folder"]
    assert main(["train", "--config", tiny, "--real", str(layouts["folder"]), "--recalibrate", base,
                 "--out", str(tmp_path / "new" / "recal")]) == 0   # a folder that does not exist yet
    recal = load_meta(tmp_path / "new" / "recal")
    assert "real speech" in recal["calibration"]["data"] and recal["recalibrated_from"].startswith(base)
    # tiny.yaml asks for the amplitude map: refitted on the same real speech, not the base's kept
    assert recal["amplitude_map"] and recal["amplitude_map"] != load_meta(base).get("amplitude_map")
    w0, w1 = load_weights(base), load_weights(tmp_path / "new" / "recal")
    assert all(np.array_equal(w0[k].numpy(), w1[k].numpy()) for k in w0)  # only the decoder changes
    # A vowel budget on top of the frame budget: the rule names it and the report measures it.
    import yaml

    budget = yaml.safe_load(Path(tiny).read_text())
    # (and a faster closure attack, which the threshold search keeps)
    budget.setdefault("calibration", {}).update(max_vowel_rate=0.05, closure_attack=0.85)
    (tmp_path / "budget.yaml").write_text(yaml.safe_dump(budget))
    assert main(["train", "--config", str(tmp_path / "budget.yaml"), "--real", str(layouts["folder"]),
                 "--recalibrate", base, "--out", str(tmp_path / "vowels")]) == 0
    cal = load_meta(tmp_path / "vowels")["calibration"]
    assert "vowel_rate <= 0.05" in cal["rule"] and 0.0 <= cal["calibrated"]["vowel_rate"] <= 1.0
    assert load_meta(tmp_path / "vowels")["closure_decoder"]["attack"] == 0.85
    assert recal["closure_decoder"]["attack"] == 0.7   # without the key: the default
    # A smoothed opening: the checkpoint carries the smoothing, and its map is fitted on the smoothed
    # predictions, whose quantiles are drawn in (the teacher's side of the map stays the same).
    smooth = yaml.safe_load(Path(tiny).read_text())
    smooth.setdefault("calibration", {}).update(opening_smoothing=0.5, amplitude_map=True)
    (tmp_path / "smooth.yaml").write_text(yaml.safe_dump(smooth))
    assert main(["train", "--config", str(tmp_path / "smooth.yaml"), "--real", str(layouts["folder"]),
                 "--recalibrate", base, "--out", str(tmp_path / "smooth")]) == 0
    sm = load_meta(tmp_path / "smooth")
    assert sm["opening_smoothing"]["alpha"] == 0.5 and "jawOpen" in sm["opening_smoothing"]["channels"]
    raw, smoothed = recal["amplitude_map"]["jawOpen"], sm["amplitude_map"]["jawOpen"]
    assert smoothed["y"] == raw["y"] and smoothed["x"] != raw["x"]
    assert smoothed["x"][-1] - smoothed["x"][0] <= raw["x"][-1] - raw["x"][0]
    from flamesync.net.infer import load_model

    assert load_model(tmp_path / "smooth").smoothing_alpha == 0.5
    # A gain scales the fitted map's teacher side, capped at full weight; the prediction side stays.
    wide = yaml.safe_load(Path(tiny).read_text())
    # (with closure_removes_gain the checkpoint also tells inference to take it back in closures)
    wide.setdefault("calibration", {}).update(opening_gain=1.5, amplitude_map=True, closure_removes_gain=True)
    (tmp_path / "wide.yaml").write_text(yaml.safe_dump(wide))
    assert main(["train", "--config", str(tmp_path / "wide.yaml"), "--real", str(layouts["folder"]),
                 "--recalibrate", base, "--out", str(tmp_path / "wide")]) == 0
    for name, m in load_meta(tmp_path / "wide")["amplitude_map"].items():
        assert m["x"] == recal["amplitude_map"][name]["x"]
        assert m["y"] == [min(1.0, 1.5 * v) for v in recal["amplitude_map"][name]["y"]]
    removes = load_meta(tmp_path / "wide")["closure_removes_gain"]
    assert removes["gain"] == 1.5 and "jawOpen" in removes["channels"]
    assert load_model(tmp_path / "wide").closure_gain == 1.5
    # Recalibrated again without it: the old smoothing does not outlive the map it was fitted with.
    assert main(["train", "--config", tiny, "--real", str(layouts["folder"]), "--recalibrate",
                 str(tmp_path / "smooth"), "--out", str(tmp_path / "unsmoothed")]) == 0
    assert "opening_smoothing" not in load_meta(tmp_path / "unsmoothed")
    assert main(["train", "--config", tiny, "--real", str(layouts["folder"]), "--recalibrate",
                 str(tmp_path / "wide"), "--out", str(tmp_path / "ungained")]) == 0
    assert "closure_removes_gain" not in load_meta(tmp_path / "ungained")
    # Two networks fine-tuned from one start: their weights averaged, then calibrated as one.
    ft = str(tmp_path / "ft" / "final")
    assert main(["train", "--config", tiny, "--real", str(layouts["folder"]), "--recalibrate", base, ft,
                 "--out", str(tmp_path / "soup")]) == 0
    soup = load_meta(tmp_path / "soup")
    assert soup["averaged_from"] == [str(Path(base)), str(Path(ft))] and "real speech" in soup["calibration"]["data"]
    w2, ws = load_weights(ft), load_weights(tmp_path / "soup")
    assert all(np.allclose(ws[k].numpy(), (w0[k].double().numpy() + w2[k].double().numpy()) / 2, atol=1e-6)
               for k in w0)
    assert not all(np.array_equal(w0[k].numpy(), w2[k].numpy()) for k in w0)  # so the mean is not trivial
    assert main(["train", "--config", tiny, "--recalibrate", base, ft, "--fusion", "--out", str(tmp_path / "x")]) != 0
    # The recogniser fusion is fitted on the same half and added; the network's own decoder stays.
    assert main(["train", "--config", tiny, "--real", str(layouts["folder"]), "--recalibrate", base, "--fusion",
                 "--out", str(tmp_path / "fused")]) == 0
    fused = load_meta(tmp_path / "fused")
    assert fused["closure_decoder"] == load_meta(base)["closure_decoder"]
    assert len(fused["fusion"]["calibration"]["grid"]) == 7 * 4
    assert {"bonus", "penalty", "decoder"} <= set(fused["fusion"])
    assert main(["train", "--config", tiny, "--fusion", "--out", str(tmp_path / "nope")]) != 0
    # A config whose model differs from the checkpoint's cannot fine-tune it.
    assert main(["train", "--config", tiny, "--real", str(layouts["folder"]), "--init", "default", "--steps", "1",
                 "--out", str(tmp_path / "bad")]) != 0
    assert not (tmp_path / "bad" / "last.json").exists()
