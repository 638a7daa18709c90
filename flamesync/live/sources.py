"""Audio sources for live work: a microphone, a file played at real-time pace, raw PCM on stdin.

A source is an iterable of ``(samples, arrived)``: 16 kHz mono float32 chunks, shape (n,), and the
``time.monotonic()`` at which the chunk's last sample was available. ``live`` says whether audio
arrives in real time (then frames are dropped rather than ever holding the audio up).
"""

from __future__ import annotations

import queue
import time
from pathlib import Path

import numpy as np

from ..audio.io import SAMPLE_RATE
from ..errors import InputError, MissingDependencyError

MIC_INSTALL = "pip install 'flamesync[live]' and the PortAudio library (Debian/Ubuntu: apt-get install libportaudio2)"


def check_chunk_ms(ms) -> int:
    """Chunk length in milliseconds to samples at 16 kHz (1-1000 ms)."""
    try:
        ms = float(ms)
    except (TypeError, ValueError):
        raise InputError(f"chunk length must be a number of milliseconds, got {ms!r}") from None
    if not (1.0 <= ms <= 1000.0):
        raise InputError(f"chunk length must be from 1 to 1000 ms, got {ms:g}")
    return max(1, int(round(ms * SAMPLE_RATE / 1000.0)))


class FileSource:
    """An audio file, either as fast as the network goes or paced like a live performer.

    Parameters
    ----------
    path : str or Path
        Any file :func:`flamesync.audio.load_audio` reads (it is resampled to 16 kHz mono).
    chunk : int
        Samples per chunk (16 kHz).
    realtime : bool
        Release each chunk only when its last sample would have been spoken.
    """

    def __init__(self, path, *, chunk: int, realtime: bool):
        from ..audio.io import load_audio

        self.path = Path(path)
        self.wave = load_audio(self.path, allow_silent=True)
        self.chunk = int(chunk)
        self.live = bool(realtime)

    def describe(self) -> str:
        pace = "at real-time pace" if self.live else "as fast as it computes"
        return f"{self.path.name} ({len(self.wave) / SAMPLE_RATE:.1f} s, {pace})"

    def __iter__(self):
        start = time.monotonic()
        for a in range(0, len(self.wave), self.chunk):
            b = min(len(self.wave), a + self.chunk)
            if self.live:
                due = start + b / SAMPLE_RATE
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                yield self.wave[a:b], due
            else:
                yield self.wave[a:b], time.monotonic()

    def close(self) -> None:
        pass


class _Resampler:
    """Streaming conversion of another rate to 16 kHz (soxr keeps the filter state across chunks)."""

    def __init__(self, rate: int):
        self.rate = int(rate)
        self._rs = None
        if self.rate != SAMPLE_RATE:
            import soxr

            self._rs = soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    def __call__(self, x: np.ndarray, *, last: bool = False) -> np.ndarray:
        if self._rs is None:
            return x
        return np.asarray(self._rs.resample_chunk(np.ascontiguousarray(x, np.float32), last=last), np.float32)


class StdinSource:
    """Raw signed 16-bit little-endian PCM from a binary stream (stdin), as TTS engines and voice
    assistants stream it.

    Parameters
    ----------
    stream : binary file object
    rate : int
        Sample rate of the stream (resampled to 16 kHz when different).
    channels : int
        Interleaved channels (averaged to mono).
    chunk : int
        Samples per chunk at 16 kHz; the stream is read in pieces of the same duration.
    """

    live = True

    def __init__(self, stream, *, rate: int = SAMPLE_RATE, channels: int = 1, chunk: int):
        if not (isinstance(rate, int) and 4000 <= rate <= 192000):
            raise InputError(f"--rate must be a sample rate from 4000 to 192000 Hz, got {rate!r}")
        if not (isinstance(channels, int) and 1 <= channels <= 32):
            raise InputError(f"--channels must be from 1 to 32, got {channels!r}")
        self.stream = stream
        self.rate = rate
        self.channels = channels
        self.frames = max(1, int(round(chunk * rate / SAMPLE_RATE)))
        self._resample = _Resampler(rate)

    def describe(self) -> str:
        return f"stdin (16-bit PCM, {self.rate} Hz, {self.channels} channel{'s' * (self.channels > 1)})"

    def __iter__(self):
        from ..audio.io import whole_frames

        for data in whole_frames(self.stream.read, frame_bytes=2 * self.channels, frames=self.frames):
            arrived = time.monotonic()
            x = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
            x = x.reshape(-1, self.channels).mean(axis=1)
            y = self._resample(x)
            if len(y):
                yield y, arrived
        tail = self._resample(np.zeros(0, np.float32), last=True)
        if len(tail):
            yield tail, time.monotonic()

    def close(self) -> None:
        pass


def _sounddevice():
    try:
        import sounddevice
    except ImportError as exc:
        raise MissingDependencyError(f"microphone input needs the Python module 'sounddevice' ({exc}); install: "
                                     f"{MIC_INSTALL}") from None
    except OSError as exc:  # sounddevice imports, but the PortAudio shared library is missing
        raise MissingDependencyError(f"microphone input needs PortAudio ({exc}); install: {MIC_INSTALL}") from None
    return sounddevice


def input_devices() -> list[dict]:
    """The audio input devices PortAudio sees: ``index``, ``name``, ``channels``, ``rate``, ``default``."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0] if sd.default.device is not None else -1
    except Exception as exc:  # PortAudio errors come as sounddevice.PortAudioError
        raise InputError(f"cannot list audio devices ({' '.join(str(exc).split())})") from None
    out = []
    for i, d in enumerate(devices):
        if d.get("max_input_channels", 0) > 0:
            out.append({"index": i, "name": d["name"], "channels": int(d["max_input_channels"]),
                        "rate": float(d.get("default_samplerate") or 0), "default": i == default_in})
    return out


def resolve_device(spec) -> dict:
    """An input device by index (``"3"``) or by (part of) its name, case-insensitive; ``None`` the default."""
    devices = input_devices()
    if not devices:
        raise InputError("no audio input device found (is a microphone connected, and can this user use it?)")
    if spec is None or str(spec).strip() == "":
        for d in devices:
            if d["default"]:
                return d
        return devices[0]
    text = str(spec).strip()
    if text.isdigit():
        for d in devices:
            if d["index"] == int(text):
                return d
        raise InputError(f"no audio input device with index {text} (see 'flamesync live --list-devices')")
    hits = [d for d in devices if text.lower() in d["name"].lower()]
    if not hits:
        raise InputError(f"no audio input device matches {text!r} (see 'flamesync live --list-devices')")
    exact = [d for d in hits if d["name"].lower() == text.lower()]
    if len(hits) > 1 and not exact:
        names = ", ".join(repr(d["name"]) for d in hits[:4])
        raise InputError(f"{len(hits)} audio input devices match {text!r} ({names}); give more of the name or the index")
    return (exact or hits)[0]


class MicSource:
    """A microphone through PortAudio (``sounddevice``).

    The device runs at 16 kHz when it can, else at its own default rate, resampled here. The audio
    callback only copies samples into a bounded queue: if this process ever falls behind by more
    than ``max_queue`` chunks, the oldest audio is dropped and counted rather than buffered without
    bound.
    """

    live = True

    def __init__(self, device=None, *, chunk: int, max_queue: int = 50):
        sd = _sounddevice()
        self.device = resolve_device(device)
        self.chunk = int(chunk)
        self.overflows = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        rate = SAMPLE_RATE
        try:
            sd.check_input_settings(device=self.device["index"], channels=1, samplerate=SAMPLE_RATE, dtype="float32")
        except Exception:
            rate = int(self.device["rate"]) or 48000
        self.rate = rate
        self._resample = _Resampler(rate)

        def callback(indata, frames, time_info, status):  # PortAudio's thread: copy and go
            item = (indata[:, 0].copy(), time.monotonic())
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self.overflows += 1

        try:
            self._stream = sd.InputStream(device=self.device["index"], channels=1, samplerate=rate, dtype="float32",
                                          blocksize=max(1, int(round(self.chunk * rate / SAMPLE_RATE))),
                                          callback=callback)
        except Exception as exc:
            raise InputError(f"cannot open audio input device {self.device['name']!r} "
                             f"({' '.join(str(exc).split())})") from None

    def describe(self) -> str:
        return f"microphone {self.device['name']!r} ({self.rate} Hz)"

    def __iter__(self):
        self._stream.start()
        while True:
            try:
                x, arrived = self._queue.get(timeout=0.5)  # a timeout keeps Ctrl-C responsive
            except queue.Empty:
                if not self._stream.active:
                    raise InputError(f"audio input device {self.device['name']!r} stopped delivering audio")
                continue
            y = self._resample(x)
            if len(y):
                yield y, arrived

    def close(self) -> None:
        try:
            self._stream.stop()
            self._stream.close()
        except Exception:  # already closed, or the device went away: nothing left to release
            pass
