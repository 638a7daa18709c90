"""Vertex sequences: one ``.npz`` with every frame, or folders of OBJ / PLY frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..animation import Animation
from ..errors import InputError


def _geometry(animation: Animation, face):
    from ..face import load_face

    model = load_face(face)
    return model, model.animate(animation)


def write(animation: Animation, path: Path, *, face=None, audio_path=None, fmt=None, audio_label=None, **_):
    model, verts = _geometry(animation, face)
    audio_path = audio_label or audio_path  # only recorded here, never read
    suffix = fmt.suffix if fmt is not None else Path(path).suffix
    if suffix == ".meshes.npz":
        write_npz(path, verts, model.faces, fps=animation.fps, audio_path=audio_path,
                  audio_offset=animation.audio_offset)
    elif suffix in (".obj", ".ply"):
        writer = write_obj if suffix == ".obj" else write_ply
        if len(verts) == 1:
            writer(path, verts[0], model.faces)
        else:
            path.mkdir()
            digits = max(5, len(str(len(verts) - 1)))
            for i, v in enumerate(verts):
                writer(path / f"frame_{i:0{digits}d}{suffix}", v, model.faces)
            (path / "sequence.json").write_text(json.dumps(
                {"fps": animation.fps, "n_frames": len(verts), "audio_path": audio_path,
                 "audio_offset": animation.audio_offset}, indent=1))
    else:
        raise InputError(f"mesh sequence writer cannot write {suffix}")


def write_npz(path, vertices: np.ndarray, faces: np.ndarray, *, fps: float, audio_path=None, audio_offset=0.0):
    """Write vertices (T, V, 3) float32, faces (F, 3) int32 and the frame rate to one ``.npz``."""
    with open(path, "wb") as fh:
        np.savez_compressed(
            fh, vertices=np.asarray(vertices, np.float32), faces=np.asarray(faces, np.int32),
            fps=np.float32(fps), audio_path=np.array(audio_path or ""), audio_offset=np.float32(audio_offset),
        )


def write_obj(path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write one mesh as Wavefront OBJ (1-based indices, metres)."""
    lines = ["# flamesync mesh, metres, y up"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices, np.float64)]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in np.asarray(faces)]
    Path(path).write_text("\n".join(lines) + "\n")


def write_ply(path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write one mesh as binary little-endian PLY."""
    v = np.asarray(vertices, "<f4")
    f = np.asarray(faces, "<i4")
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment flamesync mesh, metres, y up\n"
        f"element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    rec = np.zeros(len(f), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    rec["n"] = 3
    rec["idx"] = f
    with open(path, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(v.tobytes())
        fh.write(rec.tobytes())
