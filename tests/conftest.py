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


@pytest.fixture(scope="session")
def short_speech(tmp_path_factory) -> Path:
    """The first 2.4 s of the example speech as a WAV (short, so a real-time run stays quick)."""
    import soundfile as sf

    data, rate = sf.read(REPO / "assets" / "examples" / "hello.wav", dtype="float32")
    path = tmp_path_factory.mktemp("short_speech") / "clip.wav"
    sf.write(path, data[: int(2.4 * rate)], rate)
    return path


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    # Tests build their own caches unless one is given, so they never depend on a developer's cache.
    if "FLAMESYNC_CACHE" not in os.environ:
        os.environ["FLAMESYNC_CACHE"] = str(Path.home() / ".cache" / "flamesync-tests")
    yield


# A test that hangs (a child process that never exits, a pipe a grandchild keeps open) must fail
# the run with a stack trace, not use up CI's whole time limit in silence.
TEST_TIME_LIMIT_S = float(os.environ.get("FLAMESYNC_TEST_TIME_LIMIT", "900"))


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _time_is_up(config, nodeid: str) -> None:
    import faulthandler
    import signal
    import sys

    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.suspend_global_capture(in_=False)  # so the report reaches the console
    sys.stderr.write(f"\n\nTIME LIMIT: {nodeid} ran longer than {TEST_TIME_LIMIT_S:.0f} s; stacks:\n")
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    for pid in _descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:300]
        except OSError:
            cmd = "?"
        sys.stderr.write(f"killing leftover child {pid}: {cmd}\n")
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    sys.stderr.flush()
    os._exit(3)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    import threading

    timer = threading.Timer(TEST_TIME_LIMIT_S, _time_is_up, args=(item.config, item.nodeid))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
