import math
from dataclasses import replace
import pytest

from flamesync.eval.runner import ClipScore, format_table, summarize, target_report


def score(clip, system, *, closure, n_b, rest, n_s, lag, jitter, closed_vowels, n_v, ov=10.0, corr=0.7):
    return ClipScore(clip=clip, system=system, closure=closure, n_bilabial=n_b, open_vowel_mm=ov, rest=rest,
                     n_silence=n_s, lag_ms=lag, corr=corr, jitter=jitter, closed_vowels=closed_vowels, n_vowel=n_v)


def test_summary_pools_counts_and_report_compares_with_the_baseline():
    scores = [
        score("a", "model", closure=1.0, n_b=10, rest=1.0, n_s=1, lag=-5, jitter=2.0, closed_vowels=0.0, n_v=30),
        score("b", "model", closure=0.8, n_b=30, rest=1.0, n_s=3, lag=20, jitter=2.2, closed_vowels=0.1, n_v=10),
        score("a", "phones", closure=0.5, n_b=10, rest=1.0, n_s=1, lag=10, jitter=1.0, closed_vowels=0.0, n_v=30),
        score("b", "phones", closure=0.5, n_b=30, rest=0.0, n_s=3, lag=10, jitter=1.0, closed_vowels=0.0, n_v=10),
    ]
    summary = summarize(scores)
    model = summary["model"]
    assert math.isclose(model["closure"], (10 + 24) / 40)  # pooled over /p b m/, not averaged per clip
    assert math.isclose(model["closed_vowels"], 1 / 40) and model["n_vowel"] == 40
    assert model["abs_lag_ms"] == 12.5 and model["rest"] == 1.0
    report = {what: ok for what, _, ok in target_report(summary)}
    assert report["lips close on >= 90% of /p b m/"] is False  # 85%
    assert report["|lag| <= 33 ms (median over clips)"] is True
    assert report["better than the phone-recognition baseline: closure"] is True
    assert report["better than the phone-recognition baseline: jitter"] is False
    assert report["better than the phone-recognition baseline: closed_vowels (fewer)"] is False
    table = format_table(scores, summary)
    assert "vowels shut" in table and "2.5% ( 40)" in table


def _espeak_item(lead_seconds=0.0):
    """An espeak sentence as a corpus item (16 kHz, optional leading pause), and a teacher system
    that records what it was handed: the teacher closes exactly where the phones say, so a score
    that drops after a change to the audio means the phones and the audio went out of step."""
    from types import SimpleNamespace

    import numpy as np

    from flamesync.audio.io import resample
    from flamesync.eval.runner import Clip, EVAL_FPS
    from flamesync.phonetics import get_engine
    from flamesync.phonetics.teacher import phones_to_animation
    from flamesync.phonetics.types import PhoneSegment

    utt = get_engine("espeak").synthesize("A papa sat by the map, my mom bought me a puppy.", voice="en-us")
    lead = int(round(lead_seconds * 16000))
    audio = np.r_[np.zeros(lead, np.float32), resample(utt.audio, rate=utt.sample_rate, target=16000)]
    audio = audio.astype(np.float32)
    phones = [replace(p, start=p.start + lead_seconds, end=p.end + lead_seconds) for p in utt.phones]
    if lead:
        phones.insert(0, PhoneSegment(0.0, lead_seconds, "_", "SIL"))
    item = SimpleNamespace(audio_float=lambda: audio, phones=phones, duration=len(audio) / 16000)
    seen = []

    def teacher(wave, phones):
        seen.append((len(wave), phones))
        return phones_to_animation(phones, fps=EVAL_FPS, duration=len(wave) / 16000)

    return [(Clip("x", "x", utt.text, "en", "src"), item)], audio, phones, teacher, seen


def test_corpus_items_spoken_faster_keep_their_phones_in_step():
    from flamesync.eval.runner import evaluate_corpus

    pairs, audio, phones, teacher, seen = _espeak_item()
    as_recorded = evaluate_corpus(pairs, {"teacher": teacher})[0]
    fast = evaluate_corpus(pairs, {"teacher": teacher}, tempo=1.25)[0]
    assert seen[1][0] == round(len(audio) / 1.25)
    assert [p.phone for p in seen[1][1]] == [p.phone for p in phones]
    assert seen[1][1][-1].end == phones[-1].end / 1.25
    assert as_recorded.n_bilabial == fast.n_bilabial >= 8
    assert as_recorded.closure == fast.closure == 1.0
    assert abs(as_recorded.lag_ms) <= 20 and abs(fast.lag_ms) <= 20


def test_corpus_items_with_a_hesitation_count_its_m_as_one_more_closure():
    from flamesync.eval.runner import evaluate_corpus

    # espeak leaves no pause of 0.1 s: one of 0.3 s before the speech to put the "um" in.
    pairs, audio, phones, teacher, seen = _espeak_item(0.3)
    plain = evaluate_corpus(pairs, {"teacher": teacher})[0]
    um = evaluate_corpus(pairs, {"teacher": teacher}, hesitations=True)[0]
    again = evaluate_corpus(pairs, {"teacher": teacher}, hesitations=True)[0]
    assert seen[1][0] > len(audio) and seen[1][0] == seen[2][0]  # longer, the same draw each time
    assert len(seen[1][1]) == len(phones) + 3  # a pause split in two around the vowel and the /m/
    assert seen[1][1][-1].end * 16000 == pytest.approx(seen[1][0], abs=1)
    assert um.n_bilabial == plain.n_bilabial + 1 and um.closure == 1.0 and again.closure == um.closure


def test_corpus_clips_choose_a_half_of_the_speakers_and_sources(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from flamesync.data import corpus as corpus_mod
    from flamesync.data.real import val_role
    from flamesync.errors import InputError
    from flamesync.eval.runner import corpus_clips

    items = [SimpleNamespace(meta={"id": f"{src}{k}", "source": src, "speaker": f"{src}-spk{k}", "text": "a",
                                   "mask": [[0.1, 0.2]] if k == 7 else []})
             for src in ("ocean", "wake") for k in range(12)]

    class FakeCorpus:
        def __init__(self, path):
            self.path, self.manifest = path, {"seed": 0}

        def items(self, split):
            return list(items) if split == "val" else []

    monkeypatch.setattr(corpus_mod, "Corpus", FakeCorpus)
    names = lambda pairs: {clip.name for clip, _ in pairs}  # noqa: E731
    unmasked = {f"{i.meta['source']}/{i.meta['id']}" for i in items if not i.meta["mask"]}
    select, calibrate = (names(corpus_clips(tmp_path, role=r)) for r in ("select", "calibrate"))
    assert select and calibrate and not (select & calibrate) and select | calibrate == unmasked
    assert all(val_role(i.meta) == "select" for i in items if f"{i.meta['source']}/{i.meta['id']}" in select)
    ocean = corpus_clips(tmp_path, role="calibrate", sources=["ocean"])
    assert names(ocean) == {n for n in calibrate if n.startswith("ocean/")} and ocean
    assert all(clip.group == "ocean" for clip, _ in ocean)
    with pytest.raises(InputError, match="no source sea .*it has: ocean, wake"):
        corpus_clips(tmp_path, sources=["sea"])


def test_corpus_clips_check_set_is_the_train_speakers_left_out(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from flamesync.data import corpus as corpus_mod
    from flamesync.data.real import in_check_set
    from flamesync.errors import InputError
    from flamesync.eval.runner import corpus_clips

    train = [SimpleNamespace(meta={"id": f"t{k}", "source": "ocean", "speaker": f"spk{k // 2}", "text": "a", "mask": []})
             for k in range(80)]
    val = [SimpleNamespace(meta={"id": f"v{k}", "source": "ocean", "speaker": f"vspk{k}", "text": "a", "mask": []})
           for k in range(10)]

    class FakeCorpus:
        def __init__(self, path):
            self.path, self.manifest = path, {"seed": 0}

        def items(self, split):
            return list(train if split == "train" else val)

    monkeypatch.setattr(corpus_mod, "Corpus", FakeCorpus)
    pairs = corpus_clips(tmp_path, role="check", check_share=0.3, max_per_source=None)
    got = {item.meta["id"] for _, item in pairs}
    assert got == {i.meta["id"] for i in train if in_check_set(i.meta, share=0.3)}
    assert 0 < len(got) < len(train)  # train items only, some speakers, never the val split's
    speakers = {item.meta["speaker"] for _, item in pairs}
    assert all(i.meta["id"] in got for i in train if i.meta["speaker"] in speakers)  # whole speakers
    with pytest.raises(InputError, match="check share"):
        corpus_clips(tmp_path, role="check", check_share=0.0)
    # A band above it: the speakers of share 0.3 at offset 0.3, none of the first set's.
    band = {item.meta["id"] for _, item in corpus_clips(tmp_path, role="check", check_share=0.3, check_offset=0.3,
                                                         max_per_source=None)}
    assert band == {i.meta["id"] for i in train if in_check_set(i.meta, share=0.3, offset=0.3)}
    assert band and not band & got
    with pytest.raises(InputError, match="check offset"):
        corpus_clips(tmp_path, role="check", check_share=0.3, check_offset=0.8)


def test_model_card_names_the_ingredients_of_an_averaged_network():
    from flamesync.eval.runner import real_corpus_lines

    meta = {"init": "v10", "averaged_from": ["/runs/a/final", "/runs/b/final"], "recalibrated_from": "/runs/a/final"}
    lines = real_corpus_lines(meta)
    assert "- fine-tuned from: `v10`" in lines
    assert any("mean of 2 networks" in ln and "`a/final`, `b/final`" in ln for ln in lines)
    assert not any("mean of" in ln for ln in real_corpus_lines({"init": "v10"}))
