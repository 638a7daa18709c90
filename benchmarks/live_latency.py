"""Live latency and load: audio sample in to frame out at the sink, and CPU share at real time.

    PYTHONPATH=. python benchmarks/live_latency.py [--seconds 20] [--chunks-ms 10 20 40] [--backend auto|torch|onnx]
                                                   [--runners cut whole]

For each chunk length, real speech (``assets/examples/hello.wav`` repeated) is released at real-time
pace, chunk by chunk, as a microphone delivers it, into the same loop ``flamesync live`` runs
(:func:`flamesync.live.engine.run_live`: streaming network + alive-face layers) with two real sinks
sending to 127.0.0.1: Live Link Face UDP packets and VMC/OSC bundles (the receiving sockets are
bound but never read, so the receivers cost nothing here).

Latency of frame ``j`` = the moment its packet has been handed to the network minus the moment
the audio sample at the frame's own time ``j / 50 s`` was captured. It is the network's fixed
look-ahead (92.5 ms) plus the wait for the chunk holding that sample (up to one chunk) plus compute
and queueing. CPU is this process's user+system time over the run divided by the audio's duration:
the share of one core that real-time operation takes.

``--runners cut whole`` runs every row twice, back to back under the same machine load: with the
ONNX graph cut into layer groups (:mod:`flamesync.net.onnx_stream`, what ``Streamer`` uses) and
with the whole graph rerun over its receptive field at every push (the previous streaming path).

Targets (issue 21): p95 <= 150 ms with 20 ms chunks, under 30% of one core.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class PacedSource:
    """``wave`` released chunk by chunk at real-time pace (the arrival time is when the chunk is due)."""

    live = True

    def __init__(self, wave: np.ndarray, chunk: int):
        self.wave, self.chunk = wave, chunk

    def __iter__(self):
        start = time.monotonic()
        for a in range(0, len(self.wave), self.chunk):
            b = min(len(self.wave), a + self.chunk)
            due = start + b / 16000
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            yield self.wave[a:b], due


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="audio per chunk length (default 20)")
    ap.add_argument("--chunks-ms", type=float, nargs="+", default=[10, 20, 40])
    ap.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                    help="auto = what 'flamesync live' uses (the shipped ONNX export)")
    ap.add_argument("--mouth-only", action="store_true", help="without the alive-face layers")
    ap.add_argument("--runners", nargs="+", choices=("cut", "whole"), default=["cut"],
                    help="ONNX streaming: graph cut into layer groups (default), and/or run whole each push")
    args = ap.parse_args(argv)

    from flamesync.audio.io import load_audio
    from flamesync.expressive import Layers
    from flamesync.live.engine import run_live
    from flamesync.live.sinks.livelink import LiveLinkSink
    from flamesync.live.sinks.osc import VmcSink
    from flamesync.net.infer import load_default_model
    from flamesync.net.stream import Streamer

    model = load_default_model(backend=args.backend, threads=1)
    if model.backend == "torch":
        import torch

        torch.set_num_threads(1)
    clip = load_audio(REPO / "assets" / "examples" / "hello.wav")
    wave = np.tile(clip, int(np.ceil(args.seconds * 16000 / len(clip))))[: int(args.seconds * 16000)]
    receivers = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        receivers.append(s)
    layers = None if args.mouth_only else Layers()
    print(f"model {model.backend}, 1 thread; {'mouth only' if args.mouth_only else 'with alive-face layers'}; "
          f"{args.seconds:g} s of speech per row at real-time pace; look-ahead {model.lookahead_seconds * 1000:.1f} ms; "
          f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    print(f"{'runner':>6} {'chunk ms':>8} {'frames':>7} {'dropped':>8} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'CPU % of one core':>18}")
    from flamesync.net.infer import NetRunner

    for ms in args.chunks_ms:
        for runner in args.runners:
            chunk = int(round(ms * 16))
            sinks = [LiveLinkSink(f"127.0.0.1:{receivers[0].getsockname()[1]}"),
                     VmcSink(f"127.0.0.1:{receivers[1].getsockname()[1]}")]
            if model.backend == "torch":
                runner = "torch"

            def make():
                s = Streamer(model, layers=layers)
                if runner == "whole":
                    s._runner = NetRunner(model)
                return s

            probe = make()
            if runner == "cut" and type(probe._runner) is NetRunner:
                runner = "whole"  # this graph could not be cut
            probe.push(np.zeros(chunk, np.float32))  # first-call allocations, as a session's start-up does
            fresh = make()
            report = run_live(source=PacedSource(wave, chunk), streamer=fresh, sinks=sinks)
            dropped = sum(q["dropped"] for q in report.sinks)
            # Both sinks: the mean of their medians, the worse of their p95 and maxima.
            p50 = np.mean([q["latency_p50_ms"] for q in report.sinks])
            p95 = max(q["latency_p95_ms"] for q in report.sinks)
            mx = max(q["latency_max_ms"] for q in report.sinks)
            cpu = 100.0 * report.cpu_seconds / report.audio_seconds
            print(f"{runner:>6} {ms:>8g} {report.frames:>7} {dropped:>8} {p50:>7.1f} {p95:>7.1f} {mx:>7.1f} {cpu:>18.1f}")
    for s in receivers:
        s.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
