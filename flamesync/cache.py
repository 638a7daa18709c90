"""Where flamesync keeps data it builds: face-model caches, corpora, alignments.

Nothing built here ever goes into git. The location is ``$FLAMESYNC_CACHE`` if set, else
``$XDG_CACHE_HOME/flamesync``, else ``~/.cache/flamesync``.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str, create: bool = True) -> Path:
    """Return (and by default create) a sub-directory of the flamesync cache."""
    root = os.environ.get("FLAMESYNC_CACHE")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "flamesync"
    path = base.joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
