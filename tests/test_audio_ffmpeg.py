"""Formats libsndfile does not read (M4A/AAC, the sound of a video), decoded by the ffmpeg that
imageio-ffmpeg ships, a block at a time (flamesync.audio.ffmpeg)."""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from flamesync.audio.ffmpeg import FfmpegStream, ffmpeg_exe, read_ffmpeg
from flamesync.audio.io import AudioBlocks, _mono, load_audio, resample
from flamesync.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[1] / "assets" / "examples" / "hello.wav"

pytestmark = pytest.mark.skipif(ffmpeg_exe() is None, reason="no ffmpeg")


def _ffmpeg(*args):
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def m4a(tmp_path_factory):
    """The example as AAC in M4A: mono at 16 kHz, and stereo at 44.1 kHz (right channel quieter)."""
    d = tmp_path_factory.mktemp("m4a")
    mono, stereo = d / "mono.m4a", d / "stereo.m4a"
    _ffmpeg("-i", EXAMPLE, "-c:a", "aac", "-b:a", "128k", mono)
    _ffmpeg("-i", EXAMPLE, "-af", "pan=stereo|c0=c0|c1=0.5*c0", "-ar", 44100, "-c:a", "aac", "-b:a", "192k", stereo)
    return mono, stereo


def test_m4a_reads_as_the_speech_it_holds(m4a):
    ref = load_audio(EXAMPLE)
    for path in m4a:
        x = load_audio(path)
        assert x.dtype == np.float32
        # AAC's encoder delay is trimmed by the container's edit list: the same length to a frame.
        assert abs(len(x) - len(ref)) <= 1024
        n = min(len(x), len(ref))
        r = np.corrcoef(x[:n], ref[:n])[0, 1]
        assert r > 0.95, f"{path.name}: r {r:.3f}"
    # Stereo is the mean of its channels: (1 + 0.5) / 2 of the original level.
    x = load_audio(m4a[1])
    n = min(len(x), len(ref))
    gain = float(np.dot(x[:n], ref[:n]) / np.dot(ref[:n], ref[:n]))
    assert gain == pytest.approx(0.75, abs=0.05)


def test_blocks_equal_one_read_and_count_the_length(m4a):
    for path in m4a:
        whole = load_audio(path)
        assert AudioBlocks(path).count() == len(whole)  # counted without resampling
        blocks = AudioBlocks(path, block_samples=7001)
        assert blocks.n_samples is None  # no header to tell the length
        parts = list(blocks)
        assert all(len(p) == 7001 for p in parts[:-1])
        np.testing.assert_array_equal(np.concatenate(parts), whole)
        assert blocks.n_samples == len(whole)
        # A second pass (the streamed .npz counts first) gives the same samples.
        np.testing.assert_array_equal(np.concatenate(list(blocks)), whole)
        # And the decoded stream read whole, mixed and resampled in one go, is the same too.
        data, rate = read_ffmpeg(path)
        np.testing.assert_array_equal(resample(_mono(data, "x"), rate=rate, target=16000), whole)


def test_undecodable_files_fail_on_open(tmp_path):
    junk = tmp_path / "junk.m4a"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="not a known audio format"):
        AudioBlocks(junk)
    video = tmp_path / "silent-film.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=duration=1:size=32x32:rate=5", video)
    with pytest.raises(InputError, match="no audio stream"):
        load_audio(video)
    stream_errors = []
    for path in (junk, video):
        try:
            FfmpegStream(path)
        except InputError as exc:
            stream_errors.append(str(exc))
    assert len(stream_errors) == 2 and all("\n" not in e for e in stream_errors)


def test_streamed_animation_file_equals_the_whole_take(m4a, tmp_path):
    from flamesync import animate
    from flamesync.export import export
    from flamesync.pipeline import animate_to_npz

    path = m4a[1]
    streamed = animate_to_npz(path, tmp_path / "streamed.npz", block_seconds=2.0)
    whole = export(animate(path, block_seconds=2.0), tmp_path / "whole.npz")
    a, b = np.load(streamed), np.load(whole)
    np.testing.assert_array_equal(a["values"], b["values"])
    assert str(a["header"]) == str(b["header"])
