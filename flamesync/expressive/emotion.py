"""Emotions as additive poses on the channels speech does not need, with a time-varying form.

Each emotion is a FACS-inspired pose (after Ekman and Friesen's action units: AU1+AU2 brow raise,
AU4 brow lowerer, AU6 cheek raiser, AU12 lip-corner puller, AU15 lip-corner depressor, AU9 nose
wrinkler, AU5 upper-lid raiser, AU20 lip stretcher) written in ARKit channels, plus a head pitch
bias and scales for head motion and blink rate. Poses touch only :data:`EMOTION_CHANNELS`: eyes,
brows, cheek squint, nose and the mouth corners. The channels that make /p b m/ closures and
vowel openings (``jawOpen``, ``mouthClose``, ``mouthPress*``, ``mouthRoll*``, lip raisers and
lowerers, funnel, pucker) are never in a pose, so an emotion cannot hold the lips apart or shut.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..channels import ARKIT_52
from ..errors import InputError

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted")

# Mouth corners may carry emotion, additively and at most this much, during speech.
MOUTH_CORNER_LIMIT = 0.45
MOUTH_CORNERS = ("mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
                 "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight")
EMOTION_CHANNELS: tuple[str, ...] = tuple(
    c for c in ARKIT_52 if c.startswith(("eye", "brow", "nose")) or c in ("cheekSquintLeft", "cheekSquintRight")
) + MOUTH_CORNERS


def _sym(**kw: float) -> dict[str, float]:
    """Expand ``browDown=0.3`` into ``browDownLeft/Right`` (names without a side pass through)."""
    out = {}
    for name, w in kw.items():
        if name + "Left" in ARKIT_52:
            out[name + "Left"] = w
            out[name + "Right"] = w
        else:
            out[name] = w
    return out


# Pose at intensity 1 (ARKit weights).
POSES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": _sym(mouthSmile=0.45, cheekSquint=0.35, eyeSquint=0.22, mouthDimple=0.12, browOuterUp=0.08),
    "sad": _sym(browInnerUp=0.6, browDown=0.12, mouthFrown=0.35, eyeLookDown=0.12, eyeBlink=0.12, eyeSquint=0.08),
    "angry": _sym(browDown=0.65, eyeSquint=0.3, noseSneer=0.22, eyeWide=0.1, mouthStretch=0.1, mouthFrown=0.12),
    "surprised": _sym(browInnerUp=0.7, browOuterUp=0.6, eyeWide=0.55),
    "fearful": _sym(browInnerUp=0.65, browOuterUp=0.3, browDown=0.2, eyeWide=0.45, mouthStretch=0.3),
    "disgusted": _sym(noseSneer=0.55, browDown=0.35, eyeSquint=0.3, cheekSquint=0.25, mouthFrown=0.2),
}
for _name, _pose in POSES.items():
    assert set(_pose) <= set(EMOTION_CHANNELS), _name
    assert all(_pose.get(c, 0.0) <= MOUTH_CORNER_LIMIT for c in MOUTH_CORNERS), _name

# Head pitch bias in degrees (positive: chin down), head-motion and blink-rate scales, and how much
# accents lower the brows instead of raising them (negative emotions frown for emphasis).
HEAD_PITCH = {"neutral": 0.0, "happy": -1.5, "sad": 5.0, "angry": 2.0, "surprised": -3.0, "fearful": 1.5,
              "disgusted": 1.0}
MOTION = {"neutral": 1.0, "happy": 1.2, "sad": 0.55, "angry": 1.3, "surprised": 1.1, "fearful": 0.8,
          "disgusted": 0.9}
BLINK_RATE = {"neutral": 1.0, "happy": 1.0, "sad": 0.8, "angry": 0.9, "surprised": 0.7, "fearful": 1.4,
              "disgusted": 1.0}
FROWN = {"neutral": 0.0, "happy": 0.0, "sad": 0.3, "angry": 1.0, "surprised": 0.0, "fearful": 0.2,
         "disgusted": 0.8}


@dataclass(frozen=True)
class EmotionKey:
    """From ``time`` seconds on, ``emotion`` at ``intensity`` (blended linearly toward the next key)."""

    time: float
    emotion: str
    intensity: float


def check_emotion(emotion: str, intensity: float) -> tuple[str, float]:
    """Validated ``(emotion, intensity)``; bad values raise :class:`InputError`."""
    if emotion not in EMOTIONS:
        raise InputError(f"unknown emotion {emotion!r}; choose one of {', '.join(EMOTIONS)}")
    try:
        value = float(intensity)
    except (TypeError, ValueError):
        raise InputError(f"emotion intensity must be a number from 0 to 1, got {intensity!r}") from None
    if not 0.0 <= value <= 1.0:
        raise InputError(f"emotion intensity must be from 0 to 1, got {intensity!r}")
    return emotion, value


def load_keys(path) -> tuple[EmotionKey, ...]:
    """Read emotion keys from a TSV/CSV (``time emotion intensity`` per line) or JSON file.

    JSON is a list of ``{"time": s, "emotion": name, "intensity": x}`` objects (or of
    ``[time, emotion, intensity]`` triples). Text files may have a header line and ``#`` comments;
    columns are separated by tabs, commas or spaces.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"emotion keys file not found: {path}")
    text = path.read_text(encoding="utf-8")
    rows: list = []
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(doc, list):
            raise InputError(f"{path}: expected a JSON list of emotion keys")
        for item in doc:
            if isinstance(item, dict):
                rows.append([item.get("time"), item.get("emotion"), item.get("intensity", 1.0)])
            elif isinstance(item, list) and len(item) in (2, 3):
                rows.append(list(item) + ([1.0] if len(item) == 2 else []))
            else:
                raise InputError(f"{path}: each key must be an object or a [time, emotion, intensity] list")
    else:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            cells = [c for c in (line.replace("\t", ",").replace(" ", ",")).split(",") if c]
            if cells[0].lower() == "time":
                continue
            if len(cells) not in (2, 3):
                raise InputError(f"{path}: expected 'time emotion intensity', got {line!r}")
            rows.append(cells + ([1.0] if len(cells) == 2 else []))
    return keys_from_rows(rows, where=str(path))


def keys_from_rows(rows, *, where: str = "emotion keys") -> tuple[EmotionKey, ...]:
    """Validated, time-sorted keys from ``[time, emotion, intensity]`` rows."""
    keys = []
    for row in rows:
        time, emotion, intensity = row
        try:
            t = float(time)
        except (TypeError, ValueError):
            raise InputError(f"{where}: key time {time!r} is not a number") from None
        if not np.isfinite(t) or t < 0:
            raise InputError(f"{where}: key time must be a finite number of seconds >= 0, got {time!r}")
        emotion, value = check_emotion(str(emotion), intensity)
        keys.append(EmotionKey(t, emotion, value))
    if not keys:
        raise InputError(f"{where}: no emotion keys")
    return tuple(sorted(keys, key=lambda k: k.time))


@dataclass(frozen=True)
class EmotionFrames:
    """Emotion state per frame.

    Attributes
    ----------
    pose : np.ndarray, shape (n, len(EMOTION_CHANNELS))
        Additive weights.
    head_pitch : (n,) degrees, positive chin down
    motion, blink_rate, frown : (n,) scales (1 = neutral) and the accent-frown share (0..1)
    """

    pose: np.ndarray
    head_pitch: np.ndarray
    motion: np.ndarray
    blink_rate: np.ndarray
    frown: np.ndarray


def _vector(emotion: str, intensity: float) -> np.ndarray:
    """Pose, head pitch, motion, blink, frown of one key as one vector (linear in intensity)."""
    pose = POSES[emotion]
    v = [intensity * pose.get(c, 0.0) for c in EMOTION_CHANNELS]
    v += [intensity * HEAD_PITCH[emotion], 1.0 + intensity * (MOTION[emotion] - 1.0),
          1.0 + intensity * (BLINK_RATE[emotion] - 1.0), intensity * FROWN[emotion]]
    return np.asarray(v)


@functools.lru_cache(maxsize=64)
def _key_table(keys: tuple[EmotionKey, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each key's vector (k, width) and time (k,); cached, since a stream asks every few frames."""
    vecs = np.stack([_vector(k.emotion, k.intensity) for k in keys])
    kt = np.asarray([k.time for k in keys])
    vecs.setflags(write=False)
    kt.setflags(write=False)
    return vecs, kt


def emotion_frames(keys: tuple[EmotionKey, ...], times: np.ndarray) -> EmotionFrames:
    """The emotion state at ``times`` (seconds, shape (n,)): keys blended linearly in time.

    Before the first key the first one holds, after the last the last one; a pure function of
    time, so streaming and whole-file runs agree.
    """
    times = np.asarray(times, np.float64)
    vecs, kt = _key_table(tuple(keys))
    if len(keys) == 1:
        out = np.broadcast_to(vecs[0], (len(times), vecs.shape[1]))
    else:
        out = np.stack([np.interp(times, kt, vecs[:, j]) for j in range(vecs.shape[1])], axis=1)
    c = len(EMOTION_CHANNELS)
    return EmotionFrames(np.array(out[:, :c]), np.array(out[:, c]), np.array(out[:, c + 1]),
                         np.array(out[:, c + 2]), np.array(out[:, c + 3]))
