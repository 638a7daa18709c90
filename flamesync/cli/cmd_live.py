"""``flamesync live``: animate audio as it arrives and stream the frames to engines, avatars and browsers."""

from __future__ import annotations

import sys

from ..errors import InputError

HELP = "animate live audio (microphone, a file in real time, PCM on stdin) and stream it to Unreal, VTuber apps, browsers"

EPILOG = """\
inputs (--input):
  mic              the default microphone; pick another with --device NAME|INDEX (--list-devices)
  FILE             an audio file; add --realtime to play it at speaking pace like a live voice
  -                raw signed 16-bit little-endian PCM on stdin (--rate, default 16000; --channels, default 1)

outputs (any number at once):
  --livelink HOST:PORT   Live Link Face UDP packets for Unreal Engine / MetaHuman (the app's port is 11111)
  --osc HOST:PORT        VMC protocol over OSC for VSeeFace, VNyan, Warudo... (VMC's usual port is 39539)
  --ws [HOST:]PORT       WebSocket server: one JSON message per frame to every client
  --record TAKE.npz      the whole stream as an animation file (complete even after Ctrl-C)
  --view                 open the browser viewer on the stream

examples:
  flamesync live --input mic --livelink 127.0.0.1:11111
  flamesync live --input mic --device "USB" --osc 127.0.0.1:39539 --record take.npz
  flamesync live --input speech.wav --realtime --ws 8765 --view
  tts-engine --raw | flamesync live --input - --rate 22050 --livelink 192.168.1.20:11111

Frames come at 50 per second, each 92.5 ms of audio after its time (the network's look-ahead) plus
one chunk (--chunk-ms) plus compute. A receiver that is missing or slow never holds the audio up:
its oldest frames are dropped and counted in the summary. Stop with Ctrl-C.
"""


def register(sub) -> None:
    import argparse

    p = sub.add_parser("live", help=HELP, description=HELP, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("input")
    g.add_argument("--input", "-i", default="mic", metavar="mic|FILE|-",
                   help="where the audio comes from (default: mic)")
    g.add_argument("--device", default=None, metavar="NAME|INDEX",
                   help="microphone by (part of its) name or index (default: the system's default input)")
    g.add_argument("--list-devices", action="store_true", help="list the audio input devices and exit")
    g.add_argument("--realtime", action="store_true",
                   help="with a FILE: release the audio at real-time pace (without it: as fast as it computes)")
    g.add_argument("--rate", type=int, default=16000, metavar="HZ", help="with --input -: sample rate of the PCM (default 16000)")
    g.add_argument("--channels", type=int, default=1, metavar="N",
                   help="with --input -: interleaved channels of the PCM, averaged to mono (default 1)")
    g.add_argument("--chunk-ms", type=float, default=20.0, metavar="MS",
                   help="audio per step in milliseconds (default 20; shorter: less latency, more CPU)")
    o = p.add_argument_group("outputs")
    o.add_argument("--livelink", action="append", default=[], metavar="HOST:PORT",
                   help="send Live Link Face UDP packets (Unreal Engine, MetaHuman); repeatable")
    o.add_argument("--subject", default="flamesync", help="Live Link subject name (default flamesync)")
    o.add_argument("--livelink-device", default="flamesync", metavar="ID", help="Live Link device id (default flamesync)")
    o.add_argument("--osc", action="append", default=[], metavar="HOST:PORT",
                   help="send VMC protocol OSC bundles (VSeeFace, VNyan, Warudo); repeatable")
    o.add_argument("--osc-names", choices=("perfect-sync", "arkit"), default="perfect-sync",
                   help="blendshape names over OSC: perfect-sync 'JawOpen' (default) or arkit 'jawOpen'")
    o.add_argument("--ws", default=None, metavar="[HOST:]PORT",
                   help="serve a WebSocket on this port (local machine only unless HOST is given, e.g. 0.0.0.0:8765)")
    o.add_argument("--wait-clients", type=int, default=0, metavar="N",
                   help="with --ws: start the audio only once N WebSocket clients are connected")
    o.add_argument("--record", default=None, metavar="TAKE.npz", help="save the stream as an animation file")
    o.add_argument("--view", action="store_true", help="open the browser viewer following the stream")
    o.add_argument("--view-port", type=int, default=0, metavar="PORT", help="port of the viewer page (default: a free one)")
    o.add_argument("--no-browser", action="store_true", help="with --view: print the page's address, do not open a browser")
    o.add_argument("--queue", type=int, default=10, metavar="FRAMES",
                   help="frames that may wait per output before the oldest are dropped (default 10 = 200 ms; "
                        "each WebSocket client may queue max(25, FRAMES))")
    from ._layers import add_layer_options

    add_layer_options(p)
    p.set_defaults(func=run)


def _list_devices() -> int:
    from ..live.sources import input_devices

    devices = input_devices()
    if not devices:
        print("no audio input devices found")
        return 0
    for d in devices:
        mark = "  (default)" if d["default"] else ""
        print(f"{d['index']:>3}  {d['name']}  [{d['channels']} ch, {d['rate']:g} Hz]{mark}")
    return 0


def _open_source(args, chunk: int):
    from ..live import sources

    if args.input == "mic":
        return sources.MicSource(args.device, chunk=chunk)
    if args.device is not None:
        raise InputError("--device is for --input mic")
    if args.input == "-":
        if args.realtime:
            raise InputError("--realtime is for a FILE input; stdin arrives at the pace it is written")
        return sources.StdinSource(sys.stdin.buffer, rate=args.rate, channels=args.channels, chunk=chunk)
    return sources.FileSource(args.input, chunk=chunk, realtime=args.realtime)


def run(args) -> int:
    from ..live import sources
    from ._layers import layer_options

    if args.list_devices:
        return _list_devices()
    chunk = sources.check_chunk_ms(args.chunk_ms)
    layer_kw = layer_options(args)
    if layer_kw["timing_offset"]:
        raise InputError("--timing-offset is for offline takes: a stream cannot show a frame before its audio arrives")
    if not 1 <= args.queue <= 1000:
        raise InputError(f"--queue must be from 1 to 1000 frames, got {args.queue}")
    if args.input != "-" and (args.rate != 16000 or args.channels != 1):
        raise InputError("--rate and --channels describe raw PCM on stdin (--input -); files carry their own")
    if args.wait_clients and args.ws is None and not args.view:
        raise InputError("--wait-clients needs --ws (or --view)")
    if not 0 <= args.wait_clients <= 1000:
        raise InputError(f"--wait-clients must be from 0 to 1000, got {args.wait_clients}")
    if not (args.livelink or args.osc or args.ws is not None or args.record or args.view):
        raise InputError("give at least one output: --livelink, --osc, --ws, --record or --view")

    # Every address, port and file is checked (and every socket opened) before the audio starts.
    from ..live.sinks.livelink import LiveLinkSink
    from ..live.sinks.osc import VmcSink

    sinks = []
    viewer = None
    try:
        recorder = None
        if args.record:
            from ..live.sinks.record import Recorder

            recorder = Recorder(args.record)
        sinks += [LiveLinkSink(a, subject=args.subject, device=args.livelink_device) for a in args.livelink]
        sinks += [VmcSink(a, names=args.osc_names) for a in args.osc]
        ws = None
        if args.ws is not None or args.view:
            from ..live.sinks.ws import WebSocketSink

            ws = WebSocketSink(args.ws if args.ws is not None else "0", max_client_queue=max(25, args.queue))
            sinks.append(ws)
        if args.view:
            from ..live.viewer import ViewerServer

            viewer = ViewerServer(port=args.view_port, ws_port=ws.port)
        source = _open_source(args, chunk)
    except BaseException:
        for s in sinks:
            s.close()
        if viewer is not None:
            viewer.close()
        raise
    if recorder is not None and isinstance(source, sources.FileSource):
        recorder.audio_path = str(source.path.resolve())

    from ..live.engine import run_live
    from ..net.infer import load_default_model
    from ..net.stream import Streamer

    try:
        # One thread: a frame's work is small, and more threads only spin (and contend with the
        # audio, the sinks and whatever else runs) without lowering the latency.
        model = load_default_model(threads=1)
        if model.backend == "torch":
            import torch

            torch.set_num_threads(1)
        layers = None if layer_kw["mouth_only"] else layer_kw["layers"]
        streamer = Streamer(model, layers=layers)
        err = sys.stderr
        _say(f"flamesync live: {source.describe()} -> "
             + (", ".join([s.name for s in sinks] + ([recorder.name] if recorder else [])))
             + f"; frames at 50 fps, look-ahead {streamer.lookahead_seconds * 1000:.1f} ms"
             + ("; Ctrl-C stops" if source.live else ""), err)
        if ws is not None:
            _say(f"flamesync live: WebSocket at ws://{ws.host}:{ws.port}/", err)
        if viewer is not None:
            _say(f"flamesync live: viewer at {viewer.url}", err)
            if not args.no_browser:
                viewer.open_browser()
        if args.wait_clients:
            _wait_for_clients(ws, args.wait_clients, err)
        report = run_live(source=source, streamer=streamer, sinks=sinks, recorder=recorder,
                          on_frames=_status_printer(err), max_queue=args.queue)
    finally:
        for s in sinks:  # closed already by run_live when it ran; closing twice is harmless
            try:
                s.close()
            except Exception:
                pass
        if viewer is not None:
            viewer.close()
        source.close()  # run_live closes it too; this covers a failure before the stream began
    _print_report(report)
    return 0


def _say(text: str, err=None) -> None:
    """An informational line on stderr (a JSON ``info`` event with ``--progress json``)."""
    from .. import progress

    if progress.get_mode() == "json":
        progress.emit("info", message=text)
    else:
        print(text, file=err or sys.stderr)


def _wait_for_clients(ws, n: int, err) -> None:
    import time

    _say(f"flamesync live: waiting for {n} WebSocket client(s)", err)
    while ws.clients_total < n:
        time.sleep(0.02)


def _status_printer(err):
    """Progress once a second: a refreshed line on a terminal, a JSON event with ``--progress json``."""
    import time

    from .. import progress

    mode = progress.get_mode()
    if mode == "none" or (mode != "json" and not err.isatty()):
        return None
    last = [0.0]

    def show(report):
        now = time.monotonic()
        if now - last[0] >= 1.0:
            last[0] = now
            if mode == "json":
                progress.emit("live", audio_seconds=round(report.audio_seconds, 3), frames=report.frames)
            else:
                err.write(f"\r  {report.audio_seconds:7.1f} s of audio, {report.frames} frames   ")
                err.flush()
    return show


def _print_report(report) -> None:
    err = sys.stderr
    from .. import progress

    if err.isatty() and progress.get_mode() not in ("json", "none"):
        err.write("\r" + " " * 60 + "\r")
    if progress.get_mode() == "json":
        progress.emit("live_done", **vars(report))
        if report.recorded:
            print(f"wrote {report.recorded}")
        return
    how = "stopped by Ctrl-C" if report.interrupted else "audio ended"
    load = 100.0 * report.cpu_seconds / report.audio_seconds if report.audio_seconds else 0.0
    print(f"flamesync live: {how}: {report.audio_seconds:.1f} s of audio, {report.frames} frames, "
          f"CPU {load:.0f}% of one core per second of audio", file=err)
    for s in report.sinks:
        lat = (f", latency p50 {s['latency_p50_ms']:.0f} ms p95 {s['latency_p95_ms']:.0f} ms"
               if "latency_p50_ms" in s else "")
        extra = f", {s['clients']} client(s)" if "clients" in s else ""
        print(f"  {s['sink']}: {s['sent']} sent, {s['dropped']} dropped, {s['failed']} failed{lat}{extra}", file=err)
    if report.recorded:
        print(f"wrote {report.recorded}")
