"""flamesync batch: resume after kills, reruns only what changed, bad inputs reported, same bytes
whatever the number of workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from flamesync.cli import main

pytest.importorskip("pocketsphinx")  # the transcript lines are force-aligned

REPO = Path(__file__).resolve().parents[1]
PHRASES = ["Bob bought a map.", "Put a cap on it.", "We can build a better mouth.", "Maybe by Monday.",
           "The ship is blue.", "Five fine violins."]
FORMATS = "csv,rhubarb.json,ovr.csv"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Six short TTS lines (about a second each) as WAV files, the second half with transcripts."""
    from flamesync.phonetics.textanimate import say

    d = tmp_path_factory.mktemp("clips")
    for i, text in enumerate(PHRASES):
        wav = d / f"line{i}.wav"
        say(text, wav_path=wav)
        if i >= 3:
            (d / f"line{i}.txt").write_text(text, encoding="utf-8")
    return d


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def _parts(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if ".part" in p.name]


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix in (".csv", ".json") and p.name != "report.json"}


def _start(clips: Path, out: Path, workers: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "flamesync", "--progress", "json", "batch", str(clips), "-o", str(out),
           "--text-beside", "--format", FORMATS, "--workers", str(workers)]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait_for_done_lines(proc: subprocess.Popen, n: int) -> list[dict]:
    """Read JSON progress events until ``n`` lines are done; return those events."""
    events = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        row = proc.stderr.readline()
        if not row:
            break
        if row.startswith("{"):
            ev = json.loads(row)
            if ev.get("event") == "progress" and ev.get("status") == "done":
                events.append(ev)
                if len(events) >= n:
                    return events
    raise AssertionError(f"batch did not finish {n} lines in time (rc={proc.poll()})")


def test_killed_batch_resumes_and_matches_a_clean_run(clips, tmp_path):
    out = tmp_path / "out"
    proc = _start(clips, out, workers=1)
    try:
        _wait_for_done_lines(proc, 2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-batch: nothing cleans up
        proc.wait()
    journal = [json.loads(r) for r in (out / "journal.jsonl").read_text().splitlines() if r.strip()]
    finished = {e["name"] for e in journal}
    assert 2 <= len(finished) < len(PHRASES)
    # No partial file under an output's name: whatever exists is complete and parses.
    for p in out.glob("*.rhubarb.json"):
        assert json.loads(p.read_text())["mouthCues"]
    for p in out.glob("*.csv"):
        rows = p.read_text().splitlines()
        assert len(rows) > 10 and all(r.count(",") == rows[0].count(",") for r in rows)

    assert main(["--progress", "none", "batch", str(clips), "-o", str(out), "--text-beside", "--format", FORMATS,
                 "--workers", "2"]) == 0
    rep = _report(out)
    skipped = {r["name"] for r in rep["lines"] if r["status"] == "skipped"}
    done = {r["name"] for r in rep["lines"] if r["status"] == "done"}
    assert skipped == finished  # only the rest was animated
    assert done == {f"line{i}" for i in range(len(PHRASES))} - finished
    assert not _parts(out), "stale part files of the killed run were not removed"

    # The resumed folder holds exactly the bytes of an uninterrupted run with another worker count.
    clean = tmp_path / "clean"
    assert main(["--progress", "none", "batch", str(clips), "-o", str(clean), "--text-beside", "--format", FORMATS,
                 "--workers", "1"]) == 0
    assert _outputs(out) == _outputs(clean)


def test_killed_worker_line_is_retried_without_partial_files(clips, tmp_path):
    out = tmp_path / "out"
    proc = _start(clips, out, workers=2)
    _kill_a_worker_then_finish(proc, out)  # a worker dies (OOM killer, a crash) while on its next line


def _kill_a_worker_then_finish(proc: subprocess.Popen, out: Path) -> None:
    """SIGKILL the worker of the first finished line; the batch must still complete every line."""
    try:
        ev = _wait_for_done_lines(proc, 1)[0]
        os.kill(ev["worker"], signal.SIGKILL)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-2000:]
    rep = _report(out)
    assert rep["done"] == len(PHRASES) and rep["failed"] == 0
    assert not _parts(out)


def _manifest(path: Path, clips: Path, fps: dict[int, str]) -> Path:
    rows = ["audio\ttext\tname\tfps"]
    for i in range(3):
        rows.append(f"{clips / f'line{i}.wav'}\t{PHRASES[i]}\tm/take{i}\t{fps.get(i, '')}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_changed_option_reruns_only_that_line(clips, tmp_path):
    out = tmp_path / "out"
    man = _manifest(tmp_path / "takes.tsv", clips, {})
    args = ["--progress", "none", "batch", "--manifest", str(man), "-o", str(out), "--format", "csv,rhubarb.tsv",
            "--workers", "2"]
    assert main(args) == 0
    assert _report(out)["done"] == 3
    before = {p.name: p.read_bytes() for p in (out / "m").iterdir()}

    _manifest(man, clips, {1: "60"})  # one line now at 60 fps
    assert main(args) == 0
    rep = _report(out)
    status = {r["name"]: r["status"] for r in rep["lines"]}
    assert status == {"m/take0": "skipped", "m/take1": "done", "m/take2": "skipped"}
    after = {p.name: p.read_bytes() for p in (out / "m").iterdir()}
    assert after["take0.csv"] == before["take0.csv"]
    rows_before = len(before["take1.csv"].splitlines())
    rows_after = len(after["take1.csv"].splitlines())
    assert rows_after - 1 == pytest.approx(2 * (rows_before - 1), abs=2)

    # A deleted or edited output is redone too; nothing else is.
    (out / "m" / "take2.csv").write_text("edited\n")
    assert main(args) == 0
    status = {r["name"]: r["status"] for r in _report(out)["lines"]}
    assert status == {"m/take0": "skipped", "m/take1": "skipped", "m/take2": "done"}
    assert (out / "m" / "take2.csv").read_bytes() == before["take2.csv"]


def test_manifest_sets_emotion_and_layers_per_line(clips, tmp_path, capsys):
    from flamesync.animation import Animation

    man = tmp_path / "moods.tsv"
    wav = clips / "line2.wav"
    man.write_text("audio\tname\temotion\tintensity\tmouth_only\n"
                   f"{wav}\tplain\t\t\t\n"
                   f"{wav}\thappy\thappy\t1\t\n"
                   f"{wav}\tsad\tsad\t1\t\n"
                   f"{wav}\tbare\t\t\ttrue\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["--progress", "none", "batch", "--manifest", str(man), "-o", str(out), "--format", "npz", "--workers", "1"]
    assert main(args) == 0

    def col(name, channel):  # a channel a take does not carry is at rest
        anim = Animation.load(out / f"{name}.npz")
        return list(anim.channel(channel)) if channel in anim.channels else [0.0] * anim.n_frames

    smile = {n: max(col(n, "mouthSmileLeft")) for n in ("plain", "happy", "sad", "bare")}
    assert smile["happy"] > smile["plain"] + 0.05 and smile["happy"] > smile["sad"]
    assert max(col("sad", "browInnerUp")) > max(col("happy", "browInnerUp"))
    alive = ("eyeLookUpLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "head.rx", "head.ry", "browInnerUp")

    def motion(name):
        return sum(float(np.abs(col(name, c)).max()) for c in alive)

    assert motion("plain") > 0.05  # the layers are on by default ...
    assert motion("bare") == 0.0  # ... and off for a mouth-only line
    # the lips stay the lips: the speech itself is not the emotion's to change
    assert col("bare", "jawOpen") == pytest.approx(col("plain", "jawOpen"), abs=0.15)

    # The command line sets every line's default; a changed default reruns only lines that take it.
    assert main(args + ["--emotion", "angry"]) == 0
    status = {r["name"]: r["status"] for r in _report(out)["lines"]}
    assert status == {"plain": "done", "happy": "skipped", "sad": "skipped", "bare": "done"}

    man.write_text(f"audio\temotion\n{wav}\tgleeful\n", encoding="utf-8")
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown emotion 'gleeful'" in err[0] and "moods.tsv:2" in err[0]


def test_bad_inputs_are_reported_and_do_not_stop_the_batch(clips, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(clips / "line0.wav", src / "good.wav")
    (src / "corrupt.wav").write_bytes(b"RIFF\x00\x00not audio at all")
    (src / "empty.wav").write_bytes(b"")
    man = tmp_path / "more.tsv"
    # good.wav again under another name (the folder's line is already called "good"), a file that
    # does not exist, and a transcript file that does not exist.
    man.write_text("audio\ttext_file\tname\n"
                   f"{src / 'good.wav'}\t\tgood_again\n"
                   "missing.wav\t\t\n"
                   f"{clips / 'line1.wav'}\tno_such_transcript.txt\t\n", encoding="utf-8")
    out = tmp_path / "out"
    rc = main(["--progress", "none", "batch", str(src), "--manifest", str(man), "-o", str(out), "--format", "csv",
               "--workers", "2"])
    cap = capsys.readouterr()
    assert rc == 1
    assert "Traceback" not in cap.err
    rep = _report(out)
    status = {r["name"]: (r["status"], r["error"]) for r in rep["lines"]}
    assert status["good"][0] == "done" and status["good_again"][0] == "done"
    for name in ("corrupt", "empty", "missing", "line1"):
        assert status[name][0] == "failed" and status[name][1], name
        assert "\n" not in status[name][1]
    assert "not found" in status["missing"][1] and "transcript" in status["line1"][1]
    assert (out / "good.csv").is_file() and not (out / "corrupt.csv").exists()
    summary = cap.out.strip().splitlines()[-1]
    assert summary.startswith("batch 6 lines: 2 done, 0 skipped, 4 failed")
    assert len([r for r in cap.err.splitlines() if r.startswith("flamesync: failed:")]) == 4


def test_command_line_errors_are_one_line(tmp_path, capsys):
    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "o"), "--format", "glb,nope"]) == 2
    assert "unknown output format 'nope'" in capsys.readouterr().err
    (tmp_path / "a.tsv").write_text("audio\tspeed\nx.wav\t2\n")
    assert main(["batch", "--manifest", str(tmp_path / "a.tsv"), "-o", str(tmp_path / "o")]) == 2
    assert "unknown column 'speed'" in capsys.readouterr().err
    (tmp_path / "d").mkdir()
    assert main(["batch", str(tmp_path / "d"), "-o", str(tmp_path / "o")]) == 2
    assert "holds no audio files" in capsys.readouterr().err


def test_ray_path_writes_the_same_bytes_journal_and_report(clips, tmp_path):
    pytest.importorskip("ray")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    common = ["--progress", "none", "batch", str(clips), "--text-beside", "--format", FORMATS + ",npz", "--workers", "2"]
    assert main(common + ["-o", str(local)]) == 0
    assert main(common + ["-o", str(on_ray), "--ray"]) == 0  # a local 2-CPU Ray instance
    assert _outputs(on_ray) == _outputs(local)
    for name in (p.name for p in local.glob("*.npz")):
        assert (on_ray / name).read_bytes() == (local / name).read_bytes()

    def journal(d):
        return {e["name"]: (e["key"], e["outputs"]) for e in map(json.loads, (d / "journal.jsonl").read_text().splitlines())}

    assert journal(on_ray) == journal(local)
    strip = lambda rep: [(r["name"], r["status"], r["error"], r["outputs"]) for r in rep["lines"]]  # noqa: E731
    assert strip(_report(on_ray)) == strip(_report(local))
    # The Ray path resumes from the journal like the local one.
    assert main(common + ["-o", str(on_ray), "--ray"]) == 0
    assert _report(on_ray)["skipped"] == len(PHRASES)
    # Outputs sent back to the driver (no shared filesystem) are the same files, carried audio included.
    returned = tmp_path / "returned"
    assert main(common + ["-o", str(returned), "--ray", "--ray-return"]) == 0
    every = lambda d: {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))  # noqa: E731
                       if p.is_file() and p.name not in ("report.json", "journal.jsonl")}
    assert every(returned) == every(local)
    assert journal(returned) == journal(local)
    assert not _parts(returned)


def test_ray_return_without_ray_is_one_line(clips, tmp_path, capsys):
    assert main(["batch", str(clips), "-o", str(tmp_path / "o"), "--ray-return"]) == 2
    assert "--ray-return goes with --ray" in capsys.readouterr().err
    assert main(["batch", str(clips), "-o", str(tmp_path / "o"), "--ray", "--ray-return", "--format", "csv,fbx"]) == 2
    assert "cannot send back .fbx" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_ray_missing_is_one_line(clips, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as on an install without the extra
    assert main(["batch", str(clips / "line0.wav"), "-o", str(tmp_path / "o"), "--ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "flamesync[ray]" in err


def test_journal_ignores_torn_rows_and_checks_outputs(tmp_path):
    from flamesync.batch.journal import Journal, describe_outputs

    (tmp_path / "a.csv").write_text("x\n")
    entry = {"name": "a", "key": "k1", "outputs": describe_outputs(tmp_path, ["a.csv"])}
    (tmp_path / "journal.jsonl").write_text(json.dumps(entry) + "\n" + '{"name": "b", "key": "k2", "outp')
    j = Journal(tmp_path)
    assert set(j.entries) == {"a"}  # the row torn by a kill is ignored
    assert j.is_done("a", "k1", ["a.csv"])
    assert not j.is_done("a", "k2", ["a.csv"])  # another key: rerun
    assert not j.is_done("a", "k1", ["a.csv", "a.npz"])  # a format added: rerun
    (tmp_path / "a.csv").write_text("y\n")  # same size, other bytes
    assert not j.is_done("a", "k1", ["a.csv"])


def test_gather_names_and_duplicates(tmp_path):
    from flamesync.batch import gather
    from flamesync.errors import InputError

    (tmp_path / "in" / "npc").mkdir(parents=True)
    for rel in ("npc/guard.wav", "npc/Guard.flac", "intro.mp3", "notes.txt"):
        (tmp_path / "in" / rel).write_bytes(b"")
    defaults = {"fps": 30.0, "backend": "auto", "language": "en"}
    with pytest.raises(InputError, match="both write outputs named"):
        gather([str(tmp_path / "in")], defaults=defaults)  # guard and Guard collide on case-insensitive disks
    (tmp_path / "in" / "npc" / "Guard.flac").unlink()
    lines = gather([str(tmp_path / "in")], defaults=defaults)
    assert [line.name for line in lines] == ["intro", "npc/guard"]
    # An output folder inside the input folder is not searched (its carried audio is not input).
    (tmp_path / "in" / "out").mkdir()
    (tmp_path / "in" / "out" / "intro.wav").write_bytes(b"")
    lines = gather([str(tmp_path / "in")], defaults=defaults, exclude=[tmp_path / "in" / "out"])
    assert [line.name for line in lines] == ["intro", "npc/guard"]
    man = tmp_path / "m.tsv"
    man.write_text("# comment\naudio\tname\tfps\nin/intro.mp3\t../escape\t\n")
    with pytest.raises(InputError, match="relative path inside the output folder"):
        gather([str(man)], defaults=defaults)
    man.write_text("audio\tname\tfps\nin/intro.mp3\tx/intro\t2000\n")
    with pytest.raises(InputError, match="m.tsv:2: frame rate"):
        gather([str(man)], defaults=defaults)


def test_ray_actor_killed_mid_batch_is_replaced(clips, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "flamesync", "--progress", "json", "batch", str(clips), "-o", str(out),
           "--text-beside", "--format", FORMATS, "--workers", "2", "--ray"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    _kill_a_worker_then_finish(proc, out)  # the actor's process: its line in flight is lost
