"""``flamesync data``: make and inspect the synthetic training corpus."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("data", help="make or inspect training corpora (synthetic speech, real recordings)",
                       description="Make or inspect the speech corpora the model trains on: synthetic speech "
                                   "(synth) and transcribed real recordings (real).")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    s = dsub.add_parser(
        "synth", help="synthesize a corpus (sharded, resumable, parallel)",
        description="Synthesize speech with espeak-ng, flite and festival (plus Praat voice changes), "
        "animate it with the coarticulation teacher and store audio + targets + phones in shards. "
        "Re-running with the same settings skips finished shards; more --hours adds shards.",
    )
    s.add_argument("--hours", type=float, required=True, help="hours of speech to make")
    s.add_argument("--out", default=None,
                   help="corpus folder (default: <flamesync cache>/corpus/synth-seed<SEED>)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    s.add_argument("--languages", nargs="+", default=None, metavar="LANG",
                   help="espeak-ng languages besides English (default: a set of 18)")
    s.add_argument("--test-languages", nargs="+", default=None, metavar="LANG",
                   help="languages kept for the test_lang split only (default: it nl)")
    s.add_argument("--engines", nargs="+", default=None, choices=("espeak", "flite", "festival"),
                   help="engines for English (default: all three)")
    s.add_argument("--english-share", type=float, default=0.6,
                   help="share of utterances in English, the rest espeak-ng in --languages (default 0.6)")
    s.add_argument("--gender-share", type=float, default=0.35,
                   help="share of utterances given a Praat voice change (default 0.35)")
    s.add_argument("--fillers", type=float, default=0.0,
                   help="share of English words that become hesitations like 'um' and 'uh', as in "
                   "spontaneous speech (default 0)")
    s.add_argument("--shard-seconds", type=float, default=None, help=argparse.SUPPRESS)
    s.set_defaults(func=_synth)
    r = dsub.add_parser(
        "real", help="turn a folder of transcribed recordings into training items",
        description="Force-align each recording's transcript with pocketsphinx, score the alignment against a "
        "free phone loop (badly aligned recordings are dropped and counted, badly aligned words masked), animate "
        "the aligned phones with the coarticulation teacher and store the items in corpus shards, split "
        "by speaker into train and val. Alignments are cached, so a rebuild is quick.",
        epilog="Layouts: manifest (MANIFEST.tsv, as ../shared/realtrain), commonvoice (validated.tsv + clips/), "
        "ljspeech (metadata.csv + wavs/), librispeech (*.trans.txt + .flac), folder (x.wav + x.txt or x.lab; the "
        "speaker is the sub-folder). Example: flamesync data real ../shared/realtrain --out ~/corpora/realtrain",
    )
    r.add_argument("source", help="folder of recordings with transcripts")
    r.add_argument("--out", default=None, help="corpus folder (default: <flamesync cache>/corpora/real-<folder name>)")
    r.add_argument("--layout", default="auto", help="auto (default), manifest, commonvoice, ljspeech, librispeech or folder")
    r.add_argument("--seed", type=int, default=0, help="which speakers are held out for validation (default 0)")
    r.add_argument("--val-share", type=float, default=0.15, help="share of speakers held out for validation (default 0.15)")
    r.add_argument("--val-source", action="append", default=None, metavar="NAME",
                   help="a source held out whole (repeatable; default: ljspeech_part and ljspeech, single readers)")
    r.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    r.add_argument("--limit", type=int, default=None, help="use only this many recordings (a trial run)")
    r.set_defaults(func=_real)
    st = dsub.add_parser("stats", help="print a corpus's statistics")
    st.add_argument("dir", help="corpus folder")
    st.set_defaults(func=_stats)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _synth(args) -> int:
    from ..cache import cache_dir
    from ..data.synth import format_stats, synthesize_corpus

    out = args.out or cache_dir("corpus", f"synth-seed{args.seed}")
    manifest = synthesize_corpus(
        out, hours=args.hours, seed=args.seed, workers=args.workers, languages=args.languages,
        test_languages=args.test_languages, shard_seconds=args.shard_seconds, engines=args.engines,
        english_share=args.english_share, gender_share=args.gender_share, fillers=args.fillers,
    )
    st = manifest["stats"]
    print(f"corpus: {out}")
    print(format_stats(st))
    wall = st.get("wall_seconds_last_run", 0.0)
    if wall > 0:
        print(f"this run: {wall:.1f} s wall")
    return 0


def _real(args) -> int:
    from pathlib import Path

    from ..cache import cache_dir
    from ..data.real import build_real_corpus, format_report
    from ..errors import InputError

    if not 0.0 < args.val_share < 1.0:
        raise InputError(f"--val-share must be between 0 and 1, got {args.val_share}")
    out = args.out or cache_dir("corpora", f"real-{Path(args.source).resolve().name}")
    val_sources = args.val_source if args.val_source is not None else ["ljspeech_part", "ljspeech"]
    manifest = build_real_corpus(args.source, out, layout=args.layout, seed=args.seed, val_share=args.val_share,
                                 val_sources=val_sources, workers=args.workers, limit=args.limit)
    print(f"corpus: {out}")
    print(format_report(manifest))
    return 0


def _stats(args) -> int:
    from ..data.corpus import Corpus
    from ..data.synth import format_stats, merge_stats, read_shard_stats, SPLITS

    corpus = Corpus(args.dir)
    parts = [read_shard_stats(p) for s in SPLITS for p in corpus.shards(s)]
    print(f"corpus: {corpus.path} (seed {corpus.manifest.get('seed')}, {corpus.fps:g} fps, "
          f"{len(corpus.channels)} channels, {len(parts)} shards"
          + ("" if corpus.manifest.get("complete") else ", incomplete") + ")")
    print(format_stats(merge_stats(parts)))
    return 0
