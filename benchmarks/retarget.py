"""Retargeting at FLAME's size: landmark detection, registration, transfer, ARKit->FLAME map fit,
and per-frame conversion throughput.

The target is a FLAME-layout model made from the default head (tests/retarget_synth.py) at
full resolution (no decimation: 4790 vertices, close to FLAME's 5023) with 100 expression
components and a FLAME-like mouth hole. Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/retarget.py [--reduction 0.0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from retarget_synth import flame_from_head  # noqa: E402

from flamesync.animation import Animation  # noqa: E402
from flamesync.channels import ARKIT_52  # noqa: E402
from flamesync.face import default_head  # noqa: E402
from flamesync.retarget import detect_landmarks, fit_flame_map, retarget_head, to_flame  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reduction", type=float, default=0.0, help="decimate the target by this fraction")
    parser.add_argument("--n-expr", type=int, default=100)
    args = parser.parse_args()
    head = default_head()
    model, _ = flame_from_head(head, reduction=args.reduction, mouth_hole=True, n_expr=args.n_expr)
    rows = [("target", f"{model.n_vertices} vertices, {model.n_expr} expression components")]
    _, t = timed(lambda: detect_landmarks(model.template, model.faces))
    rows.append(("landmark detection", f"{t:.2f} s"))
    res, t = timed(lambda: retarget_head(model.template, model.faces, source=head))
    rows.append(("register + transfer 52 shapes", f"{t:.2f} s"))
    r = res.report["registration_mm"]
    rows.append(("registration residual", f"mean {r['mean']:.3f} mm, max {r['max']:.2f} mm"))
    fm, t = timed(lambda: fit_flame_map(model, source=head))
    rows.append(("fit ARKit->FLAME map (incl. transfer)", f"{t:.2f} s"))
    means = [m for m, _ in fm.fit_error_mm.values()]
    rows.append(("per-shape fit error", f"mean of means {np.mean(means):.3f} mm, worst max "
                 f"{max(x for _, x in fm.fit_error_mm.values()):.2f} mm"))
    anim = Animation(fps=30, channels=ARKIT_52, values=np.random.default_rng(0).uniform(0, 1, (3000, 52)))
    _, t = timed(lambda: to_flame(anim, model, mapping=fm))
    rows.append(("to_flame, 3000 frames", f"{t * 1000:.1f} ms ({3000 / t:.0f} frames/s)"))
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{width}}  {b}")


if __name__ == "__main__":
    main()
