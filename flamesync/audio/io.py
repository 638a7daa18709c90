"""Reading audio files into mono float32 arrays with clear errors for bad input."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ..errors import InputError

SAMPLE_RATE = 16000

# Audio whose loudest sample stays below this (-80 dBFS; 16-bit quantisation noise is -90) holds no
# speech. Quiet speech is far above it: a whisper at a distance still peaks near -50 dBFS.
SILENT_PEAK = 1e-4


def load_audio(
    source: "str | Path | np.ndarray",
    *,
    sample_rate: int = SAMPLE_RATE,
    source_rate: int | None = None,
    allow_silent: bool = False,
) -> np.ndarray:
    """Load audio as mono float32 at ``sample_rate``.

    Parameters
    ----------
    source : str, Path or np.ndarray
        A file soundfile or librosa can read (WAV, FLAC, OGG, MP3, ...), or samples shaped
        ``(N,)`` or ``(N, channels)`` at ``source_rate``.
    sample_rate : int
        Rate of the returned samples.
    source_rate : int or None
        Rate of an array ``source`` (required for arrays).
    allow_silent : bool
        Accept all-silent audio (peak below ``SILENT_PEAK``) instead of raising. :func:`flamesync.animate`
        does: silence animates as a face at rest. Aligning or recognising speech in it does not.

    Returns
    -------
    np.ndarray, shape (N,), float32, in [-1, 1]
    """
    if isinstance(source, np.ndarray):
        if source_rate is None:
            raise InputError("an audio array needs its sample rate (source_rate=...)")
        data, rate = np.asarray(source, dtype=np.float32), int(source_rate)
        name = "audio array"
    else:
        path = Path(source)
        name = str(path)
        if path.is_dir():
            raise InputError(f"{path} is a directory, not an audio file")
        if not path.exists():
            raise InputError(f"audio file not found: {path}")
        if not path.is_file():
            # A FIFO, /dev/stdin or a process substitution: read once, whole, then decode.
            data, rate = _read_stream(path)
        else:
            data, rate = _read(path)
    if data.ndim == 2:
        # soundfile gives (N, channels); arrays from elsewhere may be (channels, N).
        data = data.mean(axis=1) if data.shape[0] >= data.shape[1] else data.mean(axis=0)
    elif data.ndim != 1:
        raise InputError(f"{name}: expected mono or multi-channel samples, got shape {data.shape}")
    if data.size == 0:
        raise InputError(f"{name} contains no samples")
    if not np.isfinite(data).all():
        raise InputError(f"{name} contains NaN or infinite samples")
    if rate <= 0:
        raise InputError(f"{name}: invalid sample rate {rate}")
    if rate != sample_rate:
        data = resample(data, rate=rate, target=sample_rate)
    peak = float(np.max(np.abs(data))) if data.size else 0.0
    if peak < SILENT_PEAK and not allow_silent:
        raise InputError(f"{name} is silent (peak amplitude {peak:.1e})")
    return np.ascontiguousarray(data, dtype=np.float32)


def resample(data: np.ndarray, *, rate: int, target: int) -> np.ndarray:
    """Resample mono ``data`` from ``rate`` to ``target`` Hz with soxr's high-quality filter.

    The result has ``ceil(N * target / rate)`` samples (soxr's output trimmed or zero-padded), the
    same samples ``librosa.resample(res_type="soxr_hq")`` returns. soxr is called directly so that
    the Blender add-on, which bundles soxr but not librosa, reads audio exactly as the CLI does.

    Parameters
    ----------
    data : np.ndarray, shape (N,), float32
    rate, target : int
        Source and target sample rates.

    Returns
    -------
    np.ndarray, shape (ceil(N * target / rate),), float32
    """
    import soxr

    if rate == target:
        return data
    n_out = int(np.ceil(data.shape[0] * (float(target) / rate)))
    out = np.asarray(soxr.resample(data, rate, target, quality="soxr_hq"), dtype=data.dtype)
    if out.shape[0] >= n_out:
        return out[:n_out]
    return np.concatenate([out, np.zeros(n_out - out.shape[0], out.dtype)])


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C libraries (mpg123 inside libsndfile, audioread's decoders) that print notes on
    file descriptor 2 while probing undecodable data: flamesync reports the failure itself."""
    import os
    import sys

    try:
        sys.stderr.flush()
        fd = sys.stderr.fileno()
        saved = os.dup(fd)
    except (AttributeError, OSError, ValueError):  # no real stderr (embedded, captured)
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _read_error(path, exc) -> InputError:
    text = str(exc)
    # libsndfile says "does not exist or is not a regular file (possibly a pipe?)" for data it
    # cannot recognise: the file exists, so say what is really wrong.
    if "not a regular file" in text or "Format not recognised" in text or not text:
        text = "not a known audio format, or corrupt"
    return InputError(f"cannot read {path} as audio ({text})")


def _read_stream(path: Path) -> tuple[np.ndarray, int]:
    import io

    import soundfile as sf

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read audio from {path} ({exc.strerror})") from None
    if not raw:
        raise InputError(f"{path} gave no audio data")
    try:
        with _quiet_stderr():
            data, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=False)
        return data, int(rate)
    except Exception as exc:
        raise _read_error(path, exc) from None


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        with _quiet_stderr():
            data, rate = sf.read(str(path), dtype="float32", always_2d=False)
        return data, int(rate)
    except Exception as sf_exc:  # formats libsndfile lacks (e.g. some MP3/M4A) go through librosa/audioread
        try:
            import warnings

            import librosa

            with warnings.catch_warnings(), _quiet_stderr():
                warnings.simplefilter("ignore")
                data, rate = librosa.load(str(path), sr=None, mono=False)
            data = data.T if data.ndim == 2 else data
            return np.asarray(data, np.float32), int(rate)
        except Exception:
            raise _read_error(path, sf_exc) from None
