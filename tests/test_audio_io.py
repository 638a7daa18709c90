import numpy as np
import pytest
import soundfile as sf

from flamesync.audio import load_audio
from flamesync.errors import InputError


def test_stereo_44k_to_mono_16k(tmp_path):
    t = np.arange(44100) / 44100
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    sf.write(tmp_path / "s.flac", np.stack([tone, tone], 1), 44100)
    y = load_audio(tmp_path / "s.flac")
    assert y.dtype == np.float32 and y.ndim == 1 and abs(len(y) - 16000) <= 1
    assert 0.25 < np.max(np.abs(y)) < 0.35


@pytest.mark.parametrize("case", ["empty", "silent", "nan", "dir", "garbage", "missing"])
def test_bad_audio_gives_input_error(tmp_path, case):
    p = tmp_path / "a.wav"
    if case == "empty":
        sf.write(p, np.zeros(0), 16000)
    elif case == "silent":
        sf.write(p, np.zeros(16000), 16000)
    elif case == "nan":
        with pytest.raises(InputError, match="NaN"):
            load_audio(np.array([0.1, np.nan]), source_rate=16000)
        return
    elif case == "dir":
        p = tmp_path
    elif case == "garbage":
        p.write_bytes(b"RIFF0000WAVEjunk" * 10)
    with pytest.raises(InputError):
        load_audio(p)


@pytest.mark.parametrize("n, rate", [(44100, 44100), (48001, 48000), (12345, 8000), (1000, 44100)])
def test_resample_equals_librosa_soxr_hq(n, rate):
    # flamesync calls soxr itself (the Blender add-on has no librosa): same samples, same length.
    import librosa

    from flamesync.audio.io import resample

    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    want = librosa.resample(x, orig_sr=rate, target_sr=16000, res_type="soxr_hq")
    got = resample(x, rate=rate, target=16000)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_silence_is_accepted_when_asked(tmp_path):
    # flamesync.animate asks: silence animates as a face at rest (test_hardening_cli.py).
    p = tmp_path / "silent.wav"
    sf.write(p, np.zeros(16000), 16000)
    y = load_audio(p, allow_silent=True)
    assert y.shape == (16000,) and not y.any()
