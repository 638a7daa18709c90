import json

import numpy as np
import pytest

from flamesync.data.corpus import Corpus, CorpusItem
from flamesync.data.synth import (
    SPLITS, TRAIN_VARIANTS, VAL_VARIANTS, format_stats, split_of_shard, synthesize_corpus,
)
from flamesync.errors import InputError
from flamesync.phonetics.types import PhoneSegment

TINY = dict(hours=0.004, shard_seconds=4.0, seed=7, languages=("de", "it"), test_languages=("it",),
            engines=("espeak",), gender_share=0.5)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "a"
    manifest = synthesize_corpus(out, workers=2, **TINY)
    return out, manifest


def all_items(path):
    c = Corpus(path)
    return {s: list(c.items(s)) for s in SPLITS}


def assert_same_corpus(path_a, path_b):
    a, b = all_items(path_a), all_items(path_b)
    for split in SPLITS:
        assert len(a[split]) == len(b[split])
        for x, y in zip(a[split], b[split]):
            assert x.meta == y.meta
            assert np.array_equal(x.audio, y.audio), (x.meta["id"], x.meta["voice"])
            assert np.array_equal(x.targets, y.targets)


def test_manifest_and_items(tiny):
    path, manifest = tiny
    c = Corpus(path)
    assert c.manifest["fps"] == 50 and c.manifest["sample_rate"] == 16000
    assert c.manifest["seed"] == 7 and c.manifest["complete"]
    assert c.manifest["stats"]["seconds"] >= 0.004 * 3600
    channels = tuple(c.manifest["channels"])
    assert "jawOpen" in channels and channels[-3:] == ("jaw.rx", "jaw.ry", "jaw.rz")
    items = all_items(path)
    for split in SPLITS:
        assert c.shards(split), split
        assert items[split], split
    for split, its in items.items():
        for it in its:
            assert isinstance(it, CorpusItem)
            assert it.audio.dtype == np.int16 and it.audio.ndim == 1 and it.sample_rate == 16000
            assert it.targets.dtype == np.float32 and it.targets.shape == (round(len(it.audio) / 320), len(channels))
            assert it.channels == channels
            assert np.abs(it.audio).max() > 1000  # real speech, not silence
            assert all(isinstance(p, PhoneSegment) for p in it.phones)
            # phones tile the audio
            assert it.phones[0].start == 0
            assert abs(it.phones[-1].end - it.duration) < 0.01
            for a, b in zip(it.phones, it.phones[1:]):
                assert a.end == pytest.approx(b.start)
            for key in ("engine", "voice", "language", "rate", "split", "text"):
                assert key in it.meta
            assert it.meta["split"] == split
            # the targets are the teacher's: lips sealed in the middle of every long enough p/b/m
            close, jaw = it.targets[:, channels.index("mouthClose")], it.targets[:, channels.index("jawOpen")]
            for p in it.phones:
                if p.phone in ("p", "b", "m"):
                    i = min(int(round(0.5 * (p.start + p.end) * 50)), len(jaw) - 1)
                    assert close[i] >= jaw[i] - 1e-5


def test_splits_hold_out_voices_and_languages(tiny):
    items = all_items(tiny[0])
    variant = lambda v: v.partition("+")[2]
    for it in items["train"]:
        assert it.meta["language"] != "it"
        assert variant(it.meta["voice"]) in TRAIN_VARIANTS
    for it in items["val"]:
        assert it.meta["language"] != "it"
        assert variant(it.meta["voice"]) in VAL_VARIANTS
    for it in items["test_lang"]:
        assert it.meta["language"] == "it"
    assert not set(TRAIN_VARIANTS) & set(VAL_VARIANTS)


def test_voice_changes_present(tiny):
    items = [it for its in all_items(tiny[0]).values() for it in its]
    changed = [it for it in items if it.meta["gender"]]
    assert 0 < len(changed) < len(items)


def test_deterministic_for_a_seed_and_resumable(tiny, tmp_path):
    path, _ = tiny
    other = tmp_path / "b"
    synthesize_corpus(other, workers=1, **TINY)
    assert_same_corpus(path, other)
    # resume: remove one shard, leave a stale temporary file; only that shard is made again
    shards = sorted(other.glob("*/shard-*.npz"))
    victim = shards[1]
    before = {p: p.stat().st_mtime_ns for p in shards if p != victim}
    original = victim.read_bytes()
    victim.unlink()
    (victim.parent / ".shard-00001.junk.part.npz").write_bytes(b"partial")
    synthesize_corpus(other, workers=1, **TINY)
    assert victim.is_file() and victim.read_bytes() == original
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    # more hours adds shards and keeps the existing ones
    m = synthesize_corpus(other, workers=1, **{**TINY, "hours": 0.005})
    assert sum(len(v) for v in m["shards"].values()) > len(shards)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())


def test_parent_c_rand_state_does_not_leak(tiny, tmp_path):
    """espeak's voice variants draw breath noise from libc rand(), inherited by forked workers."""
    import ctypes

    libc = ctypes.CDLL(None)
    libc.srand(12345)
    for _ in range(10):
        libc.rand()
    other = tmp_path / "c"
    synthesize_corpus(other, workers=1, **TINY)
    assert_same_corpus(tiny[0], other)


def test_other_seed_in_same_folder_is_refused(tiny):
    with pytest.raises(InputError, match="other settings"):
        synthesize_corpus(tiny[0], workers=1, **{**TINY, "seed": 8})


def test_stats_text(tiny):
    text = format_stats(tiny[1]["stats"])
    assert "hours per engine" in text and "espeak" in text and "phone coverage" in text


def test_cli_synth_and_stats(tmp_path, capsys):
    from flamesync.cli import main

    out = tmp_path / "c"
    assert main(["--progress", "none", "data", "synth", "--hours", "0.002", "--out", str(out), "--workers", "1",
                 "--languages", "de", "it", "--engines", "espeak", "--shard-seconds", "3"]) == 0
    printed = capsys.readouterr().out
    assert "hours per language" in printed and "phone coverage" in printed
    assert main(["data", "stats", str(out)]) == 0
    assert "hours per voice" in capsys.readouterr().out


def test_errors(tmp_path):
    with pytest.raises(InputError, match="hours"):
        synthesize_corpus(tmp_path / "x", hours=0)
    with pytest.raises(InputError, match="klingon"):
        synthesize_corpus(tmp_path / "x", hours=0.01, languages=("klingon",))
    with pytest.raises(InputError, match="xx"):
        synthesize_corpus(tmp_path / "x", hours=0.01, languages=("de",), test_languages=("xx",))
    with pytest.raises(InputError, match="not a flamesync corpus"):
        Corpus(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError):
        Corpus(tmp_path)
    bad = tmp_path / "train"
    bad.mkdir()
    (bad / "shard-00000.npz").write_bytes(b"not a zip")
    from flamesync.data.corpus import read_shard

    with pytest.raises(InputError, match="not a readable corpus shard"):
        list(read_shard(bad / "shard-00000.npz"))


def test_split_schedule():
    splits = [split_of_shard(i) for i in range(20)]
    assert splits.count("val") == 2 and splits.count("test_lang") == 1
    assert set(splits[:3]) == set(SPLITS)


# ------------------------------------------------------------------------------------ fillers
def test_fillers_off_leaves_text_and_keys_as_before():
    from flamesync.data.synth import SynthConfig
    from flamesync.data.text import text_generator

    plain = text_generator("en", 11)
    off = text_generator("en", 11, fillers=0.0)
    assert [plain.sentence() for _ in range(20)] == [off.sentence() for _ in range(20)]
    # corpora made before the option existed must keep their key (else they would be refused)
    assert SynthConfig(hours=1.0).key() == SynthConfig(hours=1.0, fillers=0.0).key() == "3e5dba5dd5f5cdcb"
    assert SynthConfig(hours=1.0, fillers=0.05).key() != SynthConfig(hours=1.0).key()


def test_fillers_appear_in_english_text():
    from flamesync.data.text import FILLERS, text_generator

    gen = text_generator("en", 3, fillers=0.2)
    sentences = [gen.sentence() for _ in range(200)]
    words = [w.strip(",.?!").lower() for s in sentences for w in s.split()]
    share = sum(w in FILLERS for w in words) / len(words)
    assert 0.12 < share < 0.3
    assert not any(",," in s or ",." in s or ",?" in s or ",!" in s for s in sentences)
    # other languages have no English hesitations
    de = text_generator("de", 3, fillers=0.2)
    assert not any(w.strip(",.?!").lower() in ("um", "uh") for _ in range(50) for w in de.sentence().split())


def test_corpus_with_fillers_speaks_them(tmp_path):
    cfg = dict(TINY, hours=0.002, english_share=1.0, fillers=0.3)
    synthesize_corpus(tmp_path / "f", workers=1, **cfg)
    items = [it for s in SPLITS for it in Corpus(tmp_path / "f").items(s) if it.meta["language"] == "en"]
    assert items
    texts = " ".join(it.meta["text"].lower() for it in items)
    assert " um" in texts or "um " in texts
    # the "um" is spoken, so its /m/ is a labelled closure like any other
    ums = [(it, w) for it in items for w in it.meta["words"] if w[2].lower().strip(",") == "um"]
    assert ums
    for it, (start, end, _) in ums:
        assert any(p.phone == "m" and start - 0.01 <= p.start < end for p in it.phones)
    with pytest.raises(InputError, match="fillers"):
        synthesize_corpus(tmp_path / "g", hours=0.01, fillers=0.9)
