"""What runs in a batch worker process: load the network once, then animate and export lines.

The same :func:`animate_line` serves the local process pool and the Ray actors, so both write the
same bytes. Each worker runs one CPU thread: N workers on N cores beat one worker with N threads
for short lines (the network windows are small and the per-line work is mostly serial).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

# One compute thread per worker. Set before numpy/torch/onnxruntime are imported in the worker
# (spawned workers get the driver's environment, where the runner sets them too).
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")

_STATE: dict = {}


class _Stop(BaseException):
    """SIGTERM while a line is being written: unwind so its part files are removed."""


def _on_sigterm(signum, frame):
    if _STATE.get("busy"):
        raise _Stop()
    os._exit(128 + signal.SIGTERM)  # idle: nothing to clean up


def init_worker(*, face: str, needs_face: bool, threads: int = 1, signals: bool = True) -> None:
    """Load the network (and the face when a format needs geometry) once for this process.

    Parameters
    ----------
    face : str
        ``load_face`` spec (``"default"``, ``"flame:PATH"``, ``"head:PATH"``).
    needs_face : bool
        Load the face even for the default head (a format writes geometry).
    threads : int
        CPU threads for torch and onnxruntime in this process.
    signals : bool
        Install the worker's signal handling (Ctrl-C is the driver's to handle; SIGTERM removes
        the part files of the line being written). Ray actors pass False.
    """
    for var in THREAD_ENV:
        os.environ[var] = str(threads)
    if signals:
        # The terminal sends Ctrl-C to the whole process group; the driver decides what stops.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _on_sigterm)
    from .. import progress

    progress.set_mode("none")  # the driver shows progress for the batch
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # an ONNX-only install
        pass
    from ..net.infer import load_default_model

    _STATE["model"] = load_default_model(threads=threads)
    _STATE["face"] = None
    if face != "default" or needs_face:
        from ..face import load_face

        _STATE["face"] = load_face(face)


def init_worker_safely(initkwargs: dict) -> None:
    """:func:`init_worker` that records a failure instead of raising: a pool whose initializer
    raises is broken without saying why; this way every line answers with the reason."""
    try:
        init_worker(**initkwargs)
    except Exception as exc:
        from ..errors import FlamesyncError

        what = str(exc) if isinstance(exc, FlamesyncError) else f"{exc.__class__.__name__}: {exc}"
        _STATE["init_error"] = "cannot start a batch worker: " + " ".join(what.split())


def animate_line(job: dict) -> dict:
    """Animate one line and write its outputs (atomically, all or none); never raises for a bad line.

    Parameters
    ----------
    job : dict
        ``name``, ``audio`` (path), ``text`` (str or None), ``options`` (see
        :class:`~flamesync.batch.lines.Line`), ``outdir`` (str) and ``outputs`` (paths relative to ``outdir``).

    Returns
    -------
    dict
        ``name``, ``status`` (``"done"`` or ``"failed"``), ``error`` (one line, or None),
        ``outputs`` (``rel -> {"size", "sha256"}`` when done), ``audio_seconds``, ``seconds``
        (wall time of this line in the worker), ``pid``.
    """
    from ..errors import FlamesyncError
    from ..export import export
    from ..fileio import transaction
    from ..pipeline import animate
    from .journal import describe_outputs
    from .lines import animate_kwargs

    if _STATE.get("init_error"):
        return {"name": job["name"], "status": "failed", "error": _STATE["init_error"], "fatal": True,
                "outputs": {}, "audio_seconds": None, "seconds": 0.0, "pid": os.getpid()}
    t0 = time.perf_counter()
    result = {"name": job["name"], "status": "failed", "error": None, "outputs": {}, "audio_seconds": None,
              "seconds": 0.0, "pid": os.getpid()}
    outdir = Path(job["outdir"])
    opts = job["options"]
    face = _STATE.get("face")
    _STATE["busy"] = True
    try:
        anim = animate(job["audio"], text=job.get("text"), model=_STATE.get("model"), face=face,
                       **animate_kwargs(opts))
        result["audio_seconds"] = round(anim.duration, 6)
        (outdir / job["name"]).parent.mkdir(parents=True, exist_ok=True)
        # One transaction per line: its outputs (and the audio carried beside them) appear together.
        with transaction():
            label = {"audio_label": job["audio_label"]} if job.get("audio_label") else {}
            for rel in job["outputs"]:
                export(anim, outdir / rel, face=face, **label)
        result["outputs"] = describe_outputs(outdir, list(job["outputs"]))
        result["status"] = "done"
    except _Stop:
        _STATE["busy"] = False
        os._exit(128 + signal.SIGTERM)  # the transaction has removed this line's part files
    except FlamesyncError as exc:
        result["error"] = " ".join(str(exc).split())
    except OSError as exc:
        result["error"] = " ".join(f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}".split())
    except Exception as exc:  # a bug in flamesync: reported for this line, the batch goes on
        result["error"] = "internal error: " + " ".join(f"{exc.__class__.__name__}: {exc}".split())
    finally:
        _STATE["busy"] = False
    result["seconds"] = round(time.perf_counter() - t0, 6)
    return result


def animate_returning(job: dict) -> dict:
    """:func:`animate_line` for a job that carries its audio (``audio_bytes``, ``audio_name``),
    in a private temporary folder; the result's ``files`` maps each written file's path (relative
    to the output folder) to its bytes, for the caller to write where it wants them."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="flamesync-line-") as tmp:
        audio = Path(tmp) / "audio" / Path(job["audio_name"]).name
        audio.parent.mkdir()
        audio.write_bytes(job["audio_bytes"])
        out = Path(tmp) / "out"
        out.mkdir()
        inner = {k: v for k, v in job.items() if k not in ("audio_bytes", "audio_name")}
        # Outputs that record the audio's path record where it lives on the driver's machine.
        result = animate_line({**inner, "audio": str(audio), "outdir": str(out), "audio_label": job["audio"]})
        result["files"] = {}
        if result["status"] == "done":
            result["files"] = {f.relative_to(out).as_posix(): f.read_bytes()
                               for f in sorted(out.rglob("*")) if f.is_file()}
        return result
