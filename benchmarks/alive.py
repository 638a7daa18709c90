"""Cost of the alive-face layers: in-process ratio, whole-process speed, memory against length.

    PYTHONPATH=. python benchmarks/alive.py [--minutes 10] [--repeats 3]

The audio is real speech from ../shared/realspeech, concatenated and repeated to the length asked
for (synthetic speech-like audio when the folder is missing). Prints three tables:

1. in one process, ``flamesync.animate`` with every layer on (and an emotion) against
   ``mouth_only=True`` on the same audio: seconds (best of ``--repeats``) and their ratio;
2. whole processes, ``flamesync animate clip.wav -o out.npz`` with and without ``--mouth-only``,
   launch to exit: seconds and times real time;
3. the layers alone (:func:`flamesync.expressive.add_layers`) on 1, 5 and N minutes, each in a fresh
   process: seconds and peak memory above the audio itself, which stays flat in the length.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def speech(seconds: float) -> np.ndarray:
    """Real speech repeated to ``seconds`` (16 kHz float32)."""
    from flamesync.audio.io import load_audio

    folder = Path(os.environ.get("FLAMESYNC_SHARED_DIR") or REPO.parent / "shared") / "realspeech"
    clips = [load_audio(p) for p in sorted(folder.glob("*.wav"))] if folder.is_dir() else []
    if not clips:
        t = np.arange(int(30 * 16000)) / 16000
        clips = [(0.2 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)]
    one = np.concatenate(clips)
    n = int(seconds * 16000)
    return np.tile(one, n // len(one) + 1)[:n].astype(np.float32)


def _layers_only(seconds: float) -> dict:
    """Run in a child process: time and peak memory of the layers alone on ``seconds`` of audio."""
    import resource

    from flamesync.animation import Animation
    from flamesync.expressive import Layers, add_layers

    wave = speech(seconds)
    base = Animation.zeros(int(round(seconds * 30)), fps=30, channels=("jawOpen",))
    add_layers(Animation.zeros(30, fps=30, channels=("jawOpen",)), wave[:16000], Layers())  # warm imports
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    add_layers(base, wave, Layers(emotion="happy"))
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": dt, "extra_mib": (after - before) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(_layers_only(args.child)))
        return
    import soundfile as sf

    from flamesync.pipeline import animate

    seconds = args.minutes * 60
    wave = speech(seconds)
    # 1. In-process ratio.
    animate(wave[:16000 * 5], sample_rate=16000)  # load the model and warm every import
    times = {"mouth only": [], "every layer on": []}
    for _ in range(args.repeats):
        for name, kw in (("mouth only", {"mouth_only": True}), ("every layer on", {"emotion": "happy"})):
            t = time.perf_counter()
            animate(wave, sample_rate=16000, **kw)
            times[name].append(time.perf_counter() - t)
    off, on = min(times["mouth only"]), min(times["every layer on"])
    print(f"\nin-process flamesync.animate on {args.minutes:g} min of speech (best of {args.repeats})")
    print(f"{'':16s} {'seconds':>8s} {'x real time':>12s} {'ratio':>6s}")
    for name, v in (("mouth only", off), ("every layer on", on)):
        print(f"{name:16s} {v:8.2f} {seconds / v:12.0f} {v / off:6.2f}")

    # 2. Whole processes.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "clip.wav"
        sf.write(str(wav), wave, 16000)
        rows = []
        for name, flags in (("--mouth-only", ["--mouth-only"]), ("layers on", [])):
            best = float("inf")
            for _ in range(args.repeats):
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "flamesync", "animate", str(wav), "-o", str(Path(tmp) / "o.npz"),
                                *flags], check=True, env=env, capture_output=True)
                best = min(best, time.perf_counter() - t)
            rows.append((name, best))
    print(f"\nwhole process 'flamesync animate' on {args.minutes:g} min (launch to exit, best of {args.repeats})")
    print(f"{'':16s} {'seconds':>8s} {'x real time':>12s}")
    for name, v in rows:
        print(f"{name:16s} {v:8.2f} {seconds / v:12.0f}")

    # 3. Layers alone: time and memory against length.
    print("\nlayers alone (add_layers), fresh process per length")
    print(f"{'minutes':>8s} {'seconds':>8s} {'x real time':>12s} {'peak extra MiB':>15s}")
    for minutes in sorted({1.0, 5.0, args.minutes}):
        out = subprocess.run([sys.executable, __file__, "--child", str(minutes * 60)], check=True, env=env,
                             capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{minutes:8g} {r['seconds']:8.2f} {minutes * 60 / r['seconds']:12.0f} {r['extra_mib']:15.1f}")


if __name__ == "__main__":
    main()
