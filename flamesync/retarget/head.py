"""Give any head mesh the default head's 52 ARKit blendshapes and jaw: register, then transfer."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..face.base import BlendshapeFace
from . import geometry as geo
from .landmarks import Anchor, LandmarkError, detect_landmarks, positions, read_landmark_file
from .register import DEFAULT_SCHEDULE, Registration, register
from .transfer import transfer_rig


@dataclass
class RetargetResult:
    """What :func:`retarget_head` produced.

    Attributes
    ----------
    face : BlendshapeFace
        The target mesh with 52 ARKit blendshapes, jaw and head joints.
    registration : Registration
        The source deformed onto the target, with its residual.
    landmarks : dict of name to (3,)
        The target landmarks used.
    report : dict
        Registration residual and correspondence distances (mm), for printing.
    """

    face: BlendshapeFace
    registration: Registration
    landmarks: dict
    report: dict = field(default_factory=dict)


_SOURCE_LANDMARKS: "weakref.WeakKeyDictionary[BlendshapeFace, dict[str, Anchor]]" = weakref.WeakKeyDictionary()


def source_landmarks(source: BlendshapeFace) -> dict[str, Anchor]:
    """Landmarks of the source head (detected once per object)."""
    if source not in _SOURCE_LANDMARKS:
        _SOURCE_LANDMARKS[source] = detect_landmarks(source.template, source.faces, parts=source.parts,
                                                     name=source.name)
    return _SOURCE_LANDMARKS[source]


def retarget_head(
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    source: BlendshapeFace | None = None,
    landmarks: "dict[str, np.ndarray] | str | Path | None" = None,
    name: str = "retargeted",
) -> RetargetResult:
    """Build a :class:`BlendshapeFace` for a head mesh from the default head's rig.

    Parameters
    ----------
    vertices : (W, 3)
        Target head, metres. For automatic landmarks: y up, face along +z (FLAME's and the
        default head's frame); with user landmarks any pose and scale.
    faces : (G, 3) int
    source : BlendshapeFace, optional
        The head whose blendshapes are transferred (default: the default head).
    landmarks : dict, path or None
        Target landmarks as ``name -> (3,)`` positions, a JSON/CSV file
        (:func:`~flamesync.retarget.landmarks.read_landmark_file`), or None to find them.
    name : str

    Raises
    ------
    InputError
        Malformed mesh; landmarks not found (:class:`LandmarkError`) or malformed.
    """
    from ..face import default_head
    from ..progress import track

    tv = np.asarray(vertices, np.float64)
    tf = np.asarray(faces, np.int64)
    if tv.ndim != 2 or tv.shape[1] != 3 or len(tv) < 4 or not np.isfinite(tv).all():
        raise InputError(f"{name}: target vertices must be a finite (V, 3) array, got shape {tv.shape}")
    if tf.ndim != 2 or tf.shape[1] != 3 or len(tf) == 0 or tf.min() < 0 or tf.max() >= len(tv):
        raise InputError(f"{name}: target faces must be a (F, 3) array of vertex indices")
    if landmarks is None:
        target_lm = positions(detect_landmarks(tv, tf, name=name), tv)
    elif isinstance(landmarks, (str, Path)):
        target_lm = read_landmark_file(landmarks, tv)
    else:
        target_lm = {k: np.asarray(p, np.float64).reshape(3) for k, p in landmarks.items()}
    source = default_head() if source is None else source  # after the target checks: they fail fast
    src_lm = source_landmarks(source)
    missing = [k for k in ("eye_left", "eye_right", "nose_tip", "upper_lip", "lower_lip", "chin") if k not in target_lm]
    if len([k for k in src_lm if k in target_lm]) < 4:
        raise LandmarkError(f"{name}: too few known landmarks (have {', '.join(sorted(target_lm)) or 'none'}; "
                            f"missing {', '.join(missing)})")

    matchable = np.zeros(source.n_vertices, bool)
    if "skin" in source.parts:
        matchable[np.asarray(source.parts["skin"])] = True
    else:
        matchable[geo.connected_components(source.faces, source.n_vertices)[0]] = True
    iterations = 2
    steps = iter(track(range(len(DEFAULT_SCHEDULE) * iterations), desc="registering head"))
    reg = register(source.template, source.faces, src_lm, tv, tf, target_lm, matchable=matchable,
                   schedule=DEFAULT_SCHEDULE, iterations=iterations, progress=lambda: next(steps, None))
    for _ in steps:  # let the progress display close
        pass
    skin = reg.vertices[matchable]
    width = float(skin[:, 0].max() - skin[:, 0].min())
    rig = transfer_rig(source, reg.vertices, tv, tf, fade_start=0.01 * width, fade_stop=0.04 * width,
                      partner=reg.partner)
    near = rig["weight"] > 0.5
    dist_mm = rig["distance"] * 1000
    report = {
        "registration_mm": reg.residual_mm,
        "scale": reg.scale,
        "target_vertices": int(len(tv)),
        "target_with_offsets": int(near.sum()),
        "correspondence_mm": {
            "mean": float(dist_mm[near].mean()) if near.any() else float("nan"),
            "max": float(dist_mm[near].max()) if near.any() else float("nan"),
        },
        "landmarks": sorted(k for k in src_lm if k in target_lm),
    }
    face = BlendshapeFace(
        name=name,
        channels=tuple(source.channels),
        template=tv.astype(np.float32),
        faces=tf.astype(np.int32),
        deltas=rig["deltas"],
        jaw_pivot=rig["jaw_pivot"],
        jaw_weights=rig["jaw_weights"],
        parts=rig["parts"],
        head_pivot=rig["head_pivot"],
        head_weights=rig["head_weights"],
        meta={"retargeted_from": source.name, "retarget_report": report},
    )
    return RetargetResult(face=face, registration=reg, landmarks=target_lm, report=report)


def format_report(report: dict) -> str:
    """The registration part of a report as a few lines of text."""
    r = report["registration_mm"]
    c = report["correspondence_mm"]
    return (
        f"registration residual: mean {r['mean']:.2f} mm, median {r['median']:.2f} mm, max {r['max']:.2f} mm "
        f"({100 * r['matched']:.0f}% of the source skin matched); landmarks mean {r['landmarks_mean']:.2f} mm, "
        f"max {r['landmarks_max']:.2f} mm ({len(report['landmarks'])} landmarks)\n"
        f"correspondence: {report['target_with_offsets']} of {report['target_vertices']} target vertices "
        f"get offsets, distance to the registered source mean {c['mean']:.2f} mm, max {c['max']:.2f} mm"
    )
