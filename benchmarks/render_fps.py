"""Preview rendering speed: frames per second at 512x512 per backend, worker count and MSAA.

    PYTHONPATH=. python benchmarks/render_fps.py [--frames 120] [--size 512] [--synthetic]

Per row: ``steady fps`` is the wall-clock rate of one renderer in this process once it is warm
(posing + rasterising + reading back), ``cpu ms/frame`` the CPU time that costs (all of
llvmpipe's threads; unlike wall time it does not depend on what else the machine is running, so
``cores * 1000 / cpu_ms`` estimates the rate on an idle machine), and ``end-to-end fps`` is
``render_frames`` on the whole clip, including starting the worker processes and evaluating the
face model. The target for the
default head is >= 15 fps end-to-end at 512x512 (a minute at 30 fps in under two minutes).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def speech_like(n_frames: int, fps: float = 30.0):
    from flamesync.animation import Animation

    t = np.arange(n_frames) / fps
    rng = np.random.default_rng(0)
    jaw = np.clip(0.35 + 0.3 * np.sin(2 * np.pi * 3.1 * t) + 0.1 * rng.standard_normal(n_frames), 0, 1)
    funnel = np.clip(0.4 * np.sin(2 * np.pi * 0.9 * t), 0, 1)
    return Animation.from_channels(fps=fps, data={"jawOpen": jaw, "mouthFunnel": funnel, "mouthPucker": funnel * 0.5})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--synthetic", action="store_true", help="use the small synthetic head instead of the default")
    ap.add_argument("--workers", default=None, help="comma-separated worker counts (default: 1 and all cores)")
    ap.add_argument("--antialias", default="0,4", help="comma-separated MSAA sample counts for pyrender")
    args = ap.parse_args()

    from flamesync import progress
    from flamesync.render import render_frames
    from flamesync.render.backends import available_backends, choose_gl_platform, make_renderer
    from flamesync.render.rig import HeadRig

    progress.set_mode("none")
    if args.synthetic:
        from flamesync.render.testing import synthetic_head

        face, head = synthetic_head(), "synthetic"
    else:
        from flamesync.face import default_head

        face, head = default_head(), "default"
    anim = speech_like(args.frames)
    rig = HeadRig.from_face(face)
    verts = face.animate(anim)
    cores = os.cpu_count() or 1
    workers = [int(w) for w in args.workers.split(",")] if args.workers else sorted({1, cores})
    platform = choose_gl_platform()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"head={head} ({face.n_vertices} model vertices, {sum(len(p.colors) for p in rig.parts)} rendered) "
          f"size={args.size} frames={args.frames} cores={cores} GL={platform} load_avg_1min={load:.1f}")
    antialias = [int(a) for a in args.antialias.split(",")]
    print(f"{'backend/shader':<14} {'msaa':>4} {'workers':>7} {'steady fps':>11} {'cpu ms/frame':>12} {'end-to-end fps':>15}")
    for backend, state in available_backends().items():
        if state != "ok":
            print(f"{backend:<14} {'-':>4} {'-':>7} {'-':>11} {'-':>12} {'-':>15}   ({state})")
            continue
        variants = [(aa, "fast") for aa in antialias] + [(0, "pbr")] if backend == "pyrender" else [(0, None)]
        for aa, shader in variants:
            opts = {"shader": shader} if shader else {}
            r = make_renderer(backend, rig, width=args.size, height=args.size, antialias=aa, **opts)
            r.render(rig.pose(verts[0]))
            n = min(40, len(verts))
            t0, c0 = time.perf_counter(), time.process_time()
            for v in verts[:n]:
                r.render(rig.pose(v))
            steady = n / (time.perf_counter() - t0)
            cpu_ms = (time.process_time() - c0) / n * 1000  # all llvmpipe threads of this process
            r.close()
            name = f"{backend}/{shader}" if shader else backend
            if shader == "pbr":  # render_frames always uses the fast shader
                print(f"{name:<14} {aa:>4} {'-':>7} {steady:>11.1f} {cpu_ms:>12.0f} {'-':>15}", flush=True)
                continue
            for w in workers:
                t0 = time.perf_counter()
                out = render_frames(anim, face=face, size=args.size, workers=w, backend=backend, antialias=aa)
                e2e = len(out) / (time.perf_counter() - t0)
                print(f"{name:<14} {aa:>4} {w:>7} {steady:>11.1f} {cpu_ms:>12.0f} {e2e:>15.1f}", flush=True)


if __name__ == "__main__":
    main()
