"""FLAME at its real size: load times (.pkl via the restricted unpickler, converted .npz) and
forward-pass throughput.

Uses the synthetic model from tests/flame_synth.py at FLAME 2020's sizes (about 5000 vertices,
300 identity + 100 expression components, 36 pose correctives), pickled like the released
``generic_model.pkl``. Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/flame_forward.py [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import flame_synth  # noqa: E402

from flamesync.face.flame import load_flame, save_flame_npz  # noqa: E402


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", default="1,32,256")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)

    synth = flame_synth.make_synthetic_flame(n_shape=300, n_expr=100, rings=70, segments=70)
    with tempfile.TemporaryDirectory() as tmp:
        pkl = flame_synth.write_flame_pkl(Path(tmp) / "generic_model.pkl", synth, style="py2")
        model = load_flame(pkl)
        npz = save_flame_npz(model, Path(tmp) / "flame.npz")
        t_pkl = best_of(lambda: load_flame(pkl), 3)
        t_npz = best_of(lambda: load_flame(npz), 3)
        size_pkl, size_npz = pkl.stat().st_size / 1e6, npz.stat().st_size / 1e6

    print(f"model: {model.n_vertices} vertices, {model.n_shape}+{model.n_expr} components, device {args.device}")
    print(f"{'load':<28}{'seconds':>10}{'MB':>8}")
    print(f"{'.pkl (restricted unpickler)':<28}{t_pkl:>10.3f}{size_pkl:>8.1f}")
    print(f"{'.npz (converted)':<28}{t_npz:>10.3f}{size_npz:>8.1f}")

    model.to(args.device)
    print(f"\n{'batch':>6}{'ms / batch':>12}{'frames / s':>12}")
    for b in (int(x) for x in args.batches.split(",")):
        params = {
            "shape": torch.randn(b, 300), "expression": torch.randn(b, 100),
            "jaw_pose": 0.2 * torch.randn(b, 3), "global_pose": 0.2 * torch.randn(b, 3),
            "neck_pose": 0.2 * torch.randn(b, 3),
        }
        params = {k: v.to(args.device) for k, v in params.items()}

        def run():
            with torch.no_grad():
                model.forward_full(**params)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

        run()
        t = best_of(run, args.repeat)
        print(f"{b:>6}{t * 1e3:>12.2f}{b / t:>12.0f}")


if __name__ == "__main__":
    main()
