"""H.264 encoding with the audio muxed in, through the ffmpeg that imageio-ffmpeg bundles."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..errors import FlamesyncError, InputError, require

INSTALL = "pip install 'flamesync[render]'"


def ffmpeg_exe() -> str:
    iio = require("imageio_ffmpeg", feature="video encoding", install=INSTALL)
    return iio.get_ffmpeg_exe()


class VideoWriter:
    """Stream RGB frames into an MP4 (H.264, yuv420p) with an optional audio track.

    The audio is cut to start at ``audio_offset`` seconds (frame 0's time in the audio) and
    padded or trimmed to exactly the video's duration, so picture and sound stay in sync.

    Parameters
    ----------
    path : Path
        Output file (written as is; callers wrap it in an atomic rename).
    width, height : int
        Frame size, both even.
    fps : float
    n_frames : int
        Frames that will be written (sets the audio length).
    audio : Path or None
    audio_offset : float
    crf : int
        x264 quality, lower is better (18..28 is sensible).
    """

    def __init__(self, path, *, width, height, fps, n_frames, audio=None, audio_offset=0.0, crf=20):
        if width % 2 or height % 2:
            raise ValueError("H.264 frames need even width and height")
        duration = n_frames / fps
        cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", f"{fps:.6f}", "-i", "-"]
        if audio is not None:
            if audio_offset >= 0:
                cmd += ["-ss", f"{audio_offset:.6f}", "-i", str(audio)]
                afilter = "apad"
            else:  # frame 0 comes before the audio starts: delay the sound
                cmd += ["-i", str(audio)]
                afilter = f"adelay={int(round(-audio_offset * 1000))}:all=1,apad"
            cmd += ["-map", "0:v:0", "-map", "1:a:0", "-af", afilter, "-c:a", "aac", "-b:a", "160k"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(int(crf)), "-pix_fmt", "yuv420p",
                "-movflags", "+faststart", "-t", f"{duration:.6f}", "-f", "mp4", str(path)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self.shape = (height, width, 3)

    def write(self, frame) -> None:
        if frame.shape != self.shape:
            raise ValueError(f"frame shape {frame.shape} != {self.shape}")
        try:
            self.proc.stdin.write(frame.tobytes())
        except BrokenPipeError:
            self._fail()

    def close(self) -> None:
        self.proc.stdin.close()
        if self.proc.wait() != 0:
            self._fail()

    def abort(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def _fail(self):
        self.proc.kill()
        err = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
        raise FlamesyncError("ffmpeg failed: " + (err[-1] if err else f"exit code {self.proc.returncode}"))


def probe(path) -> dict:
    """Streams of a media file via ``ffmpeg -i`` (imageio-ffmpeg bundles no ffprobe).

    Returns
    -------
    dict with ``video_frames`` (int, decoded count), ``fps`` (float), ``audio`` (bool) and
    ``audio_duration`` (float seconds, decoded) / ``duration`` (container, seconds)
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    exe = ffmpeg_exe()
    out = subprocess.run([exe, "-hide_banner", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
                         capture_output=True, text=True)
    text = out.stderr
    frames = re.findall(r"frame=\s*(\d+)", text)
    fps = re.search(r"(\d+(?:\.\d+)?) fps", text)
    dur = re.search(r"Duration: (\d+):(\d+):(\d+\.\d+)", text)
    info = {
        "video_frames": int(frames[-1]) if frames else 0,
        "fps": float(fps.group(1)) if fps else 0.0,
        "audio": "Audio:" in text,
        "duration": (int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3))) if dur else 0.0,
    }
    if info["audio"]:
        a = subprocess.run([exe, "-hide_banner", "-i", str(path), "-map", "0:a:0", "-f", "null", "-"],
                           capture_output=True, text=True).stderr
        t = re.findall(r"time=(\d+):(\d+):(\d+\.\d+)", a)
        info["audio_duration"] = (int(t[-1][0]) * 3600 + int(t[-1][1]) * 60 + float(t[-1][2])) if t else 0.0
    return info


__all__ = ["VideoWriter", "probe", "ffmpeg_exe"]
