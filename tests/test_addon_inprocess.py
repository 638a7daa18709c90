"""The Blender add-on animating inside Blender: the platform zip (bundled wheels, flamesync's own
modules, the ONNX network) installed into headless bpy with no flamesync on PATH and torch
blocked, compared key by key with ``flamesync animate``; the transcript path through the real
flamesync command; the preferences' backend menu. Plus the add-on's command lines checked
against flamesync's own argument parser, and cancelling a running command."""

import importlib.util
import json
import os
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from _export_helpers import REPO
from flamesync.animation import Animation
from flamesync.channels import ARKIT_52
from flamesync.export.blender_bridge import find_blender

ADDON = REPO / "blender_addon"
HELLO = REPO / "assets" / "examples" / "hello.wav"
HELLO_TEXT = REPO / "assets" / "examples" / "hello.txt"
BLENDER = find_blender()
needs_bpy = pytest.mark.skipif(BLENDER is None or BLENDER.kind != "bpy",
                               reason="no Blender Python found (bash scripts/install.sh --dev makes .venv-blender)")


def _load_inference():
    spec = importlib.util.spec_from_file_location("addon_inference", ADDON / "inference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _flamesync_wrapper(path: Path) -> Path:
    """An executable ``flamesync`` that runs this checkout's package (the real program)."""
    path.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m flamesync \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "flamesync", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


# ------------------------------------------------------------------------ plain Python
def _fake_flamesync(tmp_path, seen, what: str):
    """A stand-in ``flamesync`` that parses its arguments with flamesync's own parser (exiting 2 with
    argparse's message on bad ones) and dumps ``what`` (an expression of ``args``) to ``seen``."""
    fake = tmp_path / "flamesync"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from flamesync.cli import build_parser\n"
        "args = build_parser().parse_args(sys.argv[1:])\n"
        f"json.dump({what}, open({str(seen)!r}, 'w'))\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def test_cli_backend_arguments_are_accepted_by_flamesync_animate(tmp_path):
    """The command line the add-on builds parses with flamesync's own parser (a transcript used to
    be passed as --transcript, which 'animate' rejects)."""
    inference = _load_inference()
    seen = tmp_path / "argv.json"
    fake = _fake_flamesync(tmp_path, seen, "{'text_file': args.text_file, 'fps': args.fps, 'face': args.face}")
    (tmp_path / "t.txt").write_text("hello")
    inference.cli_backend("a.wav", transcript=str(tmp_path / "t.txt"), face="flame:m.npz", fps=24.0,
                          out_path=str(tmp_path / "o.npz"), exe=str(fake))
    assert json.loads(seen.read_text()) == {"text_file": str(tmp_path / "t.txt"), "fps": 24.0, "face": "flame:m.npz"}


def test_cli_backend_passes_the_alive_face_settings(tmp_path):
    """The panel's layer settings reach 'flamesync animate' as flags its parser accepts."""
    inference = _load_inference()
    seen = tmp_path / "argv.json"
    fake = _fake_flamesync(tmp_path, seen, "[args.mouth_only, args.blinks, args.gaze, args.brows, args.head, "
                                           "args.emotion, args.intensity, args.seed]")
    layers = {"mouth_only": False, "blinks": 0.0, "gaze": 0.5, "brows": 2.0, "head": 1.0, "emotion": "sad",
              "intensity": 0.25, "seed": 4}
    inference.cli_backend("a.wav", fps=24.0, out_path=str(tmp_path / "o.npz"), exe=str(fake), layers=layers)
    assert json.loads(seen.read_text()) == [False, 0.0, 0.5, 2.0, 1.0, "sad", 0.25, 4]
    inference.cli_backend("a.wav", out_path=str(tmp_path / "o.npz"), exe=str(fake), layers={**layers, "mouth_only": True})
    assert json.loads(seen.read_text())[0] is True


def test_cancel_stops_a_running_command(tmp_path):
    inference = _load_inference()
    slow = tmp_path / "flamesync"
    slow.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    slow.chmod(slow.stat().st_mode | stat.S_IEXEC)
    start = time.monotonic()
    with pytest.raises(inference.InferenceError, match="cancelled"):
        inference.run_flamesync(str(slow), ["animate"], cancelled=lambda: time.monotonic() - start > 0.3)
    assert time.monotonic() - start < 5


def test_real_command_reports_progress_to_the_addon(tmp_path):
    inference = _load_inference()
    events = []
    inference.cli_backend(str(HELLO), fps=30.0, out_path=str(tmp_path / "t.npz"),
                          exe=str(_flamesync_wrapper(tmp_path / "flamesync")),
                          progress=lambda done, total, task: events.append((done, total, task)))
    import soundfile as sf

    n = sf.info(str(HELLO)).frames  # 16 kHz already: samples in = samples the network sees
    assert events and events[-1] == (n, n, "animate")
    assert Animation.load(tmp_path / "t.npz").fps == 30.0


def test_backends_get_only_the_arguments_they_declare():
    inference = _load_inference()
    got = {}

    def old_style(audio, *, transcript, face, out_path, progress):
        got.update(audio=audio, out_path=out_path)

    inference.call_backend(old_style, "a.wav", transcript=None, face=None, fps=30.0, out_path="o.npz",
                           progress=None, cancelled=lambda: False)
    assert got == {"audio": "a.wav", "out_path": "o.npz"}


# ------------------------------------------------------------------------ Blender
@pytest.fixture(scope="session")
def platform_zip(tmp_path_factory):
    """The zip for this platform, built once per session; wheels are cached beside the test cache."""
    cache = Path(os.environ.get("FLAMESYNC_CACHE", Path.home() / ".cache" / "flamesync-tests")) / "addon-wheels"
    out = tmp_path_factory.mktemp("addon-zip")
    proc = subprocess.run([sys.executable, str(ADDON / "build.py"), "--platform", "current", "-o", str(out),
                           "--wheel-cache", str(cache)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Path(proc.stdout.strip())


def test_platform_zip_contents(platform_zip):
    z = zipfile.ZipFile(platform_zip)
    names = z.namelist()
    manifest = z.read("blender_manifest.toml").decode()
    wheels = [n for n in names if n.startswith("wheels/")]
    assert {w.split("/")[1].split("-")[0].lower() for w in wheels} >= {"onnxruntime", "soundfile", "soxr", "cffi"}
    for w in wheels:
        assert f'"./{w}"' in manifest
    assert "model/flamesync_default.onnx" in names and "flamesync_lib/net/infer.py" in names
    assert any(n.startswith("flamesync_lib/audio/mel-") and n.endswith(".npy") for n in names)
    assert not any("torch" in n.lower() for n in names)


@pytest.fixture(scope="module")
def blender_session(platform_zip, tmp_path_factory):
    if BLENDER is None or BLENDER.kind != "bpy":
        pytest.skip("no Blender Python found (bash scripts/install.sh --dev makes .venv-blender)")
    import soundfile as sf
    import soxr

    tmp = tmp_path_factory.mktemp("addon-inprocess")
    # 48 kHz stereo float: the add-on has to mix down and resample exactly as flamesync does.
    x, rate = sf.read(str(HELLO), dtype="float32")
    y = soxr.resample(x, rate, 48000)
    wav = tmp / "hello48.wav"
    sf.write(str(wav), np.stack([y, 0.5 * y], axis=1), 48000, subtype="FLOAT")
    exe = _flamesync_wrapper(tmp / "flamesync-real")
    out = tmp / "session.json"
    # No flamesync on PATH: only system folders, none of which holds it.
    path = os.pathsep.join(p for p in ("/usr/local/sbin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
                           if not os.path.exists(os.path.join(p, "flamesync")))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=path, BLENDER_USER_RESOURCES=str(tmp / "blender-user"))
    proc = subprocess.run([BLENDER.executable, str(REPO / "tests" / "blender_scripts" / "addon_inprocess_session.py"),
                           "--", str(platform_zip), str(wav), str(HELLO_TEXT), str(exe), str(out)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return {"result": json.loads(out.read_text()), "stdout": proc.stdout, "wav": wav, "tmp": tmp}


def _assert_keys_equal_take(keys, take: Animation, *, scene_fps=24.0):
    """Every channel's keys: at the take's times in scene frames from frame 1, with its values."""
    names = [c for c in take.channels if c in ARKIT_52]
    assert sorted(keys) == sorted(names)
    frames = 1.0 + np.arange(take.n_frames) / take.fps * scene_fps
    for ch in names:
        kf, kv = (np.asarray(a) for a in keys[ch])
        np.testing.assert_allclose(kf, frames, atol=1e-4, err_msg=ch)
        np.testing.assert_allclose(kv, take.channel(ch), atol=1e-4, err_msg=ch)


@needs_bpy
def test_builtin_backend_keys_equal_flamesync_animate(blender_session):
    r = blender_session["result"]
    assert r["validate"][0] == 0, r["validate"][1]
    assert r["install"] == ["FINISHED"] and r["enabled"]
    assert r["flamesync_on_path"] is None and not r["torch_loaded"]
    assert r["ui_progress"]
    assert r["builtin_run"] == ["FINISHED"], r["builtin_run"]
    _cli("animate", blender_session["wav"], "-o", "ref.npz", cwd=blender_session["tmp"])
    ref = Animation.load(blender_session["tmp"] / "ref.npz")
    assert ref.meta.get("backend") == "model" and ref.fps == 30.0
    _assert_keys_equal_take(r["builtin"]["keys"], ref)
    # the lips move: not a take of zeros that would match anything
    assert np.ptp(ref.channel("jawOpen")) > 0.2
    # cancelling stops the work; a transcript is refused with the backend that can use it
    assert r["cancel"] == "Cancelled: cancelled"
    assert r["builtin_transcript_run"][0] == "CANCELLED" and "flamesync command" in r["builtin_transcript_run"][1]
    # the UI's job: progress rises to 1, the take is written, status bar and panel show bar + cancel
    job = r["job"]
    assert job["error"] is None and job["wrote"] and job["fractions"][-1] == 1.0
    assert job["fractions"] == sorted(job["fractions"])
    assert job["drawn"].count(["progress", "flamesync 100%"]) == 1 and ["progress", "Animating 100%"] in job["drawn"]
    assert sum(1 for c in job["drawn"] if c[0] == "operator" and c[1] == "") == 2  # the two cancel buttons


@needs_bpy
def test_builtin_take_moves_the_head_bone(blender_session):
    """The alive face's head motion reaches a rig's head bone (Auto finds DEF-head), equal to
    flamesync animate's head.r* in Blender's frame; Mouth only and Head 0 key no bone."""
    from flamesync.export.blender_formats import to_blender
    from flamesync.numeric import rotvec_to_quat

    heads = blender_session["result"]["heads"]
    assert all(h["run"] == ["FINISHED"] for h in heads.values()), heads
    assert heads["mouth_only"]["keys"] is None and heads["head0"]["keys"] is None
    _cli("animate", blender_session["wav"], "-o", "ref_head.npz", cwd=blender_session["tmp"])
    ref = Animation.load(blender_session["tmp"] / "ref_head.npz")
    rot = np.stack([ref.channel(c) for c in ("head.rx", "head.ry", "head.rz")], axis=1)
    assert np.abs(rot).max() > 0.01  # the head does move in this take
    keys = heads["on"]["keys"]
    assert [(k["path"], k["index"]) for k in keys] == [('pose.bones["DEF-head"].rotation_quaternion', i)
                                                       for i in range(4)]
    q = np.stack([k["values"] for k in keys], axis=1)
    want = rotvec_to_quat(to_blender(rot).astype(np.float64) @ np.array(heads["on"]["rest"]))
    want *= np.sign(np.sum(want * q, axis=1))[:, None]
    np.testing.assert_allclose(q, want, atol=1e-4)
    frames = 1.0 + np.arange(ref.n_frames) / ref.fps * 24.0
    for k in keys:
        np.testing.assert_allclose(k["frames"], frames, atol=1e-4)


@needs_bpy
def test_transcript_through_the_flamesync_command(blender_session):
    r = blender_session["result"]
    assert r["cli_run"] == ["FINISHED"], r["cli_run"]
    _cli("animate", blender_session["wav"], "--text-file", HELLO_TEXT, "-o", "ref_text.npz", cwd=blender_session["tmp"])
    ref = Animation.load(blender_session["tmp"] / "ref_text.npz")
    assert ref.meta.get("backend") == "text"
    _assert_keys_equal_take(r["cli"]["keys"], ref)


@needs_bpy
def test_preferences_backend_menu(blender_session):
    menu = blender_session["result"]["menu"]
    # the built-in network is the default in a platform zip; every registered backend can be chosen
    assert menu["default"] == "builtin"
    assert menu["chosen"] == {"cli": "cli", "other": "other", "builtin": "builtin"}
    assert menu["labels"] == ["Built-in network (in Blender)", "flamesync command", "Another add-on's backend"]
