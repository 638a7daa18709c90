"""Reading audio files into mono float32 arrays with clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

SAMPLE_RATE = 16000


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
        Accept all-silent audio instead of raising.

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
        if not path.is_file():
            raise InputError(f"audio file not found: {path}")
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
    if peak < 1e-4 and not allow_silent:
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


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=False)
        return data, int(rate)
    except Exception as sf_exc:  # formats libsndfile lacks (e.g. some MP3/M4A) go through librosa/audioread
        try:
            import warnings

            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data, rate = librosa.load(str(path), sr=None, mono=False)
            data = data.T if data.ndim == 2 else data
            return np.asarray(data, np.float32), int(rate)
        except Exception:
            raise InputError(f"cannot read {path} as audio ({sf_exc})") from None
