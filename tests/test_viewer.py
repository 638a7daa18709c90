"""The browser viewer in a real headless browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from flamesync.channels import ARKIT_52

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("FLAMESYNC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# WebGL2 without a GPU: ANGLE on SwiftShader, Chromium's software renderer.
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox",
                 "--autoplay-policy=no-user-gesture-required"]
BACKGROUND = np.array([30, 33, 39])  # the page's clear colour (0.118, 0.129, 0.153) in 8 bits

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason=f"no chromium at {CHROMIUM} (apt-get install chromium, or set FLAMESYNC_CHROMIUM)")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read()}")
        try:
            urllib.request.urlopen(url + "config.json", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def clip(short_speech) -> Path:
    return short_speech


@pytest.fixture(scope="module")
def take(clip):
    import flamesync

    anim = flamesync.animate(str(clip), fps=30)
    path = clip.with_name("take.npz")
    anim.save(path)
    return anim, path


def _page(browser, url):
    page = browser.new_page(viewport={"width": 600, "height": 660})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("window.flamesync && window.flamesync.ready && window.flamesync.rendered > 0",
                           timeout=60000)
    assert page.evaluate("window.flamesync.error") is None and not errors
    return page


def _shot(page) -> np.ndarray:
    from io import BytesIO

    from PIL import Image

    return np.asarray(Image.open(BytesIO(page.locator("#view").screenshot())).convert("RGB")).astype(int)


def test_view_take_plays_the_takes_weights(browser, take, clip):
    anim, path = take
    port = _free_port()
    # preexec_fn: a test run started in the background of a shell ignores SIGINT, and a child
    # inherits that; Ctrl-C must reach the viewer as it would from a terminal.
    proc = subprocess.Popen([sys.executable, "-m", "flamesync", "view", str(path), "--audio", str(clip),
                             "--port", str(port), "--no-browser"], env=_env(), stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_http(url, proc)
        # the audio is served with range requests, so the page can seek in it
        req = urllib.request.Request(url + "audio", headers={"Range": "bytes=0-99"})
        with urllib.request.urlopen(req) as r:
            assert r.status == 206 and len(r.read()) == 100
        page = _page(browser, url)
        assert page.evaluate("window.flamesync.take.n_frames") == anim.n_frames

        jaw = anim.channel("jawOpen")
        loud = int(np.argmax(jaw))
        quiet = int(np.argmin(jaw[: loud + 1]))
        shots = {}
        for j in (quiet, loud):
            t = (j + 0.4) / anim.fps  # between two frames: the page interpolates like np.interp
            # scrub as a user does: move the slider and fire its input event
            page.evaluate("t => { const s = document.getElementById('scrub'); s.value = t;"
                          " s.dispatchEvent(new Event('input')); }", t)
            page.wait_for_function(f"window.flamesync.rendered > 0 && Math.abs(window.flamesync.time - {t}) < 1e-6")
            page.wait_for_timeout(150)  # a frame drawn after the seek
            got = page.evaluate("window.flamesync.weights[window.flamesync.channels.indexOf('jawOpen')]")
            assert got == pytest.approx(float(np.interp(t, anim.times, jaw)), abs=2e-6)
            mouth = page.evaluate("Array.from(window.flamesync.weights)")
            want = [float(np.interp(t, anim.times, anim.weights([c])[:, 0])) for c in ARKIT_52]
            np.testing.assert_allclose(mouth, want, atol=2e-6)
            shots[j] = _shot(page)

        img = shots[loud]
        h, w, _ = img.shape
        face = img[int(0.25 * h): int(0.75 * h), int(0.3 * w): int(0.7 * w)]
        head_pixels = (np.abs(face - BACKGROUND).sum(axis=2) > 30).mean()
        assert head_pixels > 0.8, head_pixels  # the head fills the middle of the view
        corner = img[: int(0.1 * h), : int(0.1 * w)]
        assert (np.abs(corner - BACKGROUND).sum(axis=2) <= 6).mean() > 0.95  # and the corner is background
        # the open mouth looks different from the closed one, in the lower half of the face only
        diff = np.abs(shots[loud] - shots[quiet]).sum(axis=2) > 40
        assert diff[int(0.55 * h): int(0.85 * h)].sum() > 200
        assert diff[: int(0.3 * h)].sum() < 0.1 * diff.sum()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()  # leave no server behind, then fail
            proc.communicate()
            raise
    assert proc.returncode == 0 and "Traceback" not in err


def test_live_view_follows_the_websocket(browser, clip):
    import flamesync

    offline = flamesync.animate(str(clip), fps=50)
    port, ws_port = _free_port(), _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flamesync", "live", "--input", str(clip), "--realtime",
                             "--view", "--view-port", str(port), "--ws", str(ws_port), "--no-browser",
                             "--wait-clients", "1"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_http(url, proc)
        page = _page(browser, url)
        assert page.evaluate("window.flamesync.mode") == "live"
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        # The stream is live: a page too busy to keep up (a software-rendered browser on a loaded
        # machine) loses its oldest frames by design. It still gets most of them, in order, with
        # the values the stream computed, and shows the newest.
        page.wait_for_timeout(300)
        got = page.evaluate("window.flamesync.liveFrames")
        last = page.evaluate("window.flamesync.lastMessage")
        assert got >= 0.5 * offline.n_frames, (got, offline.n_frames)
        assert offline.n_frames - 5 <= last["frame"] <= offline.n_frames - 1
        want = offline.weights(ARKIT_52)[last["frame"]]
        np.testing.assert_allclose([last["weights"][c] for c in ARKIT_52], want, atol=2e-6)
        shown = np.array(page.evaluate("Array.from(window.flamesync.weights)"))
        np.testing.assert_allclose(shown, want, atol=2e-6)
        assert _shot(page)[200:400, 200:400].std() > 5  # the head is drawn, not an empty canvas
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
