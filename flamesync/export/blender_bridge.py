"""Run Blender as a subprocess: find it, hand it a scene, run a script in it.

Blender is looked for, in order: the Python named by ``FLAMESYNC_BLENDER_PYTHON`` (an interpreter
with the ``bpy`` module), the repository's ``.venv-blender/bin/python`` (made by
``bash scripts/install.sh --dev``), ``FLAMESYNC_BLENDER`` or a ``blender`` executable on PATH (run
with ``--background --factory-startup --python``). flamesync never imports bpy itself: bpy pins its
own numpy and Python version, so it lives in its own environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
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


def run_script(script: str | Path, args: list[str], *, feature: str, timeout: float = 600) -> str:
    """Run a Blender-side script with ``args``; return its stdout or raise :class:`BlenderError`."""
    blender = require_blender(feature)
    script = Path(script)
    if not script.is_absolute():
        script = SCRIPTS / script
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # flamesync's own numpy must not shadow Blender's
    try:
        proc = subprocess.run(blender.command(script, [str(a) for a in args]), capture_output=True, text=True,
                              timeout=timeout, env=env)
    except FileNotFoundError:
        raise MissingDependencyError(f"{feature}: cannot run {blender.executable}; {INSTALL_HINT}") from None
    except subprocess.TimeoutExpired:
        raise BlenderError(f"{feature}: Blender did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else "")
        raise BlenderError(f"{feature}: Blender failed (exit {proc.returncode}): {last.strip()}")
    return proc.stdout
