"""Decoding the audio formats libsndfile does not read (AAC/M4A, ALAC, WMA, the audio of videos) with
the ffmpeg that the ``imageio-ffmpeg`` package ships, a block at a time.

Phones and voice recorders write M4A (AAC); libsndfile reads WAV, FLAC, Ogg, Opus and MP3 but not
that. ffmpeg decodes the file's first audio stream to 32-bit float WAV on a pipe, and the samples
are read from the pipe as they come, so an hour-long recording costs one block of memory. The WAV
header on the pipe gives the channels and the rate; its sizes are placeholders (ffmpeg cannot seek
back on a pipe to fill them in), so the data runs to the end of the stream.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np

from ..errors import InputError

# WAVE_FORMAT_IEEE_FLOAT, and WAVE_FORMAT_EXTENSIBLE (what ffmpeg writes for more than two
# channels), whose sub-format then says float.
_FLOAT, _EXTENSIBLE = 3, 0xFFFE


def ffmpeg_exe() -> "str | None":
    """The ffmpeg program: the one ``imageio-ffmpeg`` ships, else one on PATH, else None."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        return shutil.which("ffmpeg")


class FfmpegStream:
    """The first audio stream of ``path``, decoded by ffmpeg into float32 blocks.

    Opening reads the WAV header that ffmpeg writes before the samples: a file ffmpeg cannot
    decode, or one without audio, fails here with a one-line :class:`InputError`.

    Parameters
    ----------
    path : str or Path

    Attributes
    ----------
    rate : int
        The stream's sample rate.
    channels : int
    """

    def __init__(self, path: "str | Path"):
        self.path = Path(path)
        exe = ffmpeg_exe()
        if exe is None:
            raise InputError(f"cannot read {self.path} as audio (not a format libsndfile reads, and no ffmpeg: "
                             f"pip install imageio-ffmpeg, or put ffmpeg on PATH, or convert it to WAV)")
        # -vn: a video's pictures are not decoded at all; -map 0:a:0: its first audio stream.
        cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(self.path), "-map", "0:a:0",
               "-vn", "-sn", "-dn", "-acodec", "pcm_f32le", "-f", "wav", "-"]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        try:
            self.channels, self.rate = self._header()
        except BaseException:
            self.close()
            raise

    def _exact(self, n: int) -> bytes:
        data = self._proc.stdout.read(n)
        if data is None or len(data) < n:
            raise self._failure()
        return data

    def _failure(self) -> InputError:
        self._proc.stdout.close()
        try:
            err = self._proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            err = []
        self._proc.wait()
        text = "\n".join(err)
        if "matches no streams" in text or "does not contain any stream" in text:
            reason = "no audio stream in it"
        elif not err or "Invalid data" in text or "could not find codec" in text.lower():
            reason = "not a known audio format, or corrupt"
        else:
            reason = err[-1]
        return InputError(f"cannot read {self.path} as audio ({reason})")

    def _header(self) -> tuple[int, int]:
        riff = self._exact(12)
        if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            raise self._failure()
        channels = rate = None
        while True:
            kind, size = struct.unpack("<4sI", self._exact(8))
            if kind == b"data":
                break
            body = self._exact(size + (size & 1))
            if kind == b"fmt ":
                fmt, channels, rate = struct.unpack_from("<HHI", body)
                bits = struct.unpack_from("<H", body, 14)[0]
                if fmt == _EXTENSIBLE and len(body) >= 26:
                    fmt = struct.unpack_from("<H", body, 24)[0]
                if fmt != _FLOAT or bits != 32:
                    raise InputError(f"cannot read {self.path} as audio (ffmpeg gave format {fmt}/{bits} bit)")
        if not channels or not rate:
            raise InputError(f"cannot read {self.path} as audio (no format in ffmpeg's output)")
        return int(channels), int(rate)

    def blocks(self, frames: int):
        """Yield float32 blocks of up to ``frames`` frames, shape (n, channels), until the end.

        Raises
        ------
        InputError
            ffmpeg stopped with an error (a file corrupt past its start).
        """
        from .io import whole_frames

        try:
            for raw in whole_frames(self._proc.stdout.read, frame_bytes=4 * self.channels, frames=frames):
                yield np.frombuffer(raw, "<f4").reshape(-1, self.channels)
            if self._proc.wait() != 0:
                raise self._failure()
        finally:
            self.close()

    def close(self) -> None:
        """Stop ffmpeg (if it still runs) and release its pipes."""
        proc = self._proc
        if proc.poll() is None:
            proc.kill()
        for pipe in (proc.stdout, proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass
        proc.wait()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def read_ffmpeg(path: "str | Path") -> tuple[np.ndarray, int]:
    """The whole first audio stream of ``path``: (samples, shape (N,) or (N, channels), float32; rate)."""
    stream = FfmpegStream(path)
    parts = list(stream.blocks(1 << 16))
    data = np.concatenate(parts) if parts else np.zeros((0, stream.channels), np.float32)
    return (data[:, 0] if stream.channels == 1 else data), stream.rate
