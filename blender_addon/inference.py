"""Where takes come from: backends that turn audio (+ transcript) into a flamesync animation file.

A backend is ``fn(audio, *, transcript, face, out_path, progress)`` writing ``out_path`` (a
flamesync ``.npz``); ``progress(done, total, task)`` may be called along the way. Backends that
also accept ``fps`` (frame rate of the take) and ``cancelled`` (a callable polled during the work;
stop with :class:`InferenceError` when it returns True) get them. The add-on ships ``"builtin"``
(flamesync's network inside Blender, :mod:`.engine`, in the platform zips) and ``"cli"`` (an
installed ``flamesync`` executable, which also aligns transcripts); others plug in with
:func:`register_backend`.
"""

from __future__ import annotations

import inspect
import json
import os
import queue
import shutil
import subprocess
import threading
import zlib

BACKENDS: dict = {}


class InferenceError(RuntimeError):
    pass


def register_backend(name: str, fn, *, label: str | None = None, first: bool = False) -> None:
    """Add (or replace) a backend; ``first`` puts it at the top of the menu, where it is the default."""
    BACKENDS.pop(name, None)
    if first:
        items = list(BACKENDS.items())
        BACKENDS.clear()
        BACKENDS[name] = (fn, label or name)
        BACKENDS.update(items)
    else:
        BACKENDS[name] = (fn, label or name)


_ITEMS: list = []  # Blender reads the strings of callback items later: Python must keep them alive


def backend_items(_self=None, _context=None) -> list:
    """EnumProperty items for the preferences' backend menu.

    Each item's number is derived from its name: Blender stores an enum setting as that number,
    so a saved choice survives other backends being registered before it.
    """
    _ITEMS[:] = [(k, v[1], "", "NONE", item_number(k)) for k, v in BACKENDS.items()]
    return _ITEMS


def item_number(name: str) -> int:
    """The menu number of backend ``name`` (stable across sessions and registration order)."""
    return zlib.crc32(name.encode()) & 0x3FFFFFFF


def call_backend(fn, audio, **kw) -> None:
    """Call ``fn`` with the keyword arguments it declares (older backends take no ``fps``/``cancelled``)."""
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kw = {k: v for k, v in kw.items() if k in params}
    fn(audio, **kw)


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


def run_flamesync(exe: str, args: list, *, progress=None, cancelled=None, timeout: float = 3600) -> None:
    """Run ``flamesync --progress json ARGS``, feeding JSON progress lines to ``progress``.

    ``cancelled()`` is polled ten times a second; when it returns True the process is killed and
    :class:`InferenceError` ("cancelled") raised.
    """
    cmd = [exe, "--progress", "json", *args]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        raise InferenceError(f"cannot run {exe}: {exc}") from None
    lines: queue.Queue = queue.Queue()

    def pump():  # a reader thread, so a silent process cannot block the cancel check
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    errors = []
    waited = 0.0
    while True:
        if cancelled is not None and cancelled():
            proc.kill()
            proc.wait()
            raise InferenceError("cancelled")
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            waited += 0.1
            if waited > timeout:
                proc.kill()
                raise InferenceError(f"flamesync took longer than {timeout:.0f} s") from None
            continue
        if line is None:
            break
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
    proc.wait()
    if proc.returncode != 0:
        msg = errors[-1] if errors else f"exit status {proc.returncode}"
        raise InferenceError(msg.removeprefix("flamesync: error: "))


def layer_flags(layers: dict | None) -> list:
    """``flamesync animate`` flags for the alive-face settings (keyword arguments of ``flamesync.animate``)."""
    if not layers:
        return []
    if layers.get("mouth_only"):
        return ["--mouth-only"]
    flags = []
    for name in ("blinks", "gaze", "brows", "head", "intensity"):
        if name in layers:
            flags += [f"--{name}", repr(float(layers[name]))]
    if "emotion" in layers:
        flags += ["--emotion", str(layers["emotion"])]
    if "seed" in layers:
        flags += ["--seed", str(int(layers["seed"]))]
    return flags


def cli_backend(audio, *, transcript=None, face=None, fps=None, out_path, progress=None, cancelled=None,
                exe=None, layers=None) -> None:
    """``flamesync animate AUDIO [--text-file TRANSCRIPT] [--face FACE] [--fps FPS] [LAYER FLAGS] -o OUT_PATH``."""
    exe = exe or find_flamesync()
    if not exe:
        raise InferenceError("flamesync executable not found: set its path in the add-on preferences")
    args = ["animate", audio, "-o", out_path]
    if transcript:
        args += ["--text-file", transcript]
    if face:
        args += ["--face", face]
    if fps:
        args += ["--fps", repr(float(fps))]
    args += layer_flags(layers)
    run_flamesync(exe, args, progress=progress, cancelled=cancelled)


register_backend("cli", cli_backend, label="flamesync command")
