"""``flamesync batch``: many takes at once, on every core, resumable, with a report."""

from __future__ import annotations

import functools
import os
import sys

from ..errors import InputError
from ..pipeline import BACKENDS

HELP = "animate many audio files (files, folders, manifests) on worker processes; resumable"

EPILOG = """\
examples:
  flamesync batch lines/ -o out/ --format glb,csv
  flamesync batch a.wav b.wav -o out/ --format rhubarb.json,rhubarb.tsv --workers 2
  flamesync batch --manifest takes.tsv -o out/ --format npz,ovr.csv
  flamesync batch dub/ -o out/ --text-beside --format csv   # dub/x.txt is the transcript of dub/x.wav
  flamesync batch lines/ -o /shared/out --ray ray://head:10001 --format glb   # on a Ray cluster
  flamesync batch lines/ -o out/ --ray ray://head:10001 --ray-return   # nodes share no filesystem

A manifest is a TSV with a header row; columns: audio (required), text or text_file, name, and
per-line options fps, backend, language, emotion, intensity, emotion_keys (a keys file), seed,
mouth_only (true/false), timing_offset (empty cells take the command line's values); paths are
relative to the manifest. Example row: "hero_01.wav<TAB>hero_01<TAB>angry<TAB>0.8" under the header
"audio<TAB>name<TAB>emotion<TAB>intensity".
Outputs go to OUTDIR/NAME.FORMAT (NAME: the file's stem, or its path below a folder input).
A rerun skips lines whose outputs are intact and were made from the same audio bytes, transcript,
options and model (OUTDIR/journal.jsonl), so an interrupted batch resumes. OUTDIR/report.json lists
every line with its status and error; the exit status is 1 when any line failed.
"""


def register(sub) -> None:
    import argparse

    p = sub.add_parser("batch", help=HELP, description=HELP, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="audio files, folders (searched recursively) or manifest .tsv files")
    p.add_argument("-o", "--outdir", required=True, metavar="OUTDIR", help="output folder (created)")
    p.add_argument("--format", default="npz", metavar="LIST",
                   help="comma-separated output formats by extension: npz, glb, csv, fbx, rhubarb.json, "
                        "rhubarb.tsv, ovr.csv, ovr.json, ... (default npz; see 'flamesync export --help')")
    p.add_argument("--manifest", action="append", default=[], metavar="FILE.tsv", help="a manifest (repeatable)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes, one network and one CPU thread each (default: the CPUs available)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30; a manifest may set it per line)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="as for 'flamesync animate' (default auto: the transcript when a line has one)")
    p.add_argument("--language", default="en", help="language of the speech (default en)")
    from . import FACE_HELP

    p.add_argument("--face", default="default", help="face model for geometry outputs: " + FACE_HELP)
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the lines on Ray actors (needs the 'ray' extra): alone, a local Ray instance "
                        "with --workers CPUs; with an address (ray://head:10001), that cluster, one actor "
                        "per CPU unless --workers says otherwise. OUTDIR must be on a shared filesystem")
    p.add_argument("--ray-return", action="store_true",
                   help="with --ray: send each line's audio to the actor and its outputs back, written here "
                        "(for a cluster whose nodes share no filesystem with this machine)")
    p.add_argument("--text-beside", action="store_true",
                   help="use STEM.txt beside each audio file as its transcript when it exists")
    from ._layers import add_layer_options

    add_layer_options(p)
    p.set_defaults(func=run)


def parse_formats(text: str) -> list[str]:
    """``"glb,csv"`` -> ``[".glb", ".csv"]``: registered export suffixes, without repeats."""
    from ..export import FORMATS

    out: list[str] = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        suffix = item if item.startswith(".") else "." + item
        if suffix not in FORMATS:
            known = ", ".join(s.lstrip(".") for s in sorted(FORMATS))
            raise InputError(f"unknown output format {item!r} in --format; known: {known}")
        if suffix not in out:
            out.append(suffix)
    if not out:
        raise InputError("--format is empty; give one or more formats, e.g. --format glb,csv")
    return out


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def run(args) -> int:
    from ..animation import check_fps
    from ..batch import gather, run_batch

    formats = parse_formats(args.format)
    fps = check_fps(args.fps)
    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if not args.inputs and not args.manifest:
        raise InputError("nothing to do: give audio files, folders or --manifest FILE.tsv")
    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise InputError(f"output folder {args.outdir} is an existing file")
    from ..batch.lines import layer_defaults
    from ._layers import layer_options

    chosen = layer_options(args)  # checked before any work, as for animate
    lay = chosen["layers"]
    defaults = {"fps": fps, "backend": args.backend, "language": args.language,
                **layer_defaults(blinks=lay.blinks, gaze=lay.gaze, brows=lay.brows, head=lay.head, emotion=lay.emotion,
                                 intensity=lay.intensity, emotion_keys=lay.keys, seed=lay.seed,
                                 mouth_only=chosen["mouth_only"], timing_offset=chosen["timing_offset"],
                                 blink_rate=lay.blink_rate, head_degrees=lay.head_degrees)}
    lines = gather(args.inputs, manifests=args.manifest, defaults=defaults, text_beside=args.text_beside,
                   exclude=[args.outdir])
    if args.ray_return and args.ray is None:
        raise InputError("--ray-return goes with --ray")
    if args.ray_return:
        from ..export import FORMATS

        by_blender = [s for s in formats if FORMATS[s].module == "blender_formats"]
        if by_blender:
            # Blender's scenes refer to the carried audio by its absolute path on the worker.
            raise InputError(f"--ray-return cannot send back {', '.join(by_blender)} (the file records the path "
                             "of the audio beside it on the worker); write those to a shared OUTDIR instead")
    if args.ray is None:
        result = run_batch(lines, args.outdir, formats=formats, workers=min(workers, len(lines)), face=args.face)
    else:
        from ..batch import ray_backend

        cpus = ray_backend.connect(args.ray or None, cpus=workers)
        try:
            if args.ray and args.workers is None:
                workers = cpus  # a cluster: one actor per CPU it offers
            result = run_batch(lines, args.outdir, formats=formats, workers=min(workers, len(lines)),
                               face=args.face,
                               executor_factory=functools.partial(ray_backend.executor_factory,
                                                                  returned=args.ray_return))
        finally:
            ray_backend.disconnect()
    failed = [r for r in result.lines if r["status"] == "failed"]
    for r in failed[:20]:
        print(f"flamesync: failed: {r['name']}: {r['error']}", file=sys.stderr)
    if len(failed) > 20:
        print(f"flamesync: ... and {len(failed) - 20} more failures (see the report)", file=sys.stderr)
    from pathlib import Path

    print(result.summary(Path(args.outdir)))
    return 1 if failed else 0
