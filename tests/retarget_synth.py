"""Test heads with known answers for retargeting, made from the default head.

``flame_from_head`` builds a FLAME-layout model whose mesh is a decimated copy of the default
head (skin and eyeballs) and whose expression basis is a known linear mix of the default head's
ARKit shapes (with the jaw-rotation part of ``jawOpen`` moved into a jaw joint placed at the
default head's jaw pivot). Every decimated vertex lies on the default head's surface, so its
true correspondence (triangle + barycentric weights) is known.
"""

from __future__ import annotations

import numpy as np
import torch

from flamesync.channels import ARKIT_52
from flamesync.face import lbs
from flamesync.face.flame import FlameModel
from flamesync.retarget import geometry as geo

ROOT = 4294967295


def decimated_head(head, *, reduction: float = 0.6, mouth_hole: bool = False):
    """Skin + eyes of ``head`` decimated; returns vertices, faces, and the true correspondence
    (source face index and barycentric weights per vertex).

    ``mouth_hole`` removes the mouth cavity behind the lips, leaving a hole between them as
    FLAME has."""
    import fast_simplification

    keep = np.concatenate([head.parts["skin"], head.parts["eye_left"], head.parts["eye_right"]])
    member = np.zeros(head.n_vertices, bool)
    member[keep] = True
    faces = head.faces[member[head.faces].all(1)]
    remap = -np.ones(head.n_vertices, np.int64)
    remap[keep] = np.arange(len(keep))
    v, f = fast_simplification.simplify(head.template[keep].astype(np.float32), remap[faces].astype(np.int32),
                                        target_reduction=reduction)
    v = v.astype(np.float64)
    f = f.astype(np.int64)
    # Truth per piece: skin vertices lie on the skin, eyeball vertices on the eyeball (the two
    # touch around the lids, so a closest point over both would be ambiguous there).
    corners = np.zeros((len(v), 3), np.int64)
    bary = np.zeros((len(v), 3))
    for comp in geo.connected_components(f, len(v)):
        best = None
        for part in ("skin", "eye_left", "eye_right"):
            pm = np.zeros(head.n_vertices, bool)
            pm[head.parts[part]] = True
            pf = faces[pm[faces].all(1)]
            _, face, b, d = geo.closest_points(v[comp], head.template.astype(np.float64), pf, k=24)
            if best is None or d.mean() < best[2].mean():
                best = (pf[face], b, d)
        corners[comp], bary[comp] = best[0], best[1]
    if mouth_hole:
        v, f, corners, bary = _cut_mouth(v, f, corners, bary)
    return v, f, corners, bary


def _cut_mouth(v, f, corners, bary):
    """Drop the vertices of the mouth region lying more than 3 mm behind the front surface."""
    from scipy.spatial import cKDTree

    tree = cKDTree(v[:, :2])
    front = np.array([v[tree.query_ball_point(p[:2], 0.003), 2].max() for p in v])
    inside = (np.abs(v[:, 0]) < 0.028) & (v[:, 1] > -0.085) & (v[:, 1] < -0.05) & (v[:, 2] < front - 0.003)
    f = f[~inside[f].any(1)]
    comps = geo.connected_components(f, len(v))
    keep = np.zeros(len(v), bool)
    for comp in comps:
        c = v[comp].mean(0)
        # Pieces of the cavity the cut set loose go too.
        if comp is comps[0] or not (abs(c[0]) < 0.03 and -0.09 < c[1] < -0.045):
            keep[comp] = True
    f = f[keep[f].all(1)]
    used = np.unique(f)
    remap = -np.ones(len(v), np.int64)
    remap[used] = np.arange(len(used))
    return v[used], remap[f], corners[used], bary[used]


def _exact_regressor(verts: np.ndarray, allowed: np.ndarray, point: np.ndarray, k: int = 12) -> np.ndarray:
    """Weights over ``k`` allowed vertices near ``point`` reproducing it exactly (sum to 1)."""
    d = np.linalg.norm(verts[allowed] - point, axis=1)
    idx = allowed[np.argsort(d)[:k]]
    a = np.vstack([verts[idx].T, np.ones(len(idx))])
    w = np.linalg.lstsq(a, np.r_[point, 1.0], rcond=None)[0]
    row = np.zeros(len(verts))
    row[idx] = w
    return row


def flame_from_head(head, *, reduction: float = 0.6, scale: float = 1.08, shift=(0.0, 0.02, -0.01), seed: int = 0,
                    mouth_hole: bool = False, n_expr: int = 52):
    """A FLAME-layout model with a known ARKit map.

    Returns
    -------
    model : FlameModel with ``n_expr`` (>= 52) expression components
    truth : dict with ``exp`` (n_expr, 52) the true (minimum-norm) map, ``shapes`` (52, V, 3) the
        ARKit offsets at the true corresponding points (psi = exp @ w), ``jaw_open`` the true jaw
        angle of jawOpen, ``corners``/``bary`` the true correspondence, ``scale``, ``shift``.
    """
    rng = np.random.default_rng(seed)
    v, f, corners, bary = decimated_head(head, reduction=reduction, mouth_hole=mouth_hole)
    shift = np.asarray(shift, np.float64)
    tmpl = v * scale + shift
    nv = len(v)
    deltas = np.einsum("vk,nvkc->nvc", bary, head.deltas.astype(np.float64)[:, corners]) * scale
    jaw_w = np.einsum("vk,vk->v", bary, head.jaw_weights.astype(np.float64)[corners])
    jaw_pivot = head.jaw_pivot.astype(np.float64) * scale + shift
    angle = float(head.meta.get("jaw_open_rad", 0.34))
    # Move the rotation part of jawOpen into the joint: find the pre-skinning shape x with
    # LBS_jaw(x) = template + jawOpen exactly, i.e. solve (I + w (R - I)) x = y + w (R - I) p per vertex.
    rot = lbs.axis_angle_to_matrix(torch.tensor([angle, 0.0, 0.0], dtype=torch.float64)).numpy()
    j = ARKIT_52.index("jawOpen")
    y = tmpl + deltas[j]
    m = np.eye(3)[None] + jaw_w[:, None, None] * (rot - np.eye(3))[None]  # (V, 3, 3)
    rhs = y + jaw_w[:, None] * ((rot - np.eye(3)) @ jaw_pivot)[None]
    dej = deltas.copy()
    dej[j] = np.linalg.solve(m, rhs[..., None])[..., 0] - tmpl
    q = np.eye(52) + 0.3 * rng.standard_normal((52, 52)) / np.sqrt(52)
    if n_expr > 52:  # extra components (for timing at FLAME's size): more mixes of the same shapes
        q = np.concatenate([q, rng.standard_normal((52, n_expr - 52)) / np.sqrt(52)], axis=1)
    basis = np.einsum("kvc,ke->vce", dej, q)  # (V, 3, 52): component e = sum_k q[k, e] * shape k
    eyes = {}
    static = np.nonzero(np.abs(deltas).max(axis=(0, 2)) < 1e-7)[0]
    eye_centres = []
    for side in ("eye_left", "eye_right"):
        idx = np.nonzero(np.isin(corners, head.parts[side]).all(1))[0]
        eyes[side] = idx
        eye_centres.append(tmpl[idx].mean(0))
    head_pivot = head.head_pivot.astype(np.float64) * scale + shift
    joints = np.array([head_pivot, head_pivot, jaw_pivot, eye_centres[0], eye_centres[1]])
    reg = np.array([_exact_regressor(tmpl, static, p) for p in joints])
    weights = np.zeros((nv, 5))
    weights[:, 2] = jaw_w
    weights[:, 0] = 1 - jaw_w
    for c, side in ((3, "eye_left"), (4, "eye_right")):
        weights[eyes[side]] = 0
        weights[eyes[side], c] = 1
    n_shape = 4
    ident = rng.standard_normal((nv, 3, n_shape)) * 1e-3
    model = FlameModel(
        v_template=tmpl, shapedirs=np.concatenate([ident, basis], axis=2), posedirs=np.zeros((nv, 3, 36)),
        J_regressor=reg, lbs_weights=weights,
        kintree_table=np.array([[ROOT, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64), f=f.astype(np.int32),
        n_shape=n_shape, n_expr=q.shape[1], source="test:flame_from_head",
    )
    truth = {"exp": np.linalg.pinv(q), "jaw_open": angle, "shapes": deltas, "corners": corners, "bary": bary,
             "scale": scale, "shift": shift}
    return model, truth
