"""Where takes come from: backends that turn audio (+ transcript) into a flamesync animation file.

A backend is ``fn(audio, *, transcript, face, out_path, progress) -> None`` writing ``out_path``
(a flamesync ``.npz``); ``progress(done, total, task)`` may be called along the way. The add-on
ships the ``"cli"`` backend (an installed ``flamesync`` executable). Other backends (e.g. an ONNX
model run with onnxruntime inside Blender) plug in with :func:`register_backend`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

BACKENDS: dict = {}


class InferenceError(RuntimeError):
    pass


def register_backend(name: str, fn, *, label: str | None = None) -> None:
    BACKENDS[name] = (fn, label or name)


def find_flamesync(configured: str = "") -> str | None:
    """The flamesync executable: the configured path, else ``flamesync`` on PATH."""
    if configured:
        path = bpy_abspath(configured)
        return path if os.path.isfile(path) else None
    return shutil.which("flamesync")


def bpy_abspath(path: str) -> str:
    try:
        import bpy

        return bpy.path.abspath(path)
    except ImportError:
        return path


def run_flamesync(exe: str, args: list, *, progress=None, timeout: float = 3600) -> None:
    """Run ``flamesync --progress json ARGS``, feeding JSON progress lines to ``progress``."""
    cmd = [exe, "--progress", "json", *args]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        raise InferenceError(f"cannot run {exe}: {exc}") from None
    errors = []
    for line in proc.stderr:
        line = line.strip()
        if not line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            errors.append(line)
            continue
        if progress is not None and isinstance(event, dict) and event.get("event") == "progress":
            progress(event.get("done") or 0, event.get("total"), event.get("task") or "")
    proc.wait(timeout=timeout)
    if proc.returncode != 0:
        msg = errors[-1] if errors else f"exit status {proc.returncode}"
        raise InferenceError(msg.removeprefix("flamesync: error: "))


def cli_backend(audio, *, transcript=None, face=None, out_path, progress=None, exe=None) -> None:
    exe = exe or find_flamesync()
    if not exe:
        raise InferenceError("flamesync executable not found: set its path in the add-on preferences")
    args = ["animate", audio, "-o", out_path]
    if transcript:
        args += ["--transcript", transcript]
    if face:
        args += ["--face", face]
    run_flamesync(exe, args, progress=progress)


register_backend("cli", cli_backend, label="flamesync command")
