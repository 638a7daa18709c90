"""Camera presets and the three-point lighting rig, both derived from the head's own landmarks.

Poses are 4x4 camera-to-world matrices in OpenGL's convention (the camera looks down its -z
axis, +y up), which is what pyrender takes and what the PyTorch3D backend converts from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class CameraPreset:
    """Where a preset looks from.

    Attributes
    ----------
    yaw : float
        Degrees around the vertical axis; 0 looks straight at the face, 90 from the face's left.
    pitch : float
        Degrees above the face (positive looks down on it).
    target : str
        Landmark to aim at (``face_centre`` or ``mouth``).
    span : float
        How much fits vertically in the frame, in head heights (or mouth widths for ``mouth``).
    """

    yaw: float
    pitch: float
    target: str
    span: float
    description: str = ""


PRESETS = {
    "front": CameraPreset(0.0, 2.0, "face_centre", 1.0, "the whole face, straight on"),
    "three_quarter": CameraPreset(35.0, 6.0, "face_centre", 1.12, "turned 35 degrees, the usual portrait view"),
    "mouth": CameraPreset(0.0, 3.0, "mouth", 1.45, "a close-up of the lips, teeth and tongue"),
    "profile": CameraPreset(90.0, 2.0, "face_centre", 1.15, "from the side, for jaw and lip protrusion"),
}
ALIASES = {"three-quarter": "three_quarter", "3/4": "three_quarter", "closeup": "mouth",
           "mouth_closeup": "mouth", "close-up": "mouth", "side": "profile"}

YFOV = np.deg2rad(22.0)


def preset(name: str) -> CameraPreset:
    key = ALIASES.get(name, name)
    if key not in PRESETS:
        raise InputError(f"unknown camera {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[key]


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Camera-to-world pose (4, 4) at ``eye`` looking at ``target`` (OpenGL: looks along -z)."""
    eye, target, up = (np.asarray(a, np.float64) for a in (eye, target, up))
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    true_up = np.cross(back, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, true_up, back, eye
    return pose


def camera_pose(rig, name: str, *, aspect: float = 1.0) -> tuple[np.ndarray, float]:
    """Pose and vertical field of view (radians) of a preset for a :class:`~flamesync.render.rig.HeadRig`.

    The camera distance makes ``span`` head heights (or mouth widths) fill the frame height.
    """
    p = preset(name)
    target = np.asarray(rig.landmarks[p.target], np.float64).copy()
    extent = p.span * (rig.mouth_width if p.target == "mouth" else rig.head_size * 0.62)
    if p.target == "face_centre":
        target[1] -= 0.05 * rig.head_size  # eyes-to-chin, so the chin stays in frame
        # turned views aim deeper into the head, so the skull rather than the nose is centred
        depth = float(rig.landmarks["front"] - rig.landmarks["head_centre"][2])
        target[2] -= 0.3 * depth * abs(np.sin(np.deg2rad(p.yaw)))
    dist = 0.5 * extent / np.tan(0.5 * YFOV) / min(1.0, aspect)
    yaw, pitch = np.deg2rad(p.yaw), np.deg2rad(p.pitch)
    direction = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    return look_at(target + dist * direction, target), float(YFOV)


# Three-point lighting in the camera's frame (x right, y up, z towards the viewer): a warm key
# high on the camera's left, a cool fill low on the right, and a rim light from behind.
LIGHTS = (
    {"name": "key", "direction": (-0.55, 0.55, 0.63), "color": (1.0, 0.96, 0.9), "intensity": 3.2},
    {"name": "fill", "direction": (0.7, 0.05, 0.7), "color": (0.85, 0.9, 1.0), "intensity": 1.4},
    {"name": "rim", "direction": (0.35, 0.6, -0.72), "color": (1.0, 1.0, 1.0), "intensity": 2.2},
)
AMBIENT = 0.16
BACKGROUND = (0.16, 0.17, 0.19)


def light_poses(cam_pose: np.ndarray) -> list[tuple[dict, np.ndarray]]:
    """World poses of the directional lights; each light shines along its pose's -z axis."""
    out = []
    for light in LIGHTS:
        d = np.asarray(light["direction"], np.float64)
        d /= np.linalg.norm(d)  # direction from the subject towards the light, camera frame
        world = cam_pose[:3, :3] @ d
        pose = look_at(cam_pose[:3, 3] * 0 + world, np.zeros(3),
                       up=(0, 1, 0) if abs(world[1]) < 0.95 else (0, 0, 1))
        out.append((light, pose))
    return out


def project(points: np.ndarray, pose: np.ndarray, yfov: float, width: int, height: int) -> np.ndarray:
    """Pixel coordinates (column, row) of world points seen by a camera, shape (N, 2).

    Parameters
    ----------
    points : (N, 3)
    pose : (4, 4) camera-to-world (OpenGL convention)
    yfov : float, radians
    width, height : int
    """
    p = np.asarray(points, np.float64).reshape(-1, 3)
    local = (p - pose[:3, 3]) @ pose[:3, :3]  # world to camera axes
    f = 0.5 * height / np.tan(0.5 * yfov)
    col = 0.5 * width + f * local[:, 0] / -local[:, 2]
    row = 0.5 * height - f * local[:, 1] / -local[:, 2]
    return np.stack([col, row], -1)
