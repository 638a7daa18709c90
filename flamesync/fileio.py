"""Atomic file writing: outputs appear complete or not at all.

Every output is first written to a hidden part file beside it, ``.STEM.PID.XXXXXXXX.partSUFFIX``,
and renamed onto its name when complete. The process id in the name lets a later run recognise
the parts of a run that was killed (SIGKILL, power loss: nothing could clean up) and remove them
before it writes the same output again.

:func:`transaction` groups several outputs (the animation files of one command and the audio
carried beside them): their renames are held back until the whole group has been written, so a
command that fails half-way leaves none of them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from .errors import InputError

# Errors from the file system that say why an output could not be written: reported as one line.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR,
                errno.ENOTDIR, errno.EFBIG, errno.ENAMETOOLONG, errno.EIO}


class OutputError(InputError):
    """An output cannot be written (no space, read-only, a directory in the way, ...)."""


# The open transactions, innermost last: each maps final path -> written part.
_TRANSACTIONS: list[dict[Path, Path]] = []


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _part_pattern(stem: str, suffix: str) -> re.Pattern:
    # mkstemp's random names use letters, digits and "_": no dots, so the pattern is unambiguous.
    return re.compile(rf"\.{re.escape(stem)}\.(\d+)\.[a-z0-9_]+\.part{re.escape(suffix)}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_parts(path: str | os.PathLike, *, suffix: str | None = None) -> list[Path]:
    """Remove part files of ``path`` left by runs whose process no longer exists; return them.

    Parts of live processes (a concurrent run writing the same output) are kept.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    suffix = path.suffix if suffix is None else suffix
    pattern = _part_pattern(path.stem, suffix)
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if m and not _pid_alive(int(m.group(1))):
            _remove(parent / name)
            removed.append(parent / name)
    return removed


def disk_full(path: str | os.PathLike) -> bool:
    """True when the file system holding ``path`` has no free blocks left."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail == 0


def describe_write_error(path: Path, exc: BaseException) -> OutputError | None:
    """A one-line :class:`OutputError` for a failure while writing ``path``, or None when the
    failure is not about the file system (a bug or a bad input: reported as such)."""
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        return OutputError(f"cannot write {path}: {os.strerror(exc.errno)}")
    from .errors import MissingDependencyError, ModelFileError

    # Errors that already explain themselves (bad input, a missing dependency) stay as they are.
    if isinstance(exc, Exception) and not isinstance(exc, (InputError, ModelFileError, MissingDependencyError)):
        parent = path.parent if str(path.parent) else Path(".")
        # Writers in other libraries (libsndfile, Blender) wrap ENOSPC in their own error types,
        # some without the errno: a full disk after a failed write is the explanation.
        if disk_full(parent):
            return OutputError(f"cannot write {path}: {os.strerror(errno.ENOSPC)}")
    return None


def _commit(path: Path, tmp: Path) -> None:
    if tmp.is_dir() and path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)  # a folder output (frame sequence) replaces the earlier export
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file keeps the target's extension (some writers pick the format from it), and is
    removed when the block raises, so a failed export never leaves a partial file behind. The
    block may replace the file by a folder of the same name (frame sequences). Inside a
    :func:`transaction` the rename waits for the end of the transaction.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {path}: directory {parent} is not writable")
    suffix = path.suffix if suffix is None else suffix
    remove_stale_parts(path, suffix=suffix)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.", suffix=".part" + suffix, dir=parent)
    except OSError as exc:
        raise describe_write_error(path, exc) or exc from None
    os.close(fd)
    # mkstemp makes the file private; outputs and caches get the permissions any new file gets.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp = Path(tmp)
    try:
        yield tmp
        if _TRANSACTIONS:
            staged = _TRANSACTIONS[-1]
            if path in staged:
                _remove(staged.pop(path))  # written twice in one transaction: the last one counts
            staged[path] = tmp
        else:
            _commit(path, tmp)
    except BaseException as exc:
        _remove(tmp)
        better = describe_write_error(path, exc)
        if better is not None:
            raise better from None
        raise


def pending(path: str | os.PathLike) -> Path | None:
    """The written but not yet committed part of ``path`` in the open transactions, or None."""
    path = Path(path)
    for staged in reversed(_TRANSACTIONS):
        if path in staged:
            return staged[path]
    return None


@contextlib.contextmanager
def transaction():
    """Hold back the renames of every :func:`atomic_path` in the block until it completes.

    If the block raises (or is interrupted), every part written in it is removed and no output
    appears; if it completes, all outputs appear together.
    """
    staged: dict[Path, Path] = {}
    _TRANSACTIONS.append(staged)
    try:
        yield
    except BaseException:
        _TRANSACTIONS.remove(staged)
        for tmp in staged.values():
            _remove(tmp)
        raise
    _TRANSACTIONS.remove(staged)
    if _TRANSACTIONS:  # nested: the outer transaction commits
        _TRANSACTIONS[-1].update(staged)
        return
    items = list(staged.items())
    path = None
    try:
        for path, tmp in items:
            _commit(path, tmp)
    except BaseException as exc:
        for _, tmp in items:
            _remove(tmp)
        better = describe_write_error(path, exc)
        if better is not None:
            raise better from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
