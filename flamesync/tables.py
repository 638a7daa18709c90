"""The data tables under ``configs/`` (phone sets, visemes, corpus text, evaluation).

Tables are tab-separated, UTF-8, with one header row; blank lines and lines starting with ``#``
are comments. They live in the checkout beside the package so that they read and diff as data.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelFileError

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"


def config_path(*parts: str) -> Path:
    """A path under the ``configs/`` folder."""
    return CONFIG_ROOT.joinpath(*parts)


def read_tsv(path: str | Path, *, pad: bool = False) -> list[dict[str, str]]:
    """Rows of a table as dicts keyed by the header.

    Parameters
    ----------
    path : str or Path
    pad : bool
        Fill missing trailing cells with ``""`` instead of rejecting short rows.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelFileError(f"data table {path} cannot be read ({exc}); is the checkout complete?") from None
    lines = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise ModelFileError(f"data table {path} is empty")
    header = lines[0].split("\t")
    rows = []
    for n, line in enumerate(lines[1:], 2):
        cells = line.split("\t")
        if len(cells) < len(header) and pad:
            cells += [""] * (len(header) - len(cells))
        if len(cells) != len(header):
            raise ModelFileError(f"{path}: row {n} has {len(cells)} cells, expected {len(header)}")
        rows.append(dict(zip(header, cells)))
    return rows
