"""Throughput of the audio-to-face network: model-only speed, chunked inference scaling, cold start.

    PYTHONPATH=. python benchmarks/throughput.py [--checkpoint PATH] [--threads 2] [--minutes 10 60]

Without --checkpoint an untrained network of the default architecture is used (speed does not depend
on the weights). Each scaling run is a fresh process that streams synthetic audio through the
chunked inference in 60 s blocks (as a file reader would), so its peak memory is the pipeline's own,
not the input's. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _model(checkpoint: str | None):
    import torch

    from flamesync.net.infer import LoadedModel, load_model
    from flamesync.net.model import FlameSyncNet, ModelConfig

    if checkpoint:
        return load_model(checkpoint)
    torch.manual_seed(0)
    return LoadedModel(FlameSyncNet(ModelConfig()), {"closure_pose": {"jawOpen": 0.02, "mouthClose": 0.02}})


def _audio_block(i: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    t = (np.arange(n) + i * n) / 16000
    voiced = np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 2.1 * t) > -0.3)
    return (0.3 * voiced + 0.02 * rng.standard_normal(n)).astype(np.float32)


def one_run(seconds: float, checkpoint: str | None, threads: int) -> dict:
    """Chunked inference over ``seconds`` of audio fed in 60 s blocks (child process)."""
    import torch

    torch.set_num_threads(threads)
    model = _model(checkpoint)
    from flamesync.net.infer import NetRunner, Postprocessor

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runner = NetRunner(model, chunk_frames=3000)
    post = Postprocessor(model)
    block = 60 * 16000
    n_total = int(seconds * 16000)
    frames = 0
    t0 = time.perf_counter()
    feed = 0.0
    for i, start in enumerate(range(0, n_total, block)):
        tf = time.perf_counter()
        audio = _audio_block(i, min(block, n_total - start))
        feed += time.perf_counter() - tf
        raw = runner.push(audio)
        post.process(raw.weights, raw.closure_prob)
        frames += len(raw.weights)
    raw = runner.finish()
    post.process(raw.weights, raw.closure_prob)
    frames += len(raw.weights)
    wall = time.perf_counter() - t0 - feed
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "frames": frames, "wall": wall, "rtf": seconds / wall,
            "peak_mb": peak / 1024, "growth_mb": (peak - base) / 1024}


def model_only(model, threads: int, seconds: float = 60.0) -> float:
    import torch

    from flamesync.audio.features import log_mel

    torch.set_num_threads(threads)
    feats = torch.from_numpy(log_mel(_audio_block(0, int(seconds * 16000))))[None]
    with torch.no_grad():
        model.net(feats)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            model.net(feats)
            best = min(best, time.perf_counter() - t)
    return seconds / best


def features_only(seconds: float = 60.0) -> float:
    from flamesync.audio.features import log_mel

    a = _audio_block(0, int(seconds * 16000))
    log_mel(a[:16000])
    t = time.perf_counter()
    log_mel(a)
    return seconds / (time.perf_counter() - t)


def cold_start(checkpoint: str, threads: int) -> float:
    """Wall time of a fresh process from launch to the first animation frame of a 1 s clip."""
    code = (
        "import time, numpy as np, torch; torch.set_num_threads(%d); "
        "from flamesync.net.infer import load_model; from flamesync.net.stream import Streamer; "
        "m = load_model(%r); s = Streamer(m); "
        "a = (0.3*np.sin(2*np.pi*140*np.arange(16000)/16000)).astype(np.float32); "
        "out = s.push(a); assert out.n_frames > 0"
    ) % (threads, checkpoint)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--durations", type=float, nargs="+", default=[10, 60, 600, 3600], help="seconds")
    ap.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one_run(args.one, args.checkpoint, args.threads[0])))
        return 0
    from flamesync.net.model import count_parameters

    model = _model(args.checkpoint)
    print(f"network: {count_parameters(model.net) / 1e6:.2f} M parameters, look-ahead "
          f"{model.lookahead_seconds * 1000:.1f} ms, past context {model.cfg.past_frames / 50:.2f} s; "
          f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print("\nmodel only (network forward on 60 s of precomputed features)")
    print(f"{'threads':>8} {'x real time':>12}")
    for th in args.threads:
        print(f"{th:>8} {model_only(model, th):>12.0f}")
    print(f"\nfeatures only (log-mel + running normalisation): {features_only():.0f} x real time")
    print("\nchunked inference, features + network + closure decoding, fresh process per row")
    print(f"{'threads':>8} {'audio':>8} {'frames':>8} {'wall s':>8} {'x RT':>7} {'peak RSS MB':>12} {'growth MB':>10}")
    for th in args.threads:
        for d in args.durations:
            cmd = [sys.executable, __file__, "--one", str(d), "--threads", str(th)]
            if args.checkpoint:
                cmd += ["--checkpoint", args.checkpoint]
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                            env={**os.environ, "PYTHONPATH": str(REPO)}).stdout)
            label = f"{d / 60:g} min" if d >= 60 else f"{d:g} s"
            print(f"{th:>8} {label:>8} {res['frames']:>8} {res['wall']:>8.2f} {res['rtf']:>7.0f} "
                  f"{res['peak_mb']:>12.0f} {res['growth_mb']:>10.0f}")
    ckpt = args.checkpoint
    tmp = None
    if ckpt is None:
        from flamesync.net.checkpoint import save_checkpoint

        tmp = tempfile.TemporaryDirectory()
        ckpt = str(save_checkpoint(Path(tmp.name) / "m", model=model.net, meta={"model": model.cfg.to_dict()}))
    print("\ncold start: new process -> imports -> load checkpoint -> first frame of a 1 s clip")
    for th in args.threads:
        print(f"  threads {th}: {min(cold_start(ckpt, th) for _ in range(2)):.2f} s")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
