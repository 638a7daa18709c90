"""Throughput of the audio-to-face network: model-only speed, chunked scaling, cold start, whole CLI runs.

    PYTHONPATH=. python benchmarks/throughput.py [--checkpoint PATH] [--threads 1 2] [--durations 10 600]

Both inference backends are measured side by side in each section: torch, and onnxruntime on the
same weights exported to ONNX (what ``flamesync animate`` uses when the export is present). Without
--checkpoint an untrained network of the default architecture is used (speed does not depend on the
weights). Scaling rows are fresh processes that stream synthetic audio through the chunked inference
in 60 s blocks (as a file reader would), so their peak memory is the pipeline's own, not the
input's. The whole-process rows time ``flamesync animate clip.wav -o out.npz`` from launch to exit on
a 10-minute WAV, start-up, file reading and writing included. Prints tables.
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
BACKENDS = ("torch", "onnx")


def _load(backend: str, checkpoint: str, threads: int):
    """The model on ``backend``; ``checkpoint`` is a stem with ``.safetensors`` and ``.onnx`` beside it."""
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
        from flamesync.net.infer import load_model

        return load_model(checkpoint)
    from flamesync.net.onnx_runtime import load_onnx_model

    return load_onnx_model(checkpoint + ".onnx", threads=threads)


def _prepare(checkpoint: str | None, workdir: Path) -> str:
    """A checkpoint stem with its ONNX export beside it (an untrained default network if none)."""
    import shutil

    import torch

    from flamesync.net.checkpoint import save_checkpoint, stem
    from flamesync.net.config import ModelConfig
    from flamesync.net.infer import load_model
    from flamesync.net.model import FlameSyncNet
    from flamesync.net.onnx_export import export_onnx
    from flamesync.net.onnx_runtime import matching_onnx

    if checkpoint:
        base = stem(checkpoint)
        if matching_onnx(base) is not None:
            return str(base)
    else:
        torch.manual_seed(0)
        net = FlameSyncNet(ModelConfig())
        meta = {"model": net.cfg.to_dict(), "closure_pose": {"jawOpen": 0.02, "mouthClose": 0.02}}
        base = save_checkpoint(workdir / "untrained", model=net, meta=meta)
    # Export a private copy, so the benchmark never writes beside a user's checkpoint.
    out = workdir / "bench"
    for suffix in (".safetensors", ".json"):
        shutil.copy(str(base) + suffix, str(out) + suffix)
    export_onnx(load_model(out), str(out) + ".onnx", check=False)
    return str(out)


def _audio_block(i: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    t = (np.arange(n) + i * n) / 16000
    voiced = np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 2.1 * t) > -0.3)
    return (0.3 * voiced + 0.02 * rng.standard_normal(n)).astype(np.float32)


def one_run(seconds: float, checkpoint: str, backend: str, threads: int) -> dict:
    """Chunked inference over ``seconds`` of audio fed in 60 s blocks (child process)."""
    model = _load(backend, checkpoint, threads)
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


def model_only(model, seconds: float = 60.0) -> float:
    """Network forward alone on ``seconds`` of precomputed features, x real time (best of 5)."""
    from flamesync.audio.features import log_mel

    feats = log_mel(_audio_block(0, int(seconds * 16000)))
    model.run_window(feats)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        model.run_window(feats)
        best = min(best, time.perf_counter() - t)
    return seconds / best


def features_only(seconds: float = 60.0) -> float:
    from flamesync.audio.features import log_mel

    a = _audio_block(0, int(seconds * 16000))
    log_mel(a[:16000])
    t = time.perf_counter()
    log_mel(a)
    return seconds / (time.perf_counter() - t)


def cold_start(checkpoint: str, backend: str) -> float:
    """Wall time of a fresh process from launch to the first animation frame of a 1 s clip."""
    path = checkpoint + (".onnx" if backend == "onnx" else "")
    code = (
        "import numpy as np; "
        "from flamesync.net.infer import load_model; from flamesync.net.stream import Streamer; "
        "m = load_model(%r); s = Streamer(m); "
        "a = (0.3*np.sin(2*np.pi*140*np.arange(16000)/16000)).astype(np.float32); "
        "out = s.push(a); assert out.n_frames > 0"
    ) % path
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - t


def whole_process(checkpoint: str, backend: str, wav: Path, out: Path) -> float:
    """Wall time of ``flamesync animate WAV -o OUT.npz`` as a new process."""
    model = checkpoint + (".onnx" if backend == "onnx" else "")
    env = {**os.environ, "PYTHONPATH": str(REPO), "FLAMESYNC_MODEL": model}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flamesync", "--progress", "none", "animate", str(wav), "-o", str(out)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="checkpoint stem (default: an untrained default network)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--durations", type=float, nargs="+", default=[10, 60, 600, 3600], help="seconds")
    ap.add_argument("--whole-minutes", type=float, default=10.0, help="clip length for the whole-process rows")
    ap.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one_run(args.one, args.checkpoint, args.backend, args.threads[0])))
        return 0
    tmp = tempfile.TemporaryDirectory()
    work = Path(tmp.name)
    ckpt = _prepare(args.checkpoint, work)
    from flamesync.net.model import count_parameters

    probe = _load("torch", ckpt, 1)
    print(f"network: {count_parameters(probe.net) / 1e6:.2f} M parameters, look-ahead "
          f"{probe.lookahead_seconds * 1000:.1f} ms, past context {probe.cfg.past_frames / 50:.2f} s; "
          f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print("\nmodel only (network forward on 60 s of precomputed features), x real time")
    print(f"{'threads':>8} " + " ".join(f"{b:>8}" for b in BACKENDS))
    for th in args.threads:
        print(f"{th:>8} " + " ".join(f"{model_only(_load(b, ckpt, th)):>8.0f}" for b in BACKENDS))
    print(f"\nfeatures only (log-mel + running normalisation): {features_only():.0f} x real time")
    print("\nchunked inference, features + network + closure decoding, fresh process per row")
    print(f"{'backend':>8} {'threads':>8} {'audio':>8} {'frames':>8} {'wall s':>8} {'x RT':>7} {'peak RSS MB':>12} "
          f"{'growth MB':>10}")
    for b in BACKENDS:
        for th in args.threads:
            for d in args.durations:
                cmd = [sys.executable, __file__, "--one", str(d), "--threads", str(th), "--backend", b,
                       "--checkpoint", ckpt]
                res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                                env={**os.environ, "PYTHONPATH": str(REPO)}).stdout)
                label = f"{d / 60:g} min" if d >= 60 else f"{d:g} s"
                print(f"{b:>8} {th:>8} {label:>8} {res['frames']:>8} {res['wall']:>8.2f} {res['rtf']:>7.0f} "
                      f"{res['peak_mb']:>12.0f} {res['growth_mb']:>10.0f}")
    print("\ncold start: new process -> imports -> load model -> first frame of a 1 s clip (best of 3)")
    for b in BACKENDS:
        print(f"{b:>8}: {min(cold_start(ckpt, b) for _ in range(3)):.2f} s")
    import soundfile as sf

    wav = work / "clip.wav"
    n = int(args.whole_minutes * 60 * 16000)
    sf.write(wav, np.concatenate([_audio_block(i, min(960000, n - s)) for i, s in enumerate(range(0, n, 960000))]),
             16000, subtype="PCM_16")
    print(f"\nwhole process: flamesync animate on a {args.whole_minutes:g}-minute WAV -> .npz (best of 2)")
    print(f"{'backend':>8} {'wall s':>8} {'x RT':>7}")
    for b in BACKENDS:
        wall = min(whole_process(ckpt, b, wav, work / "out.npz") for _ in range(2))
        print(f"{b:>8} {wall:>8.2f} {args.whole_minutes * 60 / wall:>7.0f}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
