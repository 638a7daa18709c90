"""How well does the pocketsphinx aligner agree with the engines' own phone timings?

Synthesises a set of English sentences with every engine/voice, aligns each waveform to its text
with :func:`flamesync.phonetics.align.align`, matches the two phone sequences and prints, per
voice, the median and 90th percentile absolute difference of the shared phone boundaries (and of
word starts/ends). The engines' timings are exact by construction, so this measures the aligner
(and the engines' labelling conventions). Exits non-zero if any voice's median exceeds 25 ms.

    PYTHONPATH=. python benchmarks/align_engines.py [--voices espeak:en-us flite:slt ...] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from flamesync.errors import FlamesyncError
from flamesync.phonetics import get_engine
from flamesync.phonetics.align import align
from flamesync.phonetics.compare import boundary_pairs

SENTENCES = [
    "Put a cap on it, Bob.",
    "The quick brown fox jumps over the lazy dog.",
    "She sells seashells by the seashore every morning.",
    "We were away a year ago, when the weather was warmer.",
    "My father bought twelve bottles of mineral water.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "A thin stripe runs down the middle of the road.",
    "Judge the church by the value of its measures.",
    "Five or six big vans moved the heavy boxes yesterday.",
    "How much wood would a woodchuck chuck if it could?",
]

VOICES = [
    "espeak:en-us", "espeak:en-us+f3", "espeak:en+m3",
    "flite:slt", "flite:kal16", "flite:awb", "flite:rms",
    "festival:kal_diphone", "festival:cmu_us_slt_arctic_hts",
]
LIMIT_MS = 25.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", nargs="*", default=VOICES, help="engine:voice items")
    ap.add_argument("--limit", type=int, default=len(SENTENCES), help="sentences per voice")
    args = ap.parse_args(argv)
    rows = []
    failed = False
    print(f"{'engine:voice':34s} {'n':>5s} {'median ms':>10s} {'p90 ms':>8s} {'word med':>9s} "
          f"{'word p90':>9s} {'align s':>8s}")
    for item in args.voices:
        engine, _, voice = item.partition(":")
        errs, werrs, t_align = [], [], 0.0
        try:
            eng = get_engine(engine)
            for text in SENTENCES[: args.limit]:
                utt = eng.synthesize(text, voice=voice or None)
                t0 = time.perf_counter()
                res = align(utt.audio, utt.sample_rate, text)
                t_align += time.perf_counter() - t0
                b = boundary_pairs(utt.phones, res.phones)
                errs.extend(np.abs(b[:, 0] - b[:, 1]) * 1000)
                if len(res.words) == len(utt.words):
                    for w0, w1 in zip(utt.words, res.words):
                        werrs += [abs(w0.start - w1.start) * 1000, abs(w0.end - w1.end) * 1000]
        except FlamesyncError as exc:
            print(f"{item:34s} FAILED: {exc}")
            failed = True
            continue
        e = np.array(errs)
        we = np.array(werrs) if werrs else np.array([np.nan])
        med, p90 = float(np.median(e)), float(np.percentile(e, 90))
        rows.append((item, med))
        print(f"{item:34s} {len(e):5d} {med:10.1f} {p90:8.1f} {np.median(we):9.1f} "
              f"{np.percentile(we, 90):9.1f} {t_align:8.2f}")
        if med > LIMIT_MS:
            failed = True
    bad = [f"{v} ({m:.1f} ms)" for v, m in rows if m > LIMIT_MS]
    if bad:
        print(f"FAIL: median boundary disagreement above {LIMIT_MS:.0f} ms for: {', '.join(bad)}",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
