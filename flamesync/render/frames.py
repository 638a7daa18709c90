"""Turning animations into image frames, in parallel worker processes.

The parent evaluates the face model (torch) in blocks of frames and sends vertex arrays to the
workers; each worker owns one renderer (its own GL context) and the ready-built
:class:`~flamesync.render.rig.HeadRig`, so workers never import torch or the face model. Results
come back in order through a bounded window, so memory stays flat however long the clip is.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Iterator, Sequence

import numpy as np

from ..animation import Animation
from ..errors import InputError
from .backends import choose_gl_platform, make_renderer
from .rig import HeadRig

CHUNK = 8  # frames per task: big enough to amortise the transfer, small enough to balance
BLOCK = 64  # frames per face-model evaluation in the parent
MIN_FRAMES_PER_WORKER = 48


def parse_size(size) -> tuple[int, int]:
    """``512``, ``"512"``, ``"640x480"`` or ``(640, 480)`` to (width, height)."""
    if isinstance(size, str):
        text = size.lower().strip()
        try:
            w, _, h = text.partition("x")
            size = (int(w), int(h)) if h else int(w)
        except ValueError:
            raise InputError(f"size must be N or WxH in pixels, got {text!r}") from None
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    w, h = (int(s) for s in size)
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise InputError(f"image size must be between 16 and 8192 pixels a side, got {w}x{h}")
    return w, h


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------------------- workers
_WORKER: dict = {}


def _worker_init(rig, backend, width, height, camera, antialias, env):
    os.environ.update(env)
    _WORKER["rig"] = rig
    _WORKER["renderer"] = make_renderer(backend, rig, width=width, height=height, camera=camera, antialias=antialias)


def _render_views(renderer, rig, views: list[np.ndarray]) -> list[np.ndarray]:
    return [np.stack([renderer.render(rig.pose(v)) for v in verts]) for verts in views]


def _worker_task(task):
    start, views = task
    return start, _render_views(_WORKER["renderer"], _WORKER["rig"], views)


# ---------------------------------------------------------------------------- driver
def _hold_last(animation: Animation, n_frames: int, start: int, stop: int) -> Animation:
    """Frames ``start:stop`` of ``animation``, repeating its last frame past its end."""
    idx = np.minimum(np.arange(start, stop), animation.n_frames - 1)
    return animation.replace(values=animation.values[idx])


def iter_views(
    animations: Sequence[Animation],
    *,
    face=None,
    camera: str = "front",
    size=512,
    backend: str = "pyrender",
    workers: int | None = None,
    antialias: int | None = None,
    rig: HeadRig | None = None,
) -> Iterator[list[np.ndarray]]:
    """Render several animations frame by frame on the same head and camera.

    Parameters
    ----------
    animations : sequence of Animation
        All at the same frame rate; shorter ones hold their last frame.
    face : FaceModel, str or None
        Anything :func:`flamesync.face.load_face` takes.
    workers : int or None
        Worker processes; None uses one per CPU core, 1 renders in this process.

    Yields
    ------
    list of (H, W, 3) uint8 arrays, one per animation, for each frame in order
    """
    from ..face import load_face

    if not animations:
        raise InputError("nothing to render: no animation given")
    if any(a.n_frames == 0 for a in animations):
        raise InputError("cannot render an animation with no frames")
    fps = {round(a.fps, 6) for a in animations}
    if len(fps) > 1:
        raise InputError(f"animations to render together must share a frame rate, got {sorted(fps)}")
    width, height = parse_size(size)
    model = load_face(face)
    rig = rig or HeadRig.from_face(model)
    n_frames = max(a.n_frames for a in animations)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    # a worker costs seconds to start (interpreter, pyrender, GL context): short clips stay serial
    workers = min(workers, max(1, n_frames // MIN_FRAMES_PER_WORKER))
    if backend == "pyrender":
        choose_gl_platform()

    def tasks():
        for s in range(0, n_frames, BLOCK):
            e = min(s + BLOCK, n_frames)
            verts = [model.animate(_hold_last(a, n_frames, s, e)) for a in animations]
            for c in range(s, e, CHUNK):
                yield c, [v[c - s: c - s + CHUNK] for v in verts]

    if workers == 1:
        renderer = make_renderer(backend, rig, width=width, height=height, camera=camera, antialias=antialias)
        try:
            for _, views in tasks():
                rendered = _render_views(renderer, rig, views)
                for i in range(len(rendered[0])):
                    yield [r[i] for r in rendered]
        finally:
            renderer.close()
        return

    import multiprocessing as mp

    env = {k: os.environ[k] for k in ("PYOPENGL_PLATFORM",) if k in os.environ}
    # llvmpipe spreads each frame over threads; with a process per core, one thread each
    # avoids oversubscription (a user's LP_NUM_THREADS wins)
    env["LP_NUM_THREADS"] = os.environ.get("LP_NUM_THREADS", str(max(1, default_workers() // workers)))
    ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited GL or torch thread state
    with ctx.Pool(workers, initializer=_worker_init,
                  initargs=(rig, backend, width, height, camera, antialias, env)) as pool:
        pending: deque = deque()
        source = tasks()
        for task in source:
            pending.append(pool.apply_async(_worker_task, (task,)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            _, rendered = pending.popleft().get()
            nxt = next(source, None)
            if nxt is not None:
                pending.append(pool.apply_async(_worker_task, (nxt,)))
            for i in range(len(rendered[0])):
                yield [r[i] for r in rendered]
