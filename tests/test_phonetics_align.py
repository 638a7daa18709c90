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


# --------------------------------------------- align() the same as before its result was packed


def _assembled_as_before(x, pieces, tokens, sources, text):
    """align()'s Utterance put together as it was before the pieces were packed into arrays: each
    piece's phones appended to two lists of objects, the word spans kept in a dict, and (more than
    one piece) any two pauses side by side merged over the whole lists at the end.

    Returns the utterance, how many pauses were merged and how many phones' starts the closures moved.
    """
    from flamesync.phonetics.align import _HOP, _frame_time
    from flamesync.phonetics.closure import refine_closures, remap_words
    from flamesync.phonetics.phoneset import map_phone
    from flamesync.phonetics.types import SILENCE, PhoneSegment, Utterance, WordSegment, fill_gaps

    def shifted(p, dt):
        return p if dt == 0 else PhoneSegment(p.start + dt, p.end + dt, p.phone, p.label)

    phones, refined, spans, scored = [], [], {}, []
    for piece in pieces:
        x0, f0 = piece.start / 16000, piece.start // _HOP
        local = []
        for wi, arpa, a, b, ll in piece.rows():
            start, end = _frame_time(a), _frame_time(b + 1)
            if wi < 0:
                local.append(PhoneSegment(start, end, SILENCE, "SIL"))
                scored.append([-1, f0 + a, f0 + b, ll])
                continue
            if scored and scored[-1][0] == wi:
                scored[-1][2], scored[-1][3] = f0 + b, scored[-1][3] + ll
            else:
                scored.append([wi, f0 + a, f0 + b, ll])
            local.append(PhoneSegment(start, end, map_phone("cmu_arpabet", arpa), arpa.upper()))
            spans.setdefault(wi, [x0 + start, None])[1] = x0 + end
        seg = x[piece.start: piece.stop]
        local = fill_gaps(local, len(seg) / 16000)
        better = refine_closures(seg, sample_rate=16000, phones=local)
        phones += [shifted(p, x0) for p in local]
        refined += [shifted(q, x0) for q in better]
    merged = 0
    if len(pieces) > 1:
        a_out, b_out = [], []
        for p, q in zip(phones, refined):
            if a_out and p.phone == q.phone == a_out[-1].phone == b_out[-1].phone == SILENCE:
                a_out[-1] = PhoneSegment(a_out[-1].start, p.end, SILENCE, a_out[-1].label)
                b_out[-1] = PhoneSegment(b_out[-1].start, q.end, SILENCE, b_out[-1].label)
                merged += 1
                continue
            a_out.append(p)
            b_out.append(q)
        phones, refined = a_out, b_out
    duration = len(x) / 16000
    words, k = [], 0
    for token, ws in tokens:
        first, last = spans[k], spans[k + len(ws) - 1]
        k += len(ws)
        words.append(WordSegment(first[0], min(last[1], duration), token.strip(".,;:!?\"()[]“”«»") or token))
    words = remap_words(words, phones, refined)
    meta = {"pronunciations": {w: {"phones": p[0], "source": s} for w, (p, s) in sources.items() if s != "model"},
            "word_scores": scored, "dict_words": [w for _, ws in tokens for w in ws],
            "tokens": [len(ws) for _, ws in tokens]}
    if len(pieces) > 1:
        meta["segments"] = [[p.start, p.stop] for p in pieces]
    moved = sum(p.start != q.start for p, q in zip(phones, refined))
    return Utterance(audio=x, sample_rate=16000, phones=refined, words=words, text=text, language="en-us",
                     voice="", engine="pocketsphinx", meta=meta), merged, moved


def _assert_same_utterance(got, want):
    # repr as well as ==: an int where a float was (0 for 0.0) would change the files written.
    for field in ("phones", "words", "meta", "text", "language", "voice", "engine", "sample_rate"):
        assert getattr(got, field) == getattr(want, field), field
        assert repr(getattr(got, field)) == repr(getattr(want, field)), field
    assert got.audio is want.audio


def test_packed_pieces_give_the_utterance_assembled_as_before():
    # Made-up pieces with every joining case: pauses meeting at a cut, a piece that is all pause,
    # a word whose phones run on into the next piece, a stop after a pause and after a vowel.
    from flamesync.phonetics.align import PackedAlignment, _pack, _Piece

    rng = np.random.default_rng(5)
    x = (0.1 * rng.standard_normal(16000 * 7)).astype(np.float32)
    x[16000: 16000 + 2400] *= 1e-3  # quiet before the "P" at 1.25 s: a closure to give back to it
    x[3 * 16000 + 4000: 3 * 16000 + 4800] *= 1e-3  # and before the "B"
    pieces = [
        _Piece.of(0, 32000, [(-1, None, 0, 9, -50.0), (0, "HH", 10, 19, -300.5), (0, "AY", 20, 39, -400.25),
                             (1, "P", 40, 49, -120.0), (1, "AA", 50, 69, -210.0), (-1, None, 70, 199, -900.0)], 2),
        _Piece.of(32000, 48000, [(-1, None, 0, 99, 0.0)], 0),
        _Piece.of(48000, 96000, [(-1, None, 0, 29, -60.0), (2, "B", 30, 44, -130.0), (2, "IY", 45, 99, -333.0),
                                 (3, "M", 100, 249, -800.0), (3, "AH", 250, 299, -91.5)], 2),
        _Piece.of(96000, 112000, [(3, "AH", 0, 39, -77.0), (-1, None, 40, 99, -10.0)], 1),
    ]
    tokens = [("Hi,", ["hi"]), ("papa", ["papa"]), ("be-ma!", ["be", "ma"])]
    sources = {"hi": ([["HH", "AY"]], "model"), "papa": ([["P", "AA"]], "cmudict"),
               "be": ([["B", "IY"]], "model"), "ma": ([["M", "AH"]], "lexicon")}
    want, merged, moved = _assembled_as_before(x, pieces, tokens, sources, "Hi, papa be-ma!")
    assert merged >= 2
    assert want.meta["word_scores"][-2][:3] == [3, 400, 639]  # word 3 across the cut, one row
    assert moved >= 1  # a closure was given back, so the words are remapped
    packed = PackedAlignment(audio=x, text="Hi, papa be-ma!", tokens=tokens, dict_words=["hi", "papa", "be", "ma"],
                             sources=sources, segments=[[p.start, p.stop] for p in pieces],
                             **_pack(x, pieces, 4))
    _assert_same_utterance(packed.utterance(), want)
    assert packed.n_spoken == sum(p.phone != "_" for p in want.phones)


@pytest.fixture(scope="module")
def example_thrice():
    """The example said three times, 1 s of silence between (about 23 s), and its transcript."""
    from pathlib import Path

    from flamesync.audio.io import load_audio

    ex = Path(__file__).resolve().parents[1] / "assets" / "examples"
    x = load_audio(ex / "hello.wav")
    gap = np.zeros(16000, np.float32)
    text = (ex / "hello.txt").read_text().strip()
    return x, text, np.concatenate([x, gap, x, gap, x]), " ".join([text] * 3)


@pytest.mark.parametrize("segmented", [False, True])
def test_align_gives_the_utterance_assembled_as_before(monkeypatch, example_thrice, segmented):
    import importlib

    from flamesync.phonetics.g2p import words_of

    mod = importlib.import_module("flamesync.phonetics.align")
    seen = {}
    real_pack, real_prons = mod._pack, mod.pronunciations

    def pack(x, pieces, n_words):
        seen["pieces"] = pieces
        return real_pack(x, pieces, n_words)

    def prons(*args, **kw):
        seen["sources"] = real_prons(*args, **kw)  # the same dict align() then completes
        return seen["sources"]

    monkeypatch.setattr(mod, "_pack", pack)
    monkeypatch.setattr(mod, "pronunciations", prons)
    one, text1, three, text3 = example_thrice
    x, text = (three, text3) if segmented else (one, text1)
    utt = align(x, 16000, text, segment_seconds=9.0 if segmented else None,
                lexicon={"hello": ["HH", "AH0", "L", "OW1"]})
    assert (len(seen["pieces"]) >= 3) == segmented
    want, merged, _ = _assembled_as_before(utt.audio, seen["pieces"], words_of(text), seen["sources"], text)
    assert merged > 0 or not segmented
    _assert_same_utterance(utt, want)
