"""Preview rendering: animations on a head, as image frames or an MP4 with sound.

>>> from flamesync.render import render_video
>>> render_video(animation, "preview.mp4", camera="three_quarter", size=512)  # doctest: +SKIP

Backends: ``pyrender`` (default; OpenGL, headless through EGL or OSMesa) and ``pytorch3d``
(optional; GPU, differentiable). The default head is shown with generated teeth, gums, tongue,
mouth cavity and eyes (see :mod:`flamesync.render.rig`); cameras are in
:mod:`flamesync.render.camera`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..animation import Animation
from ..errors import InputError
from .backends import BACKENDS, available_backends, make_renderer
from .camera import PRESETS
from .compose import StripPlot, draw_label, even
from .frames import iter_views, parse_size
from .rig import HeadRig

__all__ = ["render_frames", "render_video", "iter_frames", "resolve_audio", "HeadRig", "make_renderer",
           "available_backends", "BACKENDS", "CAMERAS"]

CAMERAS = tuple(PRESETS)


def _prepare(animation, other, fps):
    anims = [animation] + ([other] if other is not None else [])
    for a in anims:
        if not isinstance(a, Animation):
            raise InputError(f"expected an Animation, got {type(a).__name__}")
    if fps is not None:
        anims = [a.resample(float(fps)) for a in anims]
    elif other is not None and abs(other.fps - animation.fps) > 1e-6:
        anims[1] = other.resample(animation.fps)  # side by side at the first take's rate
    return anims


def iter_frames(
    animation: Animation,
    *,
    face=None,
    camera: str = "front",
    size=512,
    fps: float | None = None,
    other: Animation | None = None,
    labels: Sequence[str] | None = None,
    plot: bool = False,
    backend: str = "pyrender",
    workers: int | None = None,
    antialias: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield finished frames (H, W, 3) uint8 one at a time; see :func:`render_frames`."""
    anims = _prepare(animation, other, fps)
    width, height = parse_size(size)
    if labels is None and other is not None:
        labels = ("A", "B")
    plots = None
    if plot:
        ph = max(48, (height // 4) // 2 * 2)
        plots = [StripPlot.for_animation(a, width=width, height=ph) for a in anims]
    views = iter_views(anims, face=face, camera=camera, size=(width, height), backend=backend,
                       workers=workers, antialias=antialias)
    for i, images in enumerate(views):
        columns = []
        for k, img in enumerate(images):
            if labels:
                img = draw_label(img, str(labels[k]))
            if plots:
                img = np.concatenate([img, plots[k].draw(min(i, anims[k].n_frames - 1))], 0)
            columns.append(img)
        yield even(np.concatenate(columns, 1) if len(columns) > 1 else columns[0])


def render_frames(
    animation: Animation,
    *,
    face=None,
    camera: str = "front",
    size=512,
    fps: float | None = None,
    other: Animation | None = None,
    labels: Sequence[str] | None = None,
    plot: bool = False,
    backend: str = "pyrender",
    workers: int | None = None,
    antialias: int | None = None,
) -> np.ndarray:
    """Render every frame of ``animation`` into memory.

    Parameters
    ----------
    animation : Animation
    face : FaceModel, str or None
        The head (default: the default head).
    camera : str
        ``front``, ``three_quarter``, ``mouth`` (close-up) or ``profile``.
    size : int, str or (int, int)
        Pixels per view: ``512`` or ``(width, height)``.
    fps : float or None
        Resample to this frame rate first.
    other : Animation or None
        A second take shown on the right (side by side); shorter takes hold their last frame.
    labels : (str, str) or None
        Captions for the two takes.
    plot : bool
        Add a strip plot of the main mouth channels under each view.
    backend : str
        ``pyrender`` or ``pytorch3d``.
    workers : int or None
        Render processes (None: one per core; 1: in this process).
    antialias : int or None
        MSAA samples for the pyrender backend: 0 (off), 4 (smooth edges, twice the time on a
        CPU); None picks 4 on a GPU and 0 on a software rasteriser (llvmpipe).

    Returns
    -------
    np.ndarray, (T, H, W, 3) uint8
    """
    from ..progress import track

    total = max(a.n_frames for a in _prepare(animation, other, fps))
    frames = iter_frames(animation, face=face, camera=camera, size=size, fps=fps, other=other, labels=labels, plot=plot,
                      backend=backend, workers=workers, antialias=antialias)
    return np.stack(list(track(frames, total=total, desc="render")))


def render_video(
    animation: Animation,
    path,
    *,
    face=None,
    camera: str = "front",
    size=512,
    fps: float | None = None,
    other: Animation | None = None,
    labels: Sequence[str] | None = None,
    plot: bool = False,
    backend: str = "pyrender",
    workers: int | None = None,
    antialias: int | None = None,
    audio="auto",
    crf: int = 20,
) -> Path:
    """Render ``animation`` to an MP4 (H.264) with its audio, written atomically.

    Parameters
    ----------
    animation : Animation
    path : str or Path
        Output ``.mp4``.
    audio : "auto", str, Path or None
        ``"auto"`` uses ``animation.audio_path`` when that file exists; None renders silent.
        The sound starts at ``animation.audio_offset`` and lasts exactly as long as the video.
    crf : int
        x264 quality (lower is better).
    face, camera, size, fps, other, labels, plot, backend, workers, antialias
        As for :func:`render_frames`.

    Returns
    -------
    Path of the written file
    """
    from ..fileio import atomic_path
    from ..progress import track
    from .video import VideoWriter

    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise InputError(f"previews are MP4 files; give a path ending in .mp4, got {path.name}")
    audio_path = resolve_audio(animation, audio)
    anims = _prepare(animation, other, fps)
    total = max(a.n_frames for a in anims)
    frames = iter_frames(animation, face=face, camera=camera, size=size, fps=fps, other=other, labels=labels, plot=plot,
                      backend=backend, workers=workers, antialias=antialias)
    with atomic_path(path) as tmp:
        writer = None
        try:
            for frame in track(frames, total=total, desc="render"):
                if writer is None:  # the frame size is known once the first frame is composed
                    writer = VideoWriter(tmp, width=frame.shape[1], height=frame.shape[0], fps=anims[0].fps,
                                         n_frames=total, audio=audio_path, audio_offset=anims[0].audio_offset,
                                         crf=crf)
                writer.write(frame)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        writer.close()
    return path


def resolve_audio(animation: Animation, audio="auto", *, base: Path | None = None) -> Path | None:
    """The audio file to mux: ``audio`` itself, or for ``"auto"`` the animation's own if it exists.

    The animation's ``audio_path`` is tried as stored, then relative to ``base`` (usually the
    animation file's folder), then by its file name in ``base``.
    """
    if audio is None or audio is False:
        return None
    if audio != "auto":
        p = Path(audio)
        if not p.is_file():
            raise InputError(f"audio file not found: {p}")
        return p
    if not animation.audio_path:
        return None
    p = Path(animation.audio_path)
    cands = [p] + ([Path(base) / p, Path(base) / p.name] if base is not None else [])
    for cand in cands:
        if cand.is_file():
            return cand
    return None
