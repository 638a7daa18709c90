"""ARKit -> FLAME map on a FLAME-layout test head whose answer is known.

The test model (tests/retarget_synth.py) is a decimated copy of the default head with the mouth
cavity cut away (a hole between the lips, as FLAME has), scaled and moved, with a 52-component expression basis that is a known invertible mix Q of the default
head's ARKit shapes, and a jaw joint at the default head's jaw pivot carrying the rotation part
of jawOpen. The true map is psi = Q^-1 w and jaw.rx = jaw_open_rad * jawOpen.
"""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from flamesync.animation import Animation
from flamesync.channels import ARKIT_52, JAW_OPEN_RAD, SPEECH_CHANNELS
from flamesync.errors import InputError
from flamesync.retarget import animation_for_face, flame_map, to_flame
from flamesync.retarget.flame_fit import FlameMap, ridge_solve

pytest.importorskip("fast_simplification")
from retarget_synth import flame_from_head  # noqa: E402

# The test head has no tongue: tongueOut has nothing to map to.
SUPPORTED = [c for c in ARKIT_52 if c != "tongueOut"]


@pytest.fixture(scope="module")
def head():
    from flamesync.face import default_head

    return default_head()


@pytest.fixture(scope="module")
def setup(head):
    model, truth = flame_from_head(head, mouth_hole=True)
    # Fitted afresh, and left in the (test) cache for the tests that go through it.
    return model, truth, flame_map(model, source=head, refit=True)


def _speech_animation(n=24, seed=1, implied=True):
    rng = np.random.default_rng(seed)
    data = {c: np.clip(rng.uniform(-0.2, 0.8, n), 0, 1) for c in SPEECH_CHANNELS if c != "tongueOut"}
    jaw = np.zeros((n, 3), np.float32)
    jaw[:, 0] = JAW_OPEN_RAD * data["jawOpen"]
    meta = {"jaw_rotation": "implied"} if implied else {}
    return Animation.from_channels(fps=30, data=data, jaw=jaw if implied else None, meta=meta)


def test_ridge_solve_matches_normal_equations():
    rng = np.random.default_rng(0)
    b, y = rng.normal(size=(40, 5)), rng.normal(size=(40, 2))
    x = ridge_solve(b, y, 0.1)
    lam = 0.1 * np.trace(b.T @ b) / 5
    assert np.allclose((b.T @ b + lam * np.eye(5)) @ x, b.T @ y)
    assert np.allclose(ridge_solve(b, y, 0.0), np.linalg.lstsq(b, y, rcond=None)[0])


def test_fit_recovers_known_map(setup):
    model, truth, fm = setup
    k = ARKIT_52.index("jawOpen")
    assert abs(fm.jaw[0, k] - truth["jaw_open"]) < 0.015  # radians; measured 0.3447 vs 0.3401
    assert np.abs(np.delete(fm.jaw, k, axis=1)).max() < 0.02
    # The construction is exact (up to float32): the true parameters give the true jawOpen shape.
    import torch

    with torch.no_grad():
        v = model.forward_full(expression=torch.from_numpy(truth["exp"][:, k][None]).float(),
                               jaw_pose=torch.tensor([[truth["jaw_open"], 0.0, 0.0]])).numpy()[0]
    want_open = model.template + truth["shapes"][k]
    assert np.abs(v - want_open).max() < 3e-4  # float32 forward pass: measured 0.1 mm
    # Coefficients of correlated shapes trade off, so compare what they do: the FLAME vertices of
    # each recovered column against those of the true column.
    cols = [ARKIT_52.index(c) for c in SUPPORTED]
    true_jaw = np.zeros((3, 52), np.float32)
    true_jaw[0, k] = truth["jaw_open"]
    with torch.no_grad():
        got = model.forward_full(expression=torch.from_numpy(fm.expression.T[cols]).float(),
                                 jaw_pose=torch.from_numpy(fm.jaw.T[cols]).float()).numpy()
        want = model.forward_full(expression=torch.from_numpy(truth["exp"].T[cols]).float(),
                                  jaw_pose=torch.from_numpy(true_jaw.T[cols]).float()).numpy()
    err = np.linalg.norm(got - want, axis=2) * 1000  # (shapes, V) mm
    motion = np.linalg.norm(want - model.template, axis=2) * 1000
    per_shape = err.mean(1) / np.maximum(motion.mean(1), 1e-6)
    # Measured: median 0.05, max 0.21 (of each shape's mean motion), 0.016 mm mean over all.
    assert np.median(per_shape) < 0.1 and per_shape.max() < 0.35, per_shape
    assert err.mean() < 0.05
    rel = np.linalg.norm(fm.expression - truth["exp"], axis=0)[cols] / np.linalg.norm(truth["exp"], axis=0)[cols]
    assert np.median(rel) < 0.25
    # Reported per-shape fit errors are real numbers in mm, small on average.
    means = np.array([fm.fit_error_mm[c][0] for c in SUPPORTED])
    assert means.mean() < 0.3 and all(fm.fit_error_mm[c][1] >= fm.fit_error_mm[c][0] for c in SUPPORTED)
    assert fm.report["registration_mm"]["mean"] < 0.2


def test_flame_animation_matches_default_head_motion(setup, head):
    model, truth, fm = setup
    anim = _speech_animation()
    flame_anim = to_flame(anim, model, mapping=fm)
    assert flame_anim.channels[:52] == model.channels and flame_anim.has("jaw.rx")
    assert flame_anim.meta["jaw_rotation"] == "explicit"
    got = model.animate(flame_anim)
    ref = np.einsum("vk,tvkc->tvc", truth["bary"], head.animate(anim)[:, truth["corners"]])
    ref = ref * truth["scale"] + truth["shift"]
    err = np.linalg.norm(got - ref, axis=2) * 1000
    motion = np.linalg.norm(ref - model.template[None], axis=2) * 1000
    # Measured: mean 0.32 mm against 1.7 mm of motion (the true map itself: 0.28 mm without the
    # hole); most of it is FLAME rotating the other mouth shapes with the jaw.
    assert err.mean() < 0.6 and np.percentile(err, 99) < 5.0, (err.mean(), np.percentile(err, 99))
    assert err.mean() < 0.25 * motion.mean()


def test_implied_jaw_is_not_applied_twice_and_explicit_jaw_adds(setup):
    model, _, fm = setup
    implied = _speech_animation(implied=True)
    plain = _speech_animation(implied=False)
    a, b = to_flame(implied, model, mapping=fm), to_flame(plain, model, mapping=fm)
    assert np.allclose(a.values, b.values)
    extra = implied.replace(meta={})  # the jaw channel now counts as an extra rotation
    c = to_flame(extra, model, mapping=fm)
    assert np.allclose(c.jaw - a.jaw, implied.jaw, atol=1e-6)


def test_head_rotation_becomes_flame_global_pose(setup):
    model, _, fm = setup
    anim = _speech_animation(n=6)
    head_rot = np.tile(np.array([[0.0, 0.3, 0.0]], np.float32), (6, 1))
    with_head = Animation.from_channels(fps=30, data=anim.as_dict(), head=head_rot, meta=anim.meta)
    out = to_flame(with_head, model, mapping=fm)
    assert np.allclose(out.head, head_rot)
    v = model.animate(out)
    v0 = model.animate(to_flame(anim, model, mapping=fm))
    assert np.linalg.norm(v - v0, axis=2).mean() > 0.005  # the whole head turned


def test_animation_for_face_dispatch(setup, head):
    model, _, fm = setup
    anim = _speech_animation()
    assert animation_for_face(anim, head) is anim
    flame_anim = to_flame(anim, model, mapping=fm)
    assert animation_for_face(flame_anim, model) is flame_anim  # already FLAME parameters


def test_flame_face_spec_end_to_end_uses_cached_map(setup, tmp_path, monkeypatch):
    """flame:model.npz -> FLAME parameters -> vertex export, without refitting."""
    import flamesync.retarget.flame_fit as fit_module
    from flamesync.export import export
    from flamesync.face import load_face
    from flamesync.face.flame import save_flame_npz

    model, _, fm = setup

    def no_fit(*a, **k):
        raise AssertionError("the cached map should have been used")

    monkeypatch.setattr(fit_module, "fit_flame_map", no_fit)
    path = save_flame_npz(model, tmp_path / "flame.npz")
    face = load_face(f"flame:{path}")
    anim = _speech_animation()
    flame_anim = animation_for_face(anim, face)
    assert flame_anim.meta["retarget_map"] == fm.key
    assert np.allclose(flame_anim.values, to_flame(anim, model, mapping=fm).values)
    out = export(flame_anim, tmp_path / "take.meshes.npz", face=face)
    with np.load(out) as z:
        verts = z["vertices"]
    assert verts.shape == (anim.n_frames, model.n_vertices, 3)
    assert np.allclose(verts, model.animate(flame_anim), atol=1e-5)
    assert np.linalg.norm(verts - model.template, axis=2).max() > 0.005  # the mouth moves


def test_map_shape_mismatch_is_an_input_error(setup):
    model, _, fm = setup
    bad = FlameMap(fm.expression[:10], fm.jaw)
    with pytest.raises(InputError, match="expression components"):
        to_flame(_speech_animation(), model, mapping=bad)


def test_cli_prints_flame_fit_report(setup, tmp_path, capsys):
    from flamesync.cli import main
    from flamesync.face.flame import save_flame_npz

    model, _, fm = setup
    path = save_flame_npz(model, tmp_path / "flame.npz")
    assert main(["--progress", "none", "retarget", f"flame:{path}"]) == 0  # map is cached by the fixture
    out = capsys.readouterr().out
    assert f"FLAME map {fm.key}" in out and "registration residual: mean" in out
    worst = max(fm.fit_error_mm, key=lambda c: fm.fit_error_mm[c][1])
    assert f"{worst:<20s} mean {fm.fit_error_mm[worst][0]:6.2f} mm" in out
    assert sum(1 for line in out.splitlines() if " mm   max " in line) == 52


def test_cli_animate_with_a_flame_face_gives_flame_parameters(setup, tmp_path, capsys):
    """One command: speech + FLAME model -> FLAME parameters and FLAME meshes."""
    from pathlib import Path

    from flamesync.cli import main
    from flamesync.face.flame import save_flame_npz

    model, _, _ = setup
    path = save_flame_npz(model, tmp_path / "flame.npz")
    example = Path(__file__).resolve().parents[1] / "assets" / "examples"
    params, meshes = tmp_path / "take.flame.npz", tmp_path / "take.meshes.npz"
    rc = main(["animate", str(example / "hello.wav"), "--text-file", str(example / "hello.txt"),
               "--face", f"flame:{path}", "-o", str(params), "-o", str(meshes)])
    assert rc == 0, capsys.readouterr().err
    with np.load(params) as z:
        expression, jaw = z["expression"], z["jaw_pose"]
    assert expression.shape[1] == model.n_expr and np.abs(expression).max() > 0.05
    assert jaw[:, 0].max() > 0.05  # the jaw opens on vowels
    with np.load(meshes) as z:
        verts = z["vertices"]
    assert verts.shape == (len(expression), model.n_vertices, 3)
    assert np.linalg.norm(verts - model.template, axis=2).max() > 0.005


def test_gaze_becomes_the_flame_eye_pose(setup):
    from flamesync.channels import EYE_LOOK_DEGREES
    from flamesync.export.flame_params import flame_parameters

    model, _, fm = setup
    anim = _speech_animation(n=6)
    assert anim.rotation("eyeLeft") is None and to_flame(anim, model, mapping=fm).rotation("eyeLeft") is None
    data = anim.as_dict()
    # Both eyes look to the face's left (left eye out, right eye in) by half the full angle, and down.
    half = np.full(6, 0.5, np.float32)
    data.update(eyeLookOutLeft=half, eyeLookInRight=half, eyeLookDownLeft=half, eyeLookDownRight=half)
    out = to_flame(Animation.from_channels(fps=30, data=data, meta=anim.meta), model, mapping=fm)
    a = np.radians(EYE_LOOK_DEGREES / 2)
    for side in ("eyeLeft", "eyeRight"):
        rot = Rotation.from_rotvec(out.rotation(side).astype(np.float64))
        gaze = rot.apply([0.0, 0.0, 1.0])  # where the eye's forward axis (+z, out of the face) points
        # yaw toward +x (the face's left), then pitch down (-y)
        assert np.allclose(gaze, [np.sin(a) * np.cos(a), -np.sin(a), np.cos(a) * np.cos(a)], atol=1e-5), side
    params = flame_parameters(out, model)
    assert np.allclose(params["eye_pose"], np.concatenate([out.rotation("eyeLeft"), out.rotation("eyeRight")], 1))
