"""Batches of takes: many audio files to animation files, on every core, resumable.

- :func:`flamesync.batch.lines.gather` turns files, folders and manifests into :class:`Line` s.
- :func:`flamesync.batch.runner.run_batch` animates them on worker processes that each load the
  network once, writes every line's outputs atomically, records finished lines in
  ``OUTDIR/journal.jsonl`` (a rerun skips what is done and unchanged) and writes
  ``OUTDIR/report.json``.
- :mod:`flamesync.batch.worker` is what runs in each worker process.

The CLI is ``flamesync batch`` (see ``docs/batch.md``).
"""

from .lines import AUDIO_EXTENSIONS, Line, gather, read_manifest
from .runner import BatchResult, run_batch

__all__ = ["AUDIO_EXTENSIONS", "BatchResult", "Line", "gather", "read_manifest", "run_batch"]
