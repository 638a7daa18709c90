import json

import numpy as np
import pytest

from flamesync import Animation, InputError
from flamesync.channels import ARKIT_52, JAW_ROTATION


def make(fps=30.0, n=31):
    t = np.arange(n) / fps
    return Animation.from_channels(
        fps=fps,
        data={"jawOpen": 0.5 + 0.5 * np.sin(2 * np.pi * 1.0 * t), "mouthClose": np.linspace(0, 1, n)},
        jaw=np.stack([0.2 * np.sin(2 * np.pi * t), np.zeros(n), np.zeros(n)], 1),
        audio_path="speech.wav",
        meta={"source": "test"},
    )


def test_save_load_roundtrip(tmp_path):
    a = make()
    p = a.save(tmp_path / "a.npz")
    b = Animation.load(p)
    assert b.channels == a.channels and b.fps == a.fps
    np.testing.assert_array_equal(a.values, b.values)
    assert b.audio_path == "speech.wav" and b.meta == {"source": "test"}
    assert not list(tmp_path.glob(".*part*")), "temporary file left behind"


def test_load_rejects_foreign_and_future_files(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a flamesync animation"):
        Animation.load(tmp_path / "x.npz")
    a = make()
    header = a.header()
    header["version"] = 999
    np.savez(tmp_path / "future.npz", values=a.values, header=np.array(json.dumps(header)))
    with pytest.raises(InputError, match="newer flamesync"):
        Animation.load(tmp_path / "future.npz")
    with pytest.raises(InputError, match="not found"):
        Animation.load(tmp_path / "missing.npz")


def test_rejects_nan_and_bad_shapes():
    with pytest.raises(InputError, match="NaN"):
        Animation(fps=30, channels=("jawOpen",), values=np.array([[0.1], [np.nan]]))
    with pytest.raises(InputError, match="shape"):
        Animation(fps=30, channels=("jawOpen", "mouthClose"), values=np.zeros((4, 3)))
    with pytest.raises(InputError, match="rotation channels"):
        Animation(fps=30, channels=("jaw.rx",), values=np.zeros((4, 1)))
    with pytest.raises(InputError, match="frame rate"):
        Animation(fps=0, channels=("jawOpen",), values=np.zeros((4, 1)))


def test_weights_fill_missing_channels_with_zero():
    a = make()
    w = a.weights(ARKIT_52)
    assert w.shape == (a.n_frames, 52)
    np.testing.assert_array_equal(w[:, ARKIT_52.index("jawOpen")], a.channel("jawOpen"))
    assert np.all(w[:, ARKIT_52.index("eyeBlinkLeft")] == 0)
    assert a.jaw.shape == (a.n_frames, 3)


def test_remembered_layouts_are_still_checked_and_looked_up_right():
    """Layout checks and column maps are cached; a bad layout fails every time, and weights and
    rotations read the right columns whatever the order of the channels."""
    for _ in range(2):
        with pytest.raises(InputError, match="duplicate"):
            Animation(fps=30, channels=("jawOpen", "jawOpen"), values=np.zeros((2, 2)))
        with pytest.raises(InputError, match="rotation channels"):
            Animation(fps=30, channels=("head.rx", "head.ry"), values=np.zeros((2, 2)))
    a = Animation(fps=30, channels=(np.str_("jawOpen"), 7), values=np.zeros((2, 2)))
    assert a.channels == ("jawOpen", "7") and all(type(c) is str for c in a.channels)
    rng = np.random.default_rng(0)
    for order in (("head.rx", "head.ry", "head.rz", "jawOpen", "eyeBlinkLeft"),
                  ("eyeBlinkLeft", "head.rx", "head.ry", "head.rz", "jawOpen")):
        values = rng.random((4, 5)).astype(np.float32)
        b = Animation(fps=30, channels=order, values=values)
        col = {c: values[:, i] for i, c in enumerate(order)}
        w = b.weights(("mouthClose", "jawOpen", "eyeBlinkLeft"))
        np.testing.assert_array_equal(w, np.stack([np.zeros(4), col["jawOpen"], col["eyeBlinkLeft"]], 1))
        np.testing.assert_array_equal(b.head, np.stack([col["head.rx"], col["head.ry"], col["head.rz"]], 1))
        assert b.jaw is None
        b.head[:] = 9.0  # a copy: the animation itself is unchanged
        np.testing.assert_array_equal(b.channel("head.rx"), col["head.rx"])


@pytest.mark.parametrize("src,dst", [(30, 60), (60, 30), (30, 24), (24, 30), (60, 24)])
def test_resample_preserves_duration_and_slow_signals(src, dst):
    n = int(2 * src)
    t = np.arange(n) / src
    slow = 0.5 + 0.4 * np.sin(2 * np.pi * 0.7 * t)  # far below either Nyquist rate
    a = Animation.from_channels(fps=src, data={"jawOpen": slow})
    b = a.resample(dst)
    assert b.n_frames == round(n * dst / src)
    assert abs(b.duration - a.duration) < 1e-9
    expect = 0.5 + 0.4 * np.sin(2 * np.pi * 0.7 * np.arange(b.n_frames) / dst)
    inner = slice(3, -3)  # ends are clamped
    assert np.max(np.abs(b.channel("jawOpen")[inner] - expect[inner])) < 0.02


def test_resample_downsampling_suppresses_aliasing():
    # A 27 Hz wobble at 60 fps would alias to a strong 3 Hz wave at 30 fps without the prefilter.
    n = 120
    t = np.arange(n) / 60
    a = Animation.from_channels(fps=60, data={"jawOpen": 0.5 + 0.3 * np.sin(2 * np.pi * 27 * t)})
    b = a.resample(30)
    assert np.std(b.channel("jawOpen")[4:-4]) < 0.1


def test_resample_rotations_by_slerp():
    rot = np.zeros((3, 3))
    rot[:, 0] = [0.0, 0.3, 0.6]
    a = Animation.from_channels(fps=10, data={}, jaw=rot)
    b = a.resample(20)
    assert b.channels == JAW_ROTATION
    np.testing.assert_allclose(b.jaw[:5, 0], [0.0, 0.15, 0.3, 0.45, 0.6], atol=1e-6)


def test_round_trip_resample_is_close():
    a = make(fps=30, n=90)
    back = a.resample(60).resample(30)
    assert back.n_frames == a.n_frames
    assert np.max(np.abs(back.values[3:-3] - a.values[3:-3])) < 0.03
