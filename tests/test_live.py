"""``flamesync live`` against real sockets on 127.0.0.1: what receivers decode equals offline animate."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from flamesync.animation import Animation
from flamesync.channels import ARKIT_52

REPO = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _sigint_as_a_terminal_sends_it():
    # A test run started in the background of a shell ignores SIGINT, and a child inherits that:
    # Ctrl-C must reach the command as it would from a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "flamesync", *args], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_as_a_terminal_sends_it, **kw)


@pytest.fixture(scope="module")
def clip(short_speech) -> Path:
    return short_speech


@pytest.fixture(scope="module")
def offline(clip) -> Animation:
    import flamesync

    return flamesync.animate(str(clip), fps=50)


class UdpReceiver:
    """Collects every datagram sent to a free port on 127.0.0.1."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets: list[bytes] = []
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            try:
                self.packets.append(self.sock.recv(65536))
            except socket.timeout:
                continue

    def close(self):
        time.sleep(0.3)
        self._stop = True
        self._t.join()
        self.sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ws_client(port, out: list, *, stop_after=None):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    for _ in range(400):  # the server comes up once the command has parsed its options
        try:
            ws = connect(f"ws://127.0.0.1:{port}/", open_timeout=2)
            break
        except OSError:
            time.sleep(0.05)
    else:
        raise AssertionError("could not connect to the WebSocket server")
    with ws:
        try:
            while True:
                out.append(json.loads(ws.recv(timeout=30)))
                if stop_after is not None and len(out) >= stop_after:
                    return  # leaves mid-stream (the with block closes the connection)
        except ConnectionClosed:
            pass


def test_live_sinks_match_offline_animate(clip, offline, tmp_path):
    """A real-time run sends Live Link and VMC packets, WebSocket frames and a recording, and every
    receiver gets the offline animation, frame for frame."""
    from pythonosc.osc_bundle import OscBundle

    from flamesync.export.tables import live_link_extra
    from flamesync.live.sinks.livelink import decode_packet
    from flamesync.live.sinks.osc import unity_head_quaternion

    ll, osc = UdpReceiver(), UdpReceiver()
    ws_port = _free_port()
    rec = tmp_path / "take.npz"
    proc = _cli("live", "--input", str(clip), "--realtime", "--livelink", f"127.0.0.1:{ll.port}",
                "--subject", "Anna", "--osc", f"127.0.0.1:{osc.port}", "--ws", str(ws_port),
                "--wait-clients", "2", "--record", str(rec),
                # equality is the point here, so a sink thread starved for a moment on a busy
                # machine must not drop (dropping is tested on its own below)
                "--queue", "500")
    full, quitter = [], []
    threads = [threading.Thread(target=_ws_client, args=(ws_port, full)),
               threading.Thread(target=_ws_client, args=(ws_port, quitter), kwargs={"stop_after": 10})]
    for t in threads:
        t.start()
    out, err = proc.communicate(timeout=120)
    for t in threads:
        t.join(30)
    ll.close()
    osc.close()
    assert proc.returncode == 0, err
    n = offline.n_frames
    w_off = offline.weights(ARKIT_52)
    extra_off = live_link_extra(offline)

    # Live Link Face: one packet per frame, in order, values equal to offline
    packets = [decode_packet(p) for p in ll.packets]
    assert [p["frame"] for p in packets] == list(range(n))
    assert {p["subject"] for p in packets} == {"Anna"} and packets[0]["version"] == 6
    assert packets[0]["rate"] == (50, 1)
    vals = np.stack([p["values"] for p in packets])
    assert vals.shape == (n, 61)
    np.testing.assert_allclose(vals[:, :52], w_off, atol=2e-5)
    np.testing.assert_allclose(vals[:, 52:], extra_off, atol=2e-5)
    assert w_off[:, ARKIT_52.index("jawOpen")].max() > 0.2  # speech moved the mouth

    # VMC over OSC: one bundle per frame with all 52 perfect-sync names, Apply, and the head bone
    assert len(osc.packets) == n
    for raw in osc.packets:
        msgs = [m for m in OscBundle(raw)]
        t = next(m.params[0] for m in msgs if m.address == "/VMC/Ext/T")
        j = int(round(t * 50))
        blend = {m.params[0]: m.params[1] for m in msgs if m.address == "/VMC/Ext/Blend/Val"}
        assert len(blend) == 52
        got = np.array([blend[c[0].upper() + c[1:]] for c in ARKIT_52])
        np.testing.assert_allclose(got, w_off[j], atol=2e-5)
        assert [m.address for m in msgs].index("/VMC/Ext/Blend/Apply") > [m.address for m in msgs].index(
            "/VMC/Ext/Blend/Val")
        bone = next(m.params for m in msgs if m.address == "/VMC/Ext/Bone/Pos")
        assert bone[0] == "Head"
        np.testing.assert_allclose(bone[4:], unity_head_quaternion(offline.head[j]), atol=2e-5)

    # WebSocket: the client that stayed got every frame; the one that left got its 10 and did not
    # stop the other
    assert [m["frame"] for m in full] == list(range(n))
    ws_w = np.array([[m["weights"][c] for c in ARKIT_52] for m in full])
    np.testing.assert_allclose(ws_w, w_off, atol=2e-6)
    np.testing.assert_allclose(np.array([m["head"] for m in full]), offline.head, atol=2e-6)
    np.testing.assert_allclose([m["t"] for m in full], np.arange(n) / 50, atol=1e-9)
    assert len(quitter) == 10

    # The recording is the offline take
    take = Animation.load(rec)
    assert take.channels == offline.channels
    np.testing.assert_allclose(take.values, offline.values, atol=2e-5)
    assert "0 dropped" in err and f"wrote {rec}" in out


def test_live_stdin_pcm_matches_offline(clip, offline, tmp_path):
    """Raw 16-bit stereo PCM on stdin at 16 kHz streams to the same take as the file (to PCM rounding)."""
    import soundfile as sf

    data, rate = sf.read(clip, dtype="int16")
    assert rate == 16000 and data.ndim == 1
    pcm = np.stack([data, data], axis=1).astype("<i2").tobytes()
    rec = tmp_path / "stdin.npz"
    proc = subprocess.run([sys.executable, "-m", "flamesync", "live", "--input", "-", "--channels", "2",
                           "--record", str(rec)], input=pcm, env=_env(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    take = Animation.load(rec)
    assert take.n_frames == offline.n_frames and take.channels == offline.channels
    # the file is 16-bit too, so the samples are the same numbers
    np.testing.assert_allclose(take.values, offline.values, atol=2e-5)


def test_live_ctrl_c_leaves_complete_recording(clip, tmp_path):
    """Ctrl-C mid-stream: one-line summary, exit 0, and a take covering the audio streamed so far."""
    import soundfile as sf

    rec = tmp_path / "cut.npz"
    # Three times the clip (7.2 s), so that Ctrl-C after about a second comes well before its end
    # even on a busy machine.
    data, rate = sf.read(clip, dtype="int16")
    longer = tmp_path / "longer.wav"
    sf.write(longer, np.tile(data, 3), rate, subtype="PCM_16")
    # nobody listens on these ports: an absent receiver must not matter either
    proc = _cli("live", "--input", str(longer), "--realtime", "--record", str(rec),
                "--livelink", f"127.0.0.1:{_free_port()}", "--ws", "0")
    deadline = time.monotonic() + 60
    line = ""
    while "look-ahead" not in line and time.monotonic() < deadline:
        line = proc.stderr.readline()
    time.sleep(1.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped by Ctrl-C" in err and "Traceback" not in err
    take = Animation.load(rec)
    # about 1.2 s streamed (plus the flushed look-ahead); fewer than the whole input (360 frames)
    assert 30 <= take.n_frames < 360
    assert take.meta["live"]["interrupted"] is True


@pytest.mark.parametrize("args, message", [
    (["--livelink", "127.0.0.1:70000"], "port must be from 1 to 65535"),
    (["--osc", "no.such.host.invalid:9000"], "cannot resolve host"),
    (["--livelink", "localhost"], "expected HOST:PORT"),
    (["--ws", "abc"], "expected PORT or HOST:PORT"),
    ([], "give at least one output"),
    (["--record", "take.glb"], "ending in .npz"),
    (["--ws", "0", "--timing-offset", "0.1"], "offline takes"),
    (["--ws", "0", "--chunk-ms", "0"], "chunk length"),
])
def test_live_bad_options_one_line(clip, capsys, args, message):
    from flamesync.cli import main

    assert main(["live", "--input", str(clip), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_live_ws_port_in_use_and_missing_device(clip, capsys):
    from flamesync.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["live", "--input", str(clip), "--ws", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot listen" in err and len(err.splitlines()) == 1
    # No sound card here (CI) or no such name anywhere: either way one line, no traceback.
    assert main(["live", "--input", "mic", "--device", "no-such-microphone-xyz", "--ws", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert ("no audio input device" in err or "PortAudio" in err) and len(err.splitlines()) == 1
    assert main(["live", "--list-devices"]) in (0, 2)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err and len((cap.out + cap.err).strip().splitlines()) >= 1


def test_slow_receiver_never_stalls_the_stream():
    """A sink that takes 100 ms per frame loses frames (counted) while a fast one gets them all, and
    a live stream still ends in real time."""
    from flamesync.live.engine import run_live
    from flamesync.live.sinks.base import Sink
    from flamesync.net.infer import load_default_model
    from flamesync.net.stream import Streamer

    class Slow(Sink):
        name = "slow"

        def send(self, frame):
            time.sleep(0.1)
            return True

    class Fast(Sink):
        name = "fast"

        def __init__(self):
            self.got = []

        def send(self, frame):
            self.got.append(frame.index)
            return True

    class Source:
        live = True

        def __iter__(self):
            rng = np.random.default_rng(0)
            start = time.monotonic()
            for k in range(50):  # 1 s in 20 ms chunks, paced
                due = start + (k + 1) * 0.02
                time.sleep(max(0.0, due - time.monotonic()))
                yield (0.1 * rng.standard_normal(320)).astype(np.float32), due

    fast = Fast()
    t0 = time.monotonic()
    report = run_live(source=Source(), streamer=Streamer(load_default_model()), sinks=[Slow(), fast], max_queue=5)
    assert time.monotonic() - t0 < 5.0  # 1 s of audio + the slow sink's last 5 queued frames at most
    slow, quick = report.sinks
    assert quick["sent"] == report.frames == 50 and fast.got == list(range(50))
    assert slow["dropped"] > 20 and slow["sent"] + slow["dropped"] == 50


def test_udp_sinks_send_from_the_audio_thread_and_a_failing_send_is_counted():
    """Datagram sinks run inline (no thread hand-off per frame) on non-blocking sockets; any other
    sink keeps its own thread. A send that fails or raises is counted and the stream goes on."""
    from flamesync.live.engine import run_live
    from flamesync.live.sinks.base import DirectSink, QueuedSink, Sink, wrap_sink
    from flamesync.live.sinks.livelink import LiveLinkSink, decode_packet
    from flamesync.live.sinks.osc import VmcSink
    from flamesync.net.infer import load_default_model
    from flamesync.net.stream import Streamer

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5.0)
    udp = [LiveLinkSink(f"127.0.0.1:{rx.getsockname()[1]}"), VmcSink("127.0.0.1:9")]
    assert all(s.inline and s._sock.getblocking() is False for s in udp)

    class Threads(Sink):
        def __init__(self, name, inline, fail_every=0):
            self.name, self.inline, self.fail_every = name, inline, fail_every
            self.threads = set()
            self.n = 0

        def send(self, frame):
            self.threads.add(threading.get_ident())
            self.n += 1
            if self.fail_every and self.n % self.fail_every == 0:
                raise OSError("receiver gone")
            return self.n % 5 != 0

    inline, queued = Threads("inline", True, fail_every=7), Threads("queued", False)
    assert isinstance(wrap_sink(inline), DirectSink) and isinstance(wrap_sink(udp[0]), DirectSink)
    q = wrap_sink(queued)
    assert isinstance(q, QueuedSink)
    q.close()

    class Source:
        live = True

        def __iter__(self):
            rng = np.random.default_rng(1)
            for _ in range(25):
                yield (0.1 * rng.standard_normal(320)).astype(np.float32), time.monotonic()

    report = run_live(source=Source(), streamer=Streamer(load_default_model()), sinks=[inline, queued, udp[0]])
    main = threading.get_ident()
    assert inline.threads == {main} and main not in queued.threads
    got = {s["sink"]: s for s in report.sinks}
    n = report.frames
    fails = sum(1 for k in range(1, n + 1) if k % 7 == 0 or k % 5 == 0)
    assert got["inline"]["sent"] == n - fails and got["inline"]["failed"] == fails and got["inline"]["dropped"] == 0
    assert got["inline"]["latency_p95_ms"] >= 0
    ll = got[udp[0].name]
    assert ll["sent"] == n and ll["failed"] == 0
    assert [decode_packet(rx.recv(1024))["frame"] for _ in range(n)] == list(range(n))
    rx.close()


def test_livelink_packet_roundtrip():
    from flamesync.live.sinks.livelink import decode_packet, encode_packet

    vals = np.linspace(-1, 1, 61).astype(np.float32)
    raw = encode_packet(vals, frame=1234, subject="Subj", device="dev-1")
    assert len(raw) == 1 + 4 + 5 + 4 + 4 + 16 + 1 + 61 * 4
    assert raw[:10] == b"\x06\x00\x00\x00\x05dev-1"  # version, then big-endian length-prefixed id
    p = decode_packet(raw)
    assert (p["frame"], p["subject"], p["device"], p["rate"]) == (1234, "Subj", "dev-1", (50, 1))
    np.testing.assert_array_equal(p["values"], vals)
    from flamesync.errors import InputError

    with pytest.raises(InputError):
        decode_packet(raw[:-3])


class _FakePortAudio:
    """Stands in for the ``sounddevice`` module on machines without a sound card: two input devices,
    one that refuses 16 kHz, and an input stream that plays a signal through the real callback
    contract (float32 blocks of shape (frames, 1), from another thread)."""

    def __init__(self, signal_48k: np.ndarray):
        self.signal = signal_48k
        self.default = type("D", (), {"device": (1, 0)})()
        self.opened = []

    def query_devices(self):
        return [{"name": "HDMI output", "max_input_channels": 0, "default_samplerate": 48000.0},
                {"name": "USB Audio Mic", "max_input_channels": 1, "default_samplerate": 48000.0},
                {"name": "Webcam Mic", "max_input_channels": 2, "default_samplerate": 48000.0}]

    def check_input_settings(self, *, device, channels, samplerate, dtype):
        if samplerate != 48000:
            raise ValueError("Invalid sample rate")

    def InputStream(self, *, device, channels, samplerate, dtype, blocksize, callback):  # noqa: N802
        fake = self
        self.opened.append((device, samplerate, blocksize))

        class Stream:
            active = True

            def start(self):
                def play():
                    for a in range(0, len(fake.signal), blocksize):
                        block = fake.signal[a:a + blocksize]
                        callback(block[:, None].astype(np.float32), len(block), None, None)
                        time.sleep(0.001)
                    Stream.active = False
                threading.Thread(target=play, daemon=True).start()

            def stop(self):
                pass

            def close(self):
                pass
        return Stream()


def test_microphone_source_resolves_devices_and_resamples(monkeypatch, clip, offline):
    """The microphone path without a sound card: device choice by name and index, the fallback to
    the device's own rate (48 kHz here) with streaming resampling, and the frames it streams."""
    import soundfile as sf

    from flamesync.audio.io import resample
    from flamesync.errors import InputError
    from flamesync.live import sources
    from flamesync.live.engine import run_live
    from flamesync.live.sinks.record import Recorder
    from flamesync.net.infer import load_default_model
    from flamesync.net.stream import Streamer

    wave, rate = sf.read(clip, dtype="float32")
    fake = _FakePortAudio(resample(wave, rate=rate, target=48000))
    monkeypatch.setattr(sources, "_sounddevice", lambda: fake)
    assert [d["name"] for d in sources.input_devices()] == ["USB Audio Mic", "Webcam Mic"]
    assert sources.resolve_device(None)["index"] == 1  # the system default
    assert sources.resolve_device("webcam")["index"] == 2
    assert sources.resolve_device("2")["name"] == "Webcam Mic"
    for bad, msg in (("7", "no audio input device with index 7"), ("bluetooth", "matches 'bluetooth'"),
                     ("mic", "2 audio input devices match")):
        with pytest.raises(InputError, match=msg):
            sources.resolve_device(bad)

    class EndingMic(sources.MicSource):
        """Ends when the fake device has played its signal (a real microphone runs until Ctrl-C)."""

        def __iter__(self):
            it = super().__iter__()
            while True:
                try:
                    yield next(it)
                except InputError:  # "stopped delivering audio": the fake device is done
                    return

    mic = EndingMic("USB", chunk=320, max_queue=100000)  # the fake plays faster than real time
    assert mic.rate == 48000 and fake.opened[0] == (1, 48000, 960)
    rec = Recorder(clip.with_name("mic.npz"))
    report = run_live(source=mic, streamer=Streamer(load_default_model(), layers=None), recorder=rec)
    take = rec.animation()
    # all of the audio came through the resampler: the same number of frames as the file, and
    # the mouth moves as offline (resampled twice, so close, not bit-equal)
    assert abs(report.frames - offline.n_frames) <= 1 and mic.overflows == 0
    jaw_live = take.channel("jawOpen")[: offline.n_frames - 1]
    jaw_off = offline.channel("jawOpen")[: len(jaw_live)]
    assert np.corrcoef(jaw_live, jaw_off)[0, 1] > 0.99
