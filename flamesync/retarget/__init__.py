"""Retargeting: drive FLAME and any user head from the same ARKit-52 animation.

* :func:`retarget_head` registers the default head onto a head mesh (landmarks + non-rigid ICP)
  and transfers its 52 ARKit blendshapes and jaw, giving a
  :class:`~flamesync.face.base.BlendshapeFace` for that mesh.
* :func:`fit_flame_map` / :func:`flame_map` fit (and cache) the linear map from ARKit weights to
  a FLAME model's expression coefficients and jaw pose; :func:`to_flame` applies it per frame.
* :func:`animation_for_face` converts an ARKit animation into what a face model takes.
"""

from .flame_fit import FlameMap, animation_for_face, fit_flame_map, flame_map, to_flame
from .head import RetargetResult, format_report, retarget_head
from .landmarks import LANDMARK_NAMES, LandmarkError, detect_landmarks, read_landmark_file

__all__ = [
    "retarget_head", "RetargetResult", "format_report",
    "FlameMap", "fit_flame_map", "flame_map", "to_flame", "animation_for_face",
    "detect_landmarks", "read_landmark_file", "LandmarkError", "LANDMARK_NAMES",
]
