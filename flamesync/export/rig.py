"""What the scene exporters (glTF, Blender formats) need from a face model and an animation.

A :class:`Rig` is a face reduced to data every DCC tool understands: a neutral mesh, one offset
field per named shape key, and an optional jaw joint (pivot + per-vertex skin weight). A
:class:`Take` is an animation resolved against that rig: per-frame shape-key weights and, when the
animation carries an explicit (not implied) jaw rotation, the per-frame jaw rotation.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..animation import Animation
from ..channels import JAW_ROTATION_IMPLIED
from ..errors import InputError

# Offsets below this (metres) are numerical noise, not a shape.
_EMPTY_EPS = 1e-7


@dataclass(frozen=True)
class Rig:
    """A face as mesh + shape keys + jaw joint.

    Attributes
    ----------
    name : str
    template : (V, 3) float32, metres, y up
    faces : (F, 3) int32
    names : tuple of str, length K
    deltas : (K, V, 3) float32
    jaw_pivot : (3,) float32 or None
    jaw_weights : (V,) float32 or None
    head_pivot, head_weights : like the jaw, or None
    """

    name: str
    template: np.ndarray
    faces: np.ndarray
    names: tuple[str, ...]
    deltas: np.ndarray
    jaw_pivot: np.ndarray | None = None
    jaw_weights: np.ndarray | None = None
    head_pivot: np.ndarray | None = None
    head_weights: np.ndarray | None = None

    @property
    def n_vertices(self) -> int:
        return int(self.template.shape[0])

    def nonempty(self) -> np.ndarray:
        """Boolean mask (K,) of shape keys that move at least one vertex."""
        return np.abs(self.deltas).reshape(len(self.names), -1).max(axis=1) > _EMPTY_EPS

    @property
    def has_jaw(self) -> bool:
        return self.jaw_pivot is not None and self.jaw_weights is not None and bool(np.any(self.jaw_weights > 0))


@dataclass(frozen=True)
class Take:
    """An animation resolved against a rig.

    Attributes
    ----------
    fps : float
    weights : (T, K) float32, shape-key weights in ``rig.names`` order
    jaw : (T, 3) float32 axis-angle or None (None when absent or implied by the weights)
    head : (T, 3) float32 axis-angle or None
    audio_offset : float
    """

    fps: float
    weights: np.ndarray
    jaw: np.ndarray | None
    head: np.ndarray | None
    audio_offset: float

    @property
    def n_frames(self) -> int:
        return int(self.weights.shape[0])


def rig_from_face(face) -> Rig:
    """Reduce a face model (spec or :class:`FaceModel`) to a :class:`Rig`.

    A :class:`BlendshapeFace` gives its deltas directly. Any other model is probed: the shape of
    channel ``k`` is ``forward(e_k) - forward(0)``, exact for models linear in their expression
    weights (FLAME's expression space is). A model whose shapes are all empty is refused.
    """
    from ..face import load_face
    from ..face.base import BlendshapeFace

    model = load_face(face)
    names = tuple(model.channels)
    if not names:
        raise InputError(f"face model {model.name!r} has no expression channels to export")
    if isinstance(model, BlendshapeFace):
        deltas = np.asarray(model.deltas, np.float32)
    else:
        probe = np.vstack([np.zeros((1, len(names)), np.float32), np.eye(len(names), dtype=np.float32)])
        verts = model.vertices(probe)  # one batch: neutral, then each channel at 1
        deltas = (verts[1:] - verts[:1]).astype(np.float32)
    joints = _skeleton_joints(model)
    rig = Rig(
        name=str(getattr(model, "name", "face")),
        template=np.ascontiguousarray(model.template, np.float32),
        faces=np.ascontiguousarray(model.faces, np.int32),
        names=names,
        deltas=np.ascontiguousarray(deltas, np.float32),
        jaw_pivot=_opt(getattr(model, "jaw_pivot", joints.get("jaw_pivot"))),
        jaw_weights=_opt(getattr(model, "jaw_weights", joints.get("jaw_weights"))),
        head_pivot=_opt(getattr(model, "head_pivot", joints.get("head_pivot"))),
        head_weights=_opt(getattr(model, "head_weights", joints.get("head_weights"))),
    )
    if rig.deltas.shape != (len(names), rig.n_vertices, 3):
        raise InputError(f"face model {rig.name!r} has shape deltas of shape {rig.deltas.shape}, "
                         f"expected {(len(names), rig.n_vertices, 3)}")
    if not rig.nonempty().any():
        raise InputError(f"face model {rig.name!r} has no usable shapes (every shape key is empty)")
    return rig


def _skeleton_joints(model) -> dict:
    """Jaw and head joints of a FLAME-style skeleton (joints 0 global, 1 neck, 2 jaw, 3-4 eyes).

    With only the jaw and global poses set, FLAME's skinning is "jaw about joint 2 with the jaw
    skin weights, then everything about joint 0", which is the rig's jaw-then-head model; FLAME's
    pose correctives are not carried (DCC rigs have no equivalent), so exported jaw motion differs
    from flamesync's FLAME vertices by those small corrective offsets.
    """
    reg = getattr(model, "J_regressor", None)
    w = getattr(model, "lbs_weights", None)
    if reg is None or w is None or getattr(model, "jaw_pivot", None) is not None:
        return {}
    w = np.asarray(w, np.float64)
    if w.ndim != 2 or w.shape[1] < 3:
        return {}
    joints = np.asarray(reg @ np.asarray(model.template, np.float64))
    return {"jaw_pivot": joints[2], "jaw_weights": w[:, 2], "head_pivot": joints[0],
            "head_weights": np.ones(len(w))}


def _opt(a):
    return None if a is None else np.asarray(a, np.float32)


def take_for(animation: Animation, rig: Rig) -> Take:
    """Resolve ``animation`` against ``rig``: weights in rig order, explicit jaw rotation only."""
    if animation.n_frames == 0:
        raise InputError("the animation has no frames")
    known = set(rig.names) | {"jaw.rx", "jaw.ry", "jaw.rz", "head.rx", "head.ry", "head.rz"}
    if not any(c in known for c in animation.channels):
        raise InputError(
            f"none of the animation's channels ({', '.join(animation.channels[:4])}...) "
            f"drive face model {rig.name!r}"
        )
    jaw = animation.jaw
    if animation.meta.get("jaw_rotation") == JAW_ROTATION_IMPLIED:
        jaw = None  # jawOpen already opens the mouth; the rotation is for skeletal consumers only
    if jaw is not None and not rig.has_jaw:
        jaw = None
    head = animation.head if rig.head_pivot is not None else None
    return Take(
        fps=animation.fps,
        weights=animation.weights(rig.names),
        jaw=None if jaw is None else np.asarray(jaw, np.float32),
        head=None if head is None else np.asarray(head, np.float32),
        audio_offset=animation.audio_offset,
    )




# ---------------------------------------------------------------------------------------- audio
def carried_audio_path(dest: str | Path) -> Path:
    """Where the audio carried with ``dest`` goes: ``<first part of dest's name>.wav`` beside it."""
    dest = Path(dest)
    stem = dest.name.split(".")[0] or dest.stem
    return dest.with_name(stem + ".wav")


def carry_audio(audio_path, dest: Path) -> Path | None:
    """Copy the audio next to ``dest`` as ``<dest stem>.wav`` (WAV kept as is, others converted).

    Returns the copy's path, or None when there is no audio. The copy is what every export
    references, so the output folder plays back in sync on its own.
    """
    from ..fileio import atomic_path, pending

    if not audio_path:
        return None
    src = Path(audio_path)
    dest = Path(dest)
    out = carried_audio_path(dest)
    if src.resolve() == out.resolve() and (out.exists() or pending(out) is not None):
        return out
    if pending(out) is not None:
        return out  # already carried for another output of the same command (same audio)
    # Audio written earlier in the same command (the speech of 'say') is still a part file.
    src = pending(src) or src
    if not src.is_file():
        raise InputError(f"audio file to carry with the export not found: {src}")

    with atomic_path(out) as tmp:
        if src.suffix.lower() == ".wav":
            shutil.copyfile(src, tmp)
        else:
            _convert_to_wav(src, tmp)
    return out


def _convert_to_wav(src: Path, dest: Path, *, block_frames: int = 1 << 18) -> None:
    """Write ``src`` (any format flamesync reads) as 16-bit WAV at its own rate and channels.

    libsndfile formats are copied block by block, so an hour-long FLAC costs one block of memory;
    others are decoded whole (as :func:`flamesync.audio.io.load_audio` decodes them).
    """
    import soundfile as sf

    from ..audio.io import _open_info, _read

    info = _open_info(src)
    if info is None:
        samples, rate = _read(src)
        sf.write(str(dest), samples, rate, subtype="PCM_16", format="WAV")
        return
    _, rate, channels = info
    with sf.SoundFile(str(src)) as fin, sf.SoundFile(str(dest), "w", samplerate=rate, channels=channels,
                                                      subtype="PCM_16", format="WAV") as fout:
        for block in fin.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
            fout.write(block)
