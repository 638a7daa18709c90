"""Processes forked from a parent that may have used torch's thread pool.

A forked child inherits the parent's OpenMP bookkeeping but none of its threads; the first
parallel torch operation in the child can then wait forever for workers that do not exist
(GNU libgomp has no fork handler). Forked workers therefore run torch on one thread.
"""

from __future__ import annotations

import os
import sys


def single_threaded_child() -> None:
    """Run first in a forked worker (``Pool(initializer=...)`` or right after ``os.fork()``)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    torch = sys.modules.get("torch")  # only when the parent imported it: importing costs time
    if torch is not None:
        torch.set_num_threads(1)


def fork_pool(workers: int, **kwargs):
    """A ``multiprocessing`` pool of forked workers that are safe to run torch in.

    Forked rather than spawned so that workers inherit the parent's data without copying it.
    """
    import multiprocessing as mp

    init = kwargs.pop("initializer", None)
    args = kwargs.pop("initargs", ())
    return mp.get_context("fork").Pool(workers, initializer=_init, initargs=(init, args), **kwargs)


def _init(init, args) -> None:
    single_threaded_child()
    if init is not None:
        init(*args)
