import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import flame_synth
from flamesync.cli import main
from flamesync.errors import InputError, ModelFileError
from flamesync.face import load_face
from flamesync.face.flame import FlameModel, load_flame, save_flame_npz

N_SHAPE, N_EXPR = 30, 10


@pytest.fixture(scope="module")
def synth():
    return flame_synth.make_synthetic_flame(n_shape=N_SHAPE, n_expr=N_EXPR, seed=0)


@pytest.fixture(scope="module")
def pkl_path(synth, tmp_path_factory):
    return flame_synth.write_flame_pkl(tmp_path_factory.mktemp("flame") / "generic_model.pkl", synth, style="py2")


@pytest.fixture(scope="module")
def model(pkl_path):
    return load_flame(pkl_path)


# ---------------------------------------------------------------------------- an independent reference
def reference_vertices(m: dict, betas, pose, trans):
    """FLAME in float64 numpy, one sample at a time, written from the paper's equations.

    betas (K,), pose (5, 3) axis-angle, trans (3,) -> vertices (V, 3), joints (5, 3).
    """
    shaped = m["v_template"] + m["shapedirs"] @ betas
    rest_j = np.asarray(m["J_regressor"] @ shaped)
    rots = Rotation.from_rotvec(pose).as_matrix()
    feature = np.concatenate([(r - np.eye(3)).ravel() for r in rots[1:]])
    posed = shaped + m["posedirs"] @ feature
    ids = list(m["kintree_table"][1])
    parent = {i: (None if c == 0 else ids.index(m["kintree_table"][0, c])) for c, i in enumerate(ids)}
    world = {}
    for j in range(len(ids)):  # FLAME lists parents before children
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = rest_j[j] - (rest_j[parent[j]] if parent[j] is not None else 0)
        world[j] = local if parent[j] is None else world[parent[j]] @ local
    out = np.zeros_like(posed)
    for j in range(len(ids)):
        # Each joint moves a rest-pose point p to world_j @ (p - rest_j).
        moved = (posed - rest_j[j]) @ world[j][:3, :3].T + world[j][:3, 3]
        out += m["weights"][:, j:j + 1] * moved
    joints = np.stack([world[j][:3, 3] for j in range(len(ids))])
    return out + trans, joints + trans


def random_params(batch, seed, *, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    return {
        "shape": torch.randn(batch, N_SHAPE, generator=g, dtype=torch.float64),
        "expression": torch.randn(batch, N_EXPR, generator=g, dtype=torch.float64),
        **{k: scale * torch.randn(batch, 3, generator=g, dtype=torch.float64)
           for k in ("global_pose", "neck_pose", "jaw_pose", "eye_left_pose", "eye_right_pose")},
        "translation": 0.05 * torch.randn(batch, 3, generator=g, dtype=torch.float64),
    }


# ---------------------------------------------------------------------------- loading
@pytest.mark.parametrize("style", ["py2", "py3"])
def test_loader_reads_flame_pickles(synth, tmp_path, style):
    m = load_flame(flame_synth.write_flame_pkl(tmp_path / "m.pkl", synth, style=style))
    assert isinstance(m, FlameModel)
    np.testing.assert_array_equal(m.v_template, synth["v_template"])
    np.testing.assert_array_equal(m.shapedirs, synth["shapedirs"])
    np.testing.assert_array_equal(m.posedirs, synth["posedirs"])
    np.testing.assert_array_equal(m.J_regressor, synth["J_regressor"].toarray())
    np.testing.assert_array_equal(m.lbs_weights, synth["weights"])
    np.testing.assert_array_equal(m.f, synth["f"])
    assert (m.n_shape, m.n_expr) == (N_SHAPE, N_EXPR)
    assert m.channels == tuple(f"exp{i:03d}" for i in range(N_EXPR))
    assert m.parents.tolist() == [-1, 0, 1, 1, 1]
    assert m.template.dtype == np.float32 and m.faces.dtype == np.int32


def test_npz_conversion_gives_identical_arrays(model, tmp_path):
    path = save_flame_npz(model, tmp_path / "flame.npz")
    again = load_flame(path)
    for key, arr in model.arrays().items():
        assert again.arrays()[key].dtype == arr.dtype, key
        np.testing.assert_array_equal(again.arrays()[key], arr)
    assert (again.n_shape, again.n_expr) == (model.n_shape, model.n_expr)
    assert not list(tmp_path.glob(".*part*"))
    # The conversion needs no pickle support to read.
    with np.load(path, allow_pickle=False) as z:
        assert "shapedirs" in z.files


def test_full_size_layout_splits_300_identity_100_expression(tmp_path):
    synth = flame_synth.make_synthetic_flame(n_shape=300, n_expr=100, seed=1)
    path = flame_synth.write_flame_pkl(tmp_path / "generic_model.pkl", synth)
    m = load_flame(path)
    assert (m.n_shape, m.n_expr) == (300, 100) and len(m.channels) == 100
    assert (load_flame(path, n_shape=350).n_expr) == 50


def test_load_face_dispatches_to_flame(pkl_path, synth):
    m = load_face(f"flame:{pkl_path}")
    assert isinstance(m, FlameModel) and m.n_vertices == len(synth["v_template"])


# ---------------------------------------------------------------------------- forward pass
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_matches_float64_numpy_reference(model, synth, seed):
    params = random_params(4, seed, scale=0.4)
    verts, joints = model.forward_full(**params, return_joints=True)
    assert verts.dtype == torch.float32 and verts.shape == (4, model.n_vertices, 3)
    dense = flame_synth.dense(synth)
    for b in range(4):
        betas = torch.cat([params["shape"][b], params["expression"][b]]).numpy()
        pose = torch.stack([params[k][b] for k in ("global_pose", "neck_pose", "jaw_pose",
                                                   "eye_left_pose", "eye_right_pose")]).numpy()
        ref_v, ref_j = reference_vertices(dense, betas, pose, params["translation"][b].numpy())
        assert np.abs(verts[b].numpy() - ref_v).max() < 1e-5
        assert np.abs(joints[b].numpy() - ref_j).max() < 1e-5


def test_pose_correctives_matter(model, synth):
    # Without posedirs the reference would differ by millimetres: the comparison above sees them.
    params = random_params(1, 5, scale=0.4)
    dense = flame_synth.dense(synth)
    flat = dict(dense, posedirs=np.zeros_like(dense["posedirs"]))
    betas = torch.cat([params["shape"][0], params["expression"][0]]).numpy()
    pose = torch.stack([params[k][0] for k in ("global_pose", "neck_pose", "jaw_pose",
                                               "eye_left_pose", "eye_right_pose")]).numpy()
    with_pd, _ = reference_vertices(dense, betas, pose, np.zeros(3))
    without, _ = reference_vertices(flat, betas, pose, np.zeros(3))
    assert np.abs(with_pd - without).max() > 1e-4


def test_zero_parameters_give_the_template(model):
    v = model.forward_full(batch_size=2)
    np.testing.assert_allclose(v.numpy(), np.broadcast_to(model.template, v.shape), atol=1e-6)
    np.testing.assert_allclose(model.vertices(), model.template, atol=1e-6)


def test_each_expression_component_moves_the_face(model):
    base = model.template
    for k in range(model.n_expr):
        w = np.zeros(model.n_expr, np.float32)
        w[k] = 2.0
        moved = np.linalg.norm(model.vertices(w) - base, axis=1)
        assert moved.max() > 1e-3, f"expression {k} moves nothing"


def test_jaw_rotation_moves_only_jaw_weighted_vertices(model):
    jaw_w = model.lbs_weights[:, 2]
    v = model.vertices(jaw=np.array([0.3, 0.0, 0.0]))
    moved = np.linalg.norm(v - model.template, axis=1)
    assert moved[jaw_w == 0].max() < 1e-6
    assert moved[jaw_w > 0.5].min() > 1e-3
    # Opening the mouth (rotation about x) lowers the chin.
    assert (v[jaw_w > 0.5, 1] < model.template[jaw_w > 0.5, 1]).all()


def test_eye_rotation_moves_only_its_eyeball(model):
    v = model.forward_full(eye_left_pose=torch.tensor([[0.0, 0.4, 0.0]]))[0].numpy()
    moved = np.linalg.norm(v - model.template, axis=1)
    left = model.lbs_weights[:, 3] == 1
    assert moved[~left].max() < 1e-6 and moved[left].max() > 1e-3


def test_animation_with_eye_rotations_turns_the_eyeballs(model):
    from flamesync.animation import Animation

    n = 3
    left = np.tile(np.array([[0.1, 0.4, 0.0]], np.float32), (n, 1))
    right = np.tile(np.array([[0.0, -0.2, 0.0]], np.float32), (n, 1))
    data = {c: np.zeros(n, np.float32) for c in model.channels}
    data["exp001"] = np.array([0.0, 0.5, 1.0], np.float32)
    names = ["eyeLeft.rx", "eyeLeft.ry", "eyeLeft.rz", "eyeRight.rx", "eyeRight.ry", "eyeRight.rz"]
    values = np.concatenate([np.stack(list(data.values()), 1), left, right], 1)
    anim = Animation(fps=30, channels=tuple(data) + tuple(names), values=values)
    verts = model.animate(anim)
    expected = model.forward_full(expression=torch.from_numpy(anim.weights(model.channels)),
                                  eye_left_pose=torch.from_numpy(left), eye_right_pose=torch.from_numpy(right))
    assert np.allclose(verts, expected.numpy(), atol=1e-6)
    without = model.animate(Animation(fps=30, channels=tuple(data), values=np.stack(list(data.values()), 1)))
    eyes = (model.lbs_weights[:, 3] == 1) | (model.lbs_weights[:, 4] == 1)
    moved = np.linalg.norm(verts - without, axis=2)
    assert moved[:, eyes].min() > 1e-4 and moved[:, ~eyes].max() < 1e-6


def test_global_rotation_is_rigid(model):
    rot = np.array([0.1, 0.5, -0.2])
    v = model.vertices(head=rot)
    d0 = np.linalg.norm(model.template[:, None] - model.template[None], axis=-1)
    d1 = np.linalg.norm(v[:, None] - v[None], axis=-1)
    assert np.abs(d1 - d0).max() < 1e-6
    assert np.abs(v - model.template).max() > 1e-2


def test_batch_consistency(model):
    params = random_params(5, 9)
    batch = model.forward_full(**params)
    for b in range(5):
        single = model.forward_full(**{k: v[b:b + 1] for k, v in params.items()})
        torch.testing.assert_close(single[0], batch[b], atol=1e-6, rtol=0)


def test_face_model_interface_maps_to_flame_parameters(model):
    params = random_params(3, 4)
    expected = model.forward_full(expression=params["expression"], jaw_pose=params["jaw_pose"],
                                  global_pose=params["global_pose"])
    got = model.forward(params["expression"].float(), jaw=params["jaw_pose"].float(),
                        head=params["global_pose"].float())
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    with pytest.raises(InputError, match="unknown channel"):
        model.vertices({"jawOpen": 1.0})
    assert model.vertices({"exp003": 1.0}).shape == (model.n_vertices, 3)


def test_fewer_components_are_padded_and_too_many_refused(model):
    params = random_params(2, 3)
    short = model.forward_full(shape=params["shape"][:, :5])
    padded = torch.cat([params["shape"][:, :5], torch.zeros(2, N_SHAPE - 5, dtype=torch.float64)], 1)
    torch.testing.assert_close(short, model.forward_full(shape=padded))
    with pytest.raises(InputError, match="expression"):
        model.forward_full(expression=torch.zeros(2, N_EXPR + 1))
    with pytest.raises(InputError, match="batch size"):
        model.forward_full(shape=torch.zeros(2, 3), jaw_pose=torch.zeros(3, 3))


def test_forward_is_differentiable(model):
    expr = torch.zeros(2, N_EXPR, requires_grad=True)
    jaw = torch.full((2, 3), 0.1, requires_grad=True)
    model.forward_full(expression=expr, jaw_pose=jaw).square().sum().backward()
    assert expr.grad.abs().sum() > 0 and jaw.grad.abs().sum() > 0


def test_lip_vertices_need_masks(model, synth, tmp_path):
    with pytest.raises(InputError, match="FLAME_masks.pkl"):
        model.lip_vertices
    # FLAME's masks file sits beside the model: a Python 2 pickle of index arrays.
    lips = np.array([5, 9, 17], np.uint32)
    pkl = flame_synth.write_flame_pkl(tmp_path / "generic_model.pkl", synth, style="py2")
    (tmp_path / "FLAME_masks.pkl").write_bytes(
        flame_synth.dumps_py2({"lips": lips, "face": np.arange(40, dtype=np.uint32)}))
    m = load_flame(pkl)
    np.testing.assert_array_equal(m.lip_vertices, lips)
    (tmp_path / "elsewhere").mkdir()  # away from FLAME_masks.pkl: the masks must come from the .npz
    kept = load_flame(save_flame_npz(m, tmp_path / "elsewhere" / "f.npz"))
    np.testing.assert_array_equal(kept.lip_vertices, lips)


# ---------------------------------------------------------------------------- bad files
def _one_line_error(exc_info):
    text = str(exc_info.value)
    assert "\n" not in text and text
    return text


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found") as info:
        load_flame(tmp_path / "generic_model.pkl")
    _one_line_error(info)


def test_corrupt_pickle(pkl_path, tmp_path):
    bad = tmp_path / "generic_model.pkl"
    bad.write_bytes(pkl_path.read_bytes()[: len(pkl_path.read_bytes()) // 2])
    with pytest.raises(ModelFileError) as info:
        load_flame(bad)
    _one_line_error(info)


def test_wrong_keys_and_shapes(synth, tmp_path):
    no_posedirs = {k: v for k, v in synth.items() if k != "posedirs"}
    with pytest.raises(ModelFileError, match="missing posedirs") as info:
        load_flame(flame_synth.write_flame_pkl(tmp_path / "a.pkl", no_posedirs))
    _one_line_error(info)
    transposed = dict(synth, weights=synth["weights"].T.copy())
    with pytest.raises(ModelFileError, match="'weights' has shape") as info:
        load_flame(flame_synth.write_flame_pkl(tmp_path / "b.pkl", transposed))
    _one_line_error(info)
    bad_faces = dict(synth, f=synth["f"] + np.uint32(10_000))
    with pytest.raises(ModelFileError, match="'f'"):
        load_flame(flame_synth.write_flame_pkl(tmp_path / "c.pkl", bad_faces))
    with pytest.raises(ModelFileError, match="expected a dict"):
        load_flame(flame_synth.write_flame_pkl(tmp_path / "d.pkl", [1, 2]))


def test_npz_that_is_not_a_conversion(tmp_path):
    other = tmp_path / "x.npz"
    np.savez(other, a=np.ones(3))
    with pytest.raises(ModelFileError, match="flame convert"):
        load_flame(other)
    garbage = tmp_path / "y.npz"
    garbage.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ModelFileError) as info:
        load_flame(garbage)
    _one_line_error(info)


# ---------------------------------------------------------------------------- CLI
def test_cli_convert_and_info(pkl_path, tmp_path, capsys):
    out = tmp_path / "flame.npz"
    assert main(["flame", "convert", str(pkl_path), "-o", str(out)]) == 0
    assert out.is_file()
    np.testing.assert_array_equal(load_flame(out).shapedirs, load_flame(pkl_path).shapedirs)
    capsys.readouterr()
    assert main(["flame", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"vertices: {load_flame(out).n_vertices}" in text and "expression components: 10" in text
    assert "jaw (parent neck)" in text


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["flame", "info", str(tmp_path / "missing.pkl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flamesync: error:") and "not found" in err and "\n" not in err
    assert main(["flame", "convert", str(tmp_path / "missing.pkl"), "-o", str(tmp_path / "x.txt")]) == 2


def test_rigid_chain_against_hand_computed_pose():
    from flamesync.face import lbs

    # Three joints along x; the root turns 90 deg about z, the middle one -90 deg back.
    joints = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]], dtype=torch.float64)
    rot = lbs.axis_angle_to_matrix(torch.tensor([[[0, 0, np.pi / 2], [0, 0, -np.pi / 2], [0, 0, 0]]],
                                                dtype=torch.float64))
    posed, rel = lbs.batch_rigid_transform(rot, joints, torch.tensor([-1, 0, 1]))
    torch.testing.assert_close(posed[0], torch.tensor([[0.0, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=torch.float64))
    # A rest-pose point at the last joint follows it exactly.
    point = torch.tensor([2.0, 0, 0, 1], dtype=torch.float64)
    torch.testing.assert_close(rel[0, 2] @ point, torch.tensor([1.0, 1, 0, 1], dtype=torch.float64))
    feats = lbs.pose_features(rot)
    assert feats.shape == (1, 18) and torch.all(feats[:, 9:] == 0)


def test_cli_convert_keeps_masks(pkl_path, tmp_path, capsys):
    masks = tmp_path / "masks.pkl"
    masks.write_bytes(flame_synth.dumps_py2({"lips": np.array([1, 2, 3], np.uint32)}))
    out = tmp_path / "flame.npz"
    assert main(["flame", "convert", str(pkl_path), "-o", str(out), "--masks", str(masks)]) == 0
    np.testing.assert_array_equal(load_flame(out).lip_vertices, [1, 2, 3])
    assert main(["flame", "info", str(out)]) == 0
    assert "vertex masks: lips" in capsys.readouterr().out
    assert "FlameModel(" in repr(load_flame(out))
