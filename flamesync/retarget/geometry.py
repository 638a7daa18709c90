"""Mesh geometry used by retargeting, as small pure numpy/scipy functions.

Shapes: ``V`` vertices, ``F`` triangles, ``N`` query points. Everything is float64 inside (the
least-squares systems and polar decompositions lose too much in float32) and metres outside.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals of triangles (counter-clockwise seen from outside points out).

    Parameters
    ----------
    vertices : (V, 3)
    faces : (F, 3) int

    Returns
    -------
    (F, 3); degenerate triangles get a zero normal.
    """
    v = np.asarray(vertices, np.float64)
    n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, (V, 3); isolated vertices get zero."""
    v = np.asarray(vertices, np.float64)
    n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])  # 2 * area * normal
    out = np.zeros_like(v)
    for c in range(3):
        np.add.at(out, faces[:, c], n)
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)


def closest_point_on_triangles(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of the point of each triangle closest to each query point.

    Region tests after Ericson, *Real-Time Collision Detection*, 5.1.5, vectorised.

    Parameters
    ----------
    points, a, b, c : (..., 3)
        Query points and triangle corners (broadcast together).

    Returns
    -------
    (..., 3) barycentric weights of ``a``, ``b``, ``c`` (non-negative, summing to 1).
    """
    p, a, b, c = np.broadcast_arrays(points, a, b, c)
    ab, ac, ap = b - a, c - a, p - a
    d1 = np.einsum("...i,...i", ab, ap)
    d2 = np.einsum("...i,...i", ac, ap)
    bp = p - b
    d3 = np.einsum("...i,...i", ab, bp)
    d4 = np.einsum("...i,...i", ac, bp)
    cp = p - c
    d5 = np.einsum("...i,...i", ab, cp)
    d6 = np.einsum("...i,...i", ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v_in = np.where(denom != 0, vb / denom, 0.0)
        w_in = np.where(denom != 0, vc / denom, 0.0)
        t_ab = np.where(d1 - d3 != 0, d1 / (d1 - d3), 0.0)
        t_ac = np.where(d2 - d6 != 0, d2 / (d2 - d6), 0.0)
        t_bc = np.where((d4 - d3) + (d5 - d6) != 0, (d4 - d3) / ((d4 - d3) + (d5 - d6)), 0.0)
    bary = np.stack([1 - v_in - w_in, v_in, w_in], -1)
    # Later assignments win, so go from the interior outwards to the most specific regions.
    edge_bc = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    bary = np.where(edge_bc[..., None], np.stack([0 * t_bc, 1 - t_bc, t_bc], -1), bary)
    edge_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    bary = np.where(edge_ac[..., None], np.stack([1 - t_ac, 0 * t_ac, t_ac], -1), bary)
    edge_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    bary = np.where(edge_ab[..., None], np.stack([1 - t_ab, t_ab, 0 * t_ab], -1), bary)
    one = np.ones_like(d1)
    zero = np.zeros_like(d1)
    corner_c = (d6 >= 0) & (d5 <= d6)
    bary = np.where(corner_c[..., None], np.stack([zero, zero, one], -1), bary)
    corner_b = (d3 >= 0) & (d4 <= d3)
    bary = np.where(corner_b[..., None], np.stack([zero, one, zero], -1), bary)
    corner_a = (d1 <= 0) & (d2 <= 0)
    bary = np.where(corner_a[..., None], np.stack([one, zero, zero], -1), bary)
    return np.clip(bary, 0.0, 1.0)


def closest_points(
    points: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    normals: np.ndarray | None = None,
    point_normals: np.ndarray | None = None,
    max_angle_deg: float = 90.0,
    k: int = 12,
    tree: cKDTree | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Closest surface points of a triangle mesh, optionally only on compatibly facing triangles.

    Candidates are the ``k`` triangles whose centroids are nearest each query point: exact when
    triangles are small against their spacing, which holds for the head meshes this is used on.

    Parameters
    ----------
    points : (N, 3)
    vertices : (V, 3)
    faces : (F, 3) int
    normals : (F, 3), optional
        Face normals; with ``point_normals`` a triangle whose normal is more than
        ``max_angle_deg`` away from the query's normal is not a candidate.
    point_normals : (N, 3), optional
    k : int
    tree : cKDTree, optional
        A prebuilt tree of the triangle centroids, to reuse across calls.

    Returns
    -------
    closest : (N, 3)
    face : (N,) int, -1 where no candidate was compatible
    bary : (N, 3)
    distance : (N,), ``inf`` where ``face == -1``
    """
    pts = np.asarray(points, np.float64)
    verts = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    tree = centroid_tree(verts, faces) if tree is None else tree
    k = min(k, len(faces))
    _, cand = tree.query(pts, k=k)
    cand = cand.reshape(len(pts), -1)  # (N, k)
    tri = verts[faces[cand]]  # (N, k, 3, 3)
    bary = closest_point_on_triangles(pts[:, None], tri[..., 0, :], tri[..., 1, :], tri[..., 2, :])
    q = np.einsum("nmk,nmkc->nmc", bary, tri)
    dist = np.linalg.norm(q - pts[:, None], axis=-1)
    if normals is not None and point_normals is not None:
        cos = np.einsum("nmc,nc->nm", normals[cand], point_normals)
        dist = np.where(cos >= np.cos(np.radians(max_angle_deg)), dist, np.inf)
    best = np.argmin(dist, axis=1)
    rows = np.arange(len(pts))
    d = dist[rows, best]
    face = np.where(np.isfinite(d), cand[rows, best], -1)
    return q[rows, best], face, bary[rows, best], d


def centroid_tree(vertices: np.ndarray, faces: np.ndarray) -> cKDTree:
    """KD-tree of triangle centroids, for :func:`closest_points`."""
    return cKDTree(np.asarray(vertices, np.float64)[np.asarray(faces, np.int64)].mean(1))


def uniform_laplacian(faces: np.ndarray, n_vertices: int) -> sp.csr_matrix:
    """Graph Laplacian ``L = I - D^-1 A`` of the mesh's edges, (V, V) sparse.

    ``L @ x`` is each vertex minus the mean of its neighbours: zero on any affine-in-index field
    locally, which is what makes it a smoothness penalty on a displacement field. Isolated
    vertices get a zero row.
    """
    f = np.asarray(faces, np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    adj = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n_vertices, n_vertices)).tocsr()
    adj.data[:] = 1.0  # duplicate edges (two triangles share each) count once
    deg = np.asarray(adj.sum(axis=1)).ravel()
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    has = (deg > 0).astype(np.float64)
    return (sp.diags(has) - sp.diags(inv) @ adj).tocsr()


def similarity_transform(src: np.ndarray, dst: np.ndarray, *, scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s * R @ src + t`` (Umeyama 1991).

    Parameters
    ----------
    src, dst : (N, 3), N >= 3 not all collinear

    Returns
    -------
    s : float
    R : (3, 3) proper rotation
    t : (3,)
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[2, 2] = -1.0
    rot = u @ fix @ vt
    var = (xs ** 2).sum() / len(src)
    s = float(np.trace(np.diag(sig) @ fix) / var) if scale and var > 0 else 1.0
    return s, rot, mu_d - s * rot @ mu_s


def rotation_and_scale(jacobians: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split Jacobians ``F = R U`` (polar decomposition) into ``R`` and ``det(U) ** (1/3)``.

    Parameters
    ----------
    jacobians : (N, 3, 3)

    Returns
    -------
    rotations : (N, 3, 3) proper rotations
    scales : (N,) positive isotropic scale factors
    """
    u, sig, vt = np.linalg.svd(jacobians)
    d = np.sign(np.linalg.det(u @ vt))
    u = u.copy()
    u[:, :, 2] *= d[:, None]
    sig = sig.copy()
    sig[:, 2] *= d
    rot = u @ vt
    scale = np.cbrt(np.clip(np.prod(sig, axis=1), 1e-12, None))
    return rot, scale


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Closed loops of boundary edges (edges used by one triangle), each as vertex indices.

    Vertices where several loops touch are resolved greedily; every returned loop is closed.
    """
    f = np.asarray(faces, np.int64)
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key = np.sort(directed, axis=1)
    _, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    boundary = directed[counts[inv] == 1]
    nxt: dict[int, list[int]] = {}
    for a, b in boundary:
        nxt.setdefault(int(a), []).append(int(b))
    loops = []
    while nxt:
        start = next(iter(nxt))
        loop = [start]
        cur = start
        while True:
            outs = nxt.get(cur)
            if not outs:
                break
            n = outs.pop()
            if not outs:
                del nxt[cur]
            if n == start:
                loops.append(np.array(loop, np.int64))
                break
            loop.append(n)
            cur = n
    return loops


def connected_components(faces: np.ndarray, n_vertices: int) -> list[np.ndarray]:
    """Vertex sets of the mesh's connected components, largest first (isolated vertices left out)."""
    from scipy.sparse.csgraph import connected_components as cc

    f = np.asarray(faces, np.int64)
    i = np.concatenate([f[:, 0], f[:, 1]])
    j = np.concatenate([f[:, 1], f[:, 2]])
    g = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n_vertices, n_vertices))
    _, labels = cc(g, directed=False)
    used = np.zeros(n_vertices, bool)
    used[f.reshape(-1)] = True
    comps = [np.nonzero((labels == lab) & used)[0] for lab in np.unique(labels[used])]
    return sorted(comps, key=len, reverse=True)
