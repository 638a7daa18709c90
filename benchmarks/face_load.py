"""Default head: cold build, cached load and forward-pass time.

Run: ``python benchmarks/face_load.py [--repeats N] [--threads N]``. Uses a throw-away cache directory so the
cold build is really cold; prints a table (median of the repeats, milliseconds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: torch's choice; 1 is steadier on a busy machine)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as cache:
        os.environ["FLAMESYNC_CACHE"] = cache
        import numpy as np
        import torch

        from flamesync.face import makehuman as mh

        if args.threads:
            torch.set_num_threads(args.threads)

        rows = []

        def cold():
            mh._MEMO.clear()
            mh.cache_path().unlink(missing_ok=True)
            mh.load_default_head()

        rows.append(("cold build (parse, crop, write cache)", _median_ms(cold, args.repeats)))

        def disk():
            mh._MEMO.clear()
            mh.load_default_head()

        rows.append(("cached load from disk", _median_ms(disk, args.repeats)))
        rows.append(("cached load in process", _median_ms(mh.load_default_head, args.repeats)))
        head = mh.load_default_head()

        def variant():
            mh._MEMO.clear()
            mh.load_default_head(identity={"head-age": 0.5})

        rows.append(("identity variant build (head-age=0.5)", _median_ms(variant, args.repeats)))

        gen = torch.Generator().manual_seed(0)
        for frames in (1, 1000):
            w = torch.rand(frames, 52, generator=gen) * 0.5
            jaw = torch.zeros(frames, 3)
            jaw[:, 0] = 0.2
            with torch.no_grad():
                ms = _median_ms(lambda: head.forward(w, jaw=jaw), args.repeats)
            rows.append((f"forward, {frames} frame(s), weights + jaw", ms))
        v = head.vertices(np.full((1000, 52), 0.1, np.float32))
        rows.append(("mouth_opening, 1000 frames (numpy)", _median_ms(lambda: head.mouth_opening(v), args.repeats)))

    print(f"default head: {head.n_vertices} vertices, {len(head.faces)} triangles; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} repeats")
    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  {'median ms':>10}")
    for name, ms in rows:
        print(f"{name:<{width}}  {ms:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
