"""Pure geometry of flamesync.retarget against independent computations."""

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from flamesync.errors import InputError
from flamesync.retarget import geometry as geo
from flamesync.retarget.landmarks import Anchor, find_peaks, read_landmark_file


def test_closest_point_on_triangles_matches_dense_sampling():
    rng = np.random.default_rng(0)
    tri = rng.normal(size=(50, 3, 3))
    pts = rng.normal(size=(50, 3)) * 2
    bary = geo.closest_point_on_triangles(pts, tri[:, 0], tri[:, 1], tri[:, 2])
    assert np.allclose(bary.sum(1), 1) and (bary >= 0).all()
    got = np.einsum("nk,nkc->nc", bary, tri)
    # Dense barycentric grid: the analytic answer can only be closer, and not by much.
    u, v = np.meshgrid(np.linspace(0, 1, 201), np.linspace(0, 1, 201))
    keep = u + v <= 1
    grid = np.stack([1 - u[keep] - v[keep], u[keep], v[keep]], 1)
    for i in range(50):
        samples = grid @ tri[i]
        best = np.linalg.norm(samples - pts[i], axis=1).min()
        d = np.linalg.norm(got[i] - pts[i])
        assert d <= best + 1e-9 and best - d < 1e-2


def test_closest_points_on_mesh_respects_normals():
    # Two parallel squares facing opposite ways; a point between them with a +z normal must go
    # to the one facing +z even though the other is nearer.
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                  [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], float)
    f = np.array([[0, 1, 2], [0, 2, 3], [4, 6, 5], [4, 7, 6]])  # bottom faces +z, top faces -z
    fn = geo.face_normals(v, f)
    assert np.allclose(fn[0], [0, 0, 1]) and np.allclose(fn[2], [0, 0, -1])
    p = np.array([[0.5, 0.5, 0.7]])
    q, face, _, d = geo.closest_points(p, v, f)
    assert face[0] in (2, 3) and np.isclose(d[0], 0.3)
    q, face, _, d = geo.closest_points(p, v, f, normals=fn, point_normals=np.array([[0, 0, 1.0]]))
    assert face[0] in (0, 1) and np.isclose(d[0], 0.7) and np.allclose(q[0], [0.5, 0.5, 0])


def test_similarity_transform_recovers_known_transform():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(10, 3))
    rot = Rotation.from_rotvec([0.3, -1.2, 0.5]).as_matrix()
    dst = 1.7 * src @ rot.T + [1, 2, 3]
    s, r, t = geo.similarity_transform(src, dst)
    assert np.isclose(s, 1.7) and np.allclose(r, rot) and np.allclose(t, [1, 2, 3])
    # A mirrored target must still give a proper rotation.
    s, r, t = geo.similarity_transform(src, src * [-1, 1, 1])
    assert np.isclose(np.linalg.det(r), 1.0)


def test_local_frames_of_a_similarity_and_their_polar_split():
    from flamesync.retarget.transfer import local_frames

    rng = np.random.default_rng(2)
    v = rng.normal(size=(300, 3))
    rot = Rotation.from_rotvec([0.2, 0.4, -0.1]).as_matrix()
    frames = local_frames(v, 1.3 * v @ rot.T + 5.0, k=20)
    assert np.allclose(frames, 1.3 * rot, atol=1e-9)
    r, s = geo.rotation_and_scale(frames)
    assert np.allclose(r, rot, atol=1e-9) and np.allclose(s, 1.3)
    # Only the reliable vertices enter the fits: scrambling the others changes nothing.
    moved = 1.3 * v @ rot.T + 5.0
    reliable = np.arange(300) % 3 != 0
    moved[~reliable] += rng.normal(size=(100, 3))
    assert np.allclose(local_frames(v, moved, k=20, reliable=reliable), 1.3 * rot, atol=1e-9)


def test_uniform_laplacian_and_boundary_loops_on_open_cylinder():
    n, rings = 12, 4
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    v = np.concatenate([np.c_[np.cos(a), np.sin(a), np.full(n, z)] for z in range(rings)])
    f = []
    for r in range(rings - 1):
        for i in range(n):
            p, q = r * n + i, r * n + (i + 1) % n
            f += [(p, q, q + n), (p, q + n, p + n)]
    f = np.array(f)
    lap = geo.uniform_laplacian(f, len(v))
    assert np.allclose(lap @ np.ones(len(v)), 0)
    assert np.allclose((lap @ v)[n:2 * n, 2], 0)  # interior ring: z is affine along the surface
    loops = geo.boundary_loops(f)
    assert sorted(len(lp) for lp in loops) == [n, n]
    assert {frozenset(lp.tolist()) for lp in loops} == {frozenset(range(n)), frozenset(range(3 * n, 4 * n))}
    assert [len(c) for c in geo.connected_components(f, len(v) + 2)] == [len(v)]


def test_find_peaks_uses_prominence():
    z = np.array([0, 1, 0.95, 2, 0, 0.5, 0.0])
    assert find_peaks(z, prominence=0.3).tolist() == [3, 5]
    assert find_peaks(z, prominence=0.01).tolist() == [1, 3, 5]


def test_anchor_position_is_weighted_sum_plus_offset():
    v = np.arange(12, dtype=float).reshape(4, 3)
    a = Anchor(np.array([0, 2]), np.array([0.25, 0.75]), np.array([1.0, 0, 0]))
    assert np.allclose(a.position(v), 0.25 * v[0] + 0.75 * v[2] + [1, 0, 0])


def test_read_landmark_files(tmp_path):
    v = np.arange(30, dtype=float).reshape(10, 3)
    js = tmp_path / "lm.json"
    js.write_text(json.dumps({"nose_tip": 3, "chin": [0, -1, 2], "eye_left": 1, "eye_right": 2}))
    lm = read_landmark_file(js, v)
    assert np.allclose(lm["nose_tip"], v[3]) and np.allclose(lm["chin"], [0, -1, 2])
    cs = tmp_path / "lm.csv"
    cs.write_text("name,value\nnose_tip,3\nchin,0,-1,2\neye_left,1\neye_right,2\n")
    assert all(np.allclose(read_landmark_file(cs, v)[k], lm[k]) for k in lm)
    for bad, msg in [({"nose": 1, "chin": 2, "eye_left": 3, "eye_right": 4}, "unknown landmark"),
                     ({"nose_tip": 99, "chin": 2, "eye_left": 3, "eye_right": 4}, "names vertex 99"),
                     ({"nose_tip": [1, 2], "chin": 2, "eye_left": 3, "eye_right": 4}, "vertex index or"),
                     ({"nose_tip": 1}, "at least 4")]:
        js.write_text(json.dumps(bad))
        with pytest.raises(InputError, match=msg):
            read_landmark_file(js, v)
    with pytest.raises(InputError, match="not found"):
        read_landmark_file(tmp_path / "missing.json", v)
