"""Deformation transfer of blendshapes (and the jaw joint) through a registration.

Each target vertex is tied to the closest point of the registered source surface (a source
triangle and barycentric weights). Its blendshape offset is the source offset at that point,
carried through the registration's local rotation and scale:

``delta_target = s * R @ delta_source``, with ``R U = J`` the polar decomposition of the
registration's Jacobian ``J`` at that point and ``s = det(U) ** (1/3)``.

Why this and not full Sumner-Popovic deformation transfer: for offsets that are small against
the head (blendshapes move points by millimetres to a few centimetres), transferring
deformation gradients and solving the Poisson system reduces, to first order, to applying the
source-to-target Jacobian ``J`` to the offset. ``J`` is reliable only in the surface's tangent
directions (a triangle carries no information along its normal), and its shear mostly reflects
how two different tessellations were matched, so only its rotation and isotropic scale are kept:
a wider face gets proportionally wider smiles and a turned or tilted target gets offsets
turned with it, while nothing is sheared. Target points far from the registered source (hair, a
longer neck) get no offset.
"""

from __future__ import annotations

import numpy as np

from . import geometry as geo
from .register import map_points


def local_frames(rest: np.ndarray, deformed: np.ndarray, *, k: int = 200, reliable: np.ndarray | None = None) -> np.ndarray:
    """Per-vertex local similarity (``s * R``) of the map ``rest -> deformed``.

    Fitted by least squares (Umeyama) over each vertex's ``k`` nearest rest-pose neighbours: the
    rotation and scale of a patch about a centimetre across. Per-triangle Jacobians would be
    exact but are dominated by how the registration slid small triangles about; the patch fit
    keeps what matters for carrying offsets (the face turned or scaled there).

    Parameters
    ----------
    rest, deformed : (V, 3)
    k : int
    reliable : (V,) bool, optional
        Vertices whose registered position was pinned to the target (matched); only they
        enter the fits, since the others (a mouth cavity the target lacks) just drift along.

    Returns
    -------
    (V, 3, 3)
    """
    from scipy.spatial import cKDTree

    rest = np.asarray(rest, np.float64)
    deformed = np.asarray(deformed, np.float64)
    pool = np.arange(len(rest)) if reliable is None or not np.any(reliable) else np.nonzero(reliable)[0]
    k = min(k, len(pool))
    _, nn = cKDTree(rest[pool]).query(rest, k=k)
    nn = pool[nn.reshape(len(rest), -1)]
    a = rest[nn] - rest[nn].mean(1, keepdims=True)  # (V, k, 3)
    b = deformed[nn] - deformed[nn].mean(1, keepdims=True)
    cov = np.einsum("vki,vkj->vij", b, a) / k
    u, sig, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.ones((len(rest), 3))
    fix[:, 2] = d
    rot = u @ (fix[:, :, None] * vt)
    var = (a ** 2).sum((1, 2)) / k
    scale = np.divide((sig * fix).sum(1), var, out=np.ones(len(rest)), where=var > 0)
    return scale[:, None, None] * rot


def correspondence(
    target_vertices: np.ndarray,
    target_faces: np.ndarray,
    registered: np.ndarray,
    source_faces: np.ndarray,
    *,
    max_angle_deg: float = 75.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest point of the registered source for every target vertex.

    Each connected piece of the target (the skin, an eyeball) is matched to the one source piece
    it lies on best (smallest mean distance), so an eyeball's side does not pick up the eyelid
    hugging it.
    Within it, triangles facing away from the target vertex's normal are skipped (the inside of
    a lip must not pick up the outside of the other lip); vertices without a compatible triangle
    fall back to the nearest one.

    Returns
    -------
    face : (W,) int, bary : (W, 3), distance : (W,)
    """
    tv = np.asarray(target_vertices, np.float64)
    tf = np.asarray(target_faces, np.int64)
    sf = np.asarray(source_faces, np.int64)
    tn = geo.vertex_normals(tv, tf)
    sn = geo.face_normals(registered, sf)
    s_comps = geo.connected_components(sf, len(registered))
    s_label = np.full(len(registered), -1)
    for i, comp in enumerate(s_comps):
        s_label[comp] = i
    face_label = s_label[sf[:, 0]]
    trees = [geo.centroid_tree(registered, sf[face_label == i]) for i in range(len(s_comps))]
    face = np.full(len(tv), -1)
    bary = np.zeros((len(tv), 3))
    dist = np.full(len(tv), np.inf)
    for n, comp in enumerate(geo.connected_components(tf, len(tv))):
        # The main piece matches the main piece; a small one (an eyeball, a loose bit of mouth)
        # the source piece it lies on best: smallest mean distance to its surface.
        piece = 0
        if n > 0 and len(s_comps) > 1:
            mean_d = [geo.closest_points(tv[comp], registered, sf[face_label == i], tree=trees[i])[3].mean()
                      for i in range(len(s_comps))]
            piece = int(np.argmin(mean_d))
        fsel = np.nonzero(face_label == piece)[0]
        sub = sf[fsel]
        sub_tree = trees[piece]
        _, f1, b1, d1 = geo.closest_points(tv[comp], registered, sub, normals=sn[fsel], point_normals=tn[comp],
                                           max_angle_deg=max_angle_deg, tree=sub_tree)
        bad = f1 < 0
        if bad.any():
            _, f2, b2, d2 = geo.closest_points(tv[comp][bad], registered, sub, tree=sub_tree)
            f1[bad], b1[bad], d1[bad] = f2, b2, d2
        face[comp], bary[comp], dist[comp] = fsel[f1], b1, d1
    return face, bary, dist


def transfer_deltas(
    deltas: np.ndarray,
    source_faces: np.ndarray,
    jacobians: np.ndarray,
    face: np.ndarray,
    bary: np.ndarray,
    weight: np.ndarray,
) -> np.ndarray:
    """Carry per-vertex offsets to corresponding points, rotated and scaled by the local frame.

    Parameters
    ----------
    deltas : (K, V, 3)
        Source offsets.
    source_faces : (F, 3) int
    jacobians : (V, 3, 3)
        Per-vertex local similarity ``s R`` of the registration (:func:`local_frames`).
    face : (W,) int, bary : (W, 3)
        Correspondence of each target vertex.
    weight : (W,)
        Per-target-vertex factor (0 where the target has no counterpart).

    Returns
    -------
    (K, W, 3)
    """
    corners = np.asarray(source_faces, np.int64)[face]  # (W, 3)
    jac = np.einsum("wk,wkij->wij", bary, jacobians[corners])
    rot, scale = geo.rotation_and_scale(jac)
    d = np.einsum("wk,nwkc->nwc", bary, np.asarray(deltas, np.float64)[:, corners])
    return np.einsum("w,wij,nwj->nwi", scale * weight, rot, d)


def interpolate(values: np.ndarray, source_faces: np.ndarray, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Barycentric interpolation of per-vertex values ``(V, ...)`` at corresponding points ``(W, ...)``."""
    corners = np.asarray(source_faces, np.int64)[face]
    v = np.asarray(values, np.float64)[corners]  # (W, 3, ...)
    return np.einsum("wk,wk...->w...", bary, v)


def distance_fade(distance: np.ndarray, *, start: float, stop: float) -> np.ndarray:
    """1 up to ``start``, 0 from ``stop``, smooth (cubic) between."""
    t = np.clip((np.asarray(distance, np.float64) - start) / max(stop - start, 1e-12), 0.0, 1.0)
    return 1.0 - t * t * (3.0 - 2.0 * t)


def transfer_rig(
    source,
    registered: np.ndarray,
    target_vertices: np.ndarray,
    target_faces: np.ndarray,
    *,
    fade_start: float,
    fade_stop: float,
    partner: np.ndarray | None = None,
) -> dict:
    """Everything a :class:`~flamesync.face.base.BlendshapeFace` needs, carried to the target.

    Parameters
    ----------
    source : BlendshapeFace
    registered : (V, 3)
        The source template deformed onto the target (:func:`~flamesync.retarget.register.register`).
    target_vertices : (W, 3)
    target_faces : (G, 3)
    fade_start, fade_stop : float
        Distances (metres) over which offsets and jaw weights fade out for target points far
        from the registered source.

    Returns
    -------
    dict with ``deltas`` (K, W, 3), ``jaw_pivot``, ``jaw_weights``, ``head_pivot``,
    ``head_weights``, ``parts``, ``distance`` (W,) and ``weight`` (W,).
    """
    rest = np.asarray(source.template, np.float64)
    sf = np.asarray(source.faces, np.int64)
    face, bary, dist = correspondence(target_vertices, target_faces, registered, sf)
    weight = distance_fade(dist, start=fade_start, stop=fade_stop)
    jac = local_frames(rest, registered, reliable=None if partner is None else partner >= 0)
    deltas = transfer_deltas(source.deltas, sf, jac, face, bary, weight)
    jaw_weights = interpolate(source.jaw_weights, sf, face, bary) * weight
    out = {
        "deltas": deltas.astype(np.float32),
        "jaw_pivot": map_points(source.jaw_pivot, rest, registered)[0].astype(np.float32),
        "jaw_weights": jaw_weights.astype(np.float32),
        "head_pivot": None,
        "head_weights": None,
        "distance": dist,
        "weight": weight,
    }
    if source.head_pivot is not None:
        out["head_pivot"] = map_points(source.head_pivot, rest, registered)[0].astype(np.float32)
        out["head_weights"] = interpolate(source.head_weights, sf, face, bary).astype(np.float32)
    # A target vertex joins the part of the source corner its point is nearest to.
    nearest = sf[face, np.argmax(bary, axis=1)]
    parts = {}
    for name, idx in source.parts.items():
        member = np.zeros(len(rest), bool)
        member[np.asarray(idx, np.int64)] = True
        sel = np.nonzero(member[nearest] & (weight > 0.5))[0]
        parts[name] = sel.astype(np.int64)
    out["parts"] = parts
    return out
