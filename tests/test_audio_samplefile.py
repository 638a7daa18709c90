"""SampleFile: decoded audio in an anonymous temporary file, sliced like an array (issue 22)."""

import gc
import os
import tempfile
import weakref
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from flamesync.audio import SampleFile, load_audio
from flamesync.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[1] / "assets" / "examples" / "hello.wav"


@pytest.fixture(scope="module")
def stereo44(tmp_path_factory):
    """The example at 44.1 kHz stereo, right channel at half level (resampled and mixed on reading)."""
    import soxr

    x = load_audio(EXAMPLE)
    y = soxr.resample(x, 16000, 44100).astype(np.float32)
    path = tmp_path_factory.mktemp("sf") / "hello44.flac"
    sf.write(str(path), np.stack([y, 0.5 * y], axis=1), 44100)
    return path


def _open_fds() -> set[str]:
    """Targets of this process's open file descriptors (Linux)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return out


@pytest.mark.parametrize("block", [1000, 16000, 10 ** 7])
def test_equals_load_audio_bit_for_bit(stereo44, block):
    for path in (EXAMPLE, stereo44):
        ref = load_audio(path)
        with SampleFile.from_file(path, block_samples=block) as x:
            assert len(x) == len(ref) and x.shape == ref.shape and x.size == ref.size
            assert x.ndim == 1 and x.dtype == np.float32 and x.sample_rate == 16000
            got = np.asarray(x)
            assert type(got) is np.ndarray and got.dtype == np.float32
            np.testing.assert_array_equal(got, ref)
            assert x.peak == float(np.abs(ref).max())
            np.testing.assert_array_equal(np.concatenate(list(x.blocks(7777))), ref)
            assert [len(b) for b in x.blocks(7777)][:-1] == [7777] * (len(ref) // 7777 - (len(ref) % 7777 == 0))


def test_slices_are_numpy_slices():
    ref = load_audio(EXAMPLE)
    n = len(ref)
    with SampleFile.from_file(EXAMPLE) as x:
        for key in [slice(0, 10), slice(100, 5000), slice(-300, None), slice(None, -7), slice(n - 5, n + 100),
                    slice(n + 10, n + 20), slice(500, 400), slice(None), slice(-n - 50, 3), slice(3, 3, 1)]:
            got = x[key]
            assert type(got) is np.ndarray and got.dtype == np.float32
            np.testing.assert_array_equal(got, ref[key])
        a = x[10:20]
        a[:] = 0  # a fresh array: writing to it leaves the samples alone
        np.testing.assert_array_equal(x[10:20], ref[10:20])
        assert x[0] == ref[0] and x[-1] == ref[-1] and x[np.int64(123)] == ref[123]
        with pytest.raises(IndexError):
            x[n]
        with pytest.raises(IndexError):
            x[-n - 1]
        with pytest.raises(InputError, match="step 1"):
            x[::2]
        with pytest.raises(InputError, match="slices and integer"):
            x[np.arange(3)]
        with pytest.raises(InputError, match="slices and integer"):
            x[1.5]
        np.testing.assert_array_equal(np.asarray(x, np.float64), ref.astype(np.float64))
        assert np.asarray(x, np.float64).dtype == np.float64
        with pytest.raises(ValueError):
            np.array(x, copy=False)


def test_appended_samples_and_empty_store():
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal(n).astype(np.float32) for n in (0, 5, 1000, 1)]
    with SampleFile(sample_rate=8000, name="test") as x:
        assert len(x) == 0 and x[0:10].shape == (0,) and np.asarray(x).shape == (0,)
        for p in parts:
            x.append(p)
        ref = np.concatenate(parts)
        np.testing.assert_array_equal(np.asarray(x), ref)
        x.append(np.array([2, -3], np.int16))  # converted to float32
        assert len(x) == len(ref) + 2 and x[-1] == -3.0 and x.peak == max(3.0, float(np.abs(ref).max()))
        assert "1008 samples at 8000 Hz" in repr(x)


def test_silent_and_bad_files(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(16000, np.float32), 16000)
    with pytest.raises(InputError, match="silent"):
        SampleFile.from_file(silent)
    with SampleFile.from_file(silent, allow_silent=True) as x:
        assert len(x) == 16000 and x.peak == 0.0
    bad = tmp_path / "nan.wav"
    y = np.zeros(40000, np.float32)
    y[35000] = np.nan
    sf.write(str(bad), y, 16000, subtype="FLOAT")
    with pytest.raises(InputError, match="NaN"):
        SampleFile.from_file(bad, block_samples=8000)
    with pytest.raises(InputError, match="not found"):
        SampleFile.from_file(tmp_path / "missing.wav")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
def test_temporary_file_has_no_name_and_goes_with_close_or_gc(tmp_path, monkeypatch):
    # The samples never have a name in the temporary folder (nothing to leave behind on a kill), and
    # the file, with its disk space, goes when the store is closed or no longer referenced.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = _open_fds()
    x = SampleFile.from_file(EXAMPLE)
    opened = _open_fds() - before
    assert len(opened) == 1 and str(tmp_path) in next(iter(opened))
    assert os.listdir(tmp_path) == []
    assert os.fstat(x._fh.fileno()).st_size == 4 * len(x)
    x.close()
    assert x.closed and _open_fds() - before == set()
    with pytest.raises(ValueError):
        x[0:10]
    x.close()  # twice is fine

    y = SampleFile.from_file(EXAMPLE)
    handle = weakref.ref(y._fh)
    assert _open_fds() - before
    del y
    gc.collect()
    assert handle() is None and _open_fds() - before == set()
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
def test_failed_read_closes_the_temporary_file(tmp_path):
    bad = tmp_path / "nan.wav"
    y = np.full(40000, 0.1, np.float32)
    y[35000] = np.nan
    sf.write(str(bad), y, 16000, subtype="FLOAT")
    before = _open_fds()
    with pytest.raises(InputError):
        SampleFile.from_file(bad, block_samples=8000)
    assert _open_fds() - before == set()
