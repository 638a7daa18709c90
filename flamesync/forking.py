"""Processes forked from a parent that may have used torch's thread pool.

A forked child inherits the parent's OpenMP bookkeeping but none of its threads; the first
parallel torch operation in the child can then wait forever for workers that do not exist
(GNU libgomp has no fork handler). Forked workers therefore run torch on one thread.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
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


def call_in_child(fn, /, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a forked child process; its result (JSON-able) comes back.

    For work whose memory should end with it: what the child allocates, and the heap fragments it
    leaves, are gone when it exits, and the parent carries on with the memory it had. A
    :class:`~flamesync.errors.FlamesyncError` raised in the child is raised again here, same class
    and message; any other exception becomes a RuntimeError naming it. Where the platform cannot
    fork, ``fn`` runs here.
    """
    if not hasattr(os, "fork"):
        return fn(*args, **kwargs)

    def child() -> bytes:
        try:
            out = {"result": fn(*args, **kwargs)}
        except Exception as exc:
            out = {"error": {"module": type(exc).__module__, "name": type(exc).__qualname__, "message": str(exc)}}
        return json.dumps(out).encode("utf-8")

    out = json.loads(bytes_from_child(child).decode("utf-8"))
    if "error" in out:
        raise _rebuilt(out["error"])
    return out["result"]


def bytes_from_child(fn) -> bytes:
    """The bytes ``fn()`` returns, computed in a forked child (POSIX only).

    The child leaves with ``os._exit`` (no exit handlers, no cleanup of the parent's state); an
    exception in it ends it without an answer, which raises RuntimeError here. If this process is
    interrupted meanwhile (Ctrl-C, the SIGTERM handler), the child is killed and reaped before
    the interruption goes on.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_fd)
            single_threaded_child()
            view = memoryview(fn())
            while view:
                view = view[os.write(write_fd, view):]
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as fh:
            data = fh.read()
        _, status = os.waitpid(pid, 0)
    except BaseException:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise
    if status != 0:
        raise RuntimeError(f"a worker process ended without an answer (wait status {status})")
    return data


def _rebuilt(err: dict) -> BaseException:
    from .errors import FlamesyncError

    try:
        cls = getattr(importlib.import_module(err["module"]), err["name"])
    except (ImportError, AttributeError, ValueError):
        cls = None
    if isinstance(cls, type) and issubclass(cls, FlamesyncError):
        try:
            return cls(err["message"])
        except TypeError:  # a subclass that needs more than its message
            pass
    return RuntimeError(f"{err['name']} in a worker process: {err['message']}")
