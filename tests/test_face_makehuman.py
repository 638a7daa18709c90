"""The default MakeHuman head: geometry, ARKit semantics, jaw, caching and the ``face`` CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("anny")

from flamesync.channels import ARKIT_52, JAW_OPEN_RAD  # noqa: E402
from flamesync.cli import main  # noqa: E402
from flamesync.errors import InputError  # noqa: E402
from flamesync.face import default_head, load_face  # noqa: E402
from flamesync.face import makehuman as mh  # noqa: E402

MOUTH = [c for c in ARKIT_52 if c.startswith(("mouth", "jaw", "cheek", "tongue"))]
EYES = [c for c in ARKIT_52 if c.startswith("eye")]


@pytest.fixture(scope="module")
def head() -> mh.MakeHumanHead:
    return mh.load_default_head()


def pose(head, **weights) -> np.ndarray:
    return head.vertices(weights)


def rodrigues(rotvec: np.ndarray) -> np.ndarray:
    """float64 rotation matrix, written independently of flamesync.face.lbs."""
    theta = np.linalg.norm(rotvec)
    if theta < 1e-12:
        return np.eye(3)
    k = rotvec / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


# --------------------------------------------------------------------------------- the mesh
def test_entry_points_give_the_same_model(head):
    assert default_head() is head
    assert load_face("default") is head
    assert head.channels == ARKIT_52
    assert head.deltas.shape == (52, head.n_vertices, 3)


def test_zero_parameters_give_the_template(head):
    v = head.vertices(None)
    np.testing.assert_array_equal(v, head.template)
    v = head.vertices(np.zeros(52), jaw=np.zeros(3), head=np.zeros(3))
    np.testing.assert_allclose(v, head.template, atol=1e-7)


def test_faces_are_valid_and_every_vertex_is_used(head):
    f = head.faces
    assert f.dtype == np.int32 and f.shape[1] == 3
    assert f.min() == 0 and f.max() == head.n_vertices - 1
    assert len(np.unique(f)) == head.n_vertices  # no unreferenced vertices after the crop
    tri = head.template[f].astype(np.float64)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    assert area.min() > 1e-10


def test_parts_partition_the_mesh(head):
    solid = ["skin", "upper_teeth", "lower_teeth", "tongue", "eye_left", "eye_right"]
    allv = np.concatenate([head.parts[p] for p in solid])
    assert len(allv) == len(np.unique(allv)) == head.n_vertices
    skin = set(head.parts["skin"].tolist())
    for p in ("upper_lip", "lower_lip", "neck_boundary"):
        assert set(head.parts[p].tolist()) <= skin
        assert len(head.parts[p]) > 20
    assert not set(head.parts["upper_lip"].tolist()) & set(head.parts["lower_lip"].tolist())
    # no body below the neck, no eyelash cards: the skin is one piece
    assert 4000 < len(head.parts["skin"]) < 5000


def _edges(faces):
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, count = np.unique(e, axis=0, return_counts=True)
    return uniq, count


def test_skin_is_closed_except_for_one_clean_neck_loop(head):
    skin = set(head.parts["skin"].tolist())
    f = head.faces[np.isin(head.faces[:, 0], list(skin))]
    edges, count = _edges(f)
    assert count.max() == 2  # manifold
    border = edges[count == 1]
    loop = head.parts["neck_boundary"]
    assert set(np.unique(border).tolist()) == set(loop.tolist())
    assert len(border) == len(loop)  # one simple loop: as many edges as vertices
    # the loop is ordered: consecutive entries are joined by border edges
    pairs = {tuple(sorted(p)) for p in zip(loop, np.roll(loop, -1))}
    assert pairs == {tuple(e) for e in border}
    # it lies below the chin, sloping from the throat up to the nape, without ragged steps
    y = head.template[loop, 1]
    chin = head.template[head.parts["lower_teeth"], 1].min()
    assert y.max() < chin
    steps = np.abs(np.diff(np.r_[y, y[0]]))
    assert steps.max() < 0.012


def test_closed_parts_face_outwards(head):
    for part in ("skin", "eye_left", "eye_right", "tongue"):
        idx = head.parts[part]
        f = head.faces[np.isin(head.faces[:, 0], idx)].astype(np.int64)
        v = head.template.astype(np.float64)
        if part == "skin":  # close the neck with a fan to its centre to measure the volume
            loop = head.parts["neck_boundary"]
            v = np.vstack([v, v[loop].mean(0)])
            centre = len(v) - 1
            # the cap runs against the skin's border edges, which run along the loop one way
            edges = {(a, b) for a, b, c in f for a, b in ((a, b), (b, c), (c, a))}
            fwd = (loop[0], loop[1]) in edges
            cap = [(b, a, centre) if fwd else (a, b, centre) for a, b in zip(loop, np.roll(loop, -1))]
            f = np.vstack([f, np.array(cap)])
        edges, count = _edges(f)
        assert count.min() == 2 and count.max() == 2, part
        tri = v[f]
        volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
        assert volume > 0, part


def test_units_axes_and_origin(head):
    t = head.template
    height = t[:, 1].max() - t[:, 1].min()
    assert 0.2 < height < 0.32  # metres: crown to the neck cut
    centre_l = t[head.parts["eye_left"]].mean(0)
    centre_r = t[head.parts["eye_right"]].mean(0)
    assert 0.055 < np.linalg.norm(centre_l - centre_r) < 0.07
    np.testing.assert_allclose((centre_l + centre_r) / 2, 0, atol=1e-6)
    assert centre_l[0] > 0  # +x is the face's left
    skin = t[head.parts["skin"]]
    top = skin[np.argmax(skin[:, 1])]
    front = skin[np.argmax(skin[:, 2])]
    assert abs(top[0]) < 1e-6 and top[1] > 0.08  # the crown is up
    assert abs(front[0]) < 1e-6 and front[2] > 0.01 and -0.06 < front[1] < 0  # nose tip in front
    assert t[head.parts["upper_teeth"], 1].mean() > t[head.parts["lower_teeth"], 1].mean()


# --------------------------------------------------------------------------------- blendshapes
def test_every_blendshape_moves_something_on_the_head_only(head):
    boundary = head.parts["neck_boundary"]
    below = head.template[boundary, 1].max()
    for k, name in enumerate(ARKIT_52):
        d = np.linalg.norm(head.deltas[k], axis=1)
        assert d.max() > 0.002, name  # at least 2 mm somewhere
        assert d[boundary].max() == 0, name
        moved = d > 1e-6
        assert head.template[moved, 1].min() > below - 0.05, name


def test_mouth_shapes_leave_the_eyes_and_eye_shapes_the_mouth(head):
    eyes = np.concatenate([head.parts["eye_left"], head.parts["eye_right"]])
    inner = np.concatenate([head.parts[p] for p in ("upper_teeth", "lower_teeth", "tongue")])
    for name in MOUTH:
        d = np.linalg.norm(head.deltas[ARKIT_52.index(name)], axis=1)
        assert d[eyes].max() == 0, name
        assert d[head.parts["upper_teeth"]].max() < 2e-4, name  # the skull does not move
    for name in EYES + ["browInnerUp", "browDownLeft", "browOuterUpRight"]:
        d = np.linalg.norm(head.deltas[ARKIT_52.index(name)], axis=1)
        assert d[inner].max() == 0, name


@pytest.mark.parametrize("side, sign", [("Left", 1.0), ("Right", -1.0)])
def test_sided_shapes_act_on_their_side(head, side, sign):
    for stem in ("eyeBlink", "mouthSmile", "browOuterUp", "cheekSquint", "noseSneer"):
        d = np.linalg.norm(head.deltas[ARKIT_52.index(stem + side)], axis=1)
        x_mean = (d * head.template[:, 0]).sum() / d.sum()
        assert sign * x_mean > 0.01, stem + side
    moved_eye = "eye_left" if side == "Left" else "eye_right"
    other_eye = "eye_right" if side == "Left" else "eye_left"
    d = np.linalg.norm(head.deltas[ARKIT_52.index("eyeLookUp" + side)], axis=1)
    assert d[head.parts[moved_eye]].max() > 0.001 and d[head.parts[other_eye]].max() == 0


def test_lips_are_sealed_at_rest(head):
    assert head.mouth_opening(head.template) < 0.001


def test_jaw_open_opens_the_lips_by_centimetres(head):
    assert head.mouth_opening(pose(head, jawOpen=1.0)) > 0.02
    half = head.mouth_opening(pose(head, jawOpen=0.5))
    assert 0.008 < half < head.mouth_opening(pose(head, jawOpen=1.0))


@pytest.mark.parametrize("amount", [0.3, 0.6, 1.0])
def test_mouth_close_on_jaw_open_seals_the_lips(head, amount):
    open_ = head.mouth_opening(pose(head, jawOpen=amount))
    sealed = head.mouth_opening(pose(head, jawOpen=amount, mouthClose=amount))
    assert open_ > 0.005
    assert sealed < 0.002


def test_mouth_close_keeps_the_jaw_open(head):
    lt = head.parts["lower_teeth"]
    opened = pose(head, jawOpen=1.0)
    sealed = pose(head, jawOpen=1.0, mouthClose=1.0)
    np.testing.assert_allclose(opened[lt], sealed[lt], atol=1e-6)  # only the lips move


def test_jaw_open_moves_lower_teeth_and_tongue_but_not_upper_teeth(head):
    v = pose(head, jawOpen=1.0)
    move = np.linalg.norm(v - head.template, axis=1)
    assert move[head.parts["lower_teeth"]].min() > 0.01
    assert move[head.parts["tongue"]].mean() > 0.01
    assert move[head.parts["upper_teeth"]].max() == 0


@pytest.mark.parametrize("name, axis, sign", [("jawLeft", 0, 1), ("jawRight", 0, -1), ("jawForward", 2, 1)])
def test_jaw_shifts_carry_the_lower_teeth(head, name, axis, sign):
    d = head.deltas[ARKIT_52.index(name)]
    shift = d[head.parts["lower_teeth"]].mean(0)
    assert sign * shift[axis] > 0.004  # millimetres towards the face's left / right / front
    # the teeth move as a rigid body: distances between them are kept to a fraction of a mm
    rest = head.template[head.parts["lower_teeth"]]
    moved = rest + d[head.parts["lower_teeth"]]
    before = np.linalg.norm(rest[:, None] - rest[None], axis=-1)
    after = np.linalg.norm(moved[:, None] - moved[None], axis=-1)
    assert np.abs(after - before).max() < 5e-4
    assert np.abs(d[head.parts["upper_teeth"]]).max() == 0


def test_jaw_open_rad_is_the_rotation_jaw_open_implies(head):
    assert head.meta["jaw_open_rad"] == pytest.approx(JAW_OPEN_RAD, abs=0.005)
    lt = head.parts["lower_teeth"]
    rotated = head.vertices(None, jaw=[JAW_OPEN_RAD, 0, 0])
    shaped = pose(head, jawOpen=1.0)
    err = np.linalg.norm(rotated[lt] - shaped[lt], axis=1)
    assert err.max() < 0.003  # the rigid rotation reproduces the shape's lower teeth to mm
    angle, rms = mh.fit_jaw_angle(head.template[lt].astype(float), shaped[lt].astype(float),
                                  head.jaw_pivot.astype(float))
    assert angle == pytest.approx(head.meta["jaw_open_rad"], abs=1e-4) and rms < 0.002


def test_fit_jaw_angle_recovers_a_known_rotation():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(50, 3))
    pivot = np.array([0.0, 0.3, -0.2])
    moved = (pts - pivot) @ rodrigues(np.array([0.27, 0, 0])).T + pivot
    angle, rms = mh.fit_jaw_angle(pts, moved, pivot)
    assert angle == pytest.approx(0.27, abs=1e-9) and rms < 1e-9


# --------------------------------------------------------------------------------- jaw rotation
def test_jaw_rotation_opens_the_lips_teeth_and_tongue_follow(head):
    rx = JAW_OPEN_RAD
    v = head.vertices(None, jaw=[rx, 0, 0])
    assert head.mouth_opening(v) > 0.015
    rot = rodrigues(np.array([rx, 0.0, 0.0]))
    p = head.jaw_pivot.astype(np.float64)
    lt = head.parts["lower_teeth"]
    rigid = (head.template[lt] - p) @ rot.T + p
    np.testing.assert_allclose(v[lt], rigid, atol=1e-5)
    np.testing.assert_array_equal(v[head.parts["upper_teeth"]], head.template[head.parts["upper_teeth"]])
    np.testing.assert_array_equal(v[head.parts["neck_boundary"]], head.template[head.parts["neck_boundary"]])
    tongue = np.linalg.norm(v - head.template, axis=1)[head.parts["tongue"]]
    assert tongue.min() > 0.001
    # positive rx opens: the chin goes down
    assert v[lt, 1].mean() < head.template[lt, 1].mean() - 0.01


def test_jaw_weights_cover_teeth_and_tongue(head):
    w = head.jaw_weights
    assert np.all(w[head.parts["lower_teeth"]] == 1)
    assert np.all(w[head.parts["upper_teeth"]] == 0)
    assert w[head.parts["tongue"]].min() > 0.5
    assert np.all(w[head.parts["eye_left"]] == 0) and np.all(w[head.parts["neck_boundary"]] == 0)
    assert w.min() >= 0 and w.max() <= 1


def test_head_rotation_turns_the_head_and_keeps_the_neck_cut(head):
    v = head.vertices(None, head=[0, 0.3, 0])
    b = head.parts["neck_boundary"]
    np.testing.assert_allclose(v[b], head.template[b], atol=1e-7)
    eyes = head.parts["eye_left"]
    assert np.linalg.norm(v[eyes] - head.template[eyes], axis=1).min() > 0.01


# --------------------------------------------------------------------------------- torch path
def test_forward_matches_an_independent_numpy_implementation(head):
    rng = np.random.default_rng(1)
    w = rng.uniform(0, 1, size=(3, 52)) * (rng.uniform(size=(3, 52)) < 0.3)
    jaw = rng.normal(scale=0.15, size=(3, 3))
    out = head.vertices(w, jaw=jaw)
    t = head.template.astype(np.float64)
    d = head.deltas.astype(np.float64)
    p = head.jaw_pivot.astype(np.float64)
    jw = head.jaw_weights.astype(np.float64)[:, None]
    for b in range(3):
        shaped = t + np.tensordot(w[b], d, axes=1)
        moved = (shaped - p) @ rodrigues(jaw[b]).T + p
        ref = shaped + jw * (moved - shaped)
        np.testing.assert_allclose(out[b], ref, atol=1e-5)


def test_forward_is_differentiable(head):
    w = torch.zeros(2, 52, requires_grad=True)
    jaw = torch.zeros(2, 3, requires_grad=True)
    with torch.no_grad():
        w[:, ARKIT_52.index("jawOpen")] = 0.5
    v = head.forward(w, jaw=jaw)
    assert v.shape == (2, head.n_vertices, 3)
    opening = head.mouth_opening(v)
    assert isinstance(opening, torch.Tensor) and opening.shape == (2,)
    opening.sum().backward()
    assert w.grad[:, ARKIT_52.index("jawOpen")].abs().min() > 0.01
    assert w.grad[:, ARKIT_52.index("mouthClose")].max() < 0  # closing reduces the gap
    assert jaw.grad[:, 0].abs().min() > 0


def test_mouth_opening_numpy_and_torch_agree_batched(head):
    w = np.zeros((4, 52), np.float32)
    w[:, ARKIT_52.index("jawOpen")] = [0, 0.25, 0.5, 1.0]
    v = head.vertices(w)
    a = head.mouth_opening(v)
    b = head.mouth_opening(torch.from_numpy(v)).numpy()
    assert a.shape == (4,)
    np.testing.assert_allclose(a, b, atol=1e-7)
    assert np.all(np.diff(a) > 0)


def test_bad_inputs_raise_input_error(head):
    with pytest.raises(InputError, match="jawOpn"):
        head.vertices({"jawOpn": 1.0})
    with pytest.raises(InputError, match="NaN"):
        head.vertices({"jawOpen": float("nan")})
    with pytest.raises(InputError):
        head.vertices(np.zeros(51))


# --------------------------------------------------------------------------------- identity
def test_identity_changes_shape_not_topology(head):
    aged = mh.load_default_head(identity={"head-age": 1.0})
    assert aged is not head
    assert aged.faces.shape == head.faces.shape and aged.template.shape == head.template.shape
    move = np.linalg.norm(aged.template - head.template, axis=1)
    assert move.max() > 0.001
    assert aged.mouth_opening(aged.template) < 0.001
    assert aged.mouth_opening(aged.vertices({"jawOpen": 1.0})) > 0.02
    assert mh.load_default_head(identity={"head-age": 1.0}) is aged  # memoised
    with pytest.raises(InputError, match="unknown identity"):
        mh.load_default_head(identity={"head-agee": 1.0})
    with pytest.raises(InputError, match="must lie in"):
        mh.load_default_head(identity={"head-age": 3.0})
    with pytest.raises(InputError, match="must lie in"):
        mh.load_default_head(identity={"head-oval": -0.5})  # one-sided target


# --------------------------------------------------------------------------------- cache
def test_disk_cache_is_used_and_complete(head, monkeypatch, tmp_path):
    monkeypatch.setenv("FLAMESYNC_CACHE", str(tmp_path))
    monkeypatch.setattr(mh, "_MEMO", {})
    built = mh.load_default_head()
    files = sorted(p.name for p in (tmp_path / "faces").iterdir())
    assert files == [mh.cache_path().name]  # no temporary files left behind
    monkeypatch.setattr(mh, "_MEMO", {})

    def no_build(*a, **k):
        raise AssertionError("should have loaded from the disk cache")

    monkeypatch.setattr(mh, "build_default_head", no_build)
    cached = mh.load_default_head()
    np.testing.assert_array_equal(cached.template, built.template)
    np.testing.assert_array_equal(cached.deltas, built.deltas)
    assert cached.parts.keys() == built.parts.keys()
    assert cached.meta == built.meta
    np.testing.assert_array_equal(cached.mouth_upper_columns, built.mouth_upper_columns)


def test_corrupt_cache_is_rebuilt(monkeypatch, tmp_path):
    monkeypatch.setenv("FLAMESYNC_CACHE", str(tmp_path))
    monkeypatch.setattr(mh, "_MEMO", {})
    path = mh.cache_path()
    path.write_bytes(b"not a zip file")
    model = mh.load_default_head()
    assert model.n_vertices > 4000
    assert path.stat().st_size > 1_000_000


# --------------------------------------------------------------------------------- CLI
def test_cli_info(capsys):
    assert main(["face", "info"]) == 0
    out = capsys.readouterr().out
    assert "vertices: 4790" in out and "triangles:" in out
    assert "metres" in out and "y up" in out
    for name in ("jawOpen", "mouthClose", "tongueOut", "eyeBlinkLeft"):
        assert name in out
    for part in ("upper_teeth", "lower_teeth", "tongue", "neck_boundary"):
        assert part in out


def test_cli_export_obj_and_ply(tmp_path, head, capsys):
    trimesh = pytest.importorskip("trimesh")
    obj = tmp_path / "open.obj"
    assert main(["face", "export", "--pose", "jawOpen=1,mouthFunnel=0.5", "-o", str(obj)]) == 0
    mesh = trimesh.load(obj, process=False)
    assert mesh.vertices.shape == (head.n_vertices, 3) and len(mesh.faces) == len(head.faces)
    expected = pose(head, jawOpen=1.0, mouthFunnel=0.5)
    np.testing.assert_allclose(mesh.vertices, expected, atol=2e-6)
    ply = tmp_path / "jaw.ply"
    assert main(["face", "export", "--jaw", f"{JAW_OPEN_RAD},0,0", "-o", str(ply)]) == 0
    mesh = trimesh.load(ply, process=False)
    np.testing.assert_allclose(mesh.vertices, head.vertices(None, jaw=[JAW_OPEN_RAD, 0, 0]), atol=1e-6)
    assert head.mouth_opening(np.asarray(mesh.vertices)) > 0.015


@pytest.mark.parametrize(
    "args, message",
    [
        (["--pose", "jawOpn=1"], "unknown channel"),
        (["--pose", "jawOpen=nan"], "NaN"),
        (["--pose", "jawOpen"], "NAME=VALUE"),
        (["--jaw", "0.1,0"], "three numbers"),
        (["--jaw", "nan,0,0"], "NaN"),
        (["--identity", "head-agee=1"], "unknown identity"),
    ],
)
def test_cli_export_bad_input_is_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "x.obj"
    assert main(["face", "export", *args, "-o", str(out)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and err.startswith("flamesync: error:")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_cli_export_bad_path_is_one_line(tmp_path, capsys):
    assert main(["face", "export", "--pose", "jawOpen=1", "-o", str(tmp_path / "missing" / "x.obj")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err
    assert main(["face", "export", "-o", str(tmp_path / "x.stl")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and ".obj or .ply" in err
