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
    anim = synthetic_animation(20, fps=30.0, jaw="implied", audio_path=str(wav), head=True)
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
    # ... and the head rotation on the head bone of the .glb's rig, turning in world space as
    # flamesync's FBX/USD/.blend exports turn it (y-up -> z-up)
    from flamesync.export.blender_formats import to_blender

    rig = r["default_rig"]
    assert rig["armature"] and rig["action"] == "flamesync_take_head"
    head = np.stack([anim.channel(c) for c in ("head.rx", "head.ry", "head.rz")], axis=1)
    np.testing.assert_allclose(np.array(rig["turns"]), _rotation_matrices(to_blender(head)), atol=1e-4)

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


def _rotation_matrices(rotvec):
    """Rodrigues: axis-angle vectors (T, 3) to rotation matrices (T, 3, 3)."""
    rv = np.asarray(rotvec, np.float64)
    angle = np.linalg.norm(rv, axis=1)[:, None, None]
    axis = rv / np.maximum(np.linalg.norm(rv, axis=1, keepdims=True), 1e-12)
    k = np.zeros((len(rv), 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k -= k.transpose(0, 2, 1)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


@pytest.mark.blender
@pytest.mark.skipif(BLENDER is None or BLENDER.kind != "bpy",
                    reason="no Blender Python found (bash scripts/install.sh --dev makes .venv-blender)")
def test_addon_keys_head_rotation(tmp_path):
    """The take's head.r* land on the head bone (Auto) or the object, converted to Blender's z-up
    frame the way flamesync's FBX/USD/.blend exports convert them; nothing when off or zero."""
    from flamesync.animation import Animation
    from flamesync.channels import EYE_LOOK_CHANNELS, eye_rotations
    from flamesync.export.blender_formats import to_blender
    from flamesync.numeric import rotvec_to_quat

    zip_path = subprocess.run([sys.executable, str(ADDON / "build.py"), "-o", str(tmp_path)], capture_output=True,
                              text=True, check=True).stdout.strip()
    anim = synthetic_animation(30, fps=30.0, jaw="implied", head=True)
    anim.save(tmp_path / "head.npz")
    head = np.stack([anim.channel(c) for c in ("head.rx", "head.ry", "head.rz")], axis=1)
    flat = anim.replace(values=np.where(np.isin(np.arange(len(anim.channels)),
                                                [anim.channels.index(c) for c in ("head.rx", "head.ry", "head.rz")]),
                                        0.0, anim.values).astype(np.float32))
    flat.save(tmp_path / "flat.npz")
    t = np.arange(anim.n_frames) / 30.0
    look = {c: np.clip(0.8 * np.sin(2 * np.pi * (0.6 + 0.25 * i) * t + i), 0, 1)
            for i, c in enumerate(EYE_LOOK_CHANNELS)}
    eyes = Animation.from_channels(fps=30.0, data={"jawOpen": 0.3 + 0.2 * np.sin(t), **look}, head=head)
    eyes.save(tmp_path / "eyes.npz")
    out = tmp_path / "head.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "blender-user")
    proc = subprocess.run([BLENDER.executable, str(REPO / "tests" / "blender_scripts" / "addon_head_session.py"), "--",
                           zip_path, str(tmp_path / "head.npz"), str(tmp_path / "flat.npz"), str(tmp_path / "eyes.npz"),
                           str(out)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    r = json.loads(out.read_text())
    assert r["install"] == ["FINISHED"]

    R = _rotation_matrices(to_blender(head))  # the head's rotation in Blender's frame, per take frame
    frames = 5 + (np.arange(anim.n_frames) / 30.0 + 0.1) * 24.0  # start frame 5, offset 100 ms, scene 24 fps
    sampled = {5: 0, 9: 2, 21: 17, 29: 27}  # scene frame -> take frame on it (5: before the first key)

    # 1: Auto finds the armature's "head" bone; quaternion keys = rest^-1 R rest at the take's times
    assert r["auto_mode"] == "AUTO" and r["auto_run"] == ["FINISHED"]
    bone = r["bone"]
    assert bone["rotation_mode"] == "QUATERNION" and bone["mesh_object"] is None
    c = bone["curves"]
    assert c["action"] == "flamesync_head_head" and bone["shape_keys"] == "flamesync_head"
    assert [(k["path"], k["index"]) for k in c["curves"]] == [('pose.bones["head"].rotation_quaternion', i)
                                                                for i in range(4)]
    rest = np.array(bone["rest"])
    q = np.stack([k["values"] for k in c["curves"]], axis=1)
    want = rotvec_to_quat(to_blender(head).astype(np.float64) @ rest)
    want *= np.sign(np.sum(want * q, axis=1))[:, None]
    np.testing.assert_allclose(q, want, atol=1e-4)
    assert np.all(np.sum(q[1:] * q[:-1], axis=1) > 0)  # one hemisphere: keys never swing the long way
    for k in c["curves"]:
        np.testing.assert_allclose(k["frames"], frames, atol=1e-4)
    # what Blender evaluates: the bone turned by R in armature space, the neck untouched
    for f, i in sampled.items():
        np.testing.assert_allclose(np.array(bone["pose"][str(f)]["pose"]), R[i] @ rest, atol=1e-4, err_msg=f)
    if tuple(r["version"]) >= (4, 4):  # layered actions: one layer, one channelbag for the slot
        lay = c["layout"]
        assert lay["layers"] == 1 and lay["channelbags"] == 1 and lay["slot"] == lay["bag_slot"]
        assert lay["slot"].startswith("OB")

    # 2: Off, a zero head rotation, and a plain mesh under Auto: shape keys only
    assert r["off_run"] == ["FINISHED"] and r["flat_run"] == ["FINISHED"] and r["plain_auto_run"] == ["FINISHED"]
    for case in ("off", "flat"):
        assert r[case] == {"armature": None, "object": None, "shape_keys": True}, case
    assert r["plain_auto"] is None

    # 3: Object: the object's rotation keyed as base @ R, the base kept by a second take
    assert r["object_run"] == ["FINISHED"] and r["object"]["rotation_mode"] == "QUATERNION"
    base = np.array(r["object_base"])
    oc = r["object"]["curves"]
    assert [(k["path"], k["index"]) for k in oc["curves"]] == [("rotation_quaternion", i) for i in range(4)]
    for k in oc["curves"]:
        np.testing.assert_allclose(k["frames"], frames, atol=1e-4)
    for f, i in sampled.items():
        np.testing.assert_allclose(np.array(r["object"]["pose"][str(f)]), base @ R[i], atol=1e-4, err_msg=f)
    assert r["object_second_run"] == ["FINISHED"] and r["object_second_nla"] == [[oc["action"]]]
    np.testing.assert_allclose(np.array(r["object_second_pose"]), base @ R[sampled[9]], atol=1e-4)

    # 4: a bone the armature lacks is refused before anything is keyed; other head names are found
    assert r["missing_run"][0] == "CANCELLED" and "no bone 'Skull'" in r["missing_run"][1]
    assert r["missing"] == {"armature": None, "shape_keys": False}
    assert r["mixamo_run"] == ["FINISHED"]
    assert r["mixamo"]["curves"][0]["path"] == 'pose.bones["mixamorig:Head"].rotation_quaternion'

    # 5: an animated rig: refused from a script, then its action kept in a muted NLA track
    assert r["animated_ask"][0] == "CANCELLED" and "already animated by action" in r["animated_ask"][1]
    assert r["animated_ask_action"] == r["animated"]["body"]
    a = r["animated"]
    assert a["action"] != a["body"] and a["nla"] == [[a["body"]]] and a["muted"] == [True]

    # 6: the gaze on eye bones under the head: keyed in the head's action; the eyes' evaluated turn
    # is flamesync's eye_rotations in Blender's frame, carried by the head's
    assert r["eyes_run"] == ["FINISHED"]
    ec = r["eyes"]["curves"]
    assert [(k["path"], k["index"]) for k in ec["curves"]] == [
        (f'pose.bones["{b}"].rotation_quaternion', i) for b in ("head", "eye.L", "eye.R") for i in range(4)]
    left, right = eye_rotations(np.stack([eyes.channel(c) for c in EYE_LOOK_CHANNELS], axis=1))
    assert np.abs(left).max() > 0.1 and np.abs(right - left).max() > 0.05
    rests = {b: np.array(m) for b, m in r["eyes"]["rest"].items()}
    for f, i in sampled.items():
        pose = {b: np.array(m) for b, m in r["eyes"]["pose"][str(f)].items()}
        np.testing.assert_allclose(pose["head"], R[i] @ rests["head"], atol=1e-4, err_msg=f)
        for b, rv in (("eye.L", left), ("eye.R", right)):
            want = R[i] @ _rotation_matrices(to_blender(rv[i:i + 1]))[0] @ rests[b]
            np.testing.assert_allclose(pose[b], want, atol=1e-4, err_msg=f"{b} {f}")
    # eyeLook* already on shape keys, or eyes aimed by constraints (Rigify): the head only
    assert r["eyes_shape_keys_run"] == ["FINISHED"] and r["eyes_aimed_run"] == ["FINISHED"]
    assert r["eyes_shape_keys"] == r["eyes_aimed"] == ['pose.bones["head"].rotation_quaternion'] * 4
