"""The batch journal: which lines are done, made from what, so a rerun does only what changed.

``OUTDIR/journal.jsonl`` holds one JSON object per finished line, appended (and fsynced) by the
driver as soon as the line's outputs are in place::

    {"name": "npc/guard_01", "key": "<sha256>", "outputs": {"npc/guard_01.glb": {"size": 123,
     "sha256": "..."}}, "audio_seconds": 1.9}

``key`` is the SHA-256 of everything the outputs depend on: the audio file's bytes, the transcript,
the options (fps, backend, language), the face, and the model (the network's files and the phone
and viseme tables the transcript backends read, plus flamesync's version). A line is skipped when
its latest entry has the same key and lists every requested output with the size and SHA-256 the
file on disk has; anything else (a new format, a changed option, an edited or deleted output, a
re-recorded take) reruns that line. Because outputs are renamed into place complete and the entry
is written after them, a batch killed at any moment resumes correctly: a line is either fully
recorded or redone. A torn last line of the journal (the driver killed while appending) is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path

from ..errors import InputError

JOURNAL_NAME = "journal.jsonl"
REPORT_NAME = "report.json"
LOCK_NAME = ".flamesync-batch.lock"
KEY_VERSION = 1  # bump when the meaning of the key changes: every line reruns once

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _hash_files(h, paths) -> None:
    for p in paths:
        p = Path(p)
        if p.is_file():
            h.update(p.name.encode("utf-8") + b"\0" + sha256_file(p).encode("ascii") + b"\n")


def model_fingerprint() -> str:
    """SHA-256 standing for the model a batch animates with.

    Covers the network files :func:`flamesync.net.infer.load_default_model` would load (or
    ``$FLAMESYNC_MODEL``'s), the phone and viseme tables in ``configs/`` (the transcript backends
    and the 2D mouth-shape mappings read them) and flamesync's version. Computed once per batch.
    """
    from .. import __version__
    from ..net.infer import DEFAULT_CHECKPOINT
    from ..tables import config_path

    h = hashlib.sha256(f"flamesync {__version__}\n".encode())
    env = os.environ.get("FLAMESYNC_MODEL")
    base = Path(env) if env else DEFAULT_CHECKPOINT
    if base.is_file():  # an .onnx or a checkpoint named with its suffix
        _hash_files(h, [base, Path(str(base) + ".json"), base.with_suffix(".json")])
    else:
        _hash_files(h, [base.with_name(base.name + s) for s in (".safetensors", ".json", ".onnx", ".onnx.json")])
    for folder in ("phones", "visemes"):
        d = config_path(folder)
        _hash_files(h, sorted(d.glob("*.tsv")))
    return h.hexdigest()


def face_fingerprint(face: str) -> str:
    """The face spec plus the SHA-256 of the file it names, if any (``flame:PATH``, ``head:PATH``)."""
    if ":" in face:
        path = Path(face.split(":", 1)[1])
        if path.is_file():
            return f"{face}#{sha256_file(path)}"
    return face


def line_key(*, audio_sha256: str, text: str | None, options: dict, model: str, face: str) -> str:
    """The key a line's outputs are recorded under (see the module docs)."""
    doc = {"v": KEY_VERSION, "audio": audio_sha256, "text": text, "options": options, "model": model, "face": face}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()


def describe_outputs(outdir: Path, rels: list[str]) -> dict[str, dict]:
    """``rel -> {"size", "sha256"}`` for outputs written under ``outdir``; folders (frame
    sequences) are described by their sorted file list."""
    out = {}
    for rel in rels:
        p = outdir / rel
        if p.is_dir():
            h = hashlib.sha256()
            size = 0
            for f in sorted(x for x in p.rglob("*") if x.is_file()):
                h.update(f.relative_to(p).as_posix().encode() + b"\0" + sha256_file(f).encode() + b"\n")
                size += f.stat().st_size
            out[rel] = {"size": size, "sha256": h.hexdigest()}
        else:
            out[rel] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return out


class Journal:
    """The journal of one output folder: read at start, appended to as lines finish."""

    def __init__(self, outdir: str | os.PathLike):
        self.outdir = Path(outdir)
        self.path = self.outdir / JOURNAL_NAME
        self.entries: dict[str, dict] = {}
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read the batch journal {self.path} ({exc.strerror})") from None
        for row in raw.split(b"\n"):
            if not row.strip():
                continue
            try:
                entry = json.loads(row)
            except ValueError:
                continue  # a line torn by a kill while appending: that take is simply redone
            if isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("outputs"), dict):
                self.entries[entry["name"]] = entry

    def is_done(self, name: str, key: str, rels: list[str]) -> bool:
        """True when ``name`` was made under ``key`` and every output in ``rels`` is intact."""
        entry = self.entries.get(name)
        if entry is None or entry.get("key") != key:
            return False
        recorded = entry["outputs"]
        for rel in rels:
            info = recorded.get(rel)
            p = self.outdir / rel
            if not isinstance(info, dict) or not p.exists():
                return False
            if p.is_file() and p.stat().st_size != info.get("size"):
                return False  # cheap check first; the hash below catches same-size edits
            if describe_outputs(self.outdir, [rel])[rel].get("sha256") != info.get("sha256"):
                return False
        return True

    def compact(self) -> None:
        """Rewrite the journal with the latest entry per line (atomically), dropping torn rows."""
        from ..fileio import atomic_write_text

        if not self.path.exists():
            return
        text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in self.entries.values())
        atomic_write_text(self.path, text)

    def record(self, entry: dict) -> None:
        """Append one finished line and force it to disk before the next one is reported."""
        self.entries[entry["name"]] = entry
        data = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def locked(outdir: Path):
    """Hold an exclusive lock on ``outdir`` for the batch: two batches writing one folder would
    interleave their journals and race on the same outputs."""
    import fcntl

    fd = os.open(outdir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"another batch is writing to {outdir}; wait for it or use another output folder") from None
        yield
    finally:
        os.close(fd)


# Part files (flamesync.fileio) of any output: ".STEM.PID.RANDOM.partSUFFIX".
_ANY_PART = re.compile(r"\..+\.(\d+)\.[a-z0-9_]+\.part(\.[^/]*)?")


def sweep_stale_parts(outdir: Path) -> list[Path]:
    """Remove, anywhere under ``outdir``, part files of processes that no longer exist (a batch
    or worker killed with SIGKILL); return them. Parts of live processes are left alone."""
    from ..fileio import _pid_alive, _remove

    removed = []
    for dirpath, dirnames, filenames in os.walk(outdir):
        for name in list(dirnames) + filenames:
            m = _ANY_PART.fullmatch(name)
            if m and not _pid_alive(int(m.group(1))):
                p = Path(dirpath) / name
                _remove(p)
                removed.append(p)
                if name in dirnames:
                    dirnames.remove(name)
    return removed
