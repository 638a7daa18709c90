"""One output frame as every sink sees it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..animation import Animation
from ..channels import ARKIT_52


@dataclass(frozen=True)
class LiveFrame:
    """A frame of the live stream.

    Attributes
    ----------
    index : int
        Frame number from the start of the stream (50 per second of audio).
    t : float
        Time of the frame in seconds of the audio stream (``index / fps``).
    weights : np.ndarray, shape (52,), float32
        ARKit weights in :data:`flamesync.channels.ARKIT_52` order (zero where the stream has none).
    head : np.ndarray, shape (3,), float32
        Head rotation, axis-angle in radians, face frame (x to the face's left, y up, z forward).
    jaw : np.ndarray, shape (3,), float32
        Jaw rotation implied by ``jawOpen`` (axis-angle, radians), for skeletal rigs.
    captured : float
        ``time.monotonic()`` at which the audio sample at time ``t`` was captured (latency origin).
    angles : np.ndarray, shape (9,), float32
        Head yaw, pitch, roll and left/right eye yaw, pitch, roll in radians, as Live Link Face
        carries them (:func:`flamesync.export.tables.live_link_extra`; computed once per chunk).
    """

    index: int
    t: float
    weights: np.ndarray
    head: np.ndarray
    jaw: np.ndarray
    captured: float
    angles: np.ndarray

    def weight_dict(self) -> dict[str, float]:
        """``{arkit name: weight}`` as plain floats (for JSON)."""
        return {n: float(w) for n, w in zip(ARKIT_52, self.weights)}


def frames_from_animation(anim: Animation, *, first: int, captured) -> list[LiveFrame]:
    """Split an animation chunk (as :meth:`Streamer.push` returns it) into frames.

    Parameters
    ----------
    anim : Animation
        Frames ``first .. first + anim.n_frames - 1`` of the stream.
    first : int
        Stream index of the chunk's first frame.
    captured : callable
        ``captured(t)``: monotonic capture time of the audio at stream time ``t`` seconds.
    """
    from ..export.tables import live_link_extra

    n = anim.n_frames
    if n == 0:
        return []
    angles = live_link_extra(anim)
    w = anim.weights(ARKIT_52)
    head = anim.head if anim.head is not None else np.zeros((n, 3), np.float32)
    jaw = anim.jaw if anim.jaw is not None else np.zeros((n, 3), np.float32)
    out = []
    for i in range(n):
        k = first + i
        t = k / anim.fps
        out.append(LiveFrame(k, t, w[i], np.asarray(head[i], np.float32), np.asarray(jaw[i], np.float32),
                             float(captured(t)), angles[i]))
    return out
