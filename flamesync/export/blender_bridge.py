"""Run Blender as a subprocess: find it, hand it a scene, run a script in it.

Blender is looked for, in order: the Python named by ``FLAMESYNC_BLENDER_PYTHON`` (an interpreter
with the ``bpy`` module), the repository's ``.venv-blender/bin/python`` (made by
``bash scripts/install.sh --dev``), ``FLAMESYNC_BLENDER`` or a ``blender`` executable on PATH (run
with ``--background --factory-startup --python``). flamesync never imports bpy itself: bpy pins its
own numpy and Python version, so it lives in its own environment.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import FlamesyncError, MissingDependencyError

SCRIPTS = Path(__file__).resolve().parent / "blender_scripts"
_REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = (
    "install Blender (https://www.blender.org) and put 'blender' on PATH, or run "
    "'bash scripts/install.sh --dev' to make .venv-blender with the bpy module, or set "
    "FLAMESYNC_BLENDER_PYTHON to a Python that can 'import bpy'"
)


class BlenderError(FlamesyncError):
    """Blender ran but the script failed."""


@dataclass(frozen=True)
class Blender:
    """How to run a script in Blender: ``kind`` is ``"bpy"`` (a Python with bpy) or ``"app"``."""

    kind: str
    executable: str

    def command(self, script: Path, args: list[str]) -> list[str]:
        if self.kind == "bpy":
            return [self.executable, str(script), "--", *args]
        return [self.executable, "--background", "--factory-startup", "--python-exit-code", "1",
                "--python", str(script), "--", *args]


def find_blender() -> Blender | None:
    """The Blender to use, or None when there is none (see module doc for the search order)."""
    env = os.environ.get("FLAMESYNC_BLENDER_PYTHON")
    if env:
        return Blender("bpy", env) if Path(env).is_file() else None
    venv = _REPO / ".venv-blender" / "bin" / "python"
    if venv.is_file():
        return Blender("bpy", str(venv))
    app = os.environ.get("FLAMESYNC_BLENDER") or shutil.which("blender")
    if app and Path(app).is_file():
        return Blender("app", app)
    return None


def require_blender(feature: str) -> Blender:
    blender = find_blender()
    if blender is None:
        raise MissingDependencyError(f"{feature} needs Blender, which was not found; {INSTALL_HINT}")
    return blender


SCRATCH_PREFIX = "flamesync-blender-"


@contextlib.contextmanager
def scratch_dir():
    """A private temporary folder for the files handed to Blender, removed afterwards.

    Its name carries the process id, so that folders left by a killed run (SIGKILL: no clean-up
    possible) are removed by the next export once that process is gone.
    """
    from ..fileio import _pid_alive

    base = Path(tempfile.gettempdir())
    pattern = re.compile(rf"{SCRATCH_PREFIX}(\d+)-[a-z0-9_]+")
    with contextlib.suppress(OSError):
        for name in os.listdir(base):
            m = pattern.fullmatch(name)
            if m and not _pid_alive(int(m.group(1))):
                shutil.rmtree(base / name, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-") as tmp:
        yield tmp


def _die_with_parent_hook():
    """A function for the Blender child to run before exec (Linux) so that it gets SIGKILL when
    flamesync dies, even by SIGKILL, which no handler in flamesync can see; None elsewhere.

    libc is looked up here, in the parent: between fork and exec only the already-resolved
    function is called, because loading a library or importing there can deadlock a child forked
    from a process with other threads.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except Exception:  # no prctl: the process-group kill below still covers every catchable end
        return None
    return lambda: prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill Blender and everything it started (it runs in its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


def run_script(script: str | Path, args: list[str], *, feature: str, timeout: float = 600) -> str:
    """Run a Blender-side script with ``args``; return its stdout or raise :class:`BlenderError`.

    Blender runs in its own process group, killed with everything in it when this call does not
    return normally (an error, Ctrl-C, SIGTERM turned into an exception by the CLI), so no Blender
    outlives the flamesync that started it.
    """
    blender = require_blender(feature)
    script = Path(script)
    if not script.is_absolute():
        script = SCRIPTS / script
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # flamesync's own numpy must not shadow Blender's
    # The FBX and Alembic writers order and number objects through Python's string hashing;
    # a fixed seed makes identical scenes give identical files.
    env["PYTHONHASHSEED"] = "0"
    # Blender 5.0 writes some values from memory it never initialised (the Alembic writer's
    # "meshtype" flag reads a pointer no constructor sets), so they depend on what the heap held
    # before: the flag came out 0 or 1 from run to run. With perturb 255, glibc's malloc (which the
    # bpy module uses) returns zeroed memory, so the flag is always 1, its value for a plain mesh;
    # the thread cache hands out blocks without that step, so it is turned off.
    tunables = "glibc.malloc.perturb=255:glibc.malloc.tcache_count=0"
    env["GLIBC_TUNABLES"] = f"{env['GLIBC_TUNABLES']}:{tunables}" if env.get("GLIBC_TUNABLES") else tunables
    try:
        proc = subprocess.Popen(blender.command(script, [str(a) for a in args]), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
                                preexec_fn=_die_with_parent_hook())
    except FileNotFoundError:
        raise MissingDependencyError(f"{feature}: cannot run {blender.executable}; {INSTALL_HINT}") from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise BlenderError(f"{feature}: Blender did not finish within {timeout:.0f} s") from None
    except BaseException:
        _kill_group(proc)
        raise
    if proc.returncode != 0:
        text = stderr + stdout
        if "No space left on device" in text or "Errno 28" in text:
            raise BlenderError(f"{feature}: Blender could not write the file: {os.strerror(errno.ENOSPC)}")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else "")
        raise BlenderError(f"{feature}: Blender failed (exit {proc.returncode}): {last.strip()}")
    return stdout
