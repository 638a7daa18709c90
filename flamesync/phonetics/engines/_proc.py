"""Shared plumbing for engines that run as separate programs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from ...errors import FlamesyncError, InputError, MissingDependencyError


def need_program(program: str, *, engine: str, package: str) -> str:
    """Absolute path of ``program`` or MissingDependencyError naming the package to install."""
    path = shutil.which(program)
    if path is None:
        raise MissingDependencyError(
            f"the {engine} engine needs the program '{program}'; install it with: apt-get install {package}"
        )
    return path


def run_program(args: list[str], *, engine: str, timeout: float = 120.0, stdin: str | None = None) -> str:
    """Run a program, return its stdout; a failure becomes a one-line FlamesyncError."""
    try:
        res = subprocess.run(
            args, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise FlamesyncError(f"{engine} did not finish within {timeout:.0f} s") from None
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no message"]
        raise FlamesyncError(f"{engine} failed (exit {res.returncode}): {tail[0][:200]}")
    return res.stdout


def read_wav(path: Path, *, engine: str) -> tuple[np.ndarray, int]:
    """Mono float32 samples and rate of a WAV an engine wrote."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as exc:  # a missing or truncated file means the engine failed silently
        raise FlamesyncError(f"{engine} wrote no readable audio ({exc})") from None
    if data.ndim == 2:
        data = data.mean(axis=1)
    return np.ascontiguousarray(data, dtype=np.float32), int(rate)


def check_text_speakable(text: str, *, engine: str) -> None:
    """Reject text without a letter or digit (the CLI engines would say nothing and exit 0)."""
    if not any(ch.isalnum() for ch in text):
        raise InputError(f"text has nothing {engine} can speak: {text[:60]!r}")


def token_spans(text: str) -> list[tuple[int, int, str]]:
    """Whitespace tokens of ``text`` as ``(start, end, token)`` character spans.

    Tokens without a letter or digit ("--", "&") are merged into the following token (or the
    previous one at the end), so every token is something a reader would say.
    """
    import re

    raw = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", text)]
    out: list[tuple[int, int, str]] = []
    pending = None
    for a, b, tok in raw:
        if not any(ch.isalnum() for ch in tok):
            pending = pending if pending is not None else a
            continue
        if pending is not None:
            a, pending = pending, None
        out.append((a, b, text[a:b]))
    if pending is not None and out:
        a, _, _ = out[-1]
        out[-1] = (a, len(text.rstrip()), text[a: len(text.rstrip())])
    return out


def clean_word(token: str) -> str:
    """A token without surrounding punctuation (apostrophes and hyphens inside words stay)."""
    core = " ".join(p for p in token.split() if any(ch.isalnum() for ch in p)) or token
    stripped = core.strip(" \t\"'“”‘’.,;:!?()[]{}<>-–—…&*/\\")
    return stripped or token.strip()


def align_tokens(
    segments: list[str], token_phones: list[list[str]]
) -> list[int | None]:
    """Assign each synthesised segment to the token it belongs to.

    An edit-distance alignment of the segment sequence against the concatenated dictionary
    pronunciations of the tokens; pronunciations may differ a little from what was synthesised
    ("a" as /ey/ alone, /ax/ in context), so substitutions are allowed.

    Parameters
    ----------
    segments : list of str, length S
        Native phone names as synthesised, pauses removed.
    token_phones : list of list of str
        Per token, its pronunciation (same phone set).

    Returns
    -------
    list of int or None, length S
        Token index of each segment (None only when there are no tokens).
    """
    flat = [(p, t) for t, phones in enumerate(token_phones) for p in phones]
    n, m = len(segments), len(flat)
    if m == 0:
        return [None] * n
    cost = np.zeros((n + 1, m + 1))
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        a = segments[i - 1]
        for j in range(1, m + 1):
            sub = 0.0 if a == flat[j - 1][0] else 1.0
            cost[i, j] = min(cost[i - 1, j - 1] + sub, cost[i - 1, j] + 1.0, cost[i, j - 1] + 1.0)
    owner: list[int | None] = [None] * n
    i, j = n, m
    while i > 0 and j > 0:
        sub = 0.0 if segments[i - 1] == flat[j - 1][0] else 1.0
        if cost[i, j] == cost[i - 1, j - 1] + sub:
            owner[i - 1] = flat[j - 1][1]
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1.0:
            i -= 1  # an inserted segment: takes a neighbour's token below
        else:
            j -= 1
    # Inserted segments join the token before them (or after, at the very start).
    last = None
    for k in range(n):
        if owner[k] is None:
            owner[k] = last
        last = owner[k]
    nxt = None
    for k in range(n - 1, -1, -1):
        if owner[k] is None:
            owner[k] = nxt
        nxt = owner[k]
    return owner
