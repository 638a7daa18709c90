"""16 kHz mono samples kept in an anonymous temporary file and read back a slice at a time.

An hour of 16 kHz float32 audio is 230 MB, three hours 690 MB. Code that needs the samples of a
long recording more than once, in pieces, at places it only learns as it goes (forced alignment
cuts the audio where it finds pauses, then scores each piece against a phone loop) can hold a
:class:`SampleFile` instead: the samples are written once, block by block as the file is decoded,
and each slice is read back with ``pread`` into a fresh array. The pages read pass through the
operating system's file cache, which does not count as the process's resident memory; a memory
map would (mapped pages that have been touched are resident).

The temporary file has no name (``tempfile.TemporaryFile``: created unlinked, or with ``O_TMPFILE``),
so nothing is left behind however the process ends; closing it, or dropping the last reference,
frees its disk space.
"""

from __future__ import annotations

import operator
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..errors import InputError
from .io import BLOCK_SECONDS, SAMPLE_RATE, SILENT_PEAK, AudioBlocks

_ITEM = 4  # bytes per float32 sample


class SampleFile:
    """Mono float32 samples in an anonymous temporary file, sliced like an array.

    Enough of an array for code that only takes its length and slices: ``len(x)``, ``x.shape``,
    ``x.ndim``, ``x.dtype``, ``x.size``, ``x[a:b]`` (step 1; a fresh ``np.ndarray``, bounds clipped
    as numpy does), ``x[i]``, and ``np.asarray(x)`` (every sample, in memory: for short audio and
    callers that need an array).

    Parameters
    ----------
    sample_rate : int
        Rate of the samples (:meth:`from_file` gives 16 kHz).
    name : str
        What the samples are (the audio file's path), for messages.

    Attributes
    ----------
    sample_rate : int
    name : str
    peak : float
        Largest absolute sample appended so far.
    """

    dtype = np.dtype(np.float32)
    ndim = 1

    def __init__(self, *, sample_rate: int = SAMPLE_RATE, name: str = "audio"):
        self.sample_rate = int(sample_rate)
        self.name = str(name)
        self.peak = 0.0
        self._n = 0
        # Unbuffered: every append goes straight to the file, so a pread sees it without a flush.
        self._fh = tempfile.TemporaryFile(prefix="flamesync-samples-", buffering=0)
        # Without preadv (not every platform has it) reads seek, which threads must not interleave.
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: "str | Path", *, sample_rate: int = SAMPLE_RATE,
                  block_samples: int = int(BLOCK_SECONDS * SAMPLE_RATE), allow_silent: bool = False) -> "SampleFile":
        """Decode an audio file into a new :class:`SampleFile`, one block at a time.

        The samples are :class:`~flamesync.audio.io.AudioBlocks`' (mono mix, soxr stream), so they
        equal :func:`~flamesync.audio.io.load_audio`'s bit for bit; memory is one block.

        Parameters
        ----------
        path : str or Path
        sample_rate : int
        block_samples : int
            Samples decoded and written at a time (the result does not depend on it).
        allow_silent : bool
            Accept all-silent audio, as :func:`~flamesync.audio.io.load_audio` does.

        Raises
        ------
        InputError
            As :func:`~flamesync.audio.io.load_audio`: unreadable, empty, NaN or silent audio.
        OSError
            The temporary file could not be written (a full disk: its folder is the filename).
        """
        blocks = AudioBlocks(path, sample_rate=sample_rate, block_samples=block_samples)
        out = cls(sample_rate=sample_rate, name=blocks.name)
        try:
            for block in blocks:
                out.append(block)
            if out.peak < SILENT_PEAK and not allow_silent:
                raise InputError(f"{blocks.name} is silent (peak amplitude {out.peak:.1e})")
        except BaseException:
            out.close()
            raise
        return out

    def append(self, samples: np.ndarray) -> None:
        """Add samples at the end, shape (n,) (converted to float32)."""
        block = np.ascontiguousarray(np.asarray(samples, np.float32).reshape(-1))
        if not block.size:
            return
        self.peak = max(self.peak, float(np.max(np.abs(block))))
        view = memoryview(block).cast("B")
        done = 0
        try:
            while done < len(view):
                done += self._fh.write(view[done:])
        except OSError as exc:
            # A full disk reaches the user as "No space left on device (<the temporary folder>)".
            raise OSError(exc.errno, exc.strerror, tempfile.gettempdir()) from None
        self._n += block.size

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start .. stop - 1`` (clipped to the samples there are), a new float32 array."""
        start, stop = max(0, min(int(start), self._n)), max(0, min(int(stop), self._n))
        out = np.empty(max(0, stop - start), np.float32)
        if not out.size:
            return out
        view = memoryview(out).cast("B")
        done, offset = 0, start * _ITEM
        fd = self._fh.fileno()  # ValueError once closed
        while done < len(view):
            if hasattr(os, "preadv"):
                got = os.preadv(fd, [view[done:]], offset + done)
            else:
                with self._lock:
                    self._fh.seek(offset + done)
                    got = self._fh.readinto(view[done:])
            if not got:
                raise OSError(f"the temporary sample file of {self.name} ended early")
            done += got
        return out

    def blocks(self, block_samples: int):
        """Yield consecutive arrays of ``block_samples`` samples (the last one shorter)."""
        step = max(1, int(block_samples))
        for a in range(0, self._n, step):
            yield self.read(a, a + step)

    def __len__(self) -> int:
        return self._n

    @property
    def shape(self) -> tuple[int]:
        return (self._n,)

    @property
    def size(self) -> int:
        return self._n

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def __getitem__(self, key) -> "np.ndarray | np.float32":
        if isinstance(key, slice):
            if key.step not in (None, 1):
                raise InputError(f"a SampleFile is sliced with step 1 only, got step {key.step}")
            start, stop, _ = key.indices(self._n)
            return self.read(start, stop)
        try:
            i = operator.index(key)  # ints and numpy integers; not floats, arrays or tuples
        except TypeError:
            raise InputError(f"a SampleFile takes slices and integer indices, not {type(key).__name__}") from None
        if not -self._n <= i < self._n:
            raise IndexError(f"index {i} is out of bounds for {self._n} samples")
        return self.read(i % self._n, i % self._n + 1)[0]

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("a SampleFile's samples are on disk: reading them makes a copy")
        x = self.read(0, self._n)
        return x if dtype is None else x.astype(dtype, copy=False)

    def close(self) -> None:
        """Close (and so delete) the temporary file; reading afterwards raises ValueError."""
        self._fh.close()

    def __enter__(self) -> "SampleFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self._n} samples at {self.sample_rate} Hz"
        return f"<SampleFile {self.name!r}: {state}>"
