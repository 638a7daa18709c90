"""The batch driver: decide what to do, farm lines out to worker processes, journal and report.

The driver never animates. It checks the lines (hashes their audio, reads transcripts), skips
those the journal shows as done, and keeps exactly ``workers`` lines in flight on a process pool
(spawn or forkserver start, each worker holding the network). Keeping no more lines queued than
there are workers means that when a worker dies (killed, out of memory, a crash in a native
library) the lines lost with it are exactly the ones in flight: they are retried once on a fresh
pool, and a line that is in flight at a second death is reported as failed, so one poisonous file
cannot stop the batch.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import InputError
from .journal import (REPORT_NAME, Journal, face_fingerprint, line_key, locked, model_fingerprint,
                      sha256_file, sweep_stale_parts)
from .lines import Line
from .worker import THREAD_ENV

# A line in flight when this many workers died is reported as failed instead of retried.
MAX_CRASHES = 2


@dataclass
class BatchResult:
    """What a batch did: per-line records (as in ``report.json``) and totals."""

    lines: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.lines if r["status"] == status)

    @property
    def failed(self) -> int:
        return self.count("failed")

    def summary(self, outdir: Path) -> str:
        """One line for the terminal."""
        done, skipped, failed = self.count("done"), self.count("skipped"), self.failed
        audio = sum(r.get("audio_seconds") or 0.0 for r in self.lines if r["status"] == "done")
        rate = f", {done / self.seconds:.2f} lines/s, {audio / self.seconds:.1f}x real time" if done and self.seconds else ""
        state = "interrupted: " if self.interrupted else ""
        return (f"batch {state}{len(self.lines)} lines: {done} done, {skipped} skipped, {failed} failed"
                f"{rate} (report: {outdir / REPORT_NAME})")

    def to_json(self, *, outdir: Path, formats: Sequence[str], model: str) -> dict:
        done = [r for r in self.lines if r["status"] == "done"]
        return {
            "format": "flamesync.batch-report",
            "version": 1,
            "outdir": str(outdir.resolve()),
            "formats": list(formats),
            "model": model,
            "workers": self.workers,
            "interrupted": self.interrupted,
            "total": len(self.lines),
            "done": len(done),
            "skipped": self.count("skipped"),
            "failed": self.failed,
            "not_run": self.count("not run"),
            "seconds": round(self.seconds, 3),
            "audio_seconds_done": round(sum(r.get("audio_seconds") or 0.0 for r in done), 3),
            "lines": self.lines,
        }


def _context():
    # Never fork: the driver may hold threads (tqdm's monitor, onnxruntime's pool), and a forked
    # copy of a locked mutex deadlocks. forkserver starts workers from a clean, small process.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class _Progress:
    """tqdm bar (lines, with x-real-time) or JSON events, per :mod:`flamesync.progress`'s mode."""

    def __init__(self, total: int, initial: int):
        from .. import progress

        self.mode = progress.get_mode()
        self.total = total
        self.done = initial
        self.audio = 0.0
        self.t0 = time.monotonic()
        self.bar = None
        self.emit = progress.emit
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="batch", unit="line", dynamic_ncols=True,
                            smoothing=0.1)
        self.emit("start", task="batch", total=total, done=initial)

    def update(self, record: dict, *, failed: int) -> None:
        self.done += 1
        self.audio += record.get("audio_seconds") or 0.0
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.audio / elapsed:.1f}x real time, {failed} failed", refresh=False)
            self.bar.update(1)
        self.emit("progress", task="batch", done=self.done, total=self.total, failed=failed,
                  name=record["name"], status=record["status"], worker=record.get("worker"),
                  realtime=round(self.audio / elapsed, 3))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.emit("end", task="batch", done=self.done, total=self.total)


def plan_line(line: Line, *, formats: Sequence[str], model: str, face: str) -> tuple[dict | None, str | None, str | None]:
    """``(job, key, error)`` for a line: the job a worker runs, its journal key, or why it cannot run."""
    from ..cli._checks import read_transcript

    audio = Path(line.audio)
    if not audio.is_file():
        return None, None, (f"audio file not found: {line.audio}" if not audio.exists()
                            else f"audio path is not a file: {line.audio}")
    try:
        audio_sha = sha256_file(audio)
        text = line.text
        if line.text_file:
            text = read_transcript(line.text_file).strip()
    except InputError as exc:
        return None, None, str(exc)
    except OSError as exc:
        return None, None, f"cannot read {audio} ({exc.strerror})"
    options = dict(line.options)
    key = line_key(audio_sha256=audio_sha, text=text, options=options, model=model, face=face)
    job = {"name": line.name, "audio": str(audio), "text": text, "options": options,
           "outputs": [line.name + suffix for suffix in formats]}
    return job, key, None


def run_batch(
    lines: Sequence[Line],
    outdir: str | os.PathLike,
    *,
    formats: Sequence[str],
    workers: int = 1,
    face: str = "default",
    executor_factory: Callable | None = None,
) -> BatchResult:
    """Animate every line and write its outputs into ``outdir``; resumable, one bad line never stops it.

    Parameters
    ----------
    lines : sequence of Line
        From :func:`flamesync.batch.lines.gather`; names unique.
    outdir : str or Path
        Output folder (created). Holds the outputs (``NAME + suffix``), ``journal.jsonl`` and
        ``report.json``.
    formats : sequence of str
        Registered export suffixes (``".glb"``, ``".rhubarb.json"``, ...), checked by the caller.
    workers : int
        Worker processes, each with its own copy of the network, one CPU thread each.
    face : str
        ``load_face`` spec for formats with geometry.
    executor_factory : callable or None
        ``executor_factory(workers, initkwargs) -> (submit, shutdown)`` to run lines elsewhere
        (the Ray path); None: a local process pool.

    Returns
    -------
    BatchResult
        Also written to ``outdir/report.json``. ``interrupted`` is set when Ctrl-C or SIGTERM
        stopped it (the exception is re-raised after the report is written).
    """
    from ..export import FORMATS
    from ..fileio import atomic_write_text

    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {outdir} ({exc.strerror})") from None
    if not os.access(outdir, os.W_OK):
        raise InputError(f"output folder {outdir} is not writable")
    workers = max(1, int(workers))
    t0 = time.monotonic()
    with locked(outdir):
        sweep_stale_parts(outdir)
        journal = Journal(outdir)
        journal.compact()
        model = model_fingerprint()
        face_id = face_fingerprint(face)
        records: dict[str, dict] = {}
        todo: list[tuple[dict, str]] = []
        for line in lines:
            job, key, error = plan_line(line, formats=formats, model=model, face=face_id)
            base = {"name": line.name, "audio": line.audio, "source": line.source}
            if error is not None:
                records[line.name] = {**base, "status": "failed", "error": " ".join(error.split())}
            elif journal.is_done(line.name, key, job["outputs"]):
                entry = journal.entries[line.name]
                records[line.name] = {**base, "status": "skipped", "error": None, "outputs": job["outputs"],
                                      "audio_seconds": entry.get("audio_seconds")}
            else:
                job["outdir"] = str(outdir)
                records[line.name] = {**base, "status": "not run", "error": None}
                todo.append((job, key))
        result = BatchResult(workers=workers)
        needs_face = any(FORMATS[s].needs_face for s in formats)
        initkwargs = {"face": face, "needs_face": needs_face, "threads": 1}
        bar = _Progress(len(lines), len(lines) - len(todo))
        failed_before = sum(1 for r in records.values() if r["status"] == "failed")
        results = _execute(todo, workers, initkwargs, executor_factory)
        try:
            for job, key, res in results:
                if res.get("fatal"):
                    # The workers cannot start (no network, a bad face file): no line can succeed.
                    from ..errors import FlamesyncError

                    raise FlamesyncError(res["error"])
                if res.get("files") is not None:  # returned by a remote worker: written here
                    res = _write_returned(outdir, job, res)
                rec = records[job["name"]]
                rec.update(status=res["status"], error=res["error"], audio_seconds=res.get("audio_seconds"),
                           seconds=res.get("seconds"), outputs=list(res.get("outputs") or {}),
                           worker=res.get("pid"))
                if res["status"] == "done":
                    journal.record({"name": job["name"], "key": key, "outputs": res["outputs"],
                                    "audio_seconds": res.get("audio_seconds")})
                else:
                    failed_before += 1
                bar.update(rec, failed=failed_before)
        except BaseException:
            result.interrupted = True
            raise
        finally:
            results.close()  # stops the workers now when something went wrong
            bar.close()
            result.lines = [records[line.name] for line in lines]
            result.seconds = time.monotonic() - t0
            doc = result.to_json(outdir=outdir, formats=formats, model=model)
            atomic_write_text(outdir / REPORT_NAME, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return result


def _write_returned(outdir: Path, job: dict, res: dict) -> dict:
    """Write the files a remote worker sent back for a line, all of them or none; the result as if
    the worker had written them (``outputs`` described, ``files`` dropped)."""
    from ..errors import FlamesyncError
    from ..fileio import atomic_path, transaction
    from .journal import describe_outputs

    files = res.pop("files")
    if res["status"] != "done":
        return res
    root = outdir.resolve()
    try:
        targets = {}
        for rel, data in files.items():
            target = (outdir / rel).resolve()
            if root not in target.parents:  # a worker's answer never writes outside OUTDIR
                raise FlamesyncError(f"a worker sent back a file outside the output folder: {rel}")
            targets[rel] = (target, data)
        with transaction():
            for output in job["outputs"]:
                inside = {r: v for r, v in targets.items() if r.startswith(output + "/")}
                if output in targets or not inside:
                    continue
                # A folder output (a frame sequence): one part folder, renamed as a whole.
                (outdir / output).parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(outdir / output, suffix="") as tmp:
                    tmp.unlink()
                    for r, (_, data) in inside.items():
                        f = tmp / r[len(output) + 1:]
                        f.parent.mkdir(parents=True, exist_ok=True)
                        f.write_bytes(data)
                for r in inside:
                    targets.pop(r)
            for rel, (target, data) in targets.items():
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(target) as tmp:
                    tmp.write_bytes(data)
        res["outputs"] = describe_outputs(outdir, list(job["outputs"]))
    except FlamesyncError as exc:
        res.update(status="failed", error=" ".join(str(exc).split()), outputs={})
    except OSError as exc:
        res.update(status="failed", outputs={},
                   error=" ".join(f"cannot write the outputs: {exc.strerror or exc}".split()))
    return res


def _local_executor(workers: int, initkwargs: dict):
    """``(submit, shutdown)`` over a local process pool whose workers hold the network."""
    from .worker import animate_line, init_worker_safely

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=init_worker_safely,
                               initargs=(initkwargs,))

    def submit(job):
        return pool.submit(animate_line, job)

    def shutdown(*, kill: bool = False):
        if kill:
            # Lines being written end with SIGTERM, which makes their workers remove the part files.
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                if proc.is_alive():
                    proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    return submit, shutdown


def _crashed(job: dict) -> dict:
    return {"name": job["name"], "status": "failed", "audio_seconds": None,
            "error": f"the worker process died while animating this line ({MAX_CRASHES} times): "
                     "killed, out of memory or a crash"}


def _execute(todo: list[tuple[dict, str]], workers: int, initkwargs: dict, executor_factory):
    """Yield ``(job, key, result)`` as lines finish, keeping ``workers`` lines in flight."""
    if not todo:
        return
    factory = executor_factory or _local_executor
    pending = list(reversed(todo))  # pop() from the end keeps the input order
    crashes: dict[str, int] = {}
    saved = {v: os.environ.get(v) for v in THREAD_ENV}
    for v in THREAD_ENV:
        os.environ[v] = "1"  # inherited by spawned workers before they import numpy
    try:
        while pending:
            submit, shutdown = factory(min(workers, len(pending)), initkwargs)
            in_flight: dict = {}
            broken = False
            try:
                while (pending and not broken) or in_flight:
                    while pending and len(in_flight) < workers and not broken:
                        job, key = pending.pop()
                        in_flight[submit(job)] = (job, key)
                    finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                    for fut in finished:
                        job, key = in_flight.pop(fut)
                        try:
                            res = fut.result()
                        except BrokenProcessPool:
                            # Every line in flight is lost with the pool; retried first, on a fresh one.
                            broken = True
                            crashes[job["name"]] = crashes.get(job["name"], 0) + 1
                            if crashes[job["name"]] >= MAX_CRASHES:
                                yield job, key, _crashed(job)
                            else:
                                pending.append((job, key))
                            continue
                        except Exception as exc:  # the executor itself failed (Ray: a task error)
                            res = {"name": job["name"], "status": "failed", "audio_seconds": None,
                                   "error": "worker error: " + " ".join(f"{exc.__class__.__name__}: {exc}".split())}
                        yield job, key, res
            except BaseException:
                shutdown(kill=True)
                raise
            shutdown(kill=broken)
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
