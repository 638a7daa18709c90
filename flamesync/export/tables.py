"""Tables of per-frame values: the Live Link Face CSV, a plain channel CSV and JSON.

- ``.csv``: the layout Epic's Live Link Face app writes (and Unreal's importer and MetaHuman
  tools read): ``Timecode, BlendShapeCount`` then the 52 ARKit weights in the app's column order
  and PascalCase names, then head and eye yaw/pitch/roll in radians. Head angles decompose the
  head rotation as yaw about y, then pitch about x (positive: chin down), then roll about z; eye
  yaw and pitch come from the ``eyeLook*`` weights (a weight of 1 is ``EYE_LOOK_DEGREES``; yaw
  positive toward the face's left, pitch positive looking down, as for the head). Eye roll, and
  the head when the animation has no head rotation, are zero.
- ``.channels.csv``: ``frame, time`` then every channel of the animation under its own name.
- ``.json``: ``{"fps", "audio", "audio_offset", "channels", "times", "frames": [[...], ...]}``
  plus the animation's metadata.

Each carries the audio as ``<stem>.wav`` beside the file; the JSON also names it.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from ..animation import Animation
from ..channels import ARKIT_52, EYE_LOOK_DEGREES
from .rig import carry_audio

# Live Link Face's CSV column order (note JawRight/JawLeft and MouthRight/MouthLeft swap relative to
# ARKit's enum order). Names are ARKit's with the first letter capitalised.
LIVE_LINK_FACE_ORDER: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawRight", "jawLeft", "jawOpen", "mouthClose",
    "mouthFunnel", "mouthPucker", "mouthRight", "mouthLeft", "mouthSmileLeft", "mouthSmileRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
assert sorted(LIVE_LINK_FACE_ORDER) == sorted(ARKIT_52)
LIVE_LINK_FACE_EXTRA: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)


def live_link_face_header() -> list[str]:
    return ["Timecode", "BlendShapeCount"] + [n[0].upper() + n[1:] for n in LIVE_LINK_FACE_ORDER] + list(
        LIVE_LINK_FACE_EXTRA
    )


def timecode(frame: int, fps: float, *, start: float = 0.0) -> str:
    """SMPTE-style ``HH:MM:SS:FF.fff`` for ``frame`` at ``fps``, counted from ``start`` seconds.

    Frames within the second are counted at the rounded rate; the fraction after the dot is the
    sub-frame part, as Live Link Face writes it.
    """
    t = start + frame / fps
    whole = math.floor(t + 1e-9)
    rate = max(1, round(fps))
    sub = (t - whole) * rate
    ff = math.floor(sub + 1e-6)
    frac = max(0.0, sub - ff)
    h, rem = divmod(int(whole), 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{ff:02d}.{int(round(frac * 1000)) % 1000:03d}"


def head_yaw_pitch_roll(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle head rotations (T, 3), y up, to (yaw about y, pitch about x, roll about z) radians.

    The decomposition ``R = R_y(yaw) R_x(pitch) R_z(roll)`` (intrinsic Y-X-Z), in numpy: the live
    Live Link stream calls this 50 times a second, and scipy's rotation module costs half a second
    to import.
    """
    r = np.asarray(rotvec, np.float64).reshape(-1, 3)
    angle = np.linalg.norm(r, axis=1)
    axis = r / np.where(angle > 1e-12, angle, 1.0)[:, None]
    x, y, z = axis.T
    c, s = np.cos(angle), np.sin(angle)
    C = 1.0 - c
    # The three matrix entries per angle that the decomposition needs (Rodrigues' formula).
    r02, r22 = x * z * C + y * s, c + z * z * C
    r12 = y * z * C - x * s
    r10, r11 = y * x * C + z * s, c + y * y * C
    yaw = np.arctan2(r02, r22)
    pitch = np.arcsin(np.clip(-r12, -1.0, 1.0))
    roll = np.arctan2(r10, r11)
    return np.stack([yaw, pitch, roll], axis=1).astype(np.float32)


def eye_yaw_pitch(animation: Animation) -> np.ndarray:
    """Per-eye gaze angles (T, 4) of an animation: see :func:`flamesync.channels.eye_yaw_pitch`."""
    from ..channels import EYE_LOOK_CHANNELS
    from ..channels import eye_yaw_pitch as from_weights

    return from_weights(animation.weights(EYE_LOOK_CHANNELS))


def write(animation: Animation, path, *, face=None, audio_path=None, fmt=None, dest=None, **_):
    dest = Path(dest or path)
    suffix = fmt.suffix if fmt is not None else dest.suffix
    audio = carry_audio(audio_path, dest)
    if suffix == ".csv":
        write_live_link_face(animation, path)
    elif suffix == ".channels.csv":
        write_channels_csv(animation, path)
    else:
        write_json(animation, path, audio=None if audio is None else audio.name)


def live_link_extra(animation: Animation) -> np.ndarray:
    """The 9 values Live Link Face sends after the 52 weights, shape (T, 9), radians.

    Head yaw, pitch, roll, then left and right eye yaw, pitch, roll (:data:`LIVE_LINK_FACE_EXTRA`);
    the same numbers the CSV holds and the live Live Link sink streams.
    """
    extra = np.zeros((animation.n_frames, len(LIVE_LINK_FACE_EXTRA)), np.float32)
    if animation.head is not None:
        extra[:, :3] = head_yaw_pitch_roll(animation.head)
    extra[:, [3, 4, 6, 7]] = eye_yaw_pitch(animation)
    return extra


def write_live_link_face(animation: Animation, path) -> None:
    """Write the Live Link Face CSV layout (61 value columns)."""
    weights = animation.weights(LIVE_LINK_FACE_ORDER)
    extra = live_link_extra(animation)
    count = len(LIVE_LINK_FACE_ORDER) + len(LIVE_LINK_FACE_EXTRA)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(live_link_face_header())
        for i in range(animation.n_frames):
            w.writerow([timecode(i, animation.fps, start=animation.audio_offset), count]
                       + [f"{x:.6f}" for x in weights[i]] + [f"{x:.6f}" for x in extra[i]])


def write_channels_csv(animation: Animation, path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["frame", "time"] + list(animation.channels))
        for i, (t, row) in enumerate(zip(animation.times, animation.values)):
            w.writerow([i, f"{t:.6f}"] + [repr(float(x)) for x in row])


def write_json(animation: Animation, path, *, audio: str | None) -> None:
    doc = {
        "format": "flamesync.channels",
        "fps": animation.fps,
        "audio": audio,
        "audio_offset": animation.audio_offset,
        "channels": list(animation.channels),
        "times": [round(float(t), 6) for t in animation.times],
        "frames": [[float(x) for x in row] for row in animation.values],
        "meta": animation.meta,
    }
    Path(path).write_text(json.dumps(doc))
