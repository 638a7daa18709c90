"""FLAME parameters per frame (``.flame.npz``) for a FLAME face model.

Arrays written (``T`` frames)::

    expression   (T, n_expr)  float32   FLAME expression coefficients
    jaw_pose     (T, 3)       float32   axis-angle, radians
    neck_pose    (T, 3)       float32   zero (flamesync's head rotation drives the global joint)
    global_pose  (T, 3)       float32   head rotation, or zero
    eye_pose     (T, 6)       float32   left then right eye: the gaze (eyeLook* weights) as joint rotations
    shape        (n_shape,)   float32   identity coefficients (zero: the model's template)
    fps, audio_offset         float32
    audio                     str       the audio copied beside the file ("" if none)
    header                    str       JSON: format, channel names, frame count, source meta

Where the expression comes from, in order: the animation's own FLAME channels (``exp000`` ...,
what a FLAME model's ``channels`` are); else the model's ``expression_from_arkit(weights)`` mapping
of ARKit-52 weights. The jaw pose is the animation's jaw rotation. With ARKit input and an implied
rotation, ``jawOpen`` is zeroed before mapping so the jaw opens once (by the pose), not twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..animation import Animation
from ..channels import ARKIT_52, EYE_LOOK_CHANNELS, JAW_ROTATION_IMPLIED, eye_rotations
from ..errors import InputError
from .rig import carry_audio


def is_flame(model) -> bool:
    """True for a FLAME model (flamesync's FlameModel, or anything with its parameter layout)."""
    try:
        from ..face.flame import FlameModel

        if isinstance(model, FlameModel):
            return True
    except ImportError:
        pass
    return all(hasattr(model, a) for a in ("n_expr", "n_shape", "forward_full"))


def flame_parameters(animation: Animation, model) -> dict[str, np.ndarray]:
    """FLAME parameter arrays for every frame of ``animation`` on ``model`` (see module doc)."""
    if not is_flame(model):
        raise InputError(
            f"FLAME parameters need a FLAME face model (--face flame:/path/to/generic_model.pkl), "
            f"not {getattr(model, 'name', type(model).__name__)!r}"
        )
    T = animation.n_frames
    n_expr, n_shape = int(model.n_expr), int(model.n_shape)
    channels = tuple(model.channels)
    jaw = animation.jaw
    if any(c in animation.channels for c in channels):
        expression = animation.weights(channels)
    elif any(c in animation.channels for c in ARKIT_52) and hasattr(model, "expression_from_arkit"):
        weights = animation.weights(ARKIT_52)
        if jaw is not None and animation.meta.get("jaw_rotation") == JAW_ROTATION_IMPLIED:
            weights[:, ARKIT_52.index("jawOpen")] = 0.0
        expression = np.asarray(model.expression_from_arkit(weights), np.float32)
    else:
        raise InputError(
            f"the animation has no FLAME expression channels ({channels[0]}...) and this FLAME model "
            "has no ARKit mapping; animate with --face flame:PATH or retarget the animation first"
        )
    if expression.shape != (T, n_expr):
        raise InputError(f"FLAME expression must have shape {(T, n_expr)}, got {expression.shape}")
    zeros3 = np.zeros((T, 3), np.float32)
    left, right = animation.rotation("eyeLeft"), animation.rotation("eyeRight")
    if left is None and right is None and any(c in animation.channels for c in EYE_LOOK_CHANNELS):
        left, right = eye_rotations(animation.weights(EYE_LOOK_CHANNELS))
    eye_pose = np.concatenate([zeros3 if left is None else left, zeros3 if right is None else right], axis=1)
    return {
        "expression": expression.astype(np.float32),
        "jaw_pose": zeros3 if jaw is None else np.asarray(jaw, np.float32),
        "neck_pose": zeros3.copy(),
        "global_pose": zeros3 if animation.head is None else np.asarray(animation.head, np.float32),
        "eye_pose": eye_pose.astype(np.float32),
        "shape": np.zeros(n_shape, np.float32),
    }


def write(animation: Animation, path, *, face=None, audio_path=None, fmt=None, dest=None, **_):
    from ..face import load_face

    if face is None:
        raise InputError("FLAME parameters need a FLAME face model: pass --face flame:/path/to/generic_model.pkl")
    model = face if is_flame(face) else load_face(face)
    params = flame_parameters(animation, model)
    audio = carry_audio(audio_path, Path(dest or path))
    header = {
        "format": "flamesync.flame_params",
        "version": 1,
        "n_frames": animation.n_frames,
        "expression_channels": list(model.channels),
        "jaw_rotation": animation.meta.get("jaw_rotation", "explicit"),
        "meta": animation.meta,
    }
    with open(path, "wb") as fh:
        np.savez_compressed(
            fh, **params, fps=np.float32(animation.fps), audio_offset=np.float32(animation.audio_offset),
            audio=np.array("" if audio is None else audio.name), header=np.array(json.dumps(header)),
        )
