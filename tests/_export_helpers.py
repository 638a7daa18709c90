"""Shared fixtures for the export tests: a small synthetic face and animations for it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from flamesync.animation import Animation
from flamesync.channels import ARKIT_52, JAW_ROTATION_IMPLIED
from flamesync.face.base import BlendshapeFace

REPO = Path(__file__).resolve().parents[1]
SHAPED = ("jawOpen", "mouthFunnel", "mouthSmileLeft", "eyeBlinkRight", "tongueOut")


def icosphere(subdivisions: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere vertices (V, 3) and faces (F, 3), counter-clockwise from outside."""
    t = (1 + 5 ** 0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
         (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
         (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
         (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(p, float) / np.linalg.norm(p) for p in v]
    faces = f
    for _ in range(subdivisions):
        cache: dict = {}
        new_faces = []

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new_faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new_faces
    return np.array(verts, np.float32), np.array(faces, np.int32)


def synthetic_face(*, radius: float = 0.1, empty: bool = False) -> BlendshapeFace:
    """A 162-vertex sphere 'head' with ARKit-52 channels, five real shapes and a jaw on its lower half."""
    v, f = icosphere(2)
    v = v * radius
    deltas = np.zeros((52, len(v), 3), np.float32)
    if not empty:
        rng = np.random.default_rng(0)
        lower = v[:, 1] < 0
        for name in SHAPED:
            k = ARKIT_52.index(name)
            mask = lower if name in ("jawOpen", "tongueOut", "mouthFunnel") else ~lower
            d = rng.normal(scale=0.01, size=(len(v), 3)).astype(np.float32)
            deltas[k][mask] = d[mask]
    jaw_w = np.clip(-v[:, 1] / radius * 2, 0, 1).astype(np.float32)
    return BlendshapeFace(
        name="sphere", channels=ARKIT_52, template=v, faces=f, deltas=deltas,
        jaw_pivot=np.array([0, 0.02, -0.03], np.float32), jaw_weights=jaw_w,
        parts={"upper_lip": np.array([0, 1]), "lower_lip": np.array([2, 3])},
    )


def synthetic_animation(n_frames: int = 24, *, fps: float = 30.0, jaw: str = "explicit",
                        audio_path: str | None = None, head: bool = False) -> Animation:
    """Smooth, distinct curves on the shaped channels, plus a jaw rotation."""
    t = np.arange(n_frames) / fps
    data = {}
    for i, name in enumerate(SHAPED):
        data[name] = 0.5 + 0.45 * np.sin(2 * np.pi * (0.7 + 0.3 * i) * t + i)
    data["browInnerUp"] = np.linspace(0, 1, n_frames)  # a channel the sphere has no shape for
    rot = np.zeros((n_frames, 3), np.float32)
    rot[:, 0] = 0.2 * (1 + np.sin(2 * np.pi * 1.3 * t))
    meta = {"source": "test"}
    if jaw == "implied":
        meta["jaw_rotation"] = JAW_ROTATION_IMPLIED
    head_rot = None
    if head:
        head_rot = np.stack([0.1 * np.sin(2 * np.pi * t), 0.2 * np.sin(2 * np.pi * 0.5 * t), 0.05 * t], 1)
    return Animation.from_channels(fps=fps, data=data, jaw=rot, head=head_rot, audio_path=audio_path, meta=meta)


def write_tone(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    return path


def gltf_validator() -> list[str] | None:
    """The command running tools/validate_gltf.mjs, or None when node or the package is missing."""
    node = shutil.which("node")
    script = REPO / "tools" / "validate_gltf.mjs"
    if node is None or not (REPO / "tools" / "node_modules" / "gltf-validator").is_dir():
        return None
    return [node, str(script)]


def validate_gltf(path: Path) -> dict:
    cmd = gltf_validator()
    assert cmd is not None
    out = subprocess.run(cmd + [str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
