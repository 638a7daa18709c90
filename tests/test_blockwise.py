"""Block-wise reading (issue 22): the same samples and the same animation as the whole-file path,
and long audio aligned in segments. Long recordings live in benchmarks/scaling.py; these use small
blocks and segments to exercise the multi-block paths in seconds."""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import flamesync
from flamesync.audio.io import AudioBlocks, load_audio, resample
from flamesync.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[1] / "assets" / "examples" / "hello.wav"


def _whole(path, rate=16000):
    """The whole-file reference: decode everything, mix to mono, resample once."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(data.mean(axis=1), rate=sr, target=rate)


@pytest.fixture(scope="module")
def stereo44(tmp_path_factory):
    """The example clip at 44.1 kHz stereo (right channel quieter), 16-bit."""
    x = load_audio(EXAMPLE)
    import soxr

    y = soxr.resample(x, 16000, 44100).astype(np.float32)
    path = tmp_path_factory.mktemp("b") / "hello44.wav"
    sf.write(str(path), np.stack([y, 0.5 * y], axis=1), 44100, subtype="PCM_16")
    return path


@pytest.mark.parametrize("block", [7777, 16000, 10 ** 7])
def test_blocks_equal_whole_file(stereo44, block):
    for path in (EXAMPLE, stereo44):
        ref = _whole(path)
        blocks = AudioBlocks(path, block_samples=block)
        parts = list(blocks)
        assert all(len(p) == block for p in parts[:-1]) and 0 < len(parts[-1]) <= block
        got = np.concatenate(parts)
        assert blocks.n_samples == len(ref)
        np.testing.assert_array_equal(got, ref)
        assert blocks.peak == pytest.approx(float(np.abs(ref).max()))
        np.testing.assert_array_equal(load_audio(path), ref)


def test_blocks_refuse_bad_input(tmp_path):
    bad = tmp_path / "nan.wav"
    x = np.zeros(40000, np.float32)
    x[35000] = np.nan
    sf.write(str(bad), x, 16000, subtype="FLOAT")
    with pytest.raises(InputError, match="NaN"):
        list(AudioBlocks(bad, block_samples=8000))
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16000)
    with pytest.raises(InputError, match="no samples"):
        AudioBlocks(empty)
    with pytest.raises(InputError, match="not found"):
        AudioBlocks(tmp_path / "missing.wav")


@pytest.mark.parametrize("which", ["example", "stereo44"])
def test_file_animation_equals_array_animation(stereo44, which):
    # A file goes through the block path (one pass, network and layers fed together); an array
    # through the whole-signal path that was the only one before. Same numbers, every layer on.
    path = EXAMPLE if which == "example" else stereo44
    a = flamesync.animate(path, emotion="happy")
    b = flamesync.animate(load_audio(path), sample_rate=16000, emotion="happy")
    assert a.channels == b.channels
    np.testing.assert_array_equal(a.values, b.values)
    assert "expressive" in a.meta


def test_many_blocks_equal_whole(stereo44):
    # Blocks of 2 s: the network's chunks, the feature stream's pushes and the layers' analysis
    # blocks all change at the same places as in the whole-signal path with 2 s chunks.
    from flamesync.expressive import BlockLayers, Layers, add_layers
    from flamesync.net.infer import load_default_model

    net = load_default_model()
    for path in (EXAMPLE, stereo44):
        blocks = AudioBlocks(path, block_samples=2 * 16000)
        layers = BlockLayers(24.0, Layers(emotion="sad"), block_seconds=2.0)
        got = net.predict_blocks(blocks, chunk_seconds=2.0, total=blocks.n_samples, on_block=layers.feed)
        wave = load_audio(path)
        ref = net.predict(wave, chunk_seconds=2.0)
        np.testing.assert_array_equal(got.values, ref.values)
        got = layers.finish(got.resample(24.0))
        ref = add_layers(ref.resample(24.0), wave, Layers(emotion="sad"), block_seconds=2.0)
        np.testing.assert_array_equal(got.values, ref.values)


def test_resample_blocks_same_numbers():
    from flamesync.animation import Animation

    rng = np.random.default_rng(3)
    names = ("jawOpen", "jaw.rx", "jaw.ry", "jaw.rz", "head.rx", "head.ry", "head.rz")
    anim = Animation(fps=50.0, channels=names, values=(0.3 * rng.standard_normal((3001, 7))).astype(np.float32))
    for fps in (30.0, 24.0, 60.0):
        np.testing.assert_array_equal(anim.resample(fps, block_frames=97).values, anim.resample(fps).values)


def test_carried_audio_converted_in_blocks(tmp_path, stereo44):
    from flamesync.export.rig import _convert_to_wav

    x, sr = sf.read(str(stereo44), dtype="float32")
    flac = tmp_path / "a.flac"
    sf.write(str(flac), x, sr)
    out = tmp_path / "a.wav"
    _convert_to_wav(flac, out, block_frames=1000)
    y, sr2 = sf.read(str(out), dtype="int16")
    ref, _ = sf.read(str(stereo44), dtype="int16")
    assert sr2 == sr
    np.testing.assert_array_equal(y, ref)


# ------------------------------------------------------------------------- segmented alignment
pytest.importorskip("pocketsphinx")


@pytest.fixture(scope="module")
def thrice():
    """The example said three times, 1 s of silence between: ~23 s, three segments of <= 9 s."""
    x = load_audio(EXAMPLE)
    gap = np.zeros(16000, np.float32)
    text = EXAMPLE.with_suffix(".txt").read_text().strip()
    return np.concatenate([x, gap, x, gap, x]), " ".join([text] * 3), len(x) + len(gap)


def test_segmented_alignment_finds_each_repetition(thrice):
    from flamesync.phonetics.align import align
    from flamesync.phonetics.confidence import alignment_confidence, transcript_mismatch

    wave, text, period = thrice
    whole = align(wave[: period - 16000], 16000, text=EXAMPLE.with_suffix(".txt").read_text())
    utt = align(wave, 16000, text=text, segment_seconds=9.0)
    assert len(utt.meta["segments"]) >= 3
    n = len(whole.words)
    assert len(utt.words) == 3 * n
    for a, b in zip(utt.words, utt.words[1:]):
        assert a.end <= b.start + 1e-9
    # Each repetition's words sit where the one-clip alignment puts them, shifted by its start.
    for r in range(3):
        got = np.array([[w.start, w.end] for w in utt.words[r * n: (r + 1) * n]]) - r * period / 16000
        ref = np.array([[w.start, w.end] for w in whole.words])
        assert np.median(np.abs(got - ref)) < 0.03
        assert np.abs(got - ref).max() < 0.3
    # The phones cover the audio contiguously.
    assert utt.phones[0].start == 0 and utt.phones[-1].end == pytest.approx(len(wave) / 16000)
    for a, b in zip(utt.phones, utt.phones[1:]):
        assert a.end == pytest.approx(b.start)
    assert transcript_mismatch(alignment_confidence(utt)) is None


def test_segmented_alignment_refuses_wrong_transcript(thrice):
    from flamesync.phonetics.align import align
    from flamesync.phonetics.confidence import TranscriptMismatchError, alignment_confidence, transcript_mismatch

    wave, _, _ = thrice
    wrong = " ".join(["the child almost hurt the small dog at that high level the air is pure"] * 3)
    try:
        utt = align(wave, 16000, text=wrong, segment_seconds=9.0)
    except TranscriptMismatchError:
        return
    assert transcript_mismatch(alignment_confidence(utt)) is not None


def test_short_clip_alignment_unsegmented():
    from flamesync.phonetics.align import SEGMENT_SECONDS, align

    x = load_audio(EXAMPLE)
    assert len(x) / 16000 < SEGMENT_SECONDS
    utt = align(x, 16000, text=EXAMPLE.with_suffix(".txt").read_text())
    assert "segments" not in utt.meta
    with pytest.raises(InputError):
        align(x, 16000, text="hello", segment_seconds=0.5)


# ---------------------------------------------------- the transcript path on a file (SampleFile)
@pytest.fixture(scope="module")
def thrice_wav(thrice, tmp_path_factory):
    path = tmp_path_factory.mktemp("thrice") / "thrice.wav"
    sf.write(str(path), thrice[0], 16000, subtype="FLOAT")
    return path


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def test_frame_energy_blocks_same_numbers(thrice_wav):
    # The energy of each 10 ms frame is its own mean: the block size (now small, for memory) and
    # reading slices of a SampleFile do not change a bit.
    from flamesync.audio import SampleFile
    from flamesync.phonetics.align import frame_energy
    from flamesync.phonetics.confidence import frame_energy_db

    x = load_audio(thrice_wav)
    with SampleFile.from_file(thrice_wav) as store:
        np.testing.assert_array_equal(frame_energy(store), frame_energy(x, block_frames=1 << 16))
        np.testing.assert_array_equal(frame_energy(store, block_frames=37), frame_energy(x, block_frames=1 << 16))
        n = len(x) // 160 + 3  # past the end: zero padded either way
        np.testing.assert_array_equal(frame_energy_db(store, n), frame_energy_db(x, n, block_frames=1 << 16))


def test_segmented_alignment_of_a_sample_file(thrice_wav):
    # align slices a SampleFile (segments, energy blocks) instead of reading it whole, with the
    # numbers of the array; the utterance carries the store, which the confidence check slices.
    from flamesync.audio import SampleFile
    from flamesync.phonetics.align import align
    from flamesync.phonetics.confidence import alignment_confidence

    text = " ".join([EXAMPLE.with_suffix(".txt").read_text().strip()] * 3)
    x = load_audio(thrice_wav)
    ref = align(x, 16000, text=text, segment_seconds=9.0)
    with SampleFile.from_file(thrice_wav) as store:
        utt = align(store, 16000, text=text, segment_seconds=9.0)
        assert utt.audio is store and len(utt.meta["segments"]) >= 3
        assert utt.phones == ref.phones and utt.words == ref.words and utt.meta == ref.meta
        assert alignment_confidence(utt) == alignment_confidence(ref)


@pytest.mark.parametrize("kw", [dict(emotion="happy", block_seconds=4.0), dict(mouth_only=True), dict(fps=24.0)])
def test_text_file_animation_equals_array_animation(thrice_wav, monkeypatch, kw):
    # A file on the transcript path is read into a SampleFile: aligned in segments, checked, and
    # its layers fed block by block (here 4 s blocks against add_layers' 60 s). The same numbers as
    # the array, held whole, and the temporary file is gone afterwards.
    import importlib

    # The module (flamesync.phonetics.align is also the name of its function in the package).
    monkeypatch.setattr(importlib.import_module("flamesync.phonetics.align"), "SEGMENT_SECONDS", 9.0)
    text = " ".join([EXAMPLE.with_suffix(".txt").read_text().strip()] * 3)
    fds = _open_fds()
    a = flamesync.animate(thrice_wav, text=text, **kw)
    assert _open_fds() == fds
    b = flamesync.animate(load_audio(thrice_wav), sample_rate=16000, text=text, **kw)
    assert a.meta["backend"] == "text" and len(a.meta["phones"]) > 60
    assert a.channels == b.channels and a.fps == b.fps
    np.testing.assert_array_equal(a.values, b.values)
    assert a.meta == b.meta
    assert a.audio_path == str(thrice_wav.resolve()) and b.audio_path is None


def test_rejected_transcript_on_a_file_is_the_audio_animation(thrice_wav):
    # The fallback runs the network on the SampleFile's blocks: the numbers of the array path
    # (predict on the whole wave) and of the audio-only file path with the same blocks.
    from flamesync.pipeline import TranscriptMismatchWarning

    wrong = "the child almost hurt the small dog at that high level the air is pure"
    x = load_audio(thrice_wav)
    with pytest.warns(TranscriptMismatchWarning):
        a = flamesync.animate(thrice_wav, text=wrong)
    with pytest.warns(TranscriptMismatchWarning):
        b = flamesync.animate(x, sample_rate=16000, text=wrong)
    assert a.meta["backend"] == "model" and "transcript_rejected" in a.meta
    np.testing.assert_array_equal(a.values, b.values)
    with pytest.warns(TranscriptMismatchWarning):
        c = flamesync.animate(thrice_wav, text=wrong, block_seconds=5.0)
    d = flamesync.animate(thrice_wav, block_seconds=5.0)
    assert c.channels == d.channels
    np.testing.assert_array_equal(c.values, d.values)


def test_silent_file_with_transcript_rests(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(str(path), np.zeros(3 * 16000, np.float32), 16000)
    a = flamesync.animate(path, text="hello there")
    b = flamesync.animate(np.zeros(3 * 16000, np.float32), sample_rate=16000, text="hello there")
    assert a.meta["silent"] and not a.values.any()
    assert a.channels == b.channels
    np.testing.assert_array_equal(a.values, b.values)
