"""Checks every command runs on its options and outputs before any work is done.

A command that is going to fail on an output (an existing directory, a read-only file, a bad
name) or an option (a frame rate out of range, an empty transcript) fails before it spends
minutes of work, and before it writes anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError


def check_outputs(outputs: list[str]) -> list[str]:
    """Check each ``-o`` (format, folder, name, what is in the way); return them without repeats."""
    from ..export import check_output

    seen: dict[Path, str] = {}
    for out in outputs:
        check_output(out)
        key = Path(out).absolute()
        if key in seen and seen[key] != out:
            raise InputError(f"{seen[key]} and {out} are the same output")
        seen.setdefault(key, out)
    return list(seen.values())


def check_preview(path: str | os.PathLike) -> Path:
    """Check a ``--preview`` video path before any work."""
    from ..export import check_writable

    path = check_writable(path)
    if path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise InputError(f"previews are MP4 files; give a path ending in .mp4, got {path.name}")
    return path


def read_transcript(path: str | os.PathLike) -> str:
    """The transcript in a UTF-8 text file (a FIFO or /dev/stdin works too), with clear errors."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"transcript file {path} is a directory")
    if not path.exists():
        raise InputError(f"transcript file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read transcript file {path} ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"transcript file {path} is not UTF-8 text (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise InputError(f"transcript file {path} is empty")
    return text
