import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The read-only shared/ folder beside the checkout (override with FLAMESYNC_SHARED_DIR)."""
    env = os.environ.get("FLAMESYNC_SHARED_DIR")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def realspeech_dir() -> Path:
    d = shared_dir() / "realspeech"
    if not (d / "MANIFEST.tsv").is_file():
        pytest.skip(f"real speech clips not found at {d}")
    return d


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    # Tests build their own caches unless one is given, so they never depend on a developer's cache.
    if "FLAMESYNC_CACHE" not in os.environ:
        os.environ["FLAMESYNC_CACHE"] = str(Path.home() / ".cache" / "flamesync-tests")
    yield
