"""Forced alignment of long recordings against the same clips aligned one by one.

    PYTHONPATH=. python benchmarks/align_long.py [--minutes 10,30] [--manifest DIR/MANIFEST.tsv]

A long recording is made of real clips with transcripts (../shared/realtrain by default, or
$FLAMESYNC_SHARED_DIR/realtrain): English clips of every source, shuffled with a fixed seed so
that readers of very different speaking rates (LJ's fast professional reader, children reading
word by word, wake words between long pauses) follow each other, each clip followed by 0.4 s of
silence, and again from the first when they run out. The reference for each word is its clip
aligned alone (one search over a few seconds: the alignment a short clip gets); clips that cannot
be aligned alone are left out of the loop.

For each length it aligns the whole recording with its whole transcript (``align``, which cuts
long audio into segments) and prints: seconds, times real time, words whose start lies within
50 ms / 200 ms of the reference, the median start error, and the largest number of candidate
words one segment search was given (the size of its grammar: what made long files superlinear).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FLAMESYNC_SHARED_DIR") or REPO.parent / "shared")
GAP = 0.4
RATE = 16000


def clips(manifest: Path, seed: int, sources: "set[str] | None" = None) -> list[tuple[Path, str]]:
    rows = list(csv.DictReader(open(manifest, encoding="utf-8"), delimiter="\t"))
    rows = [r for r in rows if r.get("language") == "en" and (r.get("transcript") or "").strip()
            and (sources is None or r.get("source") in sources)]
    random.Random(seed).shuffle(rows)
    return [(manifest.parent / r["file"], r["transcript"].strip()) for r in rows]


def build(manifest: Path, minutes: float, seed: int, sources: "set[str] | None" = None):
    """(audio, transcript, reference word starts in seconds) for ``minutes`` of looped clips."""
    from flamesync.audio.io import load_audio
    from flamesync.errors import InputError
    from flamesync.phonetics.align import align

    total = int(minutes * 60 * RATE)
    parts, texts, ref = [], [], []
    done = 0
    gap = np.zeros(int(GAP * RATE), np.float32)
    alone: dict[Path, "list[float] | None"] = {}  # each clip's word starts aligned alone
    order = clips(manifest, seed, sources)
    k = 0
    while order and k < 4 * len(order) * max(1, int(minutes)):  # the clips again when they run out
        path, text = order[k % len(order)]
        k += 1
        x = load_audio(path, sample_rate=RATE)
        if done + len(x) + len(gap) > total:
            break
        if path not in alone:
            try:
                alone[path] = [w.start for w in align(x, RATE, text).words]
            except InputError:
                alone[path] = None
        if alone[path] is None:
            continue
        ref += [done / RATE + t for t in alone[path]]
        parts += [x, gap]
        texts.append(text)
        done += len(x) + len(gap)
    parts.append(np.zeros(total - done, np.float32))
    return np.concatenate(parts), " ".join(texts), np.asarray(ref)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", default="10,30", help="comma-separated lengths (default 10,30)")
    ap.add_argument("--manifest", type=Path, default=SHARED / "realtrain" / "MANIFEST.tsv")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sources", default=None,
                    help="comma-separated MANIFEST sources to use (default: all), e.g. ljspeech_part for one reader")
    ap.add_argument("--dump", type=Path, default=None,
                    help="write each length's word starts (aligned, reference) to DUMP/<minutes>.npz")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    # The module, not the function of the same name that flamesync.phonetics exports.
    align_mod = importlib.import_module("flamesync.phonetics.align")

    widest = []
    inner = align_mod._align_piece

    def counting(x, start, stop, prons, first, n_words, optional_tail, **kw):
        widest.append(n_words)
        return inner(x, start, stop, prons, first, n_words, optional_tail, **kw)

    align_mod._align_piece = counting
    rows = []
    for minutes in [float(m) for m in args.minutes.split(",")]:
        sources = set(args.sources.split(",")) if args.sources else None
        x, text, ref = build(args.manifest, minutes, args.seed, sources)
        widest.clear()
        t0 = time.perf_counter()
        utt = align_mod.align(x, RATE, text)
        dt = time.perf_counter() - t0
        got = np.asarray([w.start for w in utt.words])
        if len(got) != len(ref):
            raise SystemExit(f"{minutes} min: {len(got)} words aligned against {len(ref)} in the reference")
        err = np.abs(got - ref)
        if args.dump is not None:
            args.dump.mkdir(parents=True, exist_ok=True)
            np.savez(args.dump / f"{minutes:g}.npz", got=got, ref=ref, words=np.array(text.split()))
        rows.append((minutes, len(ref), dt, minutes * 60 / dt, np.mean(err <= 0.05), np.mean(err <= 0.2),
                     1000 * np.median(err), max(widest), len(widest)))
        print(f"# {minutes:g} min done in {dt:.1f} s", file=sys.stderr, flush=True)
    print("| minutes | words | seconds | x real time | start within 50 ms | within 200 ms "
          "| median error (ms) | most candidates | searches |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m, n, dt, rt, a, b, med, wide, searches in rows:
        print(f"| {m:g} | {n} | {dt:.1f} | {rt:.1f} | {100 * a:.1f}% | {100 * b:.1f}% | {med:.1f} "
              f"| {wide} | {searches} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
