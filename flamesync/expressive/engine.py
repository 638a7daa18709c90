"""Audio in, expressive channels out: the layers run together, on a whole file or on a stream."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from ..animation import Animation
from ..channels import ARKIT_52, HEAD_ROTATION
from ..errors import InputError
from ..numeric import quat_multiply, quat_to_rotvec, rotvec_to_quat
from .emotion import (EMOTION_CHANNELS, MOUTH_CORNER_LIMIT, MOUTH_CORNERS, EmotionKey, check_emotion,
                      emotion_frames, keys_from_rows)
from .layers import GAZE_CHANNELS, BlinkLayer, BrowLayer, GazeLayer, HeadLayer, gaze_to_weights
from .prosody import SAMPLE_RATE, FrameAnalyzer, ProsodyTracker

LAYERS = ("blinks", "gaze", "brows", "head")
MAX_STRENGTH = 2.0

# Every ARKit channel a layer or an emotion may move, in ARKit order.
OUTPUT_CHANNELS: tuple[str, ...] = tuple(
    c for c in ARKIT_52
    if c in set(EMOTION_CHANNELS) | set(BlinkLayer.channels) | set(GAZE_CHANNELS) | set(BrowLayer.channels)
)


@dataclass(frozen=True)
class Layers:
    """What the expressive layers do.

    Parameters
    ----------
    blinks, gaze, brows, head : float
        Strength of each layer: 0 switches it off, 1 is the default, up to 2 exaggerates.
        Blinks and brows scale their weights; gaze and head scale their angles.
    emotion : str
        One of :data:`~.emotion.EMOTIONS`, held for the whole take (unless ``keys`` are given).
    intensity : float
        0..1, how strongly ``emotion`` shows.
    keys : tuple of EmotionKey or None
        A time-varying emotion (see :func:`~.emotion.load_keys`); replaces ``emotion``/``intensity``.
    seed : int
        Every random choice follows from it: the same seed and audio give the same motion.
    blink_rate : float
        Target blinks per minute while talking, before the preference for pauses (default 20).
    head_degrees : float
        Peak nod in degrees for an ordinary stress (default 3); sway and F0-following scale with it.
    gaze_drift : float
        Amplitude in degrees of the slow wander of the gaze target (default 2).
    """

    blinks: float = 1.0
    gaze: float = 1.0
    brows: float = 1.0
    head: float = 1.0
    emotion: str = "neutral"
    intensity: float = 0.6
    keys: tuple[EmotionKey, ...] | None = None
    seed: int = 0
    blink_rate: float = 20.0
    head_degrees: float = 3.0
    gaze_drift: float = 2.0

    def __post_init__(self) -> None:
        for name in LAYERS:
            value = getattr(self, name)
            if value is True or value is False:
                value = float(value)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise InputError(f"{name} strength must be a number from 0 to {MAX_STRENGTH:g}, got {value!r}") from None
            if not (math.isfinite(value) and 0.0 <= value <= MAX_STRENGTH):
                raise InputError(f"{name} strength must be from 0 to {MAX_STRENGTH:g}, got {value!r}")
            object.__setattr__(self, name, value)
        _, intensity = check_emotion(self.emotion, self.intensity)
        object.__setattr__(self, "intensity", intensity)
        if self.keys is not None:
            # Rows such as (time, emotion, intensity) are accepted and checked like a keys file.
            rows = [(k.time, k.emotion, k.intensity) if isinstance(k, EmotionKey) else k for k in self.keys]
            object.__setattr__(self, "keys", keys_from_rows(rows) if rows else None)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise InputError(f"seed must be a whole number >= 0, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        for name, lo, hi in (("blink_rate", 0.0, 60.0), ("head_degrees", 0.0, 15.0), ("gaze_drift", 0.0, 10.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi):
                raise InputError(f"{name} must be from {lo:g} to {hi:g}, got {value!r}")

    @property
    def emotion_keys(self) -> tuple[EmotionKey, ...]:
        return self.keys if self.keys else (EmotionKey(0.0, self.emotion, self.intensity),)

    @property
    def active(self) -> bool:
        """Whether anything would change an animation."""
        has_emotion = any(k.emotion != "neutral" and k.intensity > 0 for k in self.emotion_keys)
        return has_emotion or any(getattr(self, n) > 0 for n in LAYERS)

    def describe(self) -> dict:
        """JSON-ready summary for an animation's metadata."""
        d = {n: getattr(self, n) for n in LAYERS}
        d.update(seed=self.seed, blink_rate=self.blink_rate, head_degrees=self.head_degrees,
                 gaze_drift=self.gaze_drift)
        d["emotion"] = [[k.time, k.emotion, k.intensity] for k in self.emotion_keys]
        return d

    def off(self) -> "Layers":
        """The same settings with every layer and the emotion switched off."""
        return replace(self, blinks=0.0, gaze=0.0, brows=0.0, head=0.0, emotion="neutral", keys=None)


@dataclass(frozen=True)
class LayerFrames:
    """Expressive output for consecutive frames.

    Attributes
    ----------
    first : int
        Index of the first frame.
    weights : np.ndarray, shape (n, len(OUTPUT_CHANNELS))
        Additive ARKit weights (mouth corners already limited).
    head : np.ndarray, shape (n, 3)
        Head (yaw, pitch, roll) in degrees; pitch positive chin down.
    """

    first: int
    weights: np.ndarray
    head: np.ndarray

    def __len__(self) -> int:
        return len(self.weights)


class LayerStream:
    """Incremental expressive layers: feed audio, take frames once their audio has arrived.

    Frame ``i`` (time ``i / fps``) needs audio up to ``i / fps + lookahead_seconds`` (20 ms).

    Parameters
    ----------
    fps : float
        Frame rate of the animation the layers go onto.
    layers : Layers
    """

    lookahead_seconds = 320 / SAMPLE_RATE

    def __init__(self, fps: float, layers: Layers):
        self.fps = float(fps)
        self.layers = layers
        self._analyzer = FrameAnalyzer(fps)
        self._tracker = ProsodyTracker(fps)
        self._blinks = BlinkLayer(fps, seed=layers.seed, rate=layers.blink_rate)
        self._gaze = GazeLayer(fps, seed=layers.seed, drift=layers.gaze_drift)
        self._brows = BrowLayer(fps, seed=layers.seed)
        self._head = HeadLayer(fps, seed=layers.seed, degrees=layers.head_degrees)
        index = {c: i for i, c in enumerate(OUTPUT_CHANNELS)}
        # Column numbers per source, once: a stream advances by a frame or two per call, where a
        # Python loop over channel names would cost more than the arithmetic.
        self._cols = {key: np.array([index[c] for c in names]) for key, names in (
            ("emotion", EMOTION_CHANNELS), ("blinks", BlinkLayer.channels), ("gaze", GAZE_CHANNELS),
            ("brows", BrowLayer.channels), ("corners", MOUTH_CORNERS))}

    @property
    def frames_done(self) -> int:
        return self._analyzer.frames_done

    @property
    def blink_starts(self) -> list[float]:
        return list(self._blinks.starts)

    def feed(self, samples: np.ndarray) -> None:
        """Append 16 kHz mono samples, shape (n,)."""
        self._analyzer.feed(samples)

    def ready(self, *, final: bool = False) -> int:
        return self._analyzer.ready(final=final)

    def advance(self, stop: int, *, final: bool = False) -> LayerFrames:
        """Frames ``frames_done .. stop - 1`` (after the end of the audio only with ``final``)."""
        first = self.frames_done
        if stop > self.ready(final=final):
            raise InputError(f"frame {stop - 1} needs audio that has not arrived yet")
        level, f0 = self._analyzer.analyse(stop)
        pros = self._tracker.update(level, f0)
        n = len(pros)
        times = (first + np.arange(n)) / self.fps
        emo = emotion_frames(self.layers.emotion_keys, times)
        L = self.layers
        cols = self._cols
        w = np.zeros((n, len(OUTPUT_CHANNELS)))
        # Each source's columns are distinct, so a fancy-indexed += adds every value exactly once.
        w[:, cols["emotion"]] += emo.pose
        if L.blinks > 0:
            w[:, cols["blinks"]] += self._blinks.run(pros, emo.blink_rate, L.blinks)
        if L.gaze > 0:
            w[:, cols["gaze"]] += gaze_to_weights(self._gaze.run(pros, L.gaze))
        if L.brows > 0:
            w[:, cols["brows"]] += self._brows.run(pros, emo.frown, L.brows)
        head = np.zeros((n, 3))
        if L.head > 0:
            head = self._head.run(pros, emo.motion, emo.head_pitch, L.head)
        w[:, cols["corners"]] = np.minimum(w[:, cols["corners"]], MOUTH_CORNER_LIMIT)
        return LayerFrames(first, w.astype(np.float32), head.astype(np.float32))


def head_rotvec(ypr_degrees: np.ndarray) -> np.ndarray:
    """Head (yaw, pitch, roll) degrees to axis-angle vectors (T, 3), radians.

    The rotation is ``R_y(yaw) R_x(pitch) R_z(roll)`` in the face frame (x to the face's left, y
    up, z forward): the decomposition the Live Link Face exporter reads back.
    """
    ypr = np.radians(np.asarray(ypr_degrees, np.float64)).reshape(-1, 3)
    # The three single-axis quaternions and their products, written out: the same floating-point
    # operations as rotvec_to_quat and quat_multiply (every term they add for the zero components
    # is an exact zero), in a dozen whole-array operations instead of a hundred, since a stream
    # calls this for a frame or two at a time.
    angle = np.sqrt(ypr * ypr)
    small = angle < 1e-6
    scale = np.where(small, 0.5 - angle ** 2 / 48.0, np.sin(angle / 2) / np.where(small, 1.0, angle))
    c, s = np.cos(angle / 2), ypr * scale
    (cy, cx, cz), (sy, sx, sz) = c.T, s.T
    bw, bx, by, bz = cx * cz, sx * cz, -(sx * sz), cx * sz  # R_x(pitch) R_z(roll)
    q = np.stack([cy * bw - sy * by, cy * bx + sy * bz, cy * by + sy * bw, cy * bz - sy * bx], axis=-1)
    return quat_to_rotvec(q).astype(np.float32)


def _head_rotvec_composed(ypr_degrees: np.ndarray) -> np.ndarray:
    """:func:`head_rotvec` by the general quaternion routines (the reference its tests compare to)."""
    ypr = np.radians(np.asarray(ypr_degrees, np.float64)).reshape(-1, 3)
    axes = np.eye(3)
    qy, qx, qz = (rotvec_to_quat(ypr[:, [j]] * axes[a]) for j, a in ((0, 1), (1, 0), (2, 2)))
    return quat_to_rotvec(quat_multiply(qy, quat_multiply(qx, qz))).astype(np.float32)


def apply_frames(anim: Animation, frames: LayerFrames) -> Animation:
    """``anim`` with the expressive frames added.

    Weights are added (clipped to 0..1) on :data:`OUTPUT_CHANNELS` only, so the channels speech
    uses for closures and openings pass through untouched; missing ones (and the head rotation)
    are appended. The head rotation is composed onto any head rotation ``anim`` already has.
    """
    if len(frames) != anim.n_frames:
        raise InputError(f"{len(frames)} expressive frames for an animation of {anim.n_frames}")
    # Whole-array operations: a stream calls this once per pushed chunk.
    channels = list(anim.channels)
    present = set(channels)
    # Every layer channel is present whether or not it moves, so every chunk of a stream, and
    # every take, has the same layout.
    channels += [c for c in OUTPUT_CHANNELS if c not in present]
    head_is_new = HEAD_ROTATION[0] not in present
    if head_is_new:
        channels += list(HEAD_ROTATION)
    index = {c: i for i, c in enumerate(channels)}
    values = np.zeros((anim.n_frames, len(channels)), np.float32)
    values[:, :anim.values.shape[1]] = anim.values
    cols = [index[c] for c in OUTPUT_CHANNELS]
    values[:, cols] = np.clip(values[:, cols] + frames.weights, 0.0, 1.0)
    rot = head_rotvec(frames.head)
    head_cols = [index[c] for c in HEAD_ROTATION]
    if not head_is_new:
        old = values[:, head_cols]
        rot = quat_to_rotvec(quat_multiply(rotvec_to_quat(rot), rotvec_to_quat(old))).astype(np.float32)
    values[:, head_cols] = rot
    return anim.replace(channels=tuple(channels), values=values)


def add_layers(anim: Animation, wave: np.ndarray, layers: Layers, *, block_seconds: float = 60.0) -> Animation:
    """Add the expressive layers to a whole animation made from ``wave``.

    Parameters
    ----------
    anim : Animation
        Frame ``i`` at ``anim.audio_offset + i / anim.fps`` seconds of ``wave``.
    wave : np.ndarray, shape (N,)
        The 16 kHz mono audio.
    layers : Layers
    block_seconds : float
        Audio analysed at a time (memory stays flat in the length; the result does not depend on it).

    Returns
    -------
    Animation
        ``anim`` plus eye, brow, cheek-squint, nose, mouth-corner and head channels;
        ``meta["expressive"]`` records the settings.
    """
    if not layers.active or anim.n_frames == 0:
        return anim
    start = int(round(anim.audio_offset * SAMPLE_RATE))
    wave = np.asarray(wave, np.float32)
    if start > 0:
        wave = wave[start:]
    elif start < 0:
        wave = np.concatenate([np.zeros(-start, np.float32), wave])
    stream = LayerStream(anim.fps, layers)
    parts = []
    step = max(1, int(block_seconds * SAMPLE_RATE))
    for a in range(0, len(wave), step):
        stream.feed(wave[a: a + step])
        stop = min(anim.n_frames, stream.ready())
        if stop > stream.frames_done:
            parts.append(stream.advance(stop))
    if anim.n_frames > stream.frames_done:
        parts.append(stream.advance(anim.n_frames, final=True))
    frames = LayerFrames(0, np.concatenate([p.weights for p in parts]), np.concatenate([p.head for p in parts]))
    out = apply_frames(anim, frames)
    meta = dict(out.meta)
    meta["expressive"] = layers.describe()
    return out.replace(meta=meta)


class BlockLayers:
    """:func:`add_layers` for audio read in blocks while the animation is still being made.

    The pipeline reads a long file once: every block goes to the network and to :meth:`feed`, and
    :meth:`finish` adds the layers to the finished animation. Each block is analysed once the next
    one has arrived (or at :meth:`finish`, when the animation's length is known), so the frames
    analysed after each block are the ones :func:`add_layers` analyses after the same block, and
    the result is the same animation. Memory: two blocks of audio and a few floats per frame.

    Parameters
    ----------
    fps : float
        Frame rate of the animation the layers will go onto.
    layers : Layers
    block_seconds : float
        The length of every fed block but the last (as :func:`add_layers`' ``block_seconds``).
    """

    def __init__(self, fps: float, layers: Layers, *, block_seconds: float = 60.0):
        self.fps = float(fps)
        self.layers = layers
        self.block_seconds = float(block_seconds)
        self._stream = LayerStream(self.fps, layers) if layers.active else None
        # feed() may run in a reader thread while take() runs in the consumer's: a deque's append
        # and popleft are atomic, so no frames are lost or taken twice.
        self._parts: deque[LayerFrames] = deque()
        self._ready: int | None = None  # frames ready after the previous block

    @property
    def active(self) -> bool:
        return self._stream is not None

    def feed(self, block: np.ndarray) -> None:
        """Append the next block of 16 kHz mono audio, shape (n,)."""
        if self._stream is None:
            return
        self._stream.feed(block)
        if self._ready is not None and self._ready > self._stream.frames_done:
            # Safe before the length is known: the previous block was not the last one, so its
            # ready frames lie inside the audio, hence inside the animation.
            self._parts.append(self._stream.advance(self._ready))
        self._ready = self._stream.ready()

    def take(self) -> list[LayerFrames]:
        """The frames computed by :meth:`feed` since the last call, in order (none when inactive)."""
        out = []
        while self._parts:
            out.append(self._parts.popleft())
        return out

    def close(self, n_frames: int) -> list[LayerFrames]:
        """After the last block: the frames not yet taken, up to the animation's ``n_frames``."""
        stream = self._stream
        if stream is None or n_frames == 0:
            return []
        if stream.frames_done > n_frames:
            raise InputError(f"{stream.frames_done} expressive frames for an animation of {n_frames}")
        parts = self.take()
        stop = min(n_frames, self._ready or 0)
        if stop > stream.frames_done:
            parts.append(stream.advance(stop))
        if n_frames > stream.frames_done:
            parts.append(stream.advance(n_frames, final=True))
        return parts

    def finish(self, anim: Animation) -> Animation:
        """``anim`` (frame ``i`` at ``i / fps`` s of the fed audio) plus the layers."""
        if self._stream is None or anim.n_frames == 0:
            return anim
        if abs(anim.fps - self.fps) > 1e-9 or anim.audio_offset != 0:
            raise InputError("BlockLayers.finish needs an animation at its frame rate, starting with the audio")
        parts = self.close(anim.n_frames)
        frames = LayerFrames(0, np.concatenate([p.weights for p in parts]), np.concatenate([p.head for p in parts]))
        out = apply_frames(anim, frames)
        meta = dict(out.meta)
        meta["expressive"] = self.layers.describe()
        return out.replace(meta=meta)


def shift_animation(anim: Animation, seconds: float) -> Animation:
    """Move the motion ``seconds`` later (earlier if negative) against the audio, same frame count.

    Frame ``i`` takes the value the animation had at frame ``i - seconds * fps`` (linear between
    frames; the first and last frames hold at the ends), so a face that runs ahead of an engine's
    audio can be delayed, or one that lags pulled forward.
    """
    if not math.isfinite(seconds):
        raise InputError(f"timing offset must be a finite number of seconds, got {seconds!r}")
    if seconds == 0 or anim.n_frames == 0:
        return anim
    pos = np.clip(np.arange(anim.n_frames) - seconds * anim.fps, 0, anim.n_frames - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, anim.n_frames - 1)
    frac = (pos - lo)[:, None]
    src = anim.values.astype(np.float64)
    values = src[lo] * (1 - frac) + src[hi] * frac
    meta = dict(anim.meta)
    meta["timing_offset"] = float(seconds)
    return anim.replace(values=values.astype(np.float32), meta=meta)


class ShiftStream:
    """:func:`shift_animation` for a take that arrives a block of frames at a time.

    Each output frame is computed once the two source frames it reads have arrived (a shift later
    reads earlier frames; one earlier waits up to ``|seconds|`` for later ones), by the same
    arithmetic, so the concatenated output equals ``shift_animation`` of the whole take bit for bit.

    Parameters
    ----------
    fps : float
        Frame rate of the take.
    seconds : float
        As for :func:`shift_animation` (0: frames pass through unchanged).
    """

    def __init__(self, fps: float, seconds: float):
        if not math.isfinite(seconds):
            raise InputError(f"timing offset must be a finite number of seconds, got {seconds!r}")
        self.fps = float(fps)
        self.seconds = float(seconds)
        self._shift = self.seconds * self.fps
        self._buf: np.ndarray | None = None  # source frames from _buf0 on
        self._buf0 = 0
        self._n_in = 0
        self._next = 0
        self._width = 0

    def push(self, values: np.ndarray) -> np.ndarray:
        """Add source frames ``(n, C)``; return the shifted frames now complete, ``(k, C)`` float32."""
        values = np.asarray(values, np.float32)
        self._n_in += len(values)
        self._width = values.shape[1]
        if self.seconds == 0:
            return values
        self._buf = values if self._buf is None or not len(self._buf) else np.concatenate([self._buf, values])
        # Frame i reads source frames floor(i - shift) and the one after; before the end both
        # must have arrived (so the take's length, which clips the reads, does not matter yet),
        # and i must be a frame of the take (there are as many frames out as in).
        stop = max(self._next, min(self._n_in, int(math.floor(self._n_in - 2 + self._shift)) + 2))
        return self._emit(np.arange(self._next, stop), final=False)

    def finish(self) -> np.ndarray:
        """The take has ended: the remaining frames (as many in all as were pushed)."""
        if self.seconds == 0 or self._buf is None:
            return np.zeros((0, self._width), np.float32)
        return self._emit(np.arange(self._next, self._n_in), final=True)

    def _emit(self, idx: np.ndarray, *, final: bool) -> np.ndarray:
        n = self._n_in
        pos = idx - self._shift
        if not final:
            pos = pos[np.maximum(pos, 0) <= n - 2]
        if not len(pos):
            return np.zeros((0, self._width), np.float32)
        pos = np.clip(pos, 0, n - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        frac = (pos - lo)[:, None]
        src = self._buf.astype(np.float64)
        values = src[lo - self._buf0] * (1 - frac) + src[hi - self._buf0] * frac
        self._next += len(pos)
        keep = max(0, min(int(math.floor(self._next - self._shift)), n - 1))
        if keep > self._buf0:
            self._buf = self._buf[keep - self._buf0:]
            self._buf0 = keep
        return values.astype(np.float32)
