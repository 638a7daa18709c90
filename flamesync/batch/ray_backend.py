"""Batch lines on Ray: actors that hold the network, driven by the same driver as the local pool.

``flamesync batch ... --ray`` starts a local Ray instance; ``--ray ADDRESS`` (``ray://host:10001``
or ``host:6379``, as :func:`ray.init` takes) joins a running cluster. Each actor reserves one CPU,
runs :func:`flamesync.batch.worker.init_worker` once (network and face loaded) and then
:func:`flamesync.batch.worker.animate_line` per line: the very functions the local pool runs, so the
bytes written are the same. By default actors write the outputs themselves, so OUTDIR (and the
audio) must be on a filesystem every node mounts at the same path (the driver keeps the journal and
the report there too). With ``returned=True`` (``--ray-return``) the driver sends each line's audio
to the actor, which animates it in a private temporary folder and sends the files back; the driver
writes them (all of a line's outputs or none), so nothing needs to be shared. Every node needs the
same flamesync version and model files as the driver.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

from ..errors import InputError, require

INSTALL = "pip install 'flamesync[ray]'"


class LineActor:
    """A Ray actor holding a loaded network (created through :func:`executor_factory`)."""

    def __init__(self, initkwargs: dict):
        from .worker import init_worker_safely

        # Ray owns the actor's signals and threads (one CPU each: Ray sets OMP_NUM_THREADS=1).
        init_worker_safely({**initkwargs, "signals": False})

    def run(self, job: dict) -> dict:
        from .worker import animate_line

        return animate_line(job)

    def run_returning(self, job: dict) -> dict:
        """Animate a line whose audio came with the job; return its files instead of leaving them here."""
        from .worker import animate_returning

        return animate_returning(job)


def connect(address: str | None, *, cpus: int | None) -> int:
    """Start a local Ray instance (``address`` None, with ``cpus`` CPUs) or join a cluster; return
    the CPUs Ray offers (the number of actors a batch uses unless told otherwise)."""
    ray = require("ray", feature="batches on Ray (--ray)", install=INSTALL)
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                      configure_logging=True)
        try:
            if address:
                ray.init(address=address, **kwargs)
            else:
                # A small object store: lines pass only paths and short result records.
                ray.init(num_cpus=cpus, object_store_memory=100 * 1024 * 1024, **kwargs)
        except Exception as exc:  # connection refused, no cluster at that address, ...
            raise InputError(f"cannot start or join Ray{f' at {address}' if address else ''}: "
                             + " ".join(str(exc).split())[:300]) from None
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def disconnect() -> None:
    ray = require("ray", feature="batches on Ray (--ray)", install=INSTALL)
    if ray.is_initialized():
        ray.shutdown()


def executor_factory(workers: int, initkwargs: dict, *, returned: bool = False):
    """``(submit, shutdown)`` over ``workers`` Ray actors, for :func:`flamesync.batch.run_batch`.

    ``submit(job)`` returns a :class:`concurrent.futures.Future`; each line goes to the actor with
    the fewest lines in flight. ``shutdown`` kills the actors (their network copies go with them).
    With ``returned``, the job carries the audio's bytes and the result the output files'
    (``files``: relative path -> bytes), which :func:`flamesync.batch.run_batch` writes.
    """
    ray = require("ray", feature="batches on Ray (--ray)", install=INSTALL)
    actor_cls = ray.remote(num_cpus=1)(LineActor)
    actors = [actor_cls.remote(initkwargs) for _ in range(workers)]
    load = [0] * len(actors)
    lock = threading.Lock()

    def submit(job):
        with lock:
            i = min(range(len(actors)), key=load.__getitem__)
            load[i] += 1
        if returned:
            from pathlib import Path

            try:
                data = Path(job["audio"]).read_bytes()
            except OSError as exc:
                with lock:
                    load[i] -= 1
                failed: Future = Future()
                failed.set_result({"name": job["name"], "status": "failed", "audio_seconds": None, "outputs": {},
                                   "error": f"cannot read {job['audio']} ({exc.strerror})"})
                return failed
            job = {**job, "audio_bytes": data, "audio_name": Path(job["audio"]).name}
            inner = actors[i].run_returning.remote(job).future()
        else:
            inner = actors[i].run.remote(job).future()
        outer: Future = Future()

        def done(f, i=i):
            with lock:
                load[i] -= 1
            exc = f.exception()
            if exc is None:
                outer.set_result(f.result())
            elif isinstance(exc, ray.exceptions.RayActorError):
                # An actor died (killed, out of memory, its node lost): the driver treats it as it
                # treats a dead local worker, retrying the line once on fresh actors.
                outer.set_exception(BrokenProcessPool(f"Ray actor died: {' '.join(str(exc).split())[:200]}"))
            else:
                outer.set_exception(exc)

        inner.add_done_callback(done)
        return outer

    def shutdown(*, kill: bool = False):
        for a in actors:
            try:
                ray.kill(a)
            except Exception:  # already dead (a node went away): nothing to release
                pass

    return submit, shutdown
