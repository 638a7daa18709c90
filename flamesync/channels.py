"""Channel names: the 52 ARKit blendshapes and the rotation channels.

The ARKit names are Apple's ``ARFaceAnchor.BlendShapeLocation`` identifiers, spelled exactly as
ARKit, Live Link Face and most character tools spell them. Rotations are stored as axis-angle
vectors in radians, one channel per component, in the face model's local frame
(x right, y up, z forward out of the face).
"""

ARKIT_52: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
assert len(ARKIT_52) == 52 and len(set(ARKIT_52)) == 52

# The ARKit channels that speech moves; the network predicts these and leaves the others at zero.
SPEECH_CHANNELS: tuple[str, ...] = tuple(
    c for c in ARKIT_52 if c.startswith(("jaw", "mouth", "cheek", "tongue"))
)

# Gaze is carried by the eight eyeLook* weights (as ARKit and Live Link Face carry it); a weight of
# 1 stands for an eye rotation of EYE_LOOK_DEGREES. Exporters that write eye angles (Live Link
# Face's eye yaw/pitch columns) convert with this factor, the expressive gaze layer writes with it.
EYE_LOOK_DEGREES: float = 30.0

JAW_ROTATION: tuple[str, str, str] = ("jaw.rx", "jaw.ry", "jaw.rz")
HEAD_ROTATION: tuple[str, str, str] = ("head.rx", "head.ry", "head.rz")
# Eye joint rotations, for faces whose eyes are joints (FLAME's eye pose); ARKit faces carry gaze in
# the eyeLook* weights instead, from which these are derived (:func:`eye_rotations`).
EYE_LEFT_ROTATION: tuple[str, str, str] = ("eyeLeft.rx", "eyeLeft.ry", "eyeLeft.rz")
EYE_RIGHT_ROTATION: tuple[str, str, str] = ("eyeRight.rx", "eyeRight.ry", "eyeRight.rz")
ROTATION_GROUPS: dict[str, tuple[str, str, str]] = {"jaw": JAW_ROTATION, "head": HEAD_ROTATION,
                                                    "eyeLeft": EYE_LEFT_ROTATION, "eyeRight": EYE_RIGHT_ROTATION}
# The gaze weights in the order eye_yaw_pitch reads them.
EYE_LOOK_CHANNELS: tuple[str, ...] = tuple(f"eyeLook{d}{side}" for side in ("Left", "Right")
                                           for d in ("Out", "In", "Down", "Up"))


def eye_yaw_pitch(look):
    """Per-eye gaze angles from the ``eyeLook*`` weights.

    Parameters
    ----------
    look : np.ndarray, shape (T, 8)
        The weights of :data:`EYE_LOOK_CHANNELS`, in that order.

    Returns
    -------
    np.ndarray, shape (T, 4), float32, radians
        Left yaw, left pitch, right yaw, right pitch (yaw positive toward the face's left, pitch
        positive down). Looking to the face's left turns the left eye out and the right eye in.
    """
    import numpy as np

    w = np.asarray(look, np.float64)
    full = np.radians(EYE_LOOK_DEGREES)
    left_yaw, left_pitch = (w[:, 0] - w[:, 1]) * full, (w[:, 2] - w[:, 3]) * full
    right_yaw, right_pitch = (w[:, 5] - w[:, 4]) * full, (w[:, 6] - w[:, 7]) * full
    return np.stack([left_yaw, left_pitch, right_yaw, right_pitch], axis=1).astype(np.float32)


def eye_rotations(look):
    """Axis-angle eye joint rotations from the ``eyeLook*`` weights.

    Each eye turns by its yaw about +y (toward the face's left), then by its pitch about +x
    (down), in the head's frame (y up, z out of the face).

    Parameters
    ----------
    look : np.ndarray, shape (T, 8)
        The weights of :data:`EYE_LOOK_CHANNELS`.

    Returns
    -------
    left, right : np.ndarray, shape (T, 3) each, float32, radians
    """
    import numpy as np

    from .numeric import quat_multiply, quat_to_rotvec, rotvec_to_quat

    angles = eye_yaw_pitch(look).astype(np.float64)
    out = []
    for yaw, pitch in ((angles[:, 0], angles[:, 1]), (angles[:, 2], angles[:, 3])):
        zeros = np.zeros_like(yaw)
        q_yaw = rotvec_to_quat(np.stack([zeros, yaw, zeros], axis=1))
        q_pitch = rotvec_to_quat(np.stack([pitch, zeros, zeros], axis=1))
        out.append(quat_to_rotvec(quat_multiply(q_yaw, q_pitch)).astype(np.float32))
    return out[0], out[1]


def parse_assignments(text: str) -> dict[str, float]:
    """Parse ``"jawOpen=1,mouthFunnel=0.5"`` into a dict, with a clear error on bad syntax."""
    from .errors import InputError

    out: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"expected NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"value for {name.strip()!r} is not a number: {value!r}") from None
    return out

# Jaw opening is carried by the ARKit ``jawOpen`` weight. Producers (teacher, network) also emit the
# jaw rotation that weight implies, jaw.rx = JAW_OPEN_RAD * jawOpen (positive rx opens the mouth),
# for skeletal rigs and FLAME, and mark the animation with meta["jaw_rotation"] = "implied": a
# consumer applies either the weights or the rotation, never both. The default head measures this
# angle from its own jawOpen shape (see flamesync.face.makehuman): 0.340 rad (19.5 degrees), the
# rotation about its jaw joint that best matches what jawOpen does to the lower teeth.
JAW_OPEN_RAD: float = 0.34
JAW_ROTATION_IMPLIED = "implied"
