"""Progress reporting for long work: a tqdm bar for people, JSON lines for programs.

Tools that drive flamesync (the Blender add-on, pipelines) set the mode to ``"json"`` (CLI:
``--progress json``) and read one JSON object per line on stderr:
``{"event": "progress", "task": "...", "done": 3, "total": 10}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_MODE = os.environ.get("FLAMESYNC_PROGRESS", "bar")  # "bar" | "json" | "none"


def set_mode(mode: str) -> None:
    """Choose how progress is shown: ``"bar"`` (tqdm), ``"json"`` (lines on stderr) or ``"none"``."""
    global _MODE
    if mode not in ("bar", "json", "none"):
        raise ValueError(f"unknown progress mode {mode!r}; use bar, json or none")
    _MODE = mode


def get_mode() -> str:
    return _MODE


def emit(event: str, **fields) -> None:
    """Write one machine-readable event line when in JSON mode (no-op otherwise)."""
    if _MODE == "json":
        sys.stderr.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stderr.flush()


def track(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """Iterate while showing progress in the current mode."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if _MODE == "bar":
        from tqdm.auto import tqdm

        yield from tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)
        return
    if _MODE == "none":
        yield from iterable
        return
    last = 0.0
    done = 0
    emit("start", task=desc, total=total)
    for item in iterable:
        yield item
        done += 1
        now = time.monotonic()
        if now - last > 0.2 or (total is not None and done == total):
            emit("progress", task=desc, done=done, total=total)
            last = now
    emit("end", task=desc, done=done, total=total)
