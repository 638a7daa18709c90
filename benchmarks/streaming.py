"""Streaming inference: per-chunk compute time and end-to-end latency.

    PYTHONPATH=. python benchmarks/streaming.py [--checkpoint PATH] [--backend torch|onnx] [--threads 1] [--seconds 30]

Pushes synthetic audio into :class:`flamesync.net.stream.Streamer` in chunks of 10-200 ms, as a
microphone callback would, and reports the compute time per push. End-to-end latency of a frame =
algorithmic look-ahead (network + feature window) + buffering (one chunk, worst case) + compute.
Without --checkpoint an untrained default-architecture network is used (same speed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import _audio_block, _load, _prepare  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--chunks-ms", type=float, nargs="+", default=[10, 20, 50, 100, 200])
    ap.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                    help="torch steps the network layer by layer; an ONNX graph reruns its receptive field")
    args = ap.parse_args(argv)
    import tempfile

    from flamesync.net.stream import Streamer

    tmp = tempfile.TemporaryDirectory()
    model = _load(args.backend, _prepare(args.checkpoint, Path(tmp.name)), args.threads)
    audio = _audio_block(0, int(args.seconds * 16000))
    la = model.lookahead_seconds * 1000
    print(f"look-ahead {la:.1f} ms (network {model.cfg.lookahead_frames * 20} ms + feature half-window "
          f"{model.features.lookahead_samples / 16:.1f} ms); {args.backend}, threads {args.threads}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'chunk ms':>8} {'pushes':>7} {'mean ms':>8} {'p95 ms':>7} {'max ms':>7} {'x RT':>6} "
          f"{'latency p95 ms':>15}")
    for ms in args.chunks_ms:
        n = int(ms * 16)
        s = Streamer(model)
        s.push(audio[:n])  # warm-up (first call allocates)
        times = []
        for i in range(n, len(audio), n):
            t = time.perf_counter()
            s.push(audio[i:i + n])
            times.append((time.perf_counter() - t) * 1000)
        s.finish()
        t = np.array(times)
        p95 = float(np.percentile(t, 95))
        print(f"{ms:>8g} {len(t):>7} {t.mean():>8.2f} {p95:>7.2f} {t.max():>7.2f} {ms / t.mean():>6.1f} "
              f"{la + ms + p95:>15.1f}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
