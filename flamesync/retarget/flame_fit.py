"""ARKit-52 weights to FLAME expression coefficients and jaw pose: fit once per model, apply per frame.

The default head's 52 shapes are transferred onto the FLAME template (:func:`retarget_head`).
For each shape ``k`` a FLAME parameter set ``(psi_k, theta_k)`` is fitted that reproduces the
transferred shape: ``psi_k`` by ridge-regularised least squares (FLAME's vertices are affine in
the expression coefficients for a fixed pose), ``theta_k`` (the jaw rotation) only for the jaw
shapes, by minimising that least-squares residual over the rotation. Stacking them gives the
linear map ``psi = M_exp @ w``, ``theta = M_jaw @ w`` that :func:`to_flame` applies to each frame.

The map is cached in ``flamesync.cache.cache_dir("retarget")`` under a hash of the model's
arrays and of the source head, so each FLAME model is fitted once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..animation import Animation
from ..channels import (ARKIT_52, EYE_LEFT_ROTATION, EYE_LOOK_CHANNELS, EYE_RIGHT_ROTATION, HEAD_ROTATION,
                        JAW_OPEN_RAD, JAW_ROTATION, JAW_ROTATION_IMPLIED, eye_rotations)
from ..errors import InputError

#: Bump when the fit changes; part of the cache key.
MAP_VERSION = 1
#: ARKit shapes whose FLAME counterpart gets a jaw rotation.
JAW_SHAPES = ("jawOpen", "jawLeft", "jawRight")
DEFAULT_RIDGE = 1e-3


@dataclass
class FlameMap:
    """Linear map from ARKit-52 weights to FLAME parameters.

    Attributes
    ----------
    expression : (E, 52) float32
        ``psi = expression @ w``.
    jaw : (3, 52) float32
        ``jaw_pose = jaw @ w`` (axis-angle, radians).
    fit_error_mm : dict of str to (mean, max)
        Per ARKit shape: per-vertex distance (mm) between the transferred shape and the FLAME
        reproduction of it, over the vertices the shape moves by more than 0.1 mm.
    report : dict
        Registration report of the transfer.
    key : str
        Cache key (model hash).
    """

    expression: np.ndarray
    jaw: np.ndarray
    fit_error_mm: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    key: str = ""

    def apply(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FLAME expression ``(T, E)`` and jaw pose ``(T, 3)`` for ARKit weights ``(T, 52)``."""
        w = np.asarray(weights, np.float32)
        return w @ self.expression.T, w @ self.jaw.T

    def format(self, *, top: int | None = None) -> str:
        """Per-shape fit errors as text lines (worst first)."""
        rows = sorted(self.fit_error_mm.items(), key=lambda kv: -kv[1][1])
        if top is not None:
            rows = rows[:top]
        lines = [f"  {name:<20s} mean {m:6.2f} mm   max {x:6.2f} mm" for name, (m, x) in rows]
        means = np.array([m for m, _ in self.fit_error_mm.values()])
        lines.append(f"  all 52 shapes: mean of means {means.mean():.2f} mm, worst max "
                     f"{max(x for _, x in self.fit_error_mm.values()):.2f} mm")
        return "\n".join(lines)


# --------------------------------------------------------------------------- pure math
def ridge_solve(basis: np.ndarray, targets: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge least squares ``argmin_x |B x - y|^2 + lam |x|^2`` for several targets.

    Parameters
    ----------
    basis : (N, E)
    targets : (N, K)
    ridge : float
        ``lam`` relative to the mean diagonal of ``B^T B`` (scale-free).

    Returns
    -------
    (E, K)
    """
    b = np.asarray(basis, np.float64)
    gram = b.T @ b
    lam = ridge * float(np.trace(gram)) / max(gram.shape[0], 1)
    return np.linalg.solve(gram + lam * np.eye(gram.shape[0]), b.T @ np.asarray(targets, np.float64))


def expression_basis(flame, jaw_pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FLAME vertices as an affine function of the expression at a fixed jaw pose.

    With the pose fixed, FLAME's output is affine in the expression coefficients (joints are
    linear in them and skinning is linear in the vertices), so two evaluations per component
    recover it exactly.

    Parameters
    ----------
    flame : FlameModel
    jaw_pose : (3,) tensor (may require grad)

    Returns
    -------
    basis : (V * 3, E) tensor
    offset : (V * 3,) tensor, the vertices at zero expression
    """
    n = flame.n_expr
    expr = torch.cat([torch.zeros(1, n), torch.eye(n)], 0)
    jaw = jaw_pose.reshape(1, 3).expand(n + 1, 3)
    verts = flame.forward_full(expression=expr, jaw_pose=jaw)  # (E + 1, V, 3)
    offset = verts[0].reshape(-1)
    return (verts[1:].reshape(n, -1) - offset).T, offset


def _fit_shape(flame, target: torch.Tensor, mask: torch.Tensor, ridge: float, jaw0: np.ndarray | None):
    """Fit ``(psi, theta)`` to one target vertex set; theta stays zero unless ``jaw0`` is given."""

    def solve(theta):
        basis, offset = expression_basis(flame, theta)
        b = basis[mask]
        y = (target.reshape(-1) - offset)[mask]
        gram = b.T @ b
        lam = ridge * torch.trace(gram) / gram.shape[0]
        psi = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), b.T @ y)
        return psi, ((b @ psi - y) ** 2).sum() + lam * (psi ** 2).sum()

    if jaw0 is None:
        with torch.no_grad():
            psi, _ = solve(torch.zeros(3))
        return psi, torch.zeros(3)
    theta = torch.tensor(jaw0, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=40, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = solve(theta)[1]
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        psi, _ = solve(theta)
    return psi, theta.detach()


# --------------------------------------------------------------------------- fitting and caching
def model_key(flame, source=None) -> str:
    """Hash of the FLAME model's arrays, the source head and the fit version."""
    h = hashlib.sha256()
    for name in ("v_template", "shapedirs", "J_regressor", "lbs_weights", "kintree_table", "f"):
        arr = np.ascontiguousarray(getattr(flame, name))
        h.update(name.encode() + str(arr.shape).encode() + str(arr.dtype).encode())
        h.update(arr.tobytes())
    h.update(f"n_shape={flame.n_shape};v={MAP_VERSION}".encode())
    if source is not None:
        h.update(np.ascontiguousarray(source.template, np.float32).tobytes())
        h.update(np.ascontiguousarray(source.deltas, np.float32).tobytes())
    return h.hexdigest()[:24]


def fit_flame_map(flame, *, source=None, ridge: float = DEFAULT_RIDGE, landmarks=None) -> FlameMap:
    """Fit the ARKit-52 to FLAME map for one FLAME model (no cache; see :func:`flame_map`).

    Parameters
    ----------
    flame : FlameModel
    source : BlendshapeFace, optional
        The ARKit head (default: the default head).
    ridge : float
        Ridge regulariser relative to the basis' mean squared norm.
    landmarks : optional
        Landmarks on the FLAME template (see :func:`retarget_head`); found automatically by default.
    """
    from ..face import default_head
    from ..progress import track
    from .head import retarget_head

    source = default_head() if source is None else source
    missing = [c for c in ARKIT_52 if c not in source.channels]
    if missing:
        raise InputError(f"source head lacks ARKit channels: {', '.join(missing[:5])}")
    with torch.no_grad():
        template = flame.forward_full(batch_size=1)[0].double().numpy()
    result = retarget_head(template, flame.faces, source=source, landmarks=landmarks, name="FLAME template")
    deltas = result.face.deltas  # (K, V, 3) in source channel order
    order = [source.channels.index(c) for c in ARKIT_52]
    exp = np.zeros((flame.n_expr, 52), np.float32)
    jaw = np.zeros((3, 52), np.float32)
    errors = {}
    tmpl = torch.from_numpy(template).float()
    for k, name in enumerate(track(ARKIT_52, desc="fitting FLAME map")):
        d = deltas[order[k]].astype(np.float64)
        moved = np.linalg.norm(d, axis=1) > 1e-4
        target = tmpl + torch.from_numpy(d).float()
        mask = torch.ones(template.shape[0] * 3, dtype=torch.bool)
        jaw0 = None
        if name in JAW_SHAPES:
            jaw0 = np.array([JAW_OPEN_RAD if name == "jawOpen" else 0.0, 0.0, 0.0], np.float32)
        psi, theta = _fit_shape(flame, target, mask, ridge, jaw0)
        exp[:, k] = psi.numpy()
        jaw[:, k] = theta.numpy()
        with torch.no_grad():
            rec = flame.forward_full(expression=psi[None], jaw_pose=theta[None])[0].double().numpy()
        err = np.linalg.norm(rec - (template + d), axis=1) * 1000
        sel = err[moved] if moved.any() else err
        errors[name] = (float(sel.mean()), float(sel.max()))
    return FlameMap(exp, jaw, errors, result.report, model_key(flame, source))


def flame_map(flame, *, source=None, ridge: float = DEFAULT_RIDGE, refit: bool = False, landmarks=None) -> FlameMap:
    """The cached map for ``flame`` (fitted and stored on first use).

    Parameters
    ----------
    flame : FlameModel
    source : BlendshapeFace, optional
        The ARKit head (default: the default head).
    ridge : float
    refit : bool
        Fit again even if a map is cached.
    landmarks : dict, path or None
        Landmarks on the FLAME template (see :func:`~flamesync.retarget.head.retarget_head`), for
        models whose landmarks are not found automatically. None uses the cached map whatever
        landmarks it was fitted with; given, a map cached with other landmarks is fitted again
        (and replaces it, so later calls without landmarks get it).
    """
    from ..cache import cache_dir
    from ..fileio import atomic_path

    key = model_key(flame, source if source is not None else _default_source())
    path = cache_dir("retarget") / f"flame-map-{key}-r{ridge:g}.npz"
    tag = _landmarks_tag(landmarks)
    if path.is_file() and not refit:
        try:
            with np.load(path, allow_pickle=False) as z:
                info = json.loads(str(z["info"]))
                if landmarks is None or info.get("landmarks") == tag:
                    return FlameMap(z["expression"], z["jaw"], {k: tuple(v) for k, v in info["errors"].items()},
                                    info["report"], key)
        except Exception:  # a damaged cache entry is rebuilt, not fatal
            pass
    fm = fit_flame_map(flame, source=source, ridge=ridge, landmarks=landmarks)
    fm.key = key
    info = json.dumps({"errors": fm.fit_error_mm, "report": fm.report, "version": MAP_VERSION, "landmarks": tag})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, expression=fm.expression, jaw=fm.jaw, info=np.array(info))
    return fm


def _landmarks_tag(landmarks) -> str | None:
    """A hash of user landmarks (a file's bytes or the positions), recorded with the cached map."""
    if landmarks is None:
        return None
    h = hashlib.sha256()
    if isinstance(landmarks, (str, Path)):
        path = Path(landmarks)
        if not path.is_file():
            raise InputError(f"landmark file not found: {path}")
        h.update(path.read_bytes())
    else:
        for name in sorted(landmarks):
            h.update(name.encode() + np.asarray(landmarks[name], np.float64).tobytes())
    return h.hexdigest()[:16]


def _default_source():
    from ..face import default_head

    return default_head()


# --------------------------------------------------------------------------- per-frame use
def to_flame(animation: Animation, flame, *, mapping: FlameMap | None = None, landmarks=None) -> Animation:
    """Convert an ARKit animation into FLAME parameters.

    Parameters
    ----------
    animation : Animation
        ARKit-52 weights (absent channels count as zero), optional ``jaw.*`` and ``head.*``.
    flame : FlameModel
    mapping : FlameMap, optional
        Default: :func:`flame_map` of ``flame`` (cached).
    landmarks : dict, path or None
        Landmarks on the FLAME template for fitting the default map (see :func:`flame_map`).

    Returns
    -------
    Animation with channels ``exp000 ...`` (the model's expression channels), ``jaw.rx/ry/rz``
    (the FLAME jaw pose), if present in the input ``head.rx/ry/rz`` (the global pose), and when
    the input has gaze weights (``eyeLook*``) ``eyeLeft.r*``/``eyeRight.r*`` (the eye pose,
    :func:`flamesync.channels.eye_rotations`). A
    jaw rotation the input marks as implied by ``jawOpen`` is not added again; an explicit one
    is added to the mapped jaw pose.
    """
    mapping = flame_map(flame, landmarks=landmarks) if mapping is None else mapping
    if mapping.expression.shape[0] != flame.n_expr:
        raise InputError(f"map has {mapping.expression.shape[0]} expression components, model {flame.n_expr}")
    psi, jaw = mapping.apply(animation.weights(ARKIT_52))
    implied = animation.meta.get("jaw_rotation") == JAW_ROTATION_IMPLIED
    if animation.jaw is not None and not implied:
        jaw = jaw + animation.jaw
    cols = [psi, jaw]
    names = list(flame.channels) + list(JAW_ROTATION)
    if animation.head is not None:
        cols.append(animation.head)
        names += list(HEAD_ROTATION)
    if any(animation.has(c) for c in EYE_LOOK_CHANNELS):
        # FLAME's eyes are joints: the gaze weights become the eye pose (the map leaves them out).
        left, right = eye_rotations(animation.weights(EYE_LOOK_CHANNELS))
        cols += [left, right]
        names += list(EYE_LEFT_ROTATION) + list(EYE_RIGHT_ROTATION)
    meta = dict(animation.meta)
    meta.update({"face": "flame", "jaw_rotation": "explicit", "retarget_map": mapping.key})
    return animation.replace(channels=tuple(names), values=np.concatenate(cols, axis=1).astype(np.float32), meta=meta)


def animation_for_face(animation: Animation, face, *, landmarks=None) -> Animation:
    """What ``face`` should be animated with, given an ARKit animation.

    FLAME models get FLAME parameters (:func:`to_flame`, its map fitted with ``landmarks`` on the
    FLAME template when given) unless the animation already carries their expression channels;
    models with ARKit channels get the animation unchanged.
    """
    from ..face.flame import FlameModel

    has_arkit = any(animation.has(c) for c in ARKIT_52)
    if isinstance(face, FlameModel):
        if not has_arkit and any(animation.has(c) for c in face.channels):
            return animation
        return to_flame(animation, face, landmarks=landmarks)
    if any(c in face.channels for c in ARKIT_52) or not has_arkit:
        return animation
    raise InputError(f"face model {face.name} takes neither ARKit channels nor FLAME parameters; "
                     "retarget the animation first")
