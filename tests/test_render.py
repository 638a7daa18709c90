"""Preview rendering: pixels of real renders, the MP4 container, geometry helpers, the CLI."""

import numpy as np
import pytest

import importlib.util  # noqa: E402

# find_spec, not importorskip: importing pyrender here would fix PyOpenGL's platform before the
# renderer can choose a headless one
if importlib.util.find_spec("pyrender") is None or importlib.util.find_spec("imageio_ffmpeg") is None:
    pytest.skip("needs flamesync[render]", allow_module_level=True)

from flamesync.animation import Animation  # noqa: E402
from flamesync.errors import InputError, MissingDependencyError  # noqa: E402
from flamesync.render import camera as cam  # noqa: E402
from flamesync.render import geometry as geo  # noqa: E402
from flamesync.render import render_frames, render_video  # noqa: E402
from flamesync.render.rig import HeadRig, rigid_fit  # noqa: E402
from flamesync.render.testing import synthetic_head  # noqa: E402
from flamesync.render.video import probe  # noqa: E402

SIZE = 128


@pytest.fixture(scope="module")
def face():
    return synthetic_head()


@pytest.fixture(scope="module")
def rig(face):
    return HeadRig.from_face(face)


def anim(jaw, **more):
    jaw = np.asarray(jaw, np.float32)
    data = {"jawOpen": jaw, **{k: np.full(len(jaw), v, np.float32) for k, v in more.items()}}
    return Animation.from_channels(fps=30, data=data)


def foreground(img):
    bg = np.round(np.asarray(cam.BACKGROUND) * 255)  # the clear colour is written as is
    return np.abs(img.astype(np.int16) - bg).sum(-1) > 12


def dark(img):
    return img.astype(np.float32).mean(-1) < 40  # the mouth cavity; the backdrop is ~44


def mouth_box(rig, size=SIZE, camera="front", half=0.12):
    pose, yfov = cam.camera_pose(rig, camera)
    (c, r), = cam.project(rig.landmarks["mouth"][None], pose, yfov, size, size)
    h = int(half * size)
    return slice(max(0, int(r) - h), int(r) + h), slice(max(0, int(c) - 2 * h), int(c) + 2 * h)


# ---------------------------------------------------------------------------- pixels
def test_face_is_in_frame_and_centred(face):
    img = render_frames(anim([0.0]), face=face, size=SIZE, workers=1)[0]
    fg = foreground(img)
    assert 0.25 < fg.mean() < 0.95
    rows, cols = np.nonzero(fg)
    assert abs(cols.mean() - SIZE / 2) < 0.08 * SIZE
    assert abs(rows.mean() - SIZE / 2) < 0.2 * SIZE
    # background shows on both sides: the head is not cropped sideways
    assert not fg[:, :3].any() and not fg[:, -3:].any()


@pytest.mark.parametrize("camera", ["front", "mouth"])
def test_mouth_dark_only_when_open(face, rig, camera):
    frames = render_frames(anim([0.0, 1.0]), face=face, size=SIZE, camera=camera, workers=1)
    rs, cs = mouth_box(rig, camera=camera, half=0.12 if camera == "front" else 0.3)
    closed, opened = dark(frames[0][rs, cs]).mean(), dark(frames[1][rs, cs]).mean()
    assert closed < 0.005
    assert opened > 0.03


def test_open_mouth_shows_teeth_and_tongue(face, rig):
    img = render_frames(anim([1.0]), face=face, size=256, camera="mouth", workers=1)[0]
    rs, cs = mouth_box(rig, size=256, camera="mouth", half=0.3)
    box = img[rs, cs].astype(np.float32)
    whiteish = ((box.mean(-1) > 150) & (np.ptp(box, axis=-1) < 70)).mean()  # teeth: bright, unsaturated
    reddish = ((box[..., 0] > 120) & (box[..., 0] > 1.4 * box[..., 1])).mean()  # lips, tongue, gums
    assert whiteish > 0.01 and reddish > 0.05


def test_side_by_side_halves(face):
    a, b = anim(np.linspace(0, 1, 3)), anim(np.zeros(3))
    same = render_frames(a, other=a, labels=("x", "x"), face=face, size=64, workers=1)
    assert same.shape == (3, 64, 128, 3)
    assert np.array_equal(same[..., :64, :], same[..., 64:, :])
    diff = render_frames(a, other=b, labels=("x", "x"), face=face, size=64, workers=1)
    assert np.array_equal(diff[0, :, :64], diff[0, :, 64:])  # both closed in frame 0
    assert np.abs(diff[2, :, :64].astype(int) - diff[2, :, 64:]).sum() > 1000


def test_plot_strip_and_labels(face):
    frames = render_frames(anim(np.linspace(0, 1, 4)), face=face, size=64, plot=True, workers=1)
    assert frames.shape[1] > 64 and frames.shape[2] == 64
    strip = frames[:, 64:]
    assert strip.std() > 5  # curves and names, not a blank band
    assert not np.array_equal(strip[0], strip[-1])  # the cursor scrolls


def test_cameras_differ_and_profile_sees_the_side(face):
    imgs = {c: render_frames(anim([0.3]), face=face, size=64, camera=c, workers=1)[0] for c in cam.PRESETS}
    for c in imgs:
        assert foreground(imgs[c]).mean() > 0.2
    assert np.abs(imgs["front"].astype(int) - imgs["profile"]).mean() > 5


def test_parallel_workers_match_serial(face, monkeypatch):
    from flamesync.render import frames as fr

    monkeypatch.setattr(fr, "MIN_FRAMES_PER_WORKER", 4)
    a = anim(np.linspace(0, 1, 16))
    serial = render_frames(a, face=face, size=48, workers=1)
    parallel = render_frames(a, face=face, size=48, workers=2)
    assert parallel.shape == serial.shape
    # same frames in the same order; a handful of pixels may flip where surfaces nearly touch,
    # as float rounding in the posing differs between processes
    assert (np.abs(parallel.astype(int) - serial) > 2).any(-1).mean() < 0.003


# ---------------------------------------------------------------------------- video
def test_mp4_frames_and_audio(face, tmp_path):
    import soundfile as sf

    sr = 16000
    wav = tmp_path / "speech.wav"
    sf.write(wav, 0.2 * np.sin(2 * np.pi * 200 * np.arange(3 * sr) / sr), sr)
    a = anim(np.linspace(0, 1, 25)).replace(fps=25.0, audio_path=str(wav), audio_offset=0.5)
    out = render_video(a, tmp_path / "p.mp4", face=face, size=64, workers=1)
    info = probe(out)
    assert info["video_frames"] == 25
    assert info["audio"]
    assert abs(info["audio_duration"] - 1.0) < 0.06  # cut to the video, not the 3 s file
    assert not list(tmp_path.glob(".p.*"))  # no temporary left behind


def test_mp4_silent_and_resampled(face, tmp_path):
    out = render_video(anim(np.zeros(30)), tmp_path / "s.mp4", face=face, size=64, fps=15, audio=None, workers=1)
    info = probe(out)
    assert info["video_frames"] == 15 and not info["audio"]


def test_bad_input(face, tmp_path):
    a = anim([0.0])
    with pytest.raises(InputError, match="camera"):
        render_frames(a, face=face, camera="fisheye", workers=1)
    with pytest.raises(InputError, match="size"):
        render_frames(a, face=face, size="big", workers=1)
    with pytest.raises(InputError, match="workers"):
        render_frames(a, face=face, workers=0)
    with pytest.raises(InputError, match="mp4"):
        render_video(a, tmp_path / "x.gif", face=face)
    with pytest.raises(InputError, match="backend"):
        render_frames(a, face=face, backend="povray", workers=1)
    assert not (tmp_path / "x.gif").exists()


# ---------------------------------------------------------------------------- backends
def test_pytorch3d_missing_is_a_clear_error(face):
    import importlib.util

    if importlib.util.find_spec("pytorch3d") is not None:
        pytest.skip("pytorch3d is installed here")
    with pytest.raises(MissingDependencyError, match="pytorch3d"):
        render_frames(anim([0.0]), face=face, backend="pytorch3d", size=32, workers=1)


def test_pytorch3d_renders_the_face(face, rig):
    pytest.importorskip("pytorch3d")
    frames = render_frames(anim([0.0, 1.0]), face=face, backend="pytorch3d", size=SIZE, workers=1)
    fg = foreground(frames[0])
    assert 0.25 < fg.mean() < 0.95
    rs, cs = mouth_box(rig)
    assert dark(frames[1][rs, cs]).mean() > dark(frames[0][rs, cs]).mean() + 0.02


# ---------------------------------------------------------------------------- rig and geometry
def test_rig_follows_jaw(face, rig):
    names = [p.name for p in rig.parts]
    rest = rig.pose(face.vertices({}))
    opened = rig.pose(face.vertices({"jawOpen": 1.0}))
    part = lambda posed, n: posed[names.index(n)][0]  # noqa: E731
    assert np.allclose(part(rest, "upper_teeth"), part(opened, "upper_teeth"), atol=1e-6)
    drop = part(rest, "lower_teeth")[:, 1].mean() - part(opened, "lower_teeth")[:, 1].mean()
    assert drop > 0.005
    tongue_out = rig.pose(face.vertices({"tongueOut": 1.0}))
    assert part(tongue_out, "tongue")[:, 2].mean() - part(rest, "tongue")[:, 2].mean() > 0.02
    # the tongue rests below the lower teeth's cutting edge
    assert part(rest, "tongue")[:, 1].max() < part(rest, "lower_teeth")[:, 1].max()


def test_rigid_fit_recovers_motion():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(30, 3))
    r = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    r *= np.sign(np.linalg.det(r))
    t = np.array([0.1, -0.2, 0.3])
    r2, t2 = rigid_fit(src, src @ r.T + t)
    assert np.allclose(r2, r, atol=1e-8) and np.allclose(t2, t, atol=1e-8)


def test_fit_arch_recovers_parameters():
    truth = geo.Arch(half_width=0.028, front=0.02, depth=0.045, power=2.2)
    x = np.linspace(-0.028, 0.028, 200)
    xz = truth.point(x)
    pts = np.stack([xz[:, 0], np.zeros_like(x), xz[:, 1]], -1)
    fit = geo.fit_arch(pts, power=2.2)
    assert abs(fit.half_width - truth.half_width) < 0.001
    assert abs(fit.front - truth.front) < 1e-4
    assert abs(fit.depth - truth.depth) < 0.002


def test_tooth_row_is_closed_outward_and_inside_arch():
    arch = geo.Arch(0.028, 0.02, 0.045, 2.2)
    v, f, which, shade = geo.tooth_row(arch, edge_y=0.0, upper=True, scale=1e-3)
    assert v[:, 1].min() >= -0.001 and v[:, 1].max() <= 0.011  # crowns grow up from the edge (canine cusps dip)
    assert v[:, 2].max() <= arch.front + 1e-4  # labial faces on the arch, not in front of it
    assert set(np.unique(which)) == set(range(7))
    assert np.isclose(v[:, 0].mean(), 0.0, atol=1e-4)  # symmetric
    n = geo.vertex_normals(v, f)
    centre = v[which == 0].mean(0)
    front = np.argmax(v[:, 2] - 10 * np.abs(v[:, 0] - centre[0]))
    assert n[front, 2] > 0.5  # outward-facing triangles


def test_eyeball_has_pupil_iris_sclera():
    v, f, c = geo.eyeball(centre=np.zeros(3), radius=0.012)
    lum = c.mean(1)
    front = np.argmax(v[:, 2])
    side = np.argmax(v[:, 0])
    iris_ring = np.abs(np.arctan2(np.hypot(v[:, 0], v[:, 1]), v[:, 2]) - np.deg2rad(20)) < 0.03
    assert lum[front] < 0.01  # pupil
    assert lum[side] > 0.6  # sclera
    assert 0.02 < lum[iris_ring].mean() < 0.3  # iris, between the two
    back = v[:, 2] < 0  # the cornea bulges over the iris; the rest is a sphere
    assert np.allclose(np.linalg.norm(v[back], axis=1), 0.012, rtol=1e-4)


def test_vertex_normals_of_sphere_point_out():
    v, f, _ = geo.uv_sphere(16, 24)
    n = geo.vertex_normals(v, f)
    assert (np.einsum("ij,ij->i", n, v) > 0.98).all()
    fast = geo.vertex_normals_fast(v, f, geo.incidence_matrix(len(v), f))
    assert np.allclose(fast, n, atol=1e-5)


# ---------------------------------------------------------------------------- CLI
def test_cli_render(face, tmp_path, monkeypatch):
    import flamesync.face
    from flamesync.cli import main

    monkeypatch.setattr(flamesync.face, "load_face", lambda spec=None: face)
    a = anim(np.linspace(0, 1, 6))
    a.save(tmp_path / "take.npz")
    anim(np.zeros(6)).save(tmp_path / "other.npz")
    out = tmp_path / "prev.mp4"
    rc = main(["--progress", "none", "render", str(tmp_path / "take.npz"), "-o", str(out), "--size", "64",
               "--side-by-side", str(tmp_path / "other.npz"), "--plot", "--workers", "1"])
    assert rc == 0
    info = probe(out)
    assert info["video_frames"] == 6 and not info["audio"]
    assert main(["render", str(tmp_path / "take.npz"), "--camera", "nope"]) == 2
    assert main(["render", str(tmp_path / "missing.npz")]) == 2


# ---------------------------------------------------------------------------- the default head
@pytest.fixture(scope="module")
def default_face():
    from flamesync.face import default_head

    return default_head()


@pytest.mark.slow
def test_default_head_on_camera(default_face):
    """The default head: centred, generated mouth parts dark/bright as they should be."""
    rig = HeadRig.from_face(default_face)
    names = {p.name for p in rig.parts}
    assert {"upper_teeth", "lower_teeth", "tongue", "mouth_cavity", "eye_left", "eye_right"} <= names
    frames = render_frames(anim([0.0, 0.8]), face=default_face, size=SIZE, workers=1)
    fg = foreground(frames[0])
    rows, cols = np.nonzero(fg)
    assert 0.25 < fg.mean() < 0.9
    assert abs(cols.mean() - SIZE / 2) < 0.06 * SIZE
    assert abs(rows.mean() - SIZE / 2) < 0.15 * SIZE
    rs, cs = mouth_box(rig)
    assert dark(frames[0][rs, cs]).mean() < 0.002
    assert dark(frames[1][rs, cs]).mean() > 0.01  # at 128 px the opening is ~25x5 px, half teeth
    # eyes: a dark pupil at each projected eye centre, white sclera beside it
    pose, yfov = cam.camera_pose(rig, "front")
    big = render_frames(anim([0.0]), face=default_face, size=256, workers=1)[0].astype(np.float32)
    for side in ("eye_left", "eye_right"):
        centre = default_face.template[default_face.parts[side]].mean(0)
        (c, r), = cam.project(centre[None] + [0, 0, 0.012], pose, yfov, 256, 256)
        patch = big[int(r) - 6:int(r) + 7, int(c) - 10:int(c) + 11].mean(-1)
        assert patch.min() < 60 and patch.max() > 170


def test_face_without_mouth_helpers_gets_a_cavity(face):
    """FLAME-like heads have no teeth or tongue: they still render, with a dark mouth."""
    import dataclasses

    bare = dataclasses.replace(face, parts={k: v for k, v in face.parts.items()
                                            if k not in ("upper_teeth", "lower_teeth", "tongue")})
    rig = HeadRig.from_face(bare)
    names = [p.name for p in rig.parts]
    assert "mouth_cavity" in names and "upper_teeth" not in names and "tongue" not in names
    assert rig.pose(bare.vertices({"jawOpen": 1.0}))[0][0].shape == (len(rig.parts[0].colors), 3)
    frames = render_frames(anim([0.0, 1.0]), face=bare, size=SIZE, workers=1)
    rs, cs = mouth_box(rig)
    assert dark(frames[1][rs, cs]).mean() > dark(frames[0][rs, cs]).mean() + 0.01


def test_missing_pyrender_is_a_clear_error(face, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyrender" else real(name, *a))
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    import sys

    monkeypatch.setitem(sys.modules, "pyrender", None)  # makes "import pyrender" fail
    with pytest.raises(MissingDependencyError, match=r"pyrender.*flamesync\[render\]"):
        render_frames(anim([0.0]), face=face, size=32, workers=1)
