"""Animation files written while the audio is read (issue 22): the same file, byte for byte in every
zip entry, as animating the whole take and exporting it. Small blocks (2 s, 3.3 s) make a clip of
seconds span many blocks; the long recordings themselves live in benchmarks/scaling.py."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import flamesync
from flamesync.animation import Animation, AnimationWriter, ResampleStream
from flamesync.audio.io import load_audio
from flamesync.cli import main
from flamesync.errors import InputError
from flamesync.export import export
from flamesync.pipeline import animate_to_npz

EXAMPLE = Path(__file__).resolve().parents[1] / "assets" / "examples" / "hello.wav"


def _entries(path):
    """Every zip entry of ``path``: name, CRC, sizes and its compressed bytes as stored (not the
    entries' timestamps, which say when the file was written)."""
    import zipfile

    out = []
    with zipfile.ZipFile(path) as z, open(path, "rb") as fh:
        for info in z.infolist():
            fh.seek(info.header_offset + 26)
            name_len, extra_len = (int(v) for v in np.frombuffer(fh.read(4), "<u2"))
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            out.append((info.filename, info.CRC, info.file_size, info.compress_size, fh.read(info.compress_size)))
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The example said four times with pauses (~13 s): 16 kHz mono, and 44.1 kHz stereo (right
    channel quieter), 16-bit."""
    import soxr

    x = load_audio(EXAMPLE)
    wave = np.concatenate([x, np.zeros(8000, np.float32)] * 4)
    folder = tmp_path_factory.mktemp("streamed")
    mono = folder / "mono16.wav"
    sf.write(str(mono), wave, 16000, subtype="PCM_16")
    y = soxr.resample(wave, 16000, 44100).astype(np.float32)
    stereo = folder / "stereo44.wav"
    sf.write(str(stereo), np.stack([y, 0.5 * y], axis=1), 44100, subtype="PCM_16")
    return {"mono16": mono, "stereo44": stereo}


@pytest.fixture(scope="module")
def model():
    from flamesync.net.infer import load_default_model

    return load_default_model()


CASES = {
    "defaults": {},
    "24fps-happy": {"fps": 24.0, "emotion": "happy", "seed": 5},
    "60fps": {"fps": 60.0},
    "50fps": {"fps": 50.0},
    "mouth-only": {"mouth_only": True},
    "layers-off": {"blinks": 0, "gaze": 0, "brows": 0, "head": 0},
}


@pytest.mark.parametrize("which", ["mono16", "stereo44"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_streamed_file_equals_whole_take(tmp_path, clips, model, which, case):
    kw = dict(CASES[case], model=model)
    for block in (2.0, 3.3):
        whole = flamesync.animate(clips[which], block_seconds=block, **kw)
        assert whole.duration > 4 * block  # several blocks, so the joins are exercised
        export(whole, tmp_path / "whole.npz")
        animate_to_npz(clips[which], tmp_path / "streamed.npz", block_seconds=block, **kw)
        assert _entries(tmp_path / "streamed.npz") == _entries(tmp_path / "whole.npz")
    got = Animation.load(tmp_path / "streamed.npz")
    assert got.header() == whole.header()


def test_streamed_default_blocks_over_a_minute(tmp_path, model):
    # The default 60 s blocks across a join, at 44.1 kHz stereo: the CLI's own setting.
    x = load_audio(EXAMPLE)
    reps = int(np.ceil(75 * 16000 / (len(x) + 4000)))
    wave = np.concatenate([x, np.zeros(4000, np.float32)] * reps)
    import soxr

    y = soxr.resample(wave, 16000, 44100).astype(np.float32)
    path = tmp_path / "long.wav"
    sf.write(str(path), np.stack([y, 0.5 * y], axis=1), 44100, subtype="PCM_16")
    export(flamesync.animate(path, model=model), tmp_path / "whole.npz")
    animate_to_npz(path, tmp_path / "streamed.npz", model=model)
    assert _entries(tmp_path / "streamed.npz") == _entries(tmp_path / "whole.npz")


@pytest.mark.parametrize("offset", [0.0, -0.2])
def test_streamed_silence_is_the_rest_pose(tmp_path, model, offset):
    path = tmp_path / "quiet.wav"
    sf.write(str(path), np.full(16000 * 7, 1e-6, np.float32), 16000, subtype="FLOAT")
    whole = flamesync.animate(path, model=model, block_seconds=2.0, timing_offset=offset)
    export(whole, tmp_path / "whole.npz")
    animate_to_npz(path, tmp_path / "streamed.npz", model=model, block_seconds=2.0, timing_offset=offset)
    assert _entries(tmp_path / "streamed.npz") == _entries(tmp_path / "whole.npz")
    got = Animation.load(tmp_path / "streamed.npz")
    assert got.meta["silent"] is True and "expressive" not in got.meta
    assert not got.values.any()


@pytest.mark.parametrize("kw", [{"timing_offset": 0.25}, {"timing_offset": -0.5, "fps": 24.0},
                                {"timing_offset": 3.0, "mouth_only": True}])
def test_streamed_timing_offset(tmp_path, clips, model, kw):
    export(flamesync.animate(clips["mono16"], model=model, block_seconds=2.0, **kw), tmp_path / "whole.npz")
    animate_to_npz(clips["mono16"], tmp_path / "streamed.npz", model=model, block_seconds=2.0, **kw)
    assert _entries(tmp_path / "streamed.npz") == _entries(tmp_path / "whole.npz")
    assert Animation.load(tmp_path / "streamed.npz").meta["timing_offset"] == kw["timing_offset"]


def test_whole_take_cases_fall_back(tmp_path, clips, model):
    # An array, or another backend than the network: the file is export(animate(...)).
    x = load_audio(clips["mono16"])
    export(flamesync.animate(x, sample_rate=16000, model=model), tmp_path / "whole.npz")
    animate_to_npz(x, tmp_path / "streamed.npz", sample_rate=16000, model=model)
    assert _entries(tmp_path / "streamed.npz") == _entries(tmp_path / "whole.npz")
    with pytest.raises(TypeError):
        animate_to_npz(clips["mono16"], tmp_path / "x.npz", no_such_option=1)
    with pytest.raises(InputError, match="animation files"):
        animate_to_npz(clips["mono16"], tmp_path / "x.csv")
    with pytest.raises(InputError, match="block_seconds"):
        animate_to_npz(clips["mono16"], tmp_path / "x.npz", block_seconds=0)


def test_cancelled_stream_leaves_no_file(tmp_path, clips, model):
    def stop(done, total):
        if done > 3 * 16000:
            raise KeyboardInterrupt

    out = tmp_path / "out.npz"
    with pytest.raises(KeyboardInterrupt):
        animate_to_npz(clips["mono16"], out, model=model, progress=stop, block_seconds=2.0)
    assert list(tmp_path.iterdir()) == []


def test_cli_npz_outputs_streamed(tmp_path, clips):
    # Two animation files from one run: both are the whole-take file.
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["--progress", "none", "animate", str(clips["stereo44"]), "-o", str(a), "-o", str(b),
                 "--fps", "25", "--emotion", "sad"]) == 0
    export(flamesync.animate(clips["stereo44"], fps=25.0, emotion="sad"), tmp_path / "ref.npz")
    assert _entries(a) == _entries(tmp_path / "ref.npz") == _entries(b)


# ----------------------------------------------------------------------------- the pieces


def test_writer_same_bytes_as_savez(tmp_path):
    rng = np.random.default_rng(1)
    values = np.cumsum(rng.normal(scale=0.01, size=(5003, 9)), axis=0).astype(np.float32)
    values[:, 3] = 0
    anim = Animation(fps=30.0, channels=tuple(f"c{i}" for i in range(9)), values=values, audio_path="/x.wav",
                     meta={"b": 1, "a": [1, 2]})
    anim.write_npz(tmp_path / "ref.npz")
    writer = AnimationWriter(tmp_path / "w.npz", channels=anim.channels, n_frames=anim.n_frames)
    for a, b in ((0, 1), (1, 1), (1, 700), (700, 4000), (4000, 5003)):
        writer.write(values[a:b])
    writer.close(fps=30.0, audio_path="/x.wav", meta={"a": [1, 2], "b": 1})
    assert _entries(tmp_path / "w.npz") == _entries(tmp_path / "ref.npz")
    got = Animation.load(tmp_path / "w.npz")
    np.testing.assert_array_equal(got.values, values)

    short = AnimationWriter(tmp_path / "s.npz", channels=("a",), n_frames=3)
    short.write(np.zeros((2, 1), np.float32))
    with pytest.raises(InputError, match="2 frames written, 3 announced"):
        short.close(fps=30.0)
    over = AnimationWriter(tmp_path / "o.npz", channels=("a",), n_frames=1)
    with pytest.raises(InputError, match="more than"):
        over.write(np.zeros((2, 1), np.float32))
    over.abort()


@pytest.mark.parametrize("fps", [30.0, 24.0, 12.0, 50.0, 60.0, 100.0])
def test_resample_stream_equals_whole_take(fps):
    rng = np.random.default_rng(7)
    names = ("jawOpen", "mouthClose", "jaw.rx", "jaw.ry", "jaw.rz", "head.rx", "head.ry", "head.rz")
    for n in (1, 2, 7, 1001):
        anim = Animation(fps=50.0, channels=names, values=(0.3 * rng.standard_normal((n, 8))).astype(np.float32))
        ref = anim.resample(fps).values
        for sizes in ((1,), (3, 1, 40), (n,), (250,)):
            stream = ResampleStream(50.0, fps, names)
            parts, a, k = [], 0, 0
            while a < n:
                step = sizes[k % len(sizes)]
                parts.append(stream.push(anim.values[a: a + step]))
                a, k = a + step, k + 1
            parts.append(stream.finish())
            np.testing.assert_array_equal(np.concatenate(parts), ref)


@pytest.mark.parametrize("seconds", [0.0, 0.1, -0.1, 1 / 30, 3.3, -10.0])
def test_shift_stream_equals_whole_take(seconds):
    from flamesync.expressive import ShiftStream, shift_animation

    rng = np.random.default_rng(2)
    for n in (1, 2, 10, 400):
        anim = Animation(fps=30.0, channels=("a", "b"), values=rng.standard_normal((n, 2)).astype(np.float32))
        ref = shift_animation(anim, seconds).values
        for sizes in ((1,), (7, 3), (n,)):
            stream = ShiftStream(30.0, seconds)
            parts, a, k = [], 0, 0
            while a < n:
                parts.append(stream.push(anim.values[a: a + sizes[k % len(sizes)]]))
                a, k = a + sizes[k % len(sizes)], k + 1
            parts.append(stream.finish())
            np.testing.assert_array_equal(np.concatenate(parts), ref)


# ------------------------------------------------------------------ the transcript backend

TEXT = (Path(__file__).resolve().parents[1] / "assets" / "examples" / "hello.txt").read_text().strip()
TEXT_CASES = {
    "defaults": {},
    "24fps-happy-offset": {"fps": 24.0, "emotion": "happy", "seed": 5, "timing_offset": -0.3},
    "mouth-only": {"mouth_only": True},
    "layers-off-offset": {"blinks": 0, "gaze": 0, "brows": 0, "head": 0, "timing_offset": 0.25},
}


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_streamed_text_file_equals_whole_take(tmp_path, clips, model, case, monkeypatch):
    # The teacher's frames and the layers' frames go to the file as they are made (2 s blocks of
    # audio, so the layers run ahead of and behind the teacher's 4096-frame blocks): the file is
    # export(animate(...)) of the whole take.
    import flamesync.pipeline

    kw = dict(TEXT_CASES[case], model=model, text=" ".join([TEXT] * 4), block_seconds=2.0)
    whole = flamesync.animate(clips["stereo44"], **kw)
    assert whole.meta["backend"] == "text"
    export(whole, tmp_path / "whole.npz")

    def no_whole_take(*args, **kwargs):
        raise AssertionError("the transcript path to a file should not animate the whole take")

    monkeypatch.setattr(flamesync.pipeline, "_animate_wave", no_whole_take)
    animate_to_npz(clips["stereo44"], tmp_path / "streamed.npz", **kw)
    assert _entries(tmp_path / "streamed.npz") == _entries(tmp_path / "whole.npz")


def test_streamed_text_rejected_silent_and_refused(tmp_path, clips, model):
    from flamesync.phonetics.textanimate import TranscriptMismatchError
    from flamesync.pipeline import TranscriptMismatchWarning

    # A wrong transcript falls back to the audio alone, with the same warning and the same file.
    kw = dict(model=model, text="go forward ten meters and then stop", block_seconds=2.0)
    with pytest.warns(TranscriptMismatchWarning):
        export(flamesync.animate(clips["mono16"], **kw), tmp_path / "whole.npz")
    with pytest.warns(TranscriptMismatchWarning):
        animate_to_npz(clips["mono16"], tmp_path / "streamed.npz", **kw)
    assert _entries(tmp_path / "streamed.npz") == _entries(tmp_path / "whole.npz")
    assert "transcript_rejected" in Animation.load(tmp_path / "streamed.npz").meta
    # Refused (on_mismatch="error"): no file.
    with pytest.raises(TranscriptMismatchError):
        animate_to_npz(clips["mono16"], tmp_path / "refused.npz", on_mismatch="error", **kw)
    assert not (tmp_path / "refused.npz").exists()
    # Silence with a transcript: the rest pose, as the whole take gives it.
    quiet = tmp_path / "quiet.wav"
    sf.write(str(quiet), np.zeros(16000 * 5, np.float32), 16000, subtype="FLOAT")
    kw = dict(model=model, text="hello there", block_seconds=2.0)
    export(flamesync.animate(quiet, **kw), tmp_path / "whole_quiet.npz")
    animate_to_npz(quiet, tmp_path / "streamed_quiet.npz", **kw)
    assert _entries(tmp_path / "streamed_quiet.npz") == _entries(tmp_path / "whole_quiet.npz")
    assert not Animation.load(tmp_path / "streamed_quiet.npz").values.any()
