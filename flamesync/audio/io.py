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
        # Files are read block by block (:class:`AudioBlocks`) into one preallocated array: the
        # peak is the 16 kHz result plus one block, not the file at its own rate and channels.
        blocks = AudioBlocks(source, sample_rate=sample_rate)
        if blocks.n_samples is not None:
            out = np.empty(blocks.n_samples, np.float32)
            k = 0
            for block in blocks:
                out[k: k + len(block)] = block
                k += len(block)
        else:
            out = np.concatenate(list(blocks))
        if blocks.peak < SILENT_PEAK and not allow_silent:
            raise InputError(f"{blocks.name} is silent (peak amplitude {blocks.peak:.1e})")
        return out
    data = _mono(data, name)
    _check_samples(data, name)
    if rate <= 0:
        raise InputError(f"{name}: invalid sample rate {rate}")
    if rate != sample_rate:
        data = resample(data, rate=rate, target=sample_rate)
    peak = peak_amplitude(data)
    if peak < SILENT_PEAK and not allow_silent:
        raise InputError(f"{name} is silent (peak amplitude {peak:.1e})")
    return np.ascontiguousarray(data, dtype=np.float32)


def _mono(data: np.ndarray, name: str) -> np.ndarray:
    if data.ndim == 2:
        # soundfile gives (N, channels); arrays from elsewhere may be (channels, N).
        return data.mean(axis=1) if data.shape[0] >= data.shape[1] else data.mean(axis=0)
    if data.ndim != 1:
        raise InputError(f"{name}: expected mono or multi-channel samples, got shape {data.shape}")
    return data


# Samples checked at a time: whole-array temporaries of an hour of audio (the absolute values, the
# finite mask) would double the memory the audio itself takes.
_CHECK_BLOCK = 1 << 20


def peak_amplitude(x: np.ndarray) -> float:
    """Largest absolute sample of ``x`` (0 when empty), in blocks (no copy of ``x``)."""
    x = np.asarray(x).reshape(-1)
    peak = 0.0
    for a in range(0, len(x), _CHECK_BLOCK):
        peak = max(peak, float(np.max(np.abs(x[a: a + _CHECK_BLOCK]))))
    return peak


def _check_samples(data: np.ndarray, name: str) -> None:
    if data.size == 0:
        raise InputError(f"{name} contains no samples")
    flat = data.reshape(-1)
    for a in range(0, len(flat), _CHECK_BLOCK):
        if not np.isfinite(flat[a: a + _CHECK_BLOCK]).all():
            raise InputError(f"{name} contains NaN or infinite samples")


BLOCK_SECONDS = 60.0


class AudioBlocks:
    """An audio file read block by block as mono float32 at ``sample_rate``.

    Iterating yields consecutive blocks of exactly ``block_samples`` output samples (the last one
    shorter) whose concatenation is what a whole-file read gives, sample for sample: each block of
    the file is mixed to mono as a whole file would be (the mean of its channels) and resampled by
    one soxr stream that keeps its filter state between blocks (the same samples as soxr's
    one-shot call), then trimmed or zero-padded at the end to ``ceil(N * sample_rate / rate)``
    samples like :func:`resample`. Memory is one block at the file's rate plus one output block,
    whatever the length of the file.

    Files libsndfile cannot read (M4A/AAC, the sound of a video) are decoded by ffmpeg as they are
    read (:mod:`flamesync.audio.ffmpeg`). A stream that is not a regular file (a FIFO,
    ``/dev/stdin``, a process substitution) can be read only once, and its length is known only at
    its end: its bytes are copied as they arrive into an anonymous temporary file (nothing is left
    behind however the process ends), which is then read like a file, so memory stays flat there
    too; such streams must be in a format libsndfile reads (WAV, FLAC, OGG...).

    Parameters
    ----------
    path : str or Path
    sample_rate : int
        Rate of the blocks.
    block_samples : int
        Output samples per block (default 60 s at 16 kHz, the chunk of network inference).

    Attributes
    ----------
    n_samples : int or None
        Total output samples when the file's header tells (libsndfile formats), else None until
        one pass over the file has counted them.
    peak : float
        Largest absolute sample of the blocks yielded so far (after a full pass, of the file).
    name : str
        The path, for messages.

    Raises
    ------
    InputError
        Missing file, a directory, unreadable data, no samples, NaN or infinite samples (found
        in the block that holds them), an invalid sample rate.
    """

    def __init__(self, path: "str | Path", *, sample_rate: int = SAMPLE_RATE,
                 block_samples: int = int(BLOCK_SECONDS * SAMPLE_RATE)):
        path = Path(path)
        self.path = path
        self.name = str(path)
        self.sample_rate = int(sample_rate)
        self.block_samples = max(1, int(block_samples))
        self.peak = 0.0
        if path.is_dir():
            raise InputError(f"{path} is a directory, not an audio file")
        if not path.exists():
            raise InputError(f"audio file not found: {path}")
        self._info = None
        self._spool = None
        if not path.is_file():
            # A FIFO, /dev/stdin or a process substitution: copied once to a temporary file.
            self._spool = _spool_stream(path)
            self._info = _open_info(self._spool)
            if self._info is None:
                self._spool.close()
                raise InputError(f"cannot read {path} as audio (not a known audio format, or corrupt; "
                                 "a stream must be WAV, FLAC or OGG)")
        else:
            self._info = _open_info(path)
            if self._info is None:
                # Not a libsndfile format (M4A/AAC, a video's sound...): ffmpeg decodes it as it is
                # read. Opening it once here turns an undecodable file into an error before any work.
                from .ffmpeg import FfmpegStream

                probe = FfmpegStream(path)
                self._ffmpeg_rate = probe.rate
                probe.close()
        if self._info is None:
            if self._ffmpeg_rate <= 0:
                raise InputError(f"{self.name}: invalid sample rate {self._ffmpeg_rate}")
            self.n_samples = None  # known after the first full pass
        else:
            frames, rate, _ = self._info
            if frames <= 0:
                raise InputError(f"{self.name} contains no samples")
            if rate <= 0:
                raise InputError(f"{self.name}: invalid sample rate {rate}")
            self.n_samples = self._output_samples(frames, rate)

    def __iter__(self):
        self.peak = 0.0
        if self._info is None:
            source = self._ffmpeg_blocks()
        else:
            source = self._file_blocks()
        # Re-cut into blocks of exactly block_samples, so every consumer sees the same pushes
        # whatever sizes the decoder and the resampler hand out.
        pending: list[np.ndarray] = []
        have = 0
        for piece in source:
            if not len(piece):
                continue
            self.peak = max(self.peak, float(np.max(np.abs(piece))))
            pending.append(piece)
            have += len(piece)
            while have >= self.block_samples:
                joined = pending[0] if len(pending) == 1 else np.concatenate(pending)
                yield joined[: self.block_samples]
                rest = joined[self.block_samples:]
                pending = [rest] if len(rest) else []
                have = len(rest)
        if have:
            yield pending[0] if len(pending) == 1 else np.concatenate(pending)

    def count(self) -> int:
        """:attr:`n_samples`, decoding the file once to count its frames when its header does not
        say (ffmpeg formats); nothing is resampled or kept."""
        if self.n_samples is None:
            from .ffmpeg import FfmpegStream

            stream = FfmpegStream(self.path)
            frames = sum(len(b) for b in stream.blocks(1 << 16))
            if frames == 0:
                raise InputError(f"{self.name} contains no samples")
            self.n_samples = self._output_samples(frames, stream.rate)
        return self.n_samples

    def _output_samples(self, frames: int, rate: int) -> int:
        """Samples at :attr:`sample_rate` of ``frames`` at ``rate`` (as :func:`resample` gives)."""
        return int(np.ceil(frames * (float(self.sample_rate) / rate)))

    def _read_size(self, rate: int) -> int:
        # Short reads (about 1.5 s at 44.1 kHz): the file's own frames, at its rate and channels,
        # never take more than a few hundred KiB, and the resampler's output is re-cut anyway.
        return min(1 << 16, max(1024, int(self.block_samples * rate / self.sample_rate)))

    def _file_blocks(self):
        import soundfile as sf

        frames, rate, _ = self._info
        read = self._read_size(rate)
        try:
            with _quiet_stderr():
                if self._spool is not None:
                    self._spool.seek(0)
                    fh = sf.SoundFile(self._spool)
                else:
                    fh = sf.SoundFile(str(self.path))
        except Exception as exc:
            raise _read_error(self.path, exc) from None

        def reader():
            done = 0
            with fh:
                while True:
                    try:
                        block = fh.read(read, dtype="float32", always_2d=False)
                    except Exception as exc:
                        raise _read_error(self.path, exc) from None
                    done += len(block)
                    if len(block):
                        yield block
                    if len(block) < read or done >= frames:
                        return

        yield from self._resampled(reader(), rate)

    def _ffmpeg_blocks(self):
        from .ffmpeg import FfmpegStream

        stream = FfmpegStream(self.path)
        yield from self._resampled(stream.blocks(self._read_size(stream.rate)), stream.rate)

    def _resampled(self, reader, rate: int):
        """Blocks of the file's frames, (n,) or (n, channels) at ``rate``, mixed to mono and resampled
        by one soxr stream; the result trimmed or zero-padded to ``ceil(N * sample_rate / rate)``."""
        resampler = None
        if rate != self.sample_rate:
            import soxr

            resampler = soxr.ResampleStream(rate, self.sample_rate, 1, dtype="float32", quality="soxr_hq")
        done_in = done_out = 0
        # One block is held back, so that the resampler's last call (which flushes its filter) is
        # the one with the file's last samples, whether or not the length was known beforehand.
        held = next(reader, None)
        while held is not None:
            block, held = held, next(reader, None)
            last = held is None
            done_in += len(block)
            if block.ndim == 2:  # (frames, channels), even for a block of one frame
                block = block.mean(axis=1)
            if len(block) and not np.isfinite(block).all():
                raise InputError(f"{self.name} contains NaN or infinite samples")
            out = block if resampler is None else resampler.resample_chunk(block, last=last)
            out = np.asarray(out, np.float32)
            total = self.n_samples
            if total is None and last:
                total = self._output_samples(done_in, rate)
            if total is not None and done_out + len(out) > total:
                out = out[: total - done_out]
            done_out += len(out)
            yield out
        if done_in == 0:
            raise InputError(f"{self.name} contains no samples")
        if self.n_samples is None:
            self.n_samples = self._output_samples(done_in, rate)
        if done_out < self.n_samples:  # a header that promised more frames than came: zeros, as ever
            yield np.zeros(self.n_samples - done_out, np.float32)


def whole_frames(read, *, frame_bytes: int, frames: int):
    """Byte strings of whole frames from a stream, until ``read`` returns nothing.

    Pipes hand out bytes in pieces of their own size; a frame cut by a read is carried over to the
    next one, and bytes of an incomplete last frame are dropped.

    Parameters
    ----------
    read : callable
        ``read(n)`` returns at most ``n`` bytes, empty (or None) at the end.
    frame_bytes : int
        Bytes per frame (sample width times channels).
    frames : int
        Frames asked for per read.
    """
    carry = b""
    while True:
        data = read(frames * frame_bytes)
        if not data:
            return
        data = carry + data
        usable = len(data) - len(data) % frame_bytes
        carry = data[usable:]
        if usable:
            yield data[:usable]


def _open_info(path) -> "tuple[int, int, int] | None":
    """(frames, rate, channels) when libsndfile reads ``path`` (a path, or a seekable binary file
    object, read from its start), else None."""
    import soundfile as sf

    try:
        if not isinstance(path, (str, Path)):
            path.seek(0)
        with _quiet_stderr():
            with sf.SoundFile(path if not isinstance(path, Path) else str(path)) as fh:
                return int(fh.frames), int(fh.samplerate), int(fh.channels)
    except Exception:
        return None


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


def _spool_stream(path: Path):
    """The bytes of a stream (a FIFO, ``/dev/stdin``) in an anonymous temporary file, read 1 MiB at a time."""
    import shutil
    import tempfile

    spool = tempfile.TemporaryFile(prefix="flamesync-stream-")
    try:
        with open(path, "rb") as fh:
            shutil.copyfileobj(fh, spool, 1 << 20)
    except OSError as exc:
        spool.close()
        raise InputError(f"cannot read audio from {path} ({exc.strerror})") from None
    if spool.tell() == 0:
        spool.close()
        raise InputError(f"{path} gave no audio data")
    spool.seek(0)
    return spool


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        with _quiet_stderr():
            data, rate = sf.read(str(path), dtype="float32", always_2d=False)
        return data, int(rate)
    except Exception as sf_exc:  # formats libsndfile lacks (M4A/AAC, ...) go through ffmpeg
        from .ffmpeg import read_ffmpeg

        try:
            return read_ffmpeg(path)
        except InputError:
            raise _read_error(path, sf_exc) from None
