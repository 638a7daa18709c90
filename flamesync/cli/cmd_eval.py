"""``flamesync eval``: lip-sync metrics on real speech with transcripts."""

from __future__ import annotations

import json
from pathlib import Path

HELP = "score the audio-to-face network against a phone-recognition baseline on real speech"

EPILOG = """\
Real clips come from ../shared/realspeech (MANIFEST.tsv) and Debian's pocketsphinx-testdata
(LibriVox read speech). Each transcript is force-aligned with pocketsphinx to find the /p b m/
closures, open vowels and silences the metrics look at; the systems themselves hear audio only.

Metrics per clip: share of /p b m/ with the lips closed, lip gap on open vowels (mm), share of
long silences at rest, audio-to-motion lag (ms, positive = motion late) and the correlation with a
phone-derived openness curve at that lag, jitter (mean |second derivative| of the lip gap), and
the share of vowels with the lips shut in their middle half (the price of closing too eagerly:
a system that shuts the lips whenever in doubt closes every /p b m/ and many vowels).

The 'alive' system is the network plus the expressive layers (blinks, gaze, brows, head); for it
a second table gives blink rate and duration, the share of blinks at pauses (with chance), head
rotation ranges and their correlation with F0 and loudness, and brow raises per minute, checked
against the human ranges in docs/expressive.md. Its lip metrics should equal the model's.
"""


def register(sub) -> None:
    import argparse

    p = sub.add_parser("eval", help=HELP, description=HELP, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--realspeech", default=None, metavar="DIR",
                   help="folder with MANIFEST.tsv (default: ../shared/realspeech beside the checkout)")
    p.add_argument("--no-librivox", action="store_true", help="skip the pocketsphinx-testdata LibriVox clips")
    p.add_argument("--systems", default="model,phones,text,alive",
                   help="comma-separated: model (network), phones (recognition baseline), text (teacher on the alignment), "
                        "alive (network plus the expressive layers), words (word recognition), fused (the network, "
                        "its closures decided with the word recogniser's evidence; needs a checkpoint "
                        "fitted with 'train --recalibrate ... --fusion')")
    p.add_argument("--checkpoint", default=None, help="network checkpoint (default: the shipped model)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the scores as JSON")
    p.add_argument("--synthetic", nargs="?", const="default", default=None, metavar="CORPUS",
                   help="also measure lip vertex error against the teacher on the corpus's held-out "
                        "voices and languages (default corpus: <cache>/corpora/default)")
    p.add_argument("--real-val", default=None, metavar="CORPUS",
                   help="also score the systems on the val split of a real-speech corpus ('flamesync data real'; "
                        "speakers never trained on), per source: where networks are compared and chosen")
    p.add_argument("--per-source", type=int, default=150, metavar="N",
                   help="with --real-val: at most N items per source, spread over the split (default 150)")
    p.add_argument("--val-half", choices=("select", "calibrate", "check"), default="select",
                   help="with --real-val: which held-out speakers to score (default 'select', where "
                        "networks are chosen; 'calibrate' is where closure decoders are fitted, on the sources "
                        "the training config names; 'check': the train-split speakers that networks trained "
                        "with corpus.real check_share (see --check-share) never heard)")
    p.add_argument("--check-share", type=float, default=0.12, metavar="X",
                   help="with --val-half check: the check_share the compared networks were trained with (default 0.12)")
    p.add_argument("--check-offset", type=float, default=0.0, metavar="X",
                   help="with --val-half check: the check_offset they were trained with (default 0)")
    p.add_argument("--sources", default=None, metavar="A,B",
                   help="with --real-val: score only these sources of the corpus (comma-separated)")
    p.add_argument("--tempo", type=float, default=1.0, metavar="X",
                   help="with --real-val: speak each item X times faster at the same pitch first (e.g. 1.3, a "
                        "stand-in for fast casual speech; phone times scaled to match; default 1: as recorded)")
    p.add_argument("--hesitations", action="store_true",
                   help="with --real-val: splice an 'um' made of the speaker's own vowel and /m/ into a pause of "
                        "each item that has them (a stand-in for conversational hesitations, which read speech "
                        "lacks; its /m/ counts as a closure)")
    p.add_argument("--no-realspeech", action="store_true",
                   help="skip the ../shared/realspeech and LibriVox clips (e.g. when choosing on --real-val only)")
    p.add_argument("--card", default=None, metavar="FILE",
                   help="write a Markdown model card (checkpoint metadata + these results)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import InputError
    from ..eval import runner
    from ..fileio import atomic_write_text

    repo = Path(__file__).resolve().parents[2]
    real_dir = Path(args.realspeech) if args.realspeech else repo.parent / "shared" / "realspeech"
    clips = []
    if not args.no_realspeech:
        clips = runner.realspeech_clips(real_dir) if (real_dir / "MANIFEST.tsv").is_file() else []
        if not args.no_librivox:
            clips += runner.librivox_clips()
        if not clips:
            raise InputError(f"no evaluation clips found (looked in {real_dir} and {runner.LIBRIVOX_DIR})")
    elif not args.real_val:
        raise InputError("--no-realspeech leaves nothing to evaluate without --real-val")
    available = runner.default_systems(args.checkpoint)
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InputError(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(available)}")
    systems = {n: available[n] for n in names}
    real_val = None
    if args.real_val:
        sources = [x.strip() for x in args.sources.split(",") if x.strip()] if args.sources else None
        pairs = runner.corpus_clips(args.real_val, split="val", max_per_source=args.per_source,
                                    role=args.val_half, sources=sources, check_share=args.check_share,
                                    check_offset=args.check_offset)
        if not pairs:
            raise InputError(f"{args.real_val} has no val items to evaluate")
        if not 0.5 <= args.tempo <= 2.0:
            raise InputError(f"--tempo must be between 0.5 and 2, got {args.tempo}")
        val_scores = runner.evaluate_corpus(pairs, systems, tempo=args.tempo, hesitations=args.hesitations)
        real_val = {"overall": runner.summarize(val_scores), "by_source": runner.summarize_by_group(val_scores),
                    "items": [s.__dict__ for s in val_scores], "corpus": f"real val split of {Path(args.real_val).name}",
                    "half": args.val_half, "sources": sources,
                    **({"check_share": args.check_share, "check_offset": args.check_offset}
                       if args.val_half == "check" else {}),
                    "tempo": args.tempo, "hesitations": bool(args.hesitations)}
        print(runner.format_groups(real_val["by_source"], real_val["overall"],
                                   title=f"real val split of {args.real_val} (speakers never trained on), "
                                         + (f"{args.val_half} half" if args.val_half != "check"
                                            else f"check set (check_share {args.check_share:g}"
                                                 + (f", offset {args.check_offset:g})" if args.check_offset else ")"))
                                         + (f", spoken {args.tempo:g}x faster" if args.tempo != 1.0 else "")
                                         + (", an 'um' spliced into each" if args.hesitations else "")))
    scores = runner.evaluate_real(clips, systems) if clips else []
    summary = runner.summarize(scores)
    if scores:
        print(runner.format_table(scores, summary))
    alive = None
    alive_rows = [(s.clip, s.system, s.extra["alive"]) for s in scores if "alive" in s.extra]
    if alive_rows:
        from ..eval import alive as alive_eval

        overall = {sysname: alive_eval.pool([m for _, s2, m in alive_rows if s2 == sysname])
                   for sysname in dict.fromkeys(s2 for _, s2, _ in alive_rows)}
        print()
        print(alive_eval.format_alive(alive_rows, overall))
        for sysname, m in overall.items():
            for what, value, ok in alive_eval.checks(m):
                print(f"{'in  ' if ok else 'OUT '}  {sysname}: {what}: {value}")
        alive = overall
    synthetic = None
    if args.synthetic:
        from ..cache import cache_dir

        corpus = cache_dir("corpora", "default") if args.synthetic == "default" else Path(args.synthetic)
        synthetic = runner.evaluate_synthetic(corpus, checkpoint=args.checkpoint)
        for split, r in synthetic.items():
            print(f"held-out synthetic {split}: {r['n_items']} utterances, lip vertex error {r['lve_mm2']:.3f} mm^2, "
                  f"p/b/m closed {r['closure']:.1%} (teacher {r['closure_teacher']:.1%})")
    for what, value, ok in runner.target_report(summary):
        print(f"{'met ' if ok else 'MISS'}  {what}: {value}")
    if args.card:
        import sys

        from ..net.checkpoint import load_meta
        from ..net.infer import DEFAULT_CHECKPOINT

        meta = load_meta(Path(args.checkpoint) if args.checkpoint else DEFAULT_CHECKPOINT)
        command = "flamesync " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith(("flamesync", "__main__.py")) else "flamesync eval"
        atomic_write_text(args.card, runner.model_card(meta, scores, summary, synthetic, command,
                                                              real_val=real_val))
        print(f"wrote {args.card}")
    if args.json:
        atomic_write_text(args.json, json.dumps(
            {"clips": [s.__dict__ for s in scores], "overall": summary, "synthetic": synthetic,
             "real_val": real_val, "alive": alive},
            indent=1, default=float))
        print(f"wrote {args.json}")
    return 0
