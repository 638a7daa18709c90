"""FBX / USD / Alembic through Blender: re-imported in Blender, the values match flamesync's."""

import os
import subprocess

import numpy as np
import pytest

from _export_helpers import REPO, synthetic_animation, synthetic_face, write_tone
from flamesync.channels import ARKIT_52
from flamesync.errors import MissingDependencyError
from flamesync.export import export
from flamesync.export.blender_bridge import find_blender
from flamesync.export.blender_formats import to_blender

BLENDER = find_blender()
needs_blender = pytest.mark.skipif(
    BLENDER is None or BLENDER.kind != "bpy",
    reason="no Blender Python found (bash scripts/install.sh --dev makes .venv-blender; or set FLAMESYNC_BLENDER_PYTHON)",
)
pytestmark = [pytest.mark.blender]


def sample_in_blender(path, out, *, fps, n, first=1, defaults=False):
    cmd = [BLENDER.executable, str(REPO / "tests" / "blender_scripts" / "sample_import.py"), "--",
           str(path), str(out), str(fps), str(n), str(first)] + (["defaults"] if defaults else [])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dict(np.load(out))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("blender")
    wav = write_tone(d / "speech.wav")
    face = synthetic_face()
    anim = synthetic_animation(20, fps=25.0, jaw="explicit", audio_path=str(wav))
    files = {sfx: export(anim, d / f"take{sfx}", face=face) for sfx in (".fbx", ".usda", ".abc", ".blend")}
    return d, face, anim, files


@needs_blender
@pytest.mark.parametrize("suffix", [".fbx", ".usda"])
def test_shape_keys_round_trip(exported, suffix):
    d, face, anim, files = exported
    got = sample_in_blender(files[suffix], d / f"s{suffix}.npz", fps=anim.fps, n=anim.n_frames)
    assert float(got["fps"]) == anim.fps
    names = [str(n) for n in got["names"]]
    assert names == list(ARKIT_52)  # all 52 keys, empty ones included
    np.testing.assert_allclose(got["values"], anim.weights(ARKIT_52), atol=1e-5)
    # Shape keys + jaw bone evaluate to flamesync's own vertices (in Blender's z-up frame).
    np.testing.assert_allclose(got["vertices"], to_blender(face.animate(anim)), atol=1e-5)


@needs_blender
def test_fbx_default_import_lands_on_frame_1_at_the_take_rate(exported):
    """File > Import > FBX with its defaults (Animation Offset 1) into a 24 fps scene: the importer
    takes the file's 25 fps and the first key is on frame 1, as in the other formats."""
    d, face, anim, files = exported
    got = sample_in_blender(files[".fbx"], d / "s.fbx.defaults.npz", fps=anim.fps, n=anim.n_frames, defaults=True)
    assert float(got["fps"]) == anim.fps
    np.testing.assert_allclose(got["values"], anim.weights(ARKIT_52), atol=1e-5)


@needs_blender
def test_usda_records_frames_per_second(exported):
    d, face, anim, files = exported
    text = files[".usda"].read_text()
    header = text[: text.index("\n)\n")]
    assert f"framesPerSecond = {anim.fps:g}" in header and f"timeCodesPerSecond = {anim.fps:g}" in header


@needs_blender
def test_alembic_vertex_cache(exported):
    d, face, anim, files = exported
    got = sample_in_blender(files[".abc"], d / "s.abc.npz", fps=anim.fps, n=anim.n_frames)
    assert int(got["frame_start"]) == 1 and int(got["frame_end"]) == anim.n_frames
    np.testing.assert_allclose(got["vertices"], to_blender(face.animate(anim)), atol=1e-5)


@needs_blender
@pytest.mark.parametrize("jaw", ["explicit", "implied"])
def test_glb_into_blender(tmp_path, jaw):
    """Blender's glTF importer (scene fps set first) plays the .glb as flamesync computed it.

    glTF time 0 lands on scene frame 0 there, so frame ``i`` is sampled at ``i``.
    """
    face = synthetic_face()
    anim = synthetic_animation(20, fps=25.0, jaw=jaw)
    path = export(anim, tmp_path / "take.glb", face=face)
    got = sample_in_blender(path, tmp_path / "s.npz", fps=anim.fps, n=anim.n_frames, first=0)
    assert [str(n) for n in got["names"]] == list(ARKIT_52)
    np.testing.assert_allclose(got["values"], anim.weights(ARKIT_52), atol=1e-6)
    np.testing.assert_allclose(got["vertices"], to_blender(face.animate(anim)), atol=1e-5)


@needs_blender
def test_blend_scene_with_sound_strip(exported):
    d, face, anim, files = exported
    got = sample_in_blender(files[".blend"], d / "s.blend.npz", fps=anim.fps, n=anim.n_frames)
    assert list(got["sound_starts"]) == [1.0]  # audio offset 0: the strip starts with frame 1
    np.testing.assert_allclose(got["values"], anim.weights(ARKIT_52), atol=1e-6)
    np.testing.assert_allclose(got["vertices"], to_blender(face.animate(anim)), atol=1e-5)


@needs_blender
def test_default_head_jaw_and_head_bones(tmp_path):
    """The default head with explicit jaw and head rotations: bones reproduce flamesync's vertices."""
    try:
        from flamesync.face import default_head

        head = default_head()
    except Exception as exc:
        pytest.skip(f"default head not available: {exc}")
    anim = synthetic_animation(8, jaw="explicit", head=True)
    path = export(anim, tmp_path / "head.fbx", face=head)
    got = sample_in_blender(path, tmp_path / "s.npz", fps=anim.fps, n=anim.n_frames)
    np.testing.assert_allclose(got["values"], anim.weights(ARKIT_52), atol=1e-5)
    np.testing.assert_allclose(got["vertices"], to_blender(head.animate(anim)), atol=1e-5)


@needs_blender
def test_audio_beside_each_file(exported):
    d, _, _, files = exported
    wav = (d / "speech.wav").read_bytes()
    assert (d / "take.wav").read_bytes() == wav


def test_missing_blender_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FLAMESYNC_BLENDER_PYTHON", str(tmp_path / "no-such-python"))
    wav = write_tone(tmp_path / "speech.wav")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(MissingDependencyError, match="needs Blender"):
        export(synthetic_animation(audio_path=str(wav)), tmp_path / "x.fbx", face=synthetic_face())
    assert sorted(p.name for p in tmp_path.iterdir()) == before
