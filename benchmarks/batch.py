"""Throughput of ``flamesync batch`` on many short lines, with 1 and 2 (or more) workers.

    PYTHONPATH=. python benchmarks/batch.py                      # 200 lines, 1 and 2 workers
    PYTHONPATH=. python benchmarks/batch.py --lines 1000 --workers 1 2 --backend model text --ray

Makes ``--distinct`` short lines with ``flamesync say`` (espeak; 0.6-2 s each) and copies them
round-robin to ``--lines`` files (each a separate line with its own outputs), then times whole
``flamesync batch`` processes from launch to exit (start-up, worker spawn, network loading,
journal and report included) into a fresh output folder per run. ``--backend text`` gives every
line its transcript (``--text-beside``), so lines are force-aligned instead of run through the
network. Prints one table row per run:

- lines/s and x real time (seconds of audio per second of wall time);
- per line: wall time x workers / lines, i.e. the CPU-seconds each line costs the batch;
- in worker: mean seconds a worker spent on a line (animate + export, from report.json);
- overhead/line: the difference (start-up, model loading, IPC, journal) spread over the lines;
- speed-up: lines/s relative to the 1-worker run of the same backend and runner.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SENTENCES = [
    "Bob bought a map.", "Put a cap on it.", "Maybe by Monday.", "The ship is blue.", "Five fine violins.",
    "Where did you go?", "Open the door, please.", "I never said that.", "Look behind you!", "We need more light.",
    "That was close.", "Keep moving forward.", "Is anybody there?", "Thank you, captain.", "Not today.",
    "Follow me to the bridge.", "The key is under the mat.", "Hold your fire!", "What a lovely morning.",
    "Take the left path.",
]


def make_lines(folder: Path, n: int, distinct: int) -> float:
    """Write ``n`` WAV lines (and transcripts) into ``folder``; return their total seconds."""
    import soundfile as sf

    from flamesync.phonetics.textanimate import say

    src = folder.parent / "distinct"
    src.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(distinct):
        text = SENTENCES[i % len(SENTENCES)]
        wav = src / f"d{i:03d}.wav"
        say(text, wav_path=wav, rate=0.9 + 0.05 * (i // len(SENTENCES)))
        made.append((wav, text, sf.info(str(wav)).duration))
    folder.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for i in range(n):
        wav, text, dur = made[i % len(made)]
        shutil.copy(wav, folder / f"line{i:05d}.wav")
        (folder / f"line{i:05d}.txt").write_text(text, encoding="utf-8")
        total += dur
    return total


def run(folder: Path, out: Path, *, workers: int, backend: str, formats: str, ray: bool = False) -> dict:
    cmd = [sys.executable, "-m", "flamesync", "--progress", "none", "batch", str(folder), "-o", str(out),
           "--format", formats, "--workers", str(workers)]
    if ray:
        cmd.append("--ray")  # a local Ray instance with `workers` CPUs, started and stopped by the run
    if backend == "text":
        cmd.append("--text-beside")
    else:
        cmd += ["--backend", "model"]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"batch failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    report = json.loads((out / "report.json").read_text())
    in_worker = [r["seconds"] for r in report["lines"] if r["status"] == "done"]
    return {"wall": wall, "done": report["done"], "audio": report["audio_seconds_done"],
            "in_worker": sum(in_worker) / max(1, len(in_worker))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=200, help="lines in the batch (the issue's figure: 1000)")
    ap.add_argument("--distinct", type=int, default=20, help="distinct utterances the lines cycle through")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--backend", nargs="+", default=["model"], choices=("model", "text"))
    ap.add_argument("--formats", default="csv,rhubarb.json", help="--format of the batch (default csv,rhubarb.json)")
    ap.add_argument("--ray", action="store_true", help="also run each worker count on a local Ray instance")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="flamesync-batch-bench-"))
    try:
        audio = make_lines(work / "lines", args.lines, min(args.distinct, args.lines))
        print(f"{args.lines} lines, {audio:.1f} s of audio ({audio / args.lines:.2f} s per line), "
              f"formats {args.formats}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
        head = (f"| backend | runner | workers | wall s | lines/s | x real time | per line ms | in worker ms | "
                f"overhead/line ms | speed-up |")
        print(head)
        print("|" + "---|" * 10)
        for backend in args.backend:
            for runner in ("local", "ray") if args.ray else ("local",):
                base = None
                for w in args.workers:
                    r = run(work / "lines", work / f"out-{backend}-{runner}-{w}", workers=w, backend=backend,
                            formats=args.formats, ray=runner == "ray")
                    assert r["done"] == args.lines, r
                    rate = args.lines / r["wall"]
                    base = base or rate
                    per_line = r["wall"] * w / args.lines
                    print(f"| {backend} | {runner} | {w} | {r['wall']:.1f} | {rate:.2f} | {r['audio'] / r['wall']:.1f} | "
                          f"{1000 * per_line:.0f} | {1000 * r['in_worker']:.0f} | "
                          f"{1000 * (per_line - r['in_worker']):.0f} | {rate / base:.2f}x |", flush=True)
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
