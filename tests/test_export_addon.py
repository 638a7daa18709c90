"""The Blender add-on: name map and file reader (plain Python), and a headless Blender session
that installs the built extension zip and keys takes onto the default head and a renamed mesh."""

import importlib.util
import json
import os
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from _export_helpers import REPO, synthetic_animation, write_tone
from flamesync.channels import ARKIT_52
from flamesync.export.blender_bridge import find_blender

ADDON = REPO / "blender_addon"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"addon_{name}", ADDON / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


namemap = _load("namemap")
animfile = _load("animfile")


@pytest.mark.parametrize("key, channel", [
    ("jawOpen", "jawOpen"), ("JawOpen", "jawOpen"), ("jaw_open", "jawOpen"), ("Face.jawOpen", "jawOpen"),
    ("blendShape1.jawOpen", "jawOpen"), ("A25_Jaw_Open", "jawOpen"), ("ARKit_jawOpen", "jawOpen"),
    ("mouthSmile_L", "mouthSmileLeft"), ("mouthSmile.R", "mouthSmileRight"), ("EyeBlink_L", "eyeBlinkLeft"),
    ("Mouth_Smile_Right", "mouthSmileRight"), ("mouthLeft", "mouthLeft"), ("jawOpen_BS", "jawOpen"),
])
def test_name_variants_map_to_arkit(key, channel):
    assert namemap.auto_map(ARKIT_52, [key, "Basis_extra"]) == {channel: key}


def test_name_map_is_one_to_one_and_prefers_exact():
    keys = ["jawOpen", "JawOpen", "mouthLeft", "mouth_L", "eyeBlinkLeft"]
    m = namemap.auto_map(ARKIT_52, keys)
    assert m["jawOpen"] == "jawOpen" and m["mouthLeft"] == "mouthLeft" and m["eyeBlinkLeft"] == "eyeBlinkLeft"
    assert len(set(m.values())) == len(m)
    # all 52 ARKit names stay distinct after normalisation
    assert len({namemap.normalize(n) for n in ARKIT_52}) == 52
    assert namemap.ARKIT_52 == ARKIT_52


def test_animation_reader_matches_flamesync(tmp_path):
    anim = synthetic_animation(12, audio_path="speech.wav").replace(audio_offset=0.5)
    anim.save(tmp_path / "a.npz")
    got = animfile.read_animation(str(tmp_path / "a.npz"))
    assert got.channels == list(anim.channels) and got.fps == anim.fps and got.audio_offset == 0.5
    np.testing.assert_array_equal(got.values, anim.values)
    assert "jaw.rx" not in got.expression_channels and "jawOpen" in got.expression_channels
    (tmp_path / "speech.wav").write_bytes(b"")
    assert got.resolved_audio(str(tmp_path / "a.npz")) == str(tmp_path / "speech.wav")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(animfile.AnimationFileError, match="not a flamesync animation"):
        animfile.read_animation(str(tmp_path / "bad.npz"))


def test_build_zip(tmp_path):
    out = subprocess.run([sys.executable, str(ADDON / "build.py"), "-o", str(tmp_path)], capture_output=True,
                         text=True, check=True).stdout.strip()
    names = zipfile.ZipFile(out).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "build.py" not in names
    for n in names:
        if n.endswith(".py"):
            compile(zipfile.ZipFile(out).read(n), n, "exec")


BLENDER = find_blender()


@pytest.mark.blender
@pytest.mark.skipif(BLENDER is None or BLENDER.kind != "bpy",
                    reason="no Blender Python found (bash scripts/install.sh --dev makes .venv-blender)")
def test_addon_in_headless_blender(tmp_path):
    zip_path = subprocess.run([sys.executable, str(ADDON / "build.py"), "-o", str(tmp_path)], capture_output=True,
                              text=True, check=True).stdout.strip()
    wav = write_tone(tmp_path / "speech.wav", seconds=1.0)
    anim = synthetic_animation(20, fps=30.0, jaw="implied", audio_path=str(wav))
    anim.save(tmp_path / "take.npz")
    # The add-on asks "an installed flamesync" for the default head: this checkout's, via a wrapper.
    exe = tmp_path / "flamesync"
    exe.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m flamesync \"$@\"\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    # A stand-in for "flamesync animate": JSON progress on stderr, then the take as its output.
    fake = tmp_path / "fake-flamesync"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, shutil, sys\n"
        "a = sys.argv[1:]\n"
        "assert a[:3] == ['--progress', 'json', 'animate'], a\n"
        "for i in range(3):\n"
        "    print(json.dumps({'event': 'progress', 'task': 'animate', 'done': i + 1, 'total': 3}), file=sys.stderr)\n"
        f"shutil.copyfile({str(tmp_path / 'take.npz')!r}, a[a.index('-o') + 1])\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "session.json"
    (tmp_path / "session.json.n").write_text(str(anim.n_frames))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "blender-user")  # never touch the real user config
    proc = subprocess.run([BLENDER.executable, str(REPO / "tests" / "blender_scripts" / "addon_session.py"), "--",
                           zip_path, str(tmp_path / "take.npz"), str(exe), str(out), str(fake), str(wav)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    r = json.loads(out.read_text())
    assert r["install"] == ["FINISHED"] and r["enabled"]
    assert r["create_head"] == ["FINISHED"] and r["import_default"] == ["FINISHED"]

    # default head: every channel lands on the same-named key, frame by frame from frame 1
    keys = r["default"]["keys"]
    assert keys == list(ARKIT_52)
    np.testing.assert_allclose(np.array(r["default"]["values"]), anim.weights(ARKIT_52), atol=1e-6)

    # renamed mesh: mapped through the name map, keyed from frame 11, missing channel reported
    renamed = r["renamed"]["map"]
    got = np.array(r["renamed"]["values"])
    np.testing.assert_allclose(got, anim.weights(list(renamed)), atol=1e-6)
    assert "1 channel(s) have no shape key: browInnerUp" in proc.stdout

    # non-destructive: a second take is refused from a script, then kept beside the first
    assert r["second_ask"][0] == "CANCELLED" and r["after_ask_action"] == r["renamed"]["action"]
    st = r["after_stash"]
    assert st["action"] != st["first_action"] and st["nla"] == [[st["first_action"]]] and st["nla_muted"] == [True]

    # "Animate Audio" ran the command, keyed its take and reported the channels it could not place
    assert r["animate"] == ["FINISHED"] and r["animate_action"] == "flamesync_speech"
    assert "keyed 2 shape keys on Icosphere.002" in proc.stdout

    # the audio as sound strips starting on each take's first frame
    starts = sorted((s["frame_start"], s["type"]) for s in r["strips"])
    assert starts[0] == (1.0, "SOUND") and (11.0, "SOUND") in starts
