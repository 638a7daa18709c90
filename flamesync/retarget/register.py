"""Landmark-guided non-rigid registration of a source head onto a target head mesh.

Two stages:

1. A similarity transform (rotation, uniform scale, translation) from the source's landmarks to
   the target's, in closed form (:func:`~flamesync.retarget.geometry.similarity_transform`).
2. Non-rigid ICP in the manner of Amberg et al. (CVPR 2007): the source vertices move to
   minimise ``sum_i w_i |x_i - c_i|^2 + alpha^2 |L (X - X0)|^2 + beta^2 sum_l |a_l(X) - p_l|^2``
   where ``c_i`` are closest target surface points (dropped when too far or facing away),
   ``L`` the mesh Laplacian acting on the displacement from the aligned source ``X0``, and
   ``a_l`` the landmark anchors. Each step is one sparse linear least-squares solve. The
   stiffness ``alpha`` starts high (the source bends only as a whole) and is lowered in a
   schedule, so coarse alignment is settled before local detail is fitted.

Source components that are not surface to be matched (eyeballs, teeth, tongue) carry no data
term; each of their vertices is tied to the mean displacement of its nearest matched vertices so
that they follow the face around them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu
from scipy.spatial import cKDTree

from ..errors import InputError
from . import geometry as geo
from .landmarks import Anchor

DEFAULT_SCHEDULE = (30.0, 10.0, 4.0, 2.0, 1.0, 0.5)


@dataclass
class Registration:
    """Result of :func:`register`.

    Attributes
    ----------
    vertices : (V_src, 3)
        Source vertices deformed onto the target.
    scale, rotation, translation :
        The similarity stage (``x -> scale * rotation @ x + translation``).
    residual_mm : dict
        ``mean``/``median``/``max`` distance (mm) from matched source vertices to the target
        surface after registration, ``matched``: fraction of matchable source vertices that had
        a compatible target point, ``landmarks_mean``/``landmarks_max``: landmark misfit (mm).
    partner : (V_src,) int
        For each source vertex, the target vertex nearest its final closest-point partner, or
        -1 where it had none (parts the target lacks).
    """

    vertices: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    residual_mm: dict = field(default_factory=dict)
    partner: np.ndarray | None = None


def _anchor_matrix(anchors: list[Anchor], n: int) -> tuple[sp.csr_matrix, np.ndarray]:
    rows, cols, vals = [], [], []
    for r, a in enumerate(anchors):
        rows += [r] * len(a.indices)
        cols += list(a.indices)
        vals += list(a.weights)
    mat = sp.csr_matrix((vals, (rows, cols)), shape=(len(anchors), n))
    return mat, np.array([a.offset for a in anchors]).reshape(-1, 3)


def register(
    source_vertices: np.ndarray,
    source_faces: np.ndarray,
    source_landmarks: dict[str, Anchor],
    target_vertices: np.ndarray,
    target_faces: np.ndarray,
    target_landmarks: dict[str, np.ndarray],
    *,
    matchable: np.ndarray | None = None,
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE,
    iterations: int = 2,
    landmark_weight: float = 1.0,
    max_angle_deg: float = 60.0,
    progress=None,
) -> Registration:
    """Deform the source mesh onto the target surface.

    Parameters
    ----------
    source_vertices : (V, 3)
    source_faces : (F, 3) int
    source_landmarks : dict of name to Anchor
    target_vertices : (W, 3)
    target_faces : (G, 3) int
    target_landmarks : dict of name to (3,) position
        Only names present on both sides are used; at least 4 are needed.
    matchable : (V,) bool, optional
        Source vertices that get a closest-point term (default: the largest component).
    schedule : tuple of float
        Stiffness values ``alpha``, high to low, relative to the data term.
    iterations : int
        Closest-point updates per stiffness value.
    landmark_weight : float
        ``beta`` relative to ``alpha`` (landmarks weigh less as the mesh loosens).
    max_angle_deg : float
        Closest points on target triangles facing more than this away are rejected.
    progress : callable, optional
        Called with no arguments after each step (for a progress bar).

    Returns
    -------
    Registration
    """
    src = np.asarray(source_vertices, np.float64)
    tv = np.asarray(target_vertices, np.float64)
    sf = np.asarray(source_faces, np.int64)
    tf = np.asarray(target_faces, np.int64)
    names = [k for k in source_landmarks if k in target_landmarks]
    if len(names) < 4:
        raise InputError(f"registration needs at least 4 landmarks on both meshes, have {len(names)}: {', '.join(names)}")
    a_mat, a_off = _anchor_matrix([source_landmarks[k] for k in names], len(src))
    p_tgt = np.array([target_landmarks[k] for k in names], np.float64)

    # 1. similarity
    s, rot, trans = geo.similarity_transform(a_mat @ src + a_off, p_tgt)
    x0 = s * src @ rot.T + trans
    a_off = s * a_off @ rot.T  # offsets are vectors: they rotate and scale, but do not translate
    n = len(src)
    if matchable is None:
        matchable = np.zeros(n, bool)
        matchable[geo.connected_components(sf, n)[0]] = True
    matchable = np.asarray(matchable, bool)
    lap = geo.uniform_laplacian(sf, n)
    ties = _follow_matrix(x0, matchable, sf)
    reg = (lap.T @ lap + ties.T @ ties).tocsc()
    lap_x0 = reg @ x0
    scale_ref = float(np.linalg.norm(x0.max(0) - x0.min(0)))

    t_tree = geo.centroid_tree(tv, tf)
    t_fn = geo.face_normals(tv, tf)
    aa = (a_mat.T @ a_mat).tocsc()
    x = x0.copy()
    idx_m = np.nonzero(matchable)[0]
    for alpha in schedule:
        for _ in range(iterations):
            c, w, _ = _matches(x, sf, idx_m, tv, tf, t_tree, t_fn, max_angle_deg, scale_ref)
            beta = landmark_weight * alpha
            wd = sp.diags(w)
            lhs = (wd + alpha ** 2 * reg + beta ** 2 * aa).tocsc()
            rhs = wd @ c + alpha ** 2 * lap_x0 + beta ** 2 * (a_mat.T @ (p_tgt - a_off))
            x = splu(lhs).solve(rhs)
            if progress is not None:
                progress()
    c, w, near = _matches(x, sf, idx_m, tv, tf, t_tree, t_fn, max_angle_deg, scale_ref)
    d = np.linalg.norm(x - c, axis=1)[w > 0] * 1000
    lm = np.linalg.norm(a_mat @ x + a_off - p_tgt, axis=1) * 1000
    residual = {
        "mean": float(d.mean()) if d.size else float("nan"),
        "median": float(np.median(d)) if d.size else float("nan"),
        "max": float(d.max()) if d.size else float("nan"),
        "matched": float((w > 0).sum() / max(len(idx_m), 1)),
        "landmarks_mean": float(lm.mean()),
        "landmarks_max": float(lm.max()),
    }
    return Registration(x, s, rot, trans, residual, near)


def _matches(x, sf, idx_m, tv, tf, tree, fn, max_angle_deg, scale_ref):
    """Closest compatible target points of the matchable source vertices, and their weights.

    Pairs farther than three times the median distance (and at least 1 % of the head's size)
    are dropped: they are parts the other mesh does not have (a mouth cavity, a longer neck).
    """
    n = len(x)
    normals = geo.vertex_normals(x, sf)[idx_m]
    q, face, bary, dist = geo.closest_points(x[idx_m], tv, tf, normals=fn, point_normals=normals,
                                             max_angle_deg=max_angle_deg, tree=tree)
    ok = face >= 0
    c = x.copy()
    w = np.zeros(n)
    if ok.any():
        limit = max(3.0 * float(np.median(dist[ok])), 0.01 * scale_ref)
        ok &= dist < limit
    c[idx_m[ok]] = q[ok]
    w[idx_m[ok]] = 1.0
    near = np.full(n, -1, np.int64)  # target vertex nearest each matched source vertex's partner
    near[idx_m[ok]] = tf[face[ok], np.argmax(bary[ok], axis=1)]
    return c, w, near


def _follow_matrix(x0: np.ndarray, matchable: np.ndarray, faces: np.ndarray, k: int = 6) -> sp.csr_matrix:
    """Rows ``d_i - mean(d_j, j in k nearest matchable vertices)`` for the other vertices.

    Penalising them makes unmatched components (eyes, teeth) move with the nearby face.
    """
    free = np.nonzero(~matchable)[0]
    anchor = np.nonzero(matchable)[0]
    n = len(x0)
    if len(free) == 0 or len(anchor) == 0:
        return sp.csr_matrix((0, n))
    _, nn = cKDTree(x0[anchor]).query(x0[free], k=min(k, len(anchor)))
    nn = anchor[nn.reshape(len(free), -1)]
    kk = nn.shape[1]
    rows = np.concatenate([np.arange(len(free)), np.repeat(np.arange(len(free)), kk)])
    cols = np.concatenate([free, nn.reshape(-1)])
    vals = np.concatenate([np.ones(len(free)), np.full(len(free) * kk, -1.0 / kk)])
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(free), n))


def map_points(points: np.ndarray, rest: np.ndarray, deformed: np.ndarray, *, k: int = 8) -> np.ndarray:
    """Carry free points (a joint pivot) along with a deformed mesh.

    Each point moves by the inverse-distance-weighted displacement of its ``k`` nearest mesh
    vertices.

    Parameters
    ----------
    points : (N, 3)
    rest, deformed : (V, 3)

    Returns
    -------
    (N, 3)
    """
    pts = np.atleast_2d(np.asarray(points, np.float64))
    d, nn = cKDTree(rest).query(pts, k=min(k, len(rest)))
    d = d.reshape(len(pts), -1)
    nn = nn.reshape(len(pts), -1)
    w = 1.0 / np.maximum(d, 1e-9)
    w /= w.sum(1, keepdims=True)
    disp = deformed - rest
    return pts + np.einsum("nk,nkc->nc", w, disp[nn])
