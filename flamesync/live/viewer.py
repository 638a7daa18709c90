"""A local web page that shows a head with its morph targets, plays a take in sync with its audio, and
follows a live stream.

Everything is served from this package by Python's own HTTP server: ``static/`` holds the page and
a small WebGL2 renderer of our own (no CDN, no third-party code, nothing fetched from the internet).
The head's mesh and blendshapes come from the face model (the default head, or a head made by
``flamesync retarget``); the browser blends them on the CPU each frame and draws with WebGL2.

Routes: ``/`` (page), ``/viewer.js``, ``/viewer.css``, ``/config.json`` (mode, WebSocket port),
``/head.json`` + ``/head.bin`` (mesh), ``/take.json`` (the take's weights per frame), ``/audio``
(the take's audio, with HTTP range requests so the page can seek in it).
"""

from __future__ import annotations

import json
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import numpy as np

from ..animation import Animation
from ..errors import InputError

STATIC = ("index.html", "viewer.js", "viewer.css")

# Per-part colours (linear RGB) of the head in the viewer.
PART_COLORS = {
    "skin": (0.80, 0.62, 0.52),
    "upper_teeth": (0.92, 0.90, 0.84),
    "lower_teeth": (0.92, 0.90, 0.84),
    "tongue": (0.75, 0.36, 0.38),
    "eye_left": (0.93, 0.93, 0.93),
    "eye_right": (0.93, 0.93, 0.93),
}


def head_payload(face) -> tuple[dict, bytes]:
    """The mesh of a blendshape face as the viewer loads it: a JSON description and one binary blob.

    Blob (little-endian, 4-byte aligned): ``template`` float32 (V*3), ``deltas`` float32 (K*V*3),
    ``head_weights`` float32 (V), ``colors`` float32 (V*3), ``faces`` uint32 (F*3); ``layout``
    gives each array's byte offset and element count.
    """
    from ..face import BlendshapeFace

    if not isinstance(face, BlendshapeFace):
        raise InputError(f"the viewer shows blendshape heads (the default head or 'head:' files), not {face.name}")
    V = face.n_vertices
    colors = np.tile(np.array(PART_COLORS["skin"], np.float32), (V, 1))
    for part, rgb in PART_COLORS.items():
        idx = face.parts.get(part)
        if idx is not None and part != "skin":
            colors[np.asarray(idx, int)] = rgb
    # Irises: the front cap of each eyeball, so the gaze channels read on screen.
    for part in ("eye_left", "eye_right"):
        idx = face.parts.get(part)
        if idx is not None and len(idx):
            idx = np.asarray(idx, int)
            z = np.asarray(face.template, np.float32)[idx, 2]
            front = idx[z > z.min() + 0.8 * (z.max() - z.min())]
            colors[front] = (0.20, 0.13, 0.08)
    head_w = (np.zeros(V, np.float32) if face.head_weights is None else np.asarray(face.head_weights, np.float32))
    arrays = [
        ("template", np.asarray(face.template, "<f4")),
        ("deltas", np.asarray(face.deltas, "<f4")),
        ("head_weights", head_w.astype("<f4")),
        ("colors", colors.astype("<f4")),
        ("faces", np.asarray(face.faces, "<u4")),
    ]
    layout, parts, off = {}, [], 0
    for name, a in arrays:
        raw = np.ascontiguousarray(a).tobytes()
        layout[name] = [off, int(a.size)]
        parts.append(raw)
        off += len(raw)
    meta = {"name": face.name, "vertices": V, "faces": int(len(face.faces)), "channels": list(face.channels),
            "head_pivot": None if face.head_pivot is None else [float(x) for x in face.head_pivot],
            "layout": layout}
    return meta, b"".join(parts)


def take_payload(anim: Animation, channels) -> dict:
    """A take as the page plays it: weights for ``channels`` and head rotations per frame."""
    w = anim.weights(channels)
    head = anim.head if anim.head is not None else np.zeros((anim.n_frames, 3), np.float32)
    return {"fps": anim.fps, "n_frames": anim.n_frames, "audio_offset": anim.audio_offset,
            "channels": list(channels), "duration": anim.n_frames / anim.fps,
            "weights": np.round(w.reshape(-1).astype(np.float64), 6).tolist(),
            "head": np.round(head.reshape(-1).astype(np.float64), 6).tolist()}


class ViewerServer:
    """Serve the viewer page on ``http://HOST:PORT/`` from a background thread.

    Parameters
    ----------
    port : int
        0 picks a free port.
    take : Animation or None
        The take to play (``flamesync view``); None for live mode.
    audio : str, Path or None
        Audio played with the take (any format the browser plays: WAV, OGG, MP3, FLAC).
    ws_port : int or None
        Live mode: the WebSocket the page follows (``flamesync live --ws``).
    face : FaceModel or spec, optional
        The head to show (default head when None).
    host : str
        Interface to listen on (the local machine only by default).
    """

    def __init__(self, *, port: int = 0, take: Animation | None = None, audio=None, ws_port: int | None = None,
                 face=None, host: str = "127.0.0.1"):
        from ..face import load_face

        if not 0 <= int(port) <= 65535:
            raise InputError(f"viewer port must be from 0 to 65535, got {port}")
        if audio is not None:
            audio = Path(audio)
            if not audio.is_file():
                raise InputError(f"audio file not found: {audio}")
        face = load_face(face)
        self._head_meta, self._head_bin = head_payload(face)
        self._config = {"mode": "take" if take is not None else "live", "ws_port": ws_port,
                        "has_audio": audio is not None, "title": "flamesync"}
        self._take = None if take is None else json.dumps(take_payload(take, face.channels)).encode()
        self._audio = audio
        viewer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet: the terminal belongs to the live status
                pass

            def do_GET(self):
                viewer._get(self)

        try:
            self._httpd = ThreadingHTTPServer((host, int(port)), Handler)
        except OSError as exc:
            raise InputError(f"viewer: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        self._httpd.daemon_threads = True
        self.host, self.port = host, self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="flamesync-viewer", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def open_browser(self) -> bool:
        """Open the page in the desktop's browser; False (the address was printed) without a desktop.

        On Linux without a display, Python's ``webbrowser`` would fall back to a text-mode browser
        that takes over the terminal, so it is not asked at all.
        """
        import os
        import sys
        import webbrowser

        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            return False
        try:
            return bool(webbrowser.open(self.url))
        except Exception:
            return False

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # ------------------------------------------------------------------ requests
    def _get(self, req) -> None:
        path = req.path.split("?", 1)[0]
        if path == "/":
            path = "/index.html"
        name = path.lstrip("/")
        if name in STATIC:
            data = resources.files("flamesync.live").joinpath("static", name).read_bytes()
            return _send(req, data, mimetypes.guess_type(name)[0] or "application/octet-stream")
        if name == "favicon.ico":
            return _send(req, b"", "image/x-icon", status=HTTPStatus.NO_CONTENT)
        if name == "config.json":
            return _send(req, json.dumps(self._config).encode(), "application/json")
        if name == "head.json":
            return _send(req, json.dumps(self._head_meta).encode(), "application/json")
        if name == "head.bin":
            return _send(req, self._head_bin, "application/octet-stream")
        if name == "take.json" and self._take is not None:
            return _send(req, self._take, "application/json")
        if name == "audio" and self._audio is not None:
            return _send_file(req, self._audio)
        req.send_error(HTTPStatus.NOT_FOUND)


def _send(req, data: bytes, ctype: str, *, status=HTTPStatus.OK, extra=None) -> None:
    try:
        req.send_response(status)
        req.send_header("Content-Type", ctype)
        req.send_header("Content-Length", str(len(data)))
        req.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):  # the page went away mid-transfer
        pass


def _send_file(req, path: Path) -> None:
    """A file with single-range support (``Range: bytes=a-b``): browsers seek in media this way."""
    data = path.read_bytes()
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    rng = req.headers.get("Range", "")
    if rng.startswith("bytes="):
        a, _, b = rng[6:].split(",")[0].partition("-")
        try:
            start = int(a) if a else max(0, len(data) - int(b))
            end = min(len(data) - 1, int(b)) if (a and b) else len(data) - 1
        except ValueError:
            start, end = 0, len(data) - 1
        if start >= len(data) or start > end:
            return _send(req, b"", ctype, status=HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                         extra={"Content-Range": f"bytes */{len(data)}"})
        return _send(req, data[start:end + 1], ctype, status=HTTPStatus.PARTIAL_CONTENT,
                     extra={"Content-Range": f"bytes {start}-{end}/{len(data)}", "Accept-Ranges": "bytes"})
    _send(req, data, ctype, extra={"Accept-Ranges": "bytes"})
