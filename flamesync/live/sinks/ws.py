"""A WebSocket server that broadcasts every frame as one JSON text message to every client.

Message (one per output frame, 50 per second)::

    {"t": 1.24, "frame": 62,
     "weights": {"eyeBlinkLeft": 0.0, ..., "jawOpen": 0.31, ...},   # all 52 ARKit names
     "head": [x, y, z],   # head rotation, axis-angle radians, face frame (x to the face's left, y up, z forward)
     "jaw": [x, y, z]}    # jaw rotation implied by jawOpen (for skeletal rigs; use it or jawOpen, not both)

``t`` is seconds of the audio stream. Each client has its own short queue: a slow client loses its
oldest frames (counted), a client that disconnects is forgotten, and neither affects the others or
the audio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading

from ...errors import InputError, require
from .base import Sink

INSTALL = "pip install 'flamesync[live]'"


def frame_message(frame) -> str:
    """The JSON text of one frame (weights to 6 decimals)."""
    return json.dumps({
        "t": round(float(frame.t), 6),
        "frame": int(frame.index),
        "weights": {k: round(v, 6) for k, v in frame.weight_dict().items()},
        "head": [round(float(x), 6) for x in frame.head],
        "jaw": [round(float(x), 6) for x in frame.jaw],
    }, separators=(",", ":"))


def parse_ws_address(text) -> tuple[str, int]:
    """``PORT`` (local machine only) or ``HOST:PORT`` (``0.0.0.0:PORT``: every interface); port 0
    picks a free one."""
    text = str(text).strip()
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    try:
        port_n = int(port)
    except ValueError:
        raise InputError(f"--ws: expected PORT or HOST:PORT, got {text!r}") from None
    if not 0 <= port_n <= 65535:
        raise InputError(f"--ws: port must be from 0 to 65535, got {port_n}")
    return host or "127.0.0.1", port_n


class _Client:
    def __init__(self, ws, max_queue: int):
        self.ws = ws
        self.queue: asyncio.Queue = asyncio.Queue()
        self.max_queue = max_queue
        self.dropped = 0


class WebSocketSink(Sink):
    """Serve ``ws://HOST:PORT/`` and broadcast every frame to every connected client.

    Parameters
    ----------
    address : str
        ``PORT`` or ``HOST:PORT`` (see :func:`parse_ws_address`).
    max_client_queue : int
        Frames that may wait per client before its oldest are dropped.
    """

    def __init__(self, address, *, max_client_queue: int = 25):
        require("websockets", feature="--ws (WebSocket server)", install=INSTALL)
        host, port = parse_ws_address(address)
        self.max_client_queue = int(max_client_queue)
        self._clients: set[_Client] = set()
        self.clients_total = 0
        self.client_drops = 0
        self._loop = asyncio.new_event_loop()
        ready: concurrent.futures.Future = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._serve, args=(host, port, ready), name="flamesync-ws",
                                        daemon=True)
        self._thread.start()
        try:
            self.port = ready.result(timeout=10)
        except OSError as exc:
            raise InputError(f"--ws: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        self.host = host
        self.name = f"ws {host}:{self.port}"

    # -------------------------------------------------------------- server thread
    def _serve(self, host, port, ready) -> None:
        from websockets.asyncio.server import serve

        asyncio.set_event_loop(self._loop)

        async def start():
            self._server = await serve(self._handler, host, port, max_size=2**16, ping_interval=20)
            return self._server.sockets[0].getsockname()[1]

        try:
            ready.set_result(self._loop.run_until_complete(start()))
        except BaseException as exc:  # bind errors go back to the constructor
            ready.set_exception(exc)
            return
        self._loop.run_forever()
        self._loop.close()

    async def _handler(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        client = _Client(ws, self.max_client_queue)
        self._clients.add(client)
        self.clients_total += 1
        try:
            while True:
                msg = await client.queue.get()
                if msg is None:  # the stream ended: close politely
                    await ws.close()
                    break
                await ws.send(msg)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            self.client_drops += client.dropped

    def _fanout(self, msg) -> None:
        for c in list(self._clients):
            if msg is not None and c.queue.qsize() >= c.max_queue:
                c.queue.get_nowait()
                c.dropped += 1
            c.queue.put_nowait(msg)

    # -------------------------------------------------------------- Sink
    def send(self, frame) -> bool:
        try:
            self._loop.call_soon_threadsafe(self._fanout, frame_message(frame))
        except RuntimeError:  # loop already closed
            return False
        return True

    def stats(self) -> dict:
        return {"clients": self.clients_total, "client_drops": self.client_drops}

    def close(self, *, timeout: float = 3.0) -> None:
        if not self._thread.is_alive():
            return

        async def shutdown():
            self._fanout(None)
            handlers_done = asyncio.get_running_loop().time() + timeout
            while self._clients and asyncio.get_running_loop().time() < handlers_done:
                await asyncio.sleep(0.02)
            self._server.close()
            await self._server.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout + 2)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
