"""Throughput of `flamesync data synth` on this machine, extrapolated to a 10-hour corpus.

    python benchmarks/corpus_throughput.py [--hours 0.1] [--workers 2] [--keep DIR]

Runs a real, small synth into a temporary folder (as a child process, so start-up is included) and
prints speech made, wall time, CPU time (all processes, engines included), real-time factors and
the projected wall time for 10 h: at the measured wall rate, and CPU-bound on N free cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--keep", default=None, help="corpus folder to keep (default: temporary)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep) if args.keep else Path(tmp) / "corpus"
        t0 = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [sys.executable, "-m", "flamesync", "--progress", "none", "data", "synth", "--hours", str(args.hours),
             "--out", str(out), "--workers", str(args.workers), "--seed", str(args.seed)],
            check=True, stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        from flamesync.data.corpus import Corpus

        seconds = Corpus(out).manifest["stats"]["seconds"]
    load = os.getloadavg()[0]
    rows = [
        ("speech made", f"{seconds / 3600:.3f} h"),
        ("wall", f"{wall:.1f} s"),
        ("CPU (all processes)", f"{cpu:.1f} s"),
        ("wall real-time factor", f"{seconds / wall:.1f}x"),
        ("CPU real-time factor per core", f"{seconds / cpu:.1f}x"),
        ("10 h at the measured wall rate", f"{36000 / (seconds / wall) / 60:.1f} min"),
        (f"10 h CPU-bound on {args.workers} free cores", f"{36000 / (seconds / cpu) / args.workers / 60:.1f} min"),
        ("load average (1 min) at the end", f"{load:.1f}"),
    ]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")


if __name__ == "__main__":
    main()
