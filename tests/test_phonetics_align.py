import csv

import numpy as np
import pytest

from flamesync.errors import InputError
from flamesync.phonetics import check_utterance, get_engine
from flamesync.phonetics.closure import frame_level_db
from flamesync.phonetics.compare import boundary_pairs
from flamesync.phonetics.g2p import words_of

pytest.importorskip("pocketsphinx")
from flamesync.phonetics.align import align, recognize_phones  # noqa: E402

# Short English clips (a few seconds each) keep the test fast; the long ones are in the benchmark.
CLIPS = [
    "speechbrain__spk1_snt1.wav", "speechbrain__spk1_snt3.wav", "speechbrain__spk1_snt4.wav",
    "pocketsphinx__goforward.wav", "pocketsphinx__cards_005.wav",
]


def _manifest(d):
    with open(d / "MANIFEST.tsv", newline="", encoding="utf-8") as fh:
        return {r["file"]: r for r in csv.DictReader(fh, delimiter="\t")}


@pytest.mark.parametrize("clip", CLIPS)
def test_real_speech_words_in_order_and_cover_speech(realspeech_dir, clip):
    row = _manifest(realspeech_dir)[clip]
    assert row["language"] == "en"
    utt = align(realspeech_dir / clip, text=row["transcript"])
    check_utterance(utt)
    expected = [t.strip(".,;:!?\"") for t, _ in words_of(row["transcript"])]
    assert [w.word for w in utt.words] == expected
    for a, b in zip(utt.words, utt.words[1:]):
        assert a.end <= b.start + 1e-9
    assert all(w.end - w.start >= 0.03 for w in utt.words)
    # speech = frames within 20 dB of the loud part; the words must span it
    hop = 0.01
    level = frame_level_db(utt.audio, sample_rate=utt.sample_rate, hop=hop, win=0.02)
    active = np.nonzero(level > -20)[0]
    onset, offset = active[0] * hop, active[-1] * hop
    assert abs(utt.words[0].start - onset) < 0.15
    assert abs(utt.words[-1].end - offset) < 0.3
    covered = sum(w.end - w.start for w in utt.words)
    assert covered > 0.7 * (offset - onset)
    # phones inside words are speech, and every phone belongs to the unified set
    for w in utt.words:
        inside = [p for p in utt.phones if w.start <= p.start < w.end]
        assert inside and all(p.phone != "_" for p in inside)


def test_aligner_agrees_with_synthesis_timings():
    text = "She sells seashells by the seashore every morning."
    syn = get_engine("espeak").synthesize(text, voice="en-us")
    res = align(syn.audio, syn.sample_rate, text)
    b = boundary_pairs(syn.phones, res.phones)
    assert len(b) > 20
    assert np.median(np.abs(b[:, 0] - b[:, 1])) < 0.025


def test_out_of_vocabulary_words_are_kept():
    text = "Flamesync zorbles the quaxy blick."
    syn = get_engine("espeak").synthesize(text, voice="en-us")
    res = align(syn.audio, syn.sample_rate, text)
    assert [w.word for w in res.words] == ["Flamesync", "zorbles", "the", "quaxy", "blick"]
    assert {"flamesync", "quaxy"} <= set(res.meta["pronunciations"])


def test_recognize_phones_baseline(realspeech_dir):
    utt = recognize_phones(realspeech_dir / "pocketsphinx__goforward.wav")
    check_utterance(utt)
    spoken = [p for p in utt.phones if p.phone != "_"]
    assert len(spoken) >= 8
    # speech found where the speech is (0.46-2.15 s in this clip), silence at the start
    assert spoken[0].start > 0.3 and spoken[-1].end < 2.5


def test_alignment_errors(tmp_path, realspeech_dir):
    clip = realspeech_dir / "speechbrain__spk1_snt1.wav"
    with pytest.raises(InputError, match="English only"):
        align(clip, text="hola", language="es")
    with pytest.raises(InputError, match="empty"):
        align(clip, text="  ")
    with pytest.raises(InputError, match="no speakable"):
        align(clip, text="... -- !!")
    with pytest.raises(InputError, match="silent"):
        align(np.zeros(16000, np.float32), 16000, "hello")
    with pytest.raises(InputError, match="NaN"):
        align(np.full(16000, np.nan, np.float32), 16000, "hello")
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(InputError, match="cannot read"):
        align(bad, text="hello")
    with pytest.raises(InputError, match="not found"):
        align(tmp_path / "missing.wav", text="hello")
    # far more words than the clip can hold: cannot be aligned
    with pytest.raises(InputError, match="could not align"):
        align(clip, text=" ".join(["extraordinarily complicated"] * 30))


def test_alignment_does_not_depend_on_what_was_decoded_before():
    from pathlib import Path

    from flamesync.audio.io import load_audio
    from flamesync.phonetics.align import phone_loop

    ex = Path(__file__).resolve().parents[1] / "assets" / "examples"
    x = load_audio(ex / "hello.wav")
    text = (ex / "hello.txt").read_text()
    first, loop = align(x, 16000, text).meta["word_scores"], phone_loop(x)
    other = np.random.default_rng(0).standard_normal(16000 * 2) * 0.05  # anything else in between
    phone_loop(other)
    align(np.concatenate([x[: len(x) // 2], other]), 16000, "hello my name")
    assert align(x, 16000, text).meta["word_scores"] == first
    assert phone_loop(x) == loop
