"""Export speed and size on the default head: ``python benchmarks/export.py [--seconds 10]``.

Prints one row per format: wall time, output size. Blender formats include starting Blender.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from flamesync.animation import Animation
from flamesync.channels import ARKIT_52, JAW_ROTATION_IMPLIED, SPEECH_CHANNELS
from flamesync.export import export
from flamesync.export.blender_bridge import find_blender
from flamesync.face import default_head


def take(seconds: float, fps: float = 30.0) -> Animation:
    rng = np.random.default_rng(0)
    n = int(seconds * fps)
    t = np.arange(n) / fps
    data = {c: (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 4) * t + rng.uniform(0, 6))) * (c in SPEECH_CHANNELS)
            for c in ARKIT_52}
    jaw = np.stack([0.3 * data["jawOpen"], 0 * t, 0 * t], 1)
    return Animation.from_channels(fps=fps, data=data, jaw=jaw, meta={"jaw_rotation": JAW_ROTATION_IMPLIED})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    head = default_head()
    anim = take(args.seconds)
    formats = [".glb", ".gltf", ".csv", ".json"]
    if find_blender() is not None:
        formats += [".fbx", ".usdc", ".abc"]
    print(f"default head: {head.n_vertices} vertices; take: {anim.n_frames} frames @ {anim.fps:g} fps")
    print(f"{'format':<8} {'seconds':>8} {'MB':>8}")
    with tempfile.TemporaryDirectory() as d:
        for sfx in formats:
            t0 = time.perf_counter()
            p = export(anim, Path(d) / f"take{sfx}", face=head)
            dt = time.perf_counter() - t0
            print(f"{sfx:<8} {dt:8.2f} {p.stat().st_size / 1e6:8.2f}")


if __name__ == "__main__":
    main()
