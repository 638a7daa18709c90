"""CSV / JSON / FLAME-parameter exports and the ``flamesync export`` command."""

import csv
import json
import os

import numpy as np
import pytest

from _export_helpers import synthetic_animation, synthetic_face, write_tone
from flamesync.animation import Animation
from flamesync.channels import ARKIT_52
from flamesync.cli import main
from flamesync.errors import InputError
from flamesync.export import export
from flamesync.export.tables import LIVE_LINK_FACE_ORDER, timecode


def test_live_link_face_layout(tmp_path):
    anim = synthetic_animation(31, fps=30.0, audio_path=str(write_tone(tmp_path / "a.wav")))
    path = export(anim, tmp_path / "take.csv")
    rows = list(csv.reader(path.open()))
    header = rows[0]
    assert header[:2] == ["Timecode", "BlendShapeCount"]
    assert len(header) == 2 + 52 + 9 and header[-9:-6] == ["HeadYaw", "HeadPitch", "HeadRoll"]
    assert header[2] == "EyeBlinkLeft" and header[2 + 15:2 + 17] == ["JawRight", "JawLeft"]
    assert header[2 + 21:2 + 23] == ["MouthRight", "MouthLeft"] and header[2 + 51] == "TongueOut"
    assert len(rows) == 32 and all(r[1] == "61" for r in rows[1:])
    assert rows[1][0] == "00:00:00:00.000" and rows[31][0] == "00:00:01:00.000"
    values = np.array([[float(x) for x in r[2:54]] for r in rows[1:]])
    order = [ARKIT_52.index(n) for n in LIVE_LINK_FACE_ORDER]
    np.testing.assert_allclose(values, anim.weights(ARKIT_52)[:, order], atol=1e-6)
    assert (tmp_path / "take.wav").is_file()


def test_live_link_face_head_columns(tmp_path):
    head = np.zeros((5, 3), np.float32)
    head[:, 1] = 0.1
    anim = Animation.from_channels(fps=60, data={"jawOpen": np.linspace(0, 1, 5)}, head=head)
    rows = list(csv.reader(export(anim, tmp_path / "h.csv").open()))
    hy = rows[0].index("HeadYaw")
    assert [float(r[hy]) for r in rows[1:]] == pytest.approx([0.1] * 5, abs=1e-6)
    assert [float(r[hy + 1]) for r in rows[1:]] == pytest.approx([0.0] * 5, abs=1e-6)


def test_timecode():
    assert timecode(0, 30) == "00:00:00:00.000"
    assert timecode(45, 30) == "00:00:01:15.000"
    assert timecode(3600 * 30 + 61 * 30 + 2, 30) == "01:01:01:02.000"
    assert timecode(1, 60, start=0.5) == "00:00:00:31.000"


def test_channels_csv_and_json(tmp_path):
    anim = synthetic_animation(10, fps=24.0)
    rows = list(csv.reader(export(anim, tmp_path / "t.channels.csv").open()))
    assert rows[0] == ["frame", "time", *anim.channels]
    got = np.array([[float(x) for x in r[2:]] for r in rows[1:]], np.float32)
    np.testing.assert_array_equal(got, anim.values)
    assert float(rows[3][1]) == pytest.approx(2 / 24, abs=1e-6)
    doc = json.loads(export(anim, tmp_path / "t.json").read_text())
    assert doc["fps"] == 24.0 and doc["channels"] == list(anim.channels)
    np.testing.assert_array_equal(np.array(doc["frames"], np.float32), anim.values)
    assert doc["times"][5] == pytest.approx(5 / 24, abs=1e-6)


class _TinyFlame:
    """Duck-typed FLAME stand-in: FLAME's parameter layout, no FLAME data."""

    name = "tiny-flame"
    n_expr, n_shape = 4, 6
    channels = tuple(f"exp{i:03d}" for i in range(4))

    def forward_full(self, **kw):  # pragma: no cover - only its presence matters here
        raise NotImplementedError


def test_flame_params(tmp_path):
    rng = np.random.default_rng(1)
    exp = rng.normal(size=(8, 4)).astype(np.float32)
    jaw = rng.normal(scale=0.1, size=(8, 3)).astype(np.float32)
    anim = Animation.from_channels(fps=30, data={f"exp{i:03d}": exp[:, i] for i in range(4)}, jaw=jaw)
    path = export(anim, tmp_path / "take.flame.npz", face=_TinyFlame())
    with np.load(path, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["expression"], exp)
        np.testing.assert_array_equal(z["jaw_pose"], jaw)
        assert z["eye_pose"].shape == (8, 6) and z["shape"].shape == (6,) and float(z["fps"]) == 30
        assert json.loads(str(z["header"]))["format"] == "flamesync.flame_params"


def test_flame_params_need_flame_face(tmp_path):
    with pytest.raises(InputError, match="FLAME face model"):
        export(synthetic_animation(), tmp_path / "x.flame.npz", face=synthetic_face())
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------- CLI
def _save_anim(tmp_path, **kw):
    p = tmp_path / "anim.npz"
    synthetic_animation(**kw).save(p)
    return p


def test_cli_export_formats(tmp_path, capsys):
    src = _save_anim(tmp_path)
    assert main(["export", str(src), "-o", str(tmp_path / "o.csv")]) == 0
    assert main(["export", str(src), "-o", str(tmp_path / "o.json"), "--fps", "60"]) == 0
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["fps"] == 60.0 and len(doc["frames"]) == 48


def test_cli_export_errors_leave_nothing(tmp_path, capsys, monkeypatch):
    src = _save_anim(tmp_path)
    before = sorted(os.listdir(tmp_path))
    # unknown extension
    assert main(["export", str(src), "-o", str(tmp_path / "o.xyz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown output format" in err and len(err.splitlines()) == 1
    # unwritable / missing directory
    assert main(["export", str(src), "-o", str(tmp_path / "nope" / "o.glb")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and len(err.splitlines()) == 1
    # a face with no usable shapes
    import flamesync.face as face_mod

    monkeypatch.setattr(face_mod, "default_head", lambda: synthetic_face(empty=True))
    assert main(["export", str(src), "-o", str(tmp_path / "o.glb"), "--face", "default"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no usable shapes" in err and len(err.splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == before


def test_cli_export_glb_with_audio(tmp_path, capsys, monkeypatch):
    import flamesync.face as face_mod

    monkeypatch.setattr(face_mod, "default_head", synthetic_face)
    wav = write_tone(tmp_path / "speech.wav")
    src = _save_anim(tmp_path, audio_path=str(wav))
    out = tmp_path / "out.glb"
    assert main(["export", str(src), "-o", str(out)]) == 0
    assert out.is_file() and (tmp_path / "out.wav").read_bytes() == wav.read_bytes()


@pytest.fixture(scope="module")
def flame_pkl(tmp_path_factory):
    import flame_synth

    synth = flame_synth.make_synthetic_flame(n_shape=30, n_expr=10, seed=0)
    return flame_synth.write_flame_pkl(tmp_path_factory.mktemp("flame") / "generic_model.pkl", synth)


def test_flame_params_real_model_via_cli(tmp_path, flame_pkl, capsys):
    rng = np.random.default_rng(2)
    exp = rng.normal(size=(6, 10)).astype(np.float32)
    jaw = np.zeros((6, 3), np.float32)
    jaw[:, 0] = np.linspace(0, 0.3, 6)
    anim = Animation.from_channels(fps=25, data={f"exp{i:03d}": exp[:, i] for i in range(10)}, jaw=jaw)
    anim.save(tmp_path / "a.npz")
    out = tmp_path / "a.flame.npz"
    assert main(["export", str(tmp_path / "a.npz"), "-o", str(out), "--face", f"flame:{flame_pkl}"]) == 0
    with np.load(out, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["expression"], exp)
        np.testing.assert_array_equal(z["jaw_pose"], jaw)
        assert z["shape"].shape == (30,)
        # the parameters reproduce the model's own vertices for the take
        from flamesync.face.flame import load_flame
        import torch

        model = load_flame(flame_pkl)
        with torch.no_grad():
            v = model.forward_full(expression=torch.from_numpy(z["expression"]), jaw_pose=torch.from_numpy(z["jaw_pose"]),
                                   global_pose=torch.from_numpy(z["global_pose"])).numpy()
        np.testing.assert_allclose(v, model.animate(anim), atol=1e-6)


def test_head_yaw_pitch_roll_matches_scipys_intrinsic_yxz():
    """The numpy decomposition (no scipy import on the live path) equals scipy's, angles up to ~70 deg."""
    from scipy.spatial.transform import Rotation

    from flamesync.export.tables import head_yaw_pitch_roll

    rng = np.random.default_rng(0)
    r = rng.normal(size=(500, 3)) * 0.4
    r[0] = 0.0
    np.testing.assert_allclose(head_yaw_pitch_roll(r), Rotation.from_rotvec(r).as_euler("YXZ"), atol=1e-6)
