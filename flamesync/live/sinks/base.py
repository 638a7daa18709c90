"""The sink interface and the thread + bounded queue that keeps slow receivers off the audio path."""

from __future__ import annotations

import collections
import socket
import threading
import time

import numpy as np

from ...errors import InputError


def parse_host_port(text: str, *, what: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"HOST:PORT"`` (or ``":PORT"``/``"PORT"`` for ``default_host``) checked and resolved.

    Returns the numeric address and the port; an unknown host or a port outside 1-65535 raises a
    one-line :class:`InputError` before anything starts.
    """
    text = str(text).strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or default_host
    try:
        port_n = int(port)
    except ValueError:
        raise InputError(f"{what}: expected HOST:PORT, got {text!r}") from None
    if not 1 <= port_n <= 65535:
        raise InputError(f"{what}: port must be from 1 to 65535, got {port_n}")
    try:
        info = socket.getaddrinfo(host, port_n, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"{what}: cannot resolve host {host!r} ({exc.strerror if hasattr(exc, 'strerror') else exc})") from None
    return info[0][4][0], port_n


class Sink:
    """One destination of live frames.

    Subclasses set :attr:`name`, open their socket or server in ``__init__`` (so a bad address fails
    before the audio starts) and implement :meth:`send`, which runs in the sink's own thread.
    """

    name = "sink"
    # True for a sink whose send() cannot wait on its receiver and takes microseconds (a datagram
    # on a non-blocking socket): it then runs in the audio thread, since handing each frame to a
    # thread of its own (a wake-up and a GIL hand-off, 50 times a second) costs more than the send.
    inline = False

    def send(self, frame) -> bool:
        """Deliver one :class:`~flamesync.live.frames.LiveFrame`; False if it could not be delivered."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def stats(self) -> dict:
        """Extra counters for the summary (e.g. connected clients)."""
        return {}


class _CountedSink:
    """What :class:`DirectSink` and :class:`QueuedSink` share: the counters, a counted send, a quiet
    close of the sink and the summary."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.offered = 0
        self.sent = 0
        self.dropped = 0  # dropped from the queue: the receiver could not keep up
        self.failed = 0  # handed to the network, refused (e.g. unreachable host)
        self.latency = []  # seconds from the frame's audio capture to its send, per sent frame

    def _send(self, frame) -> None:
        """Send ``frame`` through the sink, counting it as sent (with its latency) or failed."""
        try:
            ok = bool(self.sink.send(frame))
        except Exception:  # a receiver's trouble must never end the stream
            ok = False
        if ok:
            self.sent += 1
            self.latency.append(time.monotonic() - frame.captured)
        else:
            self.failed += 1

    def _close_sink(self) -> None:
        try:
            self.sink.close()
        except Exception:
            pass

    def summary(self) -> dict:
        lat = np.asarray(self.latency) * 1000.0
        out = {"sink": self.sink.name, "frames": self.offered, "sent": self.sent, "dropped": self.dropped,
               "failed": self.failed}
        if len(lat):
            out.update(latency_p50_ms=float(np.percentile(lat, 50)), latency_p95_ms=float(np.percentile(lat, 95)),
                       latency_max_ms=float(lat.max()))
        out.update(self.sink.stats())
        return out


class DirectSink(_CountedSink):
    """Runs an :attr:`~Sink.inline` sink in the caller's thread, with :class:`QueuedSink`'s interface
    and summary (nothing queues, so nothing is dropped).

    Parameters
    ----------
    sink : Sink
    """

    def offer(self, frame, *, block: bool = False) -> None:
        self.offered += 1
        self._send(frame)

    def close(self, *, timeout: float = 2.0) -> None:
        self._close_sink()


def wrap_sink(sink: Sink, *, max_queue: int = 10):
    """The sink behind a thread and a queue (:class:`QueuedSink`), or in the caller's thread when it
    is :attr:`~Sink.inline` (:class:`DirectSink`)."""
    return DirectSink(sink) if getattr(sink, "inline", False) else QueuedSink(sink, max_queue=max_queue)


class QueuedSink(_CountedSink):
    """Runs a :class:`Sink` in a thread fed through a bounded queue.

    :meth:`offer` never blocks a live stream: when ``max_queue`` frames are already waiting, the
    oldest one is dropped (a late face is worse than a skipped frame) and counted. With
    ``block=True`` (a file processed as fast as possible, where no audio can be held up) it waits
    for room instead, so every frame is delivered.

    Parameters
    ----------
    sink : Sink
    max_queue : int
        Frames that may wait; 10 is 200 ms at 50 fps.
    """

    def __init__(self, sink: Sink, *, max_queue: int = 10):
        super().__init__(sink)
        self.max_queue = int(max_queue)
        self._q: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"flamesync-live-{sink.name}", daemon=True)
        self._thread.start()

    def offer(self, frame, *, block: bool = False) -> None:
        with self._cv:
            self.offered += 1
            if block:
                while len(self._q) >= self.max_queue and not self._closing:
                    self._cv.wait(0.1)
            elif len(self._q) >= self.max_queue:
                self._q.popleft()
                self.dropped += 1
            self._q.append(frame)
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._q and not self._closing:
                    self._cv.wait()
                if not self._q:
                    return
                frame = self._q.popleft()
                self._cv.notify_all()
            self._send(frame)

    def close(self, *, timeout: float = 2.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop the thread and the sink."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)
        with self._cv:
            self.dropped += len(self._q)
            self._q.clear()
        self._close_sink()
