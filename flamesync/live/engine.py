"""The live loop: source -> streaming network (+ expressive layers) -> sinks."""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field

from ..audio.io import SAMPLE_RATE
from .frames import frames_from_animation
from .sinks.base import wrap_sink


class CaptureClock:
    """When each audio sample was captured, from the arrival times of the chunks that held it.

    A chunk's last sample is taken to have been captured when the chunk arrived, the samples
    before it earlier at the audio rate (what a microphone or a real-time file does). Frame ``j``'s
    latency is measured from the capture of the audio at its own time ``j / 50``.
    """

    def __init__(self):
        self._ends: list[int] = []
        self._arrived: list[float] = []
        self.samples = 0

    def add(self, n: int, arrived: float) -> None:
        self.samples += int(n)
        self._ends.append(self.samples)
        self._arrived.append(float(arrived))
        if len(self._ends) > 4096:  # frames are always emitted within a few chunks of their audio
            del self._ends[:2048], self._arrived[:2048]

    def __call__(self, t: float) -> float:
        s = t * SAMPLE_RATE
        if not self._ends:
            return time.monotonic()
        k = min(bisect.bisect_left(self._ends, s), len(self._ends) - 1)
        return self._arrived[k] - (self._ends[k] - s) / SAMPLE_RATE


@dataclass
class LiveReport:
    """What a live run did: frames made, seconds of audio, per-sink counts, how it ended."""

    frames: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    sinks: list[dict] = field(default_factory=list)
    recorded: str | None = None
    interrupted: bool = False


def run_live(*, source, streamer, sinks=(), recorder=None, on_frames=None, max_queue: int = 10) -> LiveReport:
    """Stream ``source`` through ``streamer`` to every sink until the audio ends or Ctrl-C.

    Parameters
    ----------
    source : iterable of (np.ndarray, float)
        16 kHz mono float32 chunks, shape (n,), and their arrival times (:mod:`.sources`); a
        ``live`` attribute that is true makes full sink queues drop frames instead of waiting.
    streamer : flamesync.net.stream.Streamer
    sinks : sequence of Sink
        Each runs in its own thread behind a queue of ``max_queue`` frames, except the
        :attr:`~.sinks.base.Sink.inline` ones (UDP datagrams), sent from this thread.
    recorder : Recorder or None
        Gets every animation chunk; saved when the stream ends, however it ends.
    on_frames : callable or None
        ``on_frames(report)`` after every chunk (progress display).

    Returns
    -------
    LiveReport
        ``interrupted`` is True when Ctrl-C (or SIGTERM) ended it; the exception is not re-raised
        for Ctrl-C, since that is how a microphone stream is meant to stop.
    """
    live = bool(getattr(source, "live", False))
    queued = [wrap_sink(s, max_queue=max_queue) for s in sinks]
    clock = CaptureClock()
    report = LiveReport()
    t0, c0 = time.monotonic(), time.process_time()

    def dispatch(anim) -> None:
        if anim.n_frames == 0:
            return
        if recorder is not None:
            recorder.add(anim)
        first = report.frames
        for f in frames_from_animation(anim, first=first, captured=clock):
            for q in queued:
                q.offer(f, block=not live)
        report.frames += anim.n_frames

    clean = False
    try:
        try:
            for chunk, arrived in source:
                clock.add(len(chunk), arrived)
                report.audio_seconds = clock.samples / SAMPLE_RATE
                dispatch(streamer.push(chunk))
                if on_frames is not None:
                    on_frames(report)
            clean = True
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            try:
                # The look-ahead frames of the audio that did arrive: a take stopped with Ctrl-C
                # still covers all of its audio. After an interrupted push the stream state may be
                # half-updated; then those few frames are left out.
                dispatch(streamer.finish())
            except Exception:
                if clean:
                    raise
    finally:
        report.wall_seconds = time.monotonic() - t0
        report.cpu_seconds = time.process_time() - c0
        for q in queued:
            q.close()
        report.sinks = [q.summary() for q in queued]
        source_close = getattr(source, "close", None)
        if source_close is not None:
            source_close()
        if recorder is not None:
            path = recorder.save(meta={"live": {"audio_seconds": round(report.audio_seconds, 3),
                                                "interrupted": report.interrupted}})
            report.recorded = None if path is None else str(path)
    return report
