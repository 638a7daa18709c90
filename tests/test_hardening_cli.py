"""The command line against hostile and careless use (issue 22), always as a subprocess.

Each case ends either in the right output or in a non-zero exit with exactly one line on stderr
naming the problem, and leaves no output, no hidden part file and no carried audio behind.
Work is shared through module-scoped fixtures (one animation of the example clip, one silent
WAV, ...) so the module stays near a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "assets" / "examples" / "hello.wav"


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)  # this checkout's flamesync, whichever is installed
    env.update(extra)
    return env


def cli(*args, cwd=None, timeout=300, input=None, env=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "flamesync", *[a if isinstance(a, bytes) else str(a) for a in args]]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=timeout, input=input, env=env or _env())


def err_of(proc) -> str:
    return proc.stderr.decode("utf-8", "replace")


def assert_one_line_error(proc, *needles: str) -> str:
    err = err_of(proc)
    assert proc.returncode != 0, f"expected a failure, got exit 0; stderr: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert "internal error" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle.lower() in err.lower(), f"{needle!r} not in {err!r}"
    return lines[0]


def assert_ok(proc) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}: {err_of(proc)}"


def litter(folder: Path) -> list[str]:
    """Hidden part files (of files or folders) anywhere below ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".part" in p.name)


def blender_available() -> bool:
    sys.path.insert(0, str(REPO))
    try:
        from flamesync.export.blender_bridge import find_blender
    finally:
        sys.path.pop(0)
    return find_blender() is not None


needs_blender = pytest.mark.skipif(not blender_available(), reason="Blender (bpy) not found")


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hardening")


@pytest.fixture(scope="module")
def take(work) -> Path:
    """The example clip animated once (network, audio only); its audio lies beside it."""
    folder = work / "take"
    folder.mkdir()
    shutil.copy(HELLO, folder / "hello.wav")
    proc = cli("animate", folder / "hello.wav", "-o", folder / "take.npz")
    assert_ok(proc)
    return folder / "take.npz"


@pytest.fixture(scope="module")
def silent_wavs(work) -> dict[str, Path]:
    folder = work / "silence"
    folder.mkdir()
    rng = np.random.default_rng(0)
    zero = folder / "zero.wav"
    sf.write(zero, np.zeros(160000, np.float32), 16000, subtype="PCM_16")
    quiet = folder / "quiet.wav"  # peak 3.5e-5: below one 16-bit step, so stored as float
    sf.write(quiet, np.clip(rng.standard_normal(160000) * 1.5e-5, -3.5e-5, 3.5e-5).astype(np.float32), 16000,
             subtype="FLOAT")
    empty = folder / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000, subtype="PCM_16")
    return {"zero": zero, "quiet": quiet, "empty": empty}


def _load(path: Path):
    sys.path.insert(0, str(REPO))
    try:
        from flamesync.animation import Animation

        return Animation.load(path)
    finally:
        sys.path.pop(0)


# ------------------------------------------------------------------------------ 1. silence
@pytest.mark.parametrize("which", ["zero", "quiet"])
def test_silence_animates_a_face_at_rest(silent_wavs, work, which):
    out = work / "silence" / f"{which}.npz"
    proc = cli("animate", silent_wavs[which], "-o", out)
    assert_ok(proc)
    anim = _load(out)
    assert anim.n_frames == 300  # 10 s at 30 fps
    assert np.all(anim.values == 0), "silence must give the rest pose"
    assert anim.meta.get("silent") is True


def test_zero_samples_is_still_an_error(silent_wavs, work):
    out = work / "silence" / "empty.npz"
    assert_one_line_error(cli("animate", silent_wavs["empty"], "-o", out), "no samples")
    assert not out.exists()


# ---------------------------------------------------------------------- 5. same bytes
@needs_blender
@pytest.mark.parametrize("suffix", [".fbx", ".abc", ".blend"])
def test_identical_runs_give_identical_blender_files(take, work, suffix):
    folder = work / f"same{suffix.replace('.', '_')}"
    folder.mkdir()
    out = folder / f"t{suffix}"
    runs = []
    for _ in range(2):
        assert_ok(cli("export", take, "-o", out))
        runs.append(out.read_bytes())
        time.sleep(1.1)  # a writer stamping the time (to the second) would differ now
    assert runs[0] == runs[1], f"{suffix}: the two exports differ"
    assert litter(folder) == []


# ------------------------------------------------------------------ 6. SIGTERM and litter
def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@needs_blender
def test_sigterm_during_blender_export_cleans_up_and_kills_blender(take, work):
    folder = work / "sigterm"
    folder.mkdir()
    out = folder / "t.fbx"
    cmd = [sys.executable, "-m", "flamesync", "export", str(take), "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    children = []
    deadline = time.time() + 120
    while time.time() < deadline and not children and proc.poll() is None:
        children = _children(proc.pid)
        time.sleep(0.05)
    assert children, "flamesync never started Blender"
    time.sleep(0.3)  # let Blender get going
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err.decode()
    assert err.decode().strip().splitlines() == ["flamesync: terminated"]
    time.sleep(0.2)
    assert not [c for c in children if _alive(c)], "Blender outlived flamesync"
    assert litter(folder) == [] and not out.exists() and not (folder / "t.wav").exists()
    import tempfile

    assert not list(Path(tempfile.gettempdir()).glob(f"flamesync-blender-{proc.pid}-*"))


@needs_blender
def test_after_sigkill_blender_dies_and_the_next_run_cleans_up(take, work):
    import tempfile

    folder = work / "sigkill"
    folder.mkdir()
    out = folder / "k.fbx"
    cmd = [sys.executable, "-m", "flamesync", "export", str(take), "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    children = []
    deadline = time.time() + 120
    while time.time() < deadline and not children and proc.poll() is None:
        children = _children(proc.pid)
        time.sleep(0.05)
    assert children, "flamesync never started Blender"
    proc.kill()  # SIGKILL: no clean-up can run
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and [c for c in children if _alive(c)]:
        time.sleep(0.1)
    assert not [c for c in children if _alive(c)], "Blender outlived a killed flamesync"
    scratch = list(Path(tempfile.gettempdir()).glob(f"flamesync-blender-{proc.pid}-*"))
    assert litter(folder) and scratch  # what a killed run leaves ...
    assert_ok(cli("export", take, "-o", out))
    assert litter(folder) == [] and out.is_file()  # ... the next run into the folder removes
    assert not [p for p in scratch if p.exists()]


def test_sigterm_exits_143_and_leaves_no_parts(work):
    # The preview renders after the other outputs were written (as parts, held back until the whole
    # command succeeds): terminating it then is the moment parts used to be left.
    import importlib.util

    if importlib.util.find_spec("pyrender") is None:
        pytest.skip("previews need pyrender")
    folder = work / "sigterm2"
    folder.mkdir()
    wav = folder / "long.wav"
    sf.write(wav, np.zeros(16000 * 20, np.float32), 16000, subtype="PCM_16")
    proc = subprocess.Popen([sys.executable, "-m", "flamesync", "animate", str(wav), "-o", str(folder / "l.npz"),
                             "-o", str(folder / "l.csv"), "--preview", str(folder / "l.mp4")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(litter(folder)) < 3:
        time.sleep(0.02)
    parts = litter(folder)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before SIGTERM arrived")
    assert len(parts) >= 3, parts  # l.npz, l.csv and l.wav were written, waiting for the preview
    assert proc.returncode == 143, err.decode()
    assert err.decode().strip().splitlines()[-1] == "flamesync: terminated"
    assert len(err.decode().strip().splitlines()) == 1, err.decode()
    assert litter(folder) == [] and sorted(p.name for p in folder.iterdir()) == ["long.wav"]


def test_next_run_removes_stale_parts_of_its_outputs(take, work):
    folder = work / "stale"
    folder.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is free now: a run with that pid died without cleaning up
    stale = folder / f".s.{dead.pid}.abc123_x.part.json"
    stale.write_text("partial")
    stale_dir = folder / f".s.{dead.pid}.qq9.part.obj"
    stale_dir.mkdir()
    alive = folder / f".s.{os.getppid()}.zz1.part.json"  # a live process's part is not touched
    alive.write_text("busy")
    other = folder / f".other.{dead.pid}.abc.part.json"  # another output's part neither
    other.write_text("x")
    assert_ok(cli("export", take, "-o", folder / "s.json"))
    assert not stale.exists()
    assert alive.exists() and other.exists()
    assert stale_dir.exists()  # a different suffix: not a part of s.json
    assert_ok(cli("export", take, "-o", folder / "s.obj"))
    assert not stale_dir.exists()


# ----------------------------------------------------- 7. checks before work, no carried audio
def test_output_that_is_a_directory_fails_before_work(work):
    folder = work / "isdir"
    folder.mkdir()
    (folder / "x.glb").mkdir()
    shutil.copy(HELLO, folder / "in.wav")
    line = assert_one_line_error(cli("animate", folder / "in.wav", "-o", folder / "ok.npz", "-o", folder / "x.glb"),
                                 "x.glb", "directory")
    assert "cannot write" in line
    assert sorted(p.name for p in folder.iterdir()) == ["in.wav", "x.glb"]


def test_say_with_a_bad_face_leaves_nothing(work):
    folder = work / "sayface"
    folder.mkdir()
    assert_one_line_error(cli("say", "Hello there.", "-o", folder / "s.glb", "--face", "nope"), "nope")
    assert list(folder.iterdir()) == []


def test_say_failing_in_export_leaves_no_wav(work):
    folder = work / "sayexport"
    folder.mkdir()
    # FLAME parameters need a FLAME face: that export fails after the speech was made.
    assert_one_line_error(cli("say", "Hello there.", "-o", folder / "s.npz", "-o", folder / "s.flame.npz"), "FLAME")
    assert list(folder.iterdir()) == []


def test_bad_preview_fails_before_work(work):
    folder = work / "preview"
    folder.mkdir()
    shutil.copy(HELLO, folder / "in.wav")
    assert_one_line_error(cli("animate", folder / "in.wav", "-o", folder / "a.npz", "--preview", folder / "p.txt"),
                          "mp4")
    (folder / "p.mp4").mkdir()
    assert_one_line_error(cli("animate", folder / "in.wav", "-o", folder / "a.npz", "--preview", folder / "p.mp4"),
                          "directory")
    assert sorted(p.name for p in folder.iterdir()) == ["in.wav", "p.mp4"]


def test_carried_audio_blocked_by_a_directory(take, work):
    folder = work / "wavdir"
    folder.mkdir()
    (folder / "c.wav").mkdir()
    assert_one_line_error(cli("export", take, "-o", folder / "c.csv"), "c.wav", "directory")
    assert [p.name for p in folder.iterdir()] == ["c.wav"]


# ------------------------------------------------------------ 8. several outputs, lost audio
def test_export_without_the_lost_audio(take, work):
    folder = work / "lost"
    folder.mkdir()
    anim = _load(take).replace(audio_path=str(folder / "gone.wav"))
    anim.save(folder / "t.npz")
    proc = cli("export", folder / "t.npz", "-o", folder / "x.glb", "-o", folder / "x.csv")
    assert_ok(proc)
    assert "exporting without it" in err_of(proc) and len(err_of(proc).strip().splitlines()) == 1
    assert (folder / "x.glb").is_file() and (folder / "x.csv").is_file()
    assert not (folder / "x.wav").exists()


def test_export_and_say_write_every_output(take, work):
    folder = work / "multi"
    folder.mkdir()
    assert_ok(cli("export", take, "-o", folder / "a.json", "-o", folder / "b.csv"))
    assert (folder / "a.json").is_file() and (folder / "b.csv").is_file()
    assert_ok(cli("say", "Put a cap on it.", "-o", folder / "s.npz", "-o", folder / "t.csv"))
    assert (folder / "s.npz").is_file() and (folder / "t.csv").is_file() and (folder / "s.wav").is_file()
    assert _load(folder / "s.npz").audio_path.endswith("s.wav")
    assert litter(folder) == []


# ------------------------------------------------------------------------- 9. frame rate
@pytest.mark.parametrize("fps", ["1e6", "0", "nan", "-5"])
def test_frame_rate_is_bounded(take, work, fps):
    folder = work / f"fps{fps}"
    folder.mkdir()
    assert_one_line_error(cli("animate", HELLO, "-o", folder / "a.npz", "--fps", fps), "frame rate", "1000")
    assert_one_line_error(cli("export", take, "-o", folder / "a.csv", "--fps", fps), "frame rate")
    assert list(folder.iterdir()) == []


# ---------------------------------------------------------- 10. transcripts, FIFOs, stdin
def test_empty_transcript_file(work):
    assert_one_line_error(cli("animate", HELLO, "-o", work / "e.npz", "--text-file", "/dev/null"), "empty")
    bad = work / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait".encode("latin-1"))
    assert_one_line_error(cli("animate", HELLO, "-o", work / "e.npz", "--text-file", bad), "not UTF-8")
    assert_one_line_error(cli("animate", HELLO, "-o", work / "e.npz", "--text-file", work / "none.txt"),
                          "not found")
    assert not (work / "e.npz").exists()


def test_audio_from_a_fifo_and_stdin(work):
    folder = work / "fifo"
    folder.mkdir()
    fifo = folder / "in.wav"
    os.mkfifo(fifo)
    data = HELLO.read_bytes()

    def feed():
        with open(fifo, "wb") as fh:
            fh.write(data)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    assert_ok(cli("animate", fifo, "-o", folder / "f.npz"))
    t.join(5)
    assert_ok(cli("animate", "/dev/stdin", "-o", folder / "s.npz", input=data))
    a, b = _load(folder / "f.npz"), _load(folder / "s.npz")
    # A stream is copied to an anonymous temporary file and then read as the file would be: the
    # same numbers as the file itself, with a transcript too.
    assert_ok(cli("animate", HELLO, "-o", folder / "r.npz"))
    assert a.n_frames == b.n_frames > 0 and np.array_equal(a.values, b.values)
    assert np.array_equal(a.values, _load(folder / "r.npz").values)
    text = HELLO.with_suffix(".txt")
    assert_ok(cli("animate", "/dev/stdin", "-o", folder / "t.npz", "--text-file", text, input=data))
    assert_ok(cli("animate", HELLO, "-o", folder / "u.npz", "--text-file", text))
    assert np.array_equal(_load(folder / "t.npz").values, _load(folder / "u.npz").values)
    assert_one_line_error(cli("animate", "/dev/stdin", "-o", folder / "n.npz", input=b""), "no audio")
    assert_one_line_error(cli("animate", "/dev/stdin", "-o", folder / "j.npz", input=b"\x01junk" * 999),
                          "cannot read")
    assert not list(folder.glob("[njp]*.npz")) and not list(folder.glob(".*"))


def test_random_bytes_named_mp3(work):
    bad = work / "noise.mp3"
    bad.write_bytes(np.random.default_rng(1).bytes(20000))
    line = assert_one_line_error(cli("animate", bad, "-o", work / "n.npz"), "cannot read", "noise.mp3")
    assert "possibly a pipe" not in line and "does not exist" not in line


# --------------------------------------------------------------- write errors, bad names
def _tmpfs_cli(mount: Path, size: str, *args) -> subprocess.CompletedProcess | None:
    """Run the CLI with a tiny tmpfs at ``mount`` (own mount namespace); None when not possible."""
    if shutil.which("unshare") is None:
        return None
    inner = " ".join(["mount -t tmpfs -o size=" + size + " tmpfs " + str(mount), "&&", "exec",
                      sys.executable, "-m", "flamesync", *[str(a) for a in args]])
    base = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
    probe = subprocess.run(base + ["true"], capture_output=True)
    if probe.returncode != 0:
        return None
    return subprocess.run(base + ["sh", "-c", inner], capture_output=True, timeout=300, env=_env())


@pytest.mark.parametrize("suffix", [".json", ".glb", ".npz", ".fbx"])
def test_disk_full_is_explained(take, work, suffix):
    if suffix == ".fbx" and not blender_available():
        pytest.skip("Blender (bpy) not found")
    mount = work / f"full{suffix.replace('.', '_')}"
    mount.mkdir()
    # The animation itself is small: a big carried audio file (12 s) fills the disk.
    src = work / "full_src"
    if not src.exists():
        src.mkdir()
        sf.write(src / "long.wav", np.zeros(16000 * 12, np.float32), 16000, subtype="PCM_16")
        _load(take).replace(audio_path=str(src / "long.wav")).save(src / "t.npz")
    args = ["export", src / "t.npz", "-o", mount / f"t{suffix}"]
    # .json: the carried audio (384 KB) does not fit; .glb, .fbx: it fits, the model (MBs) does not;
    # .npz carries no audio and gets less room than the animation needs.
    size = {".json": "128k", ".glb": "512k", ".fbx": "512k", ".npz": "4k"}[suffix]
    proc = _tmpfs_cli(mount, size, *args)
    if proc is None:
        pytest.skip("cannot mount a tmpfs here")
    assert_one_line_error(proc, "no space left on device")
    assert list(mount.iterdir()) == []  # the mount is gone: the real folder stays empty


def test_injected_enospc_is_explained(take, work):
    folder = work / "enospc"
    folder.mkdir()
    code = (
        "import errno, os, sys, numpy as np\n"
        "def full(*a, **k): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "np.savez_compressed = full\n"
        "from flamesync.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, "export", str(take), "-o", str(folder / "t.npz")],
                          capture_output=True, env=_env(), timeout=120)
    assert_one_line_error(proc, "no space left on device", "t.npz")
    assert list(folder.iterdir()) == []


def test_read_only_output_file(take, work):
    folder = work / "readonly"
    folder.mkdir()
    target = folder / "r.csv"
    target.write_text("keep me")
    target.chmod(0o444)
    if os.geteuid() == 0:  # root may write anything: make the check see what a user would
        code = (
            "import os, sys\n"
            "real = os.access\n"
            f"os.access = lambda p, m, **k: False if (str(p) == {str(target)!r} and m & os.W_OK) else real(p, m, **k)\n"
            "from flamesync.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n"
        )
        proc = subprocess.run([sys.executable, "-c", code, "export", str(take), "-o", str(target)],
                              capture_output=True, env=_env(), timeout=120)
    else:
        proc = cli("export", take, "-o", target)
    assert_one_line_error(proc, "read-only", "r.csv")
    assert target.read_text() == "keep me"


def test_output_name_not_utf8(take, work):
    folder = work / "badname"
    folder.mkdir()
    name = os.fsencode(folder) + b"/\xff\xfe.csv"
    assert_one_line_error(cli("export", take, "-o", name), "not valid UTF-8")
    assert list(folder.iterdir()) == []


# ------------------------------------------------------------------- bad animation files
@pytest.mark.parametrize("header, needle", [
    ({"format": "flamesync.animation", "version": 1, "channels": ["jawOpen"]}, "no fps"),
    (["flamesync.animation", 30], "not an object"),
    ({"format": "flamesync.animation", "version": 1, "fps": "30", "channels": ["jawOpen"]}, "fps"),
    ({"format": "flamesync.animation", "version": 1, "fps": 30, "channels": "jawOpen"}, "channels"),
])
def test_malformed_animation_header(work, header, needle):
    folder = work / f"hdr{abs(hash(needle)) % 10000}"
    folder.mkdir(exist_ok=True)
    path = folder / "bad.npz"
    np.savez(path, values=np.zeros((3, 1), np.float32), header=np.array(json.dumps(header)))
    assert_one_line_error(cli("export", path, "-o", folder / "o.csv"), needle)
    assert not (folder / "o.csv").exists()


# ------------------------------------------------------------------------ bad checkpoints
@pytest.fixture(scope="module")
def shipped():
    sys.path.insert(0, str(REPO))
    try:
        from flamesync.net.infer import DEFAULT_CHECKPOINT
    finally:
        sys.path.pop(0)
    return DEFAULT_CHECKPOINT


def _checkpoint(folder: Path, shipped: Path, *, meta=None, tensors=None) -> Path:
    folder.mkdir(exist_ok=True)
    base = folder / "ck"
    shutil.copy(str(shipped) + ".safetensors", str(base) + ".safetensors")
    original = json.loads(Path(str(shipped) + ".json").read_text())
    Path(str(base) + ".json").write_text(json.dumps(meta(original) if callable(meta) else original))
    if tensors is not None:
        from safetensors.numpy import load_file, save_file

        save_file(tensors(load_file(str(shipped) + ".safetensors")), str(base) + ".safetensors")
    return base


def _with(d: dict, path: str, value) -> dict:
    import copy

    d = copy.deepcopy(d)
    *parents, last = path.split(".")
    node = d
    for p in parents:
        node = node[p]
    node[last] = value
    return d


@pytest.mark.parametrize("case, meta, needle", [
    ("list", lambda m: [m], "JSON object"),
    ("dim-type", lambda m: _with(m, "model.dim", "128"), "model.dim"),
    ("dim-huge", lambda m: _with(m, "model.dim", 10 ** 12), "model.dim"),
    ("layers-negative", lambda m: _with(m, "model.layers", -4), "model.layers"),
    ("decoder-type", lambda m: _with(m, "closure_decoder", [0.5, 0.3]), "closure_decoder"),
    ("features-type", lambda m: _with(m, "features.n_mels", 80.5), "features.n_mels"),
])
def test_malformed_checkpoint_description(work, shipped, case, meta, needle):
    base = _checkpoint(work / f"ck-{case}", shipped, meta=meta)
    proc = cli("animate", HELLO, "-o", work / f"ck-{case}" / "o.npz", env=_env(FLAMESYNC_MODEL=str(base)))
    assert_one_line_error(proc, needle)


@pytest.mark.parametrize("case, edit, needle", [
    ("missing", lambda t: {k: v for i, (k, v) in enumerate(sorted(t.items())) if i != 0}, "lack"),
    ("extra", lambda t: {**t, "bogus.weight": np.zeros(3, np.float32)}, "bogus.weight"),
    ("shape", lambda t: {k: (v[:1] if i == 0 else v) for i, (k, v) in enumerate(sorted(t.items()))}, "shape"),
])
def test_checkpoint_tensor_named(work, shipped, case, edit, needle):
    from safetensors.numpy import load_file

    first = sorted(load_file(str(shipped) + ".safetensors"))[0]
    base = _checkpoint(work / f"ckt-{case}", shipped, tensors=edit)
    proc = cli("animate", HELLO, "-o", work / f"ckt-{case}" / "o.npz", env=_env(FLAMESYNC_MODEL=str(base)))
    line = assert_one_line_error(proc, needle)
    if case != "extra":
        assert first in line


def test_onnx_description_that_does_not_fit_the_graph(work, shipped):
    folder = work / "onnx-bad"
    folder.mkdir()
    onnx = folder / "m.onnx"
    shutil.copy(str(shipped) + ".onnx", onnx)
    side = json.loads(Path(str(shipped) + ".onnx.json").read_text())
    side["model"]["channels"] = side["model"]["channels"][:-2]
    Path(str(onnx) + ".json").write_text(json.dumps(side))
    proc = cli("animate", HELLO, "-o", folder / "o.npz", env=_env(FLAMESYNC_MODEL=str(onnx)))
    assert_one_line_error(proc, "width")


# ------------------------------------------------------------------- FLAME files and memory
def _flame_synth():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        import flame_synth
    finally:
        sys.path.pop(0)
    return flame_synth


def _max_rss_mb(args) -> tuple[subprocess.CompletedProcess, float]:
    """Run the CLI; return its result and its peak resident memory in MB."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen([sys.executable, "-m", "flamesync", *map(str, args)], stdout=out, stderr=err, env=_env())
        deadline = time.monotonic() + 300
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                p.wait()
                pytest.fail(f"flamesync {' '.join(map(str, args))} ran longer than 300 s")
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        proc = subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read())
    return proc, usage.ru_maxrss / 1024


@pytest.fixture(scope="module")
def flame_files(work):
    import scipy.sparse

    fs = _flame_synth()
    folder = work / "flame"
    folder.mkdir()
    model = fs.make_synthetic_flame(n_shape=6, n_expr=2, seed=3)
    good = folder / "good.pkl"
    good.write_bytes(fs.dumps_py3(model))
    # A J_regressor declaring 25 million rows and holding no entries: 1 GB once made dense.
    huge = dict(model)
    huge["J_regressor"] = scipy.sparse.csc_matrix((25_000_000, 5), dtype=np.float64)
    (folder / "sparse.pkl").write_bytes(fs.dumps_py3(huge))
    empty = dict(model)
    empty["v_template"] = np.zeros((0, 3))
    empty["shapedirs"] = np.zeros((0, 3, 8))
    empty["posedirs"] = np.zeros((0, 36))  # the flattened layout: once reached a reshape error
    (folder / "empty.pkl").write_bytes(fs.dumps_py3(empty))
    return folder


def test_flame_sparse_bomb_refused_before_expansion(flame_files):
    proc, rss = _max_rss_mb(["flame", "info", flame_files / "sparse.pkl"])
    assert_one_line_error(proc, "J_regressor", "expected")
    _, base = _max_rss_mb(["flame", "info", flame_files / "good.pkl"])
    assert rss < base + 300, f"peak {rss:.0f} MB against {base:.0f} MB for a good model"


def test_flame_zero_sized_arrays(flame_files):
    assert_one_line_error(cli("flame", "info", flame_files / "empty.pkl"), "v_template")


def test_flame_npz_reads_only_its_members(flame_files):
    converted = flame_files / "good.npz"
    assert_ok(cli("flame", "convert", flame_files / "good.pkl", "-o", converted))
    bomb = flame_files / "bomb.npz"
    shutil.copy(converted, bomb)
    # An extra member declaring 400 MB of zeros, a few hundred KB compressed.
    n = 50_000_000
    header = {"descr": "<f8", "fortran_order": False, "shape": (n,)}
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as zf, zf.open("extra.npy", "w",
                                                                                       force_zip64=True) as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        block = bytes(8 * 1_000_000)
        for _ in range(n // 1_000_000):
            fh.write(block)
    proc, rss = _max_rss_mb(["flame", "info", bomb])
    assert_ok(proc)
    _, base = _max_rss_mb(["flame", "info", converted])
    assert rss < base + 300, f"peak {rss:.0f} MB against {base:.0f} MB without the extra member"


# --- a transcript that is not what the audio says (issue 22, item 2) ---------------------------

@pytest.mark.parametrize("wrong", ["hello world", "banana", "go forward ten meters and then stop"])
def test_wrong_transcript_falls_back_to_the_audio_with_a_one_line_warning(tmp_path, wrong):
    proc = cli("animate", HELLO, "--text", wrong, "-o", tmp_path / "take.npz")
    assert_ok(proc)
    lines = err_of(proc).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flamesync: warning: the transcript does not match"), lines
    from flamesync.animation import Animation

    meta = Animation.load(tmp_path / "take.npz").meta
    assert meta["backend"] == "model" and "does not match" in meta["transcript_rejected"]


def test_wrong_transcript_refused_on_request_and_right_one_accepted(tmp_path):
    proc = cli("animate", HELLO, "--text", "banana", "--on-mismatch", "error", "-o", tmp_path / "bad.npz")
    assert_one_line_error(proc, "transcript does not match")
    assert not list(tmp_path.iterdir())
    right = (REPO / "assets" / "examples" / "hello.txt").read_text()
    proc = cli("animate", HELLO, "--text", right, "--on-mismatch", "error", "-o", tmp_path / "good.npz")
    assert_ok(proc)
    assert not err_of(proc).strip()
    from flamesync.animation import Animation

    meta = Animation.load(tmp_path / "good.npz").meta
    assert meta["backend"] == "text" and meta["transcript_fit"]["score"] > -3.0
    # "ignore" skips the check: the wrong transcript is animated as aligned
    proc = cli("animate", HELLO, "--text", "go forward ten meters and then stop", "--on-mismatch", "ignore",
               "-o", tmp_path / "forced.npz")
    assert_ok(proc)
    assert Animation.load(tmp_path / "forced.npz").meta["backend"] == "text"
