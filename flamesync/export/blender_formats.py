"""FBX, Alembic and USD, written by Blender itself (see :mod:`.blender_bridge`).

flamesync hands Blender a scene description (mesh, shape keys, per-frame weights, jaw, audio) and
Blender's own exporters write the file, so the result opens in Blender, Maya, Unreal, Houdini and
USD tools the way files from Blender do:

- FBX and USD: the mesh with one shape key per face channel (all names, empty ones included),
  keyed once per frame; an explicit jaw rotation (and a head rotation, on faces with a head joint)
  becomes bones of an armature; scene frame rate = the animation's. Frame ``i`` is scene frame
  ``1 + i``.
- Alembic: the evaluated mesh on every frame (a vertex cache), i.e. flamesync's vertices.
- ``.blend``: the Blender scene itself, with the audio as a sound strip.

The audio is copied beside the output as ``<stem>.wav`` (these formats have no audio track); the
Blender scene also holds it as a sound strip.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..animation import Animation
from .blender_bridge import run_script, scratch_dir
from .rig import carry_audio, rig_from_face, take_for

# flamesync is y-up; Blender is z-up: (x, y, z) -> (x, -z, y), a proper rotation.
Y_UP_TO_Z_UP = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float32)


def to_blender(a: np.ndarray) -> np.ndarray:
    """Points, offsets or rotation vectors (..., 3) from flamesync's y-up frame to Blender's z-up."""
    return np.asarray(a, np.float32) @ Y_UP_TO_Z_UP.T


def scene_arrays(animation: Animation, face, *, audio: Path | None, name: str) -> tuple[dict, dict]:
    """The arrays and JSON header ``build_scene.py`` reads."""
    rig = rig_from_face(face)
    take = take_for(animation, rig)
    data = {
        "vertices": to_blender(rig.template),
        "faces": rig.faces.astype(np.int32),
        "deltas": to_blender(rig.deltas),
        "weights": take.weights.astype(np.float32),
    }
    if take.jaw is not None:
        data["jaw_rotation"] = to_blender(take.jaw)
        data["jaw_pivot"] = to_blender(rig.jaw_pivot)
        data["jaw_weights"] = rig.jaw_weights.astype(np.float32)
    if take.head is not None:
        data["head_rotation"] = to_blender(take.head)
        data["head_pivot"] = to_blender(rig.head_pivot)
        data["head_weights"] = rig.head_weights.astype(np.float32)
    header = {
        "name": name,
        "names": list(rig.names),
        "n_frames": take.n_frames,
        "fps": take.fps,
        "audio": None if audio is None else str(audio.resolve()),
        "audio_offset": take.audio_offset,
        "action": f"{name}_speech",
    }
    return data, header


def write(animation: Animation, path, *, face=None, audio_path=None, fmt=None, dest=None, **_):
    dest = Path(dest or path)
    suffix = fmt.suffix if fmt is not None else dest.suffix.lower()
    # Resolve the face before touching anything so bad faces fail fast and leave nothing behind.
    data, header = scene_arrays(animation, face, audio=None, name="face")
    audio = carry_audio(audio_path, dest)
    if audio is not None:
        from ..fileio import pending

        header["audio"] = str(audio.resolve())
        # Inside the export's transaction the carried copy is still a part file (a random name);
        # Blender reads the source itself when the copy is verbatim (a WAV), so that the names it
        # records are the same on every run, else the part; the scene refers to the final name.
        part = pending(audio)
        source = Path(audio_path) if audio_path else None
        if part is None:
            source = audio
        elif source is None or source.suffix.lower() != ".wav" or not source.is_file():
            source = part
        header["audio_source"] = str(source.resolve())
    # The carried audio is committed with the output by export()'s transaction, so a failed
    # Blender run leaves neither.
    with scratch_dir() as tmp:
        scene = Path(tmp) / "scene.npz"
        np.savez(scene, header=np.array(json.dumps(header)), **data)
        run_script("build_scene.py", [scene, Path(path).resolve(), suffix], feature=f"{suffix} export")
    if not Path(path).is_file():
        from .blender_bridge import BlenderError

        raise BlenderError(f"Blender finished but wrote no {suffix} file")
