import numpy as np
import pytest
import torch

from flamesync.net.infer import LoadedModel
from flamesync.net.model import FlameSyncNet, ModelConfig
from net_standin import torch_single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("torch_single_thread")

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def test_onnx_matches_torch(tmp_path):
    from flamesync.net.onnx_export import check_onnx, export_onnx

    torch.manual_seed(0)
    net = FlameSyncNet(ModelConfig())  # the default architecture
    for blk in net.blocks:
        torch.nn.init.normal_(blk.attn.rel_bias)
    model = LoadedModel(net, {})
    rep = export_onnx(model, tmp_path / "m.onnx")
    assert rep["max_abs_diff"] < 1e-4
    assert (tmp_path / "m.onnx.json").is_file()
    # Dynamic length, including one shorter than an attention block.
    assert check_onnx(model, tmp_path / "m.onnx", seconds=0.3, seed=1) < 1e-4


def test_onnx_cli_without_default_model_is_one_line(tmp_path, monkeypatch, capsys):
    import flamesync.net.infer as infer
    from flamesync.cli import main

    monkeypatch.delenv("FLAMESYNC_MODEL", raising=False)
    monkeypatch.setattr(infer, "DEFAULT_CHECKPOINT", tmp_path / "nothing")
    assert main(["export-onnx", "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flamesync: error:") and "\n" not in err


def test_wrong_suffix(tmp_path):
    from flamesync.errors import InputError
    from flamesync.net.onnx_export import export_onnx

    with pytest.raises(InputError):
        export_onnx(LoadedModel(FlameSyncNet(ModelConfig(dim=16, heads=2, layers=1, attn_future=(0,))), {}),
                    tmp_path / "m.bin")


def _speech(seconds=2.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    env = (np.sin(2 * np.pi * 2.5 * t) > -0.2).astype(np.float32)
    return (0.3 * env * np.sin(2 * np.pi * 150 * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def test_shipped_onnx_is_the_export_of_the_shipped_checkpoint():
    from flamesync.net.infer import DEFAULT_CHECKPOINT, load_default_model
    from flamesync.net.onnx_runtime import matching_onnx

    assert matching_onnx(DEFAULT_CHECKPOINT, required=True) is not None
    onnx_model = load_default_model(backend="onnx")
    torch_model = load_default_model(backend="torch")
    assert onnx_model.backend == "onnx" and torch_model.backend == "torch"
    assert onnx_model.channels == torch_model.channels and onnx_model.decoder == torch_model.decoder
    audio = _speech(3.0)
    a, b = onnx_model.predict_raw(audio), torch_model.predict_raw(audio)
    assert np.abs(a.weights - b.weights).max() < 1e-4
    assert np.abs(a.closure_prob - b.closure_prob).max() < 1e-4
    assert np.abs(a.visemes - b.visemes).max() < 1e-4


def test_onnx_backed_model_chunks_and_streams_like_whole_files(tmp_path):
    from flamesync.net.infer import load_model
    from flamesync.net.onnx_export import export_onnx
    from flamesync.net.stream import Streamer

    torch.manual_seed(1)
    net = FlameSyncNet(ModelConfig(dim=32, heads=2, layers=2, attn_past=6, attn_future=(1, 1)))
    amap = {"jawOpen": {"x": [0.0, 0.5, 1.0], "y": [0.0, 0.7, 1.0]}}
    # the smoothing and the closure's removal of the gain ride in the sidecar and stream as whole files do
    post = {"opening_smoothing": {"alpha": 0.7, "alpha_closing": 1.0, "channels": ["jawOpen"]},
            "closure_removes_gain": {"gain": 1.06, "channels": ["jawOpen"]}}
    export_onnx(LoadedModel(net, {"closure_pose": {"jawOpen": 0.0}, "amplitude_map": amap, **post}),
                tmp_path / "m.onnx", check=False)
    model = load_model(tmp_path / "m.onnx")
    assert model.backend == "onnx" and model.pose == {"jawOpen": 0.0} and model.amplitude_map == amap
    assert model.smoothing_alpha == 0.7 and model.smoothing_alpha_closing == 1.0 and model.closure_gain == 1.06
    audio = _speech(4.0, seed=2)
    whole = model.predict(audio, chunk_seconds=60.0)
    chunked = model.predict(audio, chunk_seconds=0.7)
    assert np.abs(whole.values - chunked.values).max() < 1e-5
    s = Streamer(model)
    from flamesync.net.onnx_stream import OnnxStreamRunner

    assert isinstance(s._runner, OnnxStreamRunner)  # the graph cut into layer groups, not rerun whole
    parts = [s.push(audio[i:i + 320]) for i in range(0, len(audio), 320)] + [s.finish()]
    streamed = np.concatenate([p.values for p in parts if p.n_frames])
    assert streamed.shape == whole.values.shape
    assert np.abs(streamed - whole.values).max() < 1e-5


def test_shipped_onnx_streams_layer_by_layer_and_falls_back_when_it_cannot_be_cut(tmp_path, monkeypatch):
    import shutil

    from flamesync.net import onnx_stream
    from flamesync.net.infer import DEFAULT_CHECKPOINT, NetRunner, load_default_model, load_model
    from flamesync.net.stream import Streamer

    model = load_default_model(backend="onnx")
    runner = onnx_stream.OnnxStreamRunner.for_model(model)
    assert runner is not None and len(runner.stages) == model.cfg.layers + 2
    audio = _speech(3.0, seed=4)
    ref = model.predict_raw(audio)
    parts = [runner.push(audio[i:i + 320]) for i in range(0, len(audio), 320)] + [runner.finish()]
    w = np.concatenate([p.weights for p in parts])
    c = np.concatenate([p.closure_prob for p in parts])
    assert w.shape == ref.weights.shape
    assert np.abs(w - ref.weights).max() < 1e-5 and np.abs(c - ref.closure_prob).max() < 1e-5
    # Steady 20 ms pushes give each piece windows of one length, which get sessions fixed to it
    # (built in the background); for every such length they give the dynamic session's numbers
    # bit for bit, so when the switch happens changes no frame.
    runner._builder.join()
    assert all(0 < len(p.fixed) <= onnx_stream.MAX_FIXED_LENGTHS for p in runner.pieces)
    rng = np.random.default_rng(0)
    for piece in runner.pieces:
        for n, fixed in piece.fixed.items():
            width = 2 * model.cfg.n_mels if piece is runner.pieces[0] else model.cfg.dim
            x = rng.standard_normal((1, n, width)).astype(np.float32)
            for a, b in zip(fixed.run(None, {piece.name: x}), piece.dynamic.run(None, {piece.name: x})):
                assert np.array_equal(a, b)
    monkeypatch.setattr(onnx_stream, "MAX_FIXED_LENGTHS", 0)
    dynamic = onnx_stream.OnnxStreamRunner.for_model(model)
    parts = [dynamic.push(audio[i:i + 320]) for i in range(0, len(audio), 320)] + [dynamic.finish()]
    assert not any(p.fixed for p in dynamic.pieces)
    assert np.array_equal(np.concatenate([p.weights for p in parts]), w)
    assert np.array_equal(np.concatenate([p.closure_prob for p in parts]), c)
    monkeypatch.undo()
    # A graph without the expected tensor names streams whole, with the same frames.
    for suffix in (".onnx", ".onnx.json"):
        shutil.copy(str(DEFAULT_CHECKPOINT) + suffix, tmp_path / ("m" + suffix))
    monkeypatch.setattr(onnx_stream, "FRONT_OUT", "/no/such/tensor")
    other = load_model(tmp_path / "m.onnx")
    s = Streamer(other)
    assert isinstance(s._runner, NetRunner)


def test_stale_or_missing_onnx_falls_back_to_torch_unless_required(tmp_path, monkeypatch):
    import json
    import shutil

    import flamesync.net.infer as infer
    from flamesync.errors import FlamesyncError

    monkeypatch.delenv("FLAMESYNC_MODEL", raising=False)
    for suffix in (".safetensors", ".json", ".onnx", ".onnx.json"):
        shutil.copy(str(infer.DEFAULT_CHECKPOINT) + suffix, tmp_path / ("m" + suffix))
    monkeypatch.setattr(infer, "DEFAULT_CHECKPOINT", tmp_path / "m")
    assert infer.load_default_model().backend == "onnx"
    side = json.loads((tmp_path / "m.onnx.json").read_text())
    side["weights_sha256"] = "0" * 64  # as if the checkpoint were retrained after the export
    (tmp_path / "m.onnx.json").write_text(json.dumps(side))
    assert infer.load_default_model().backend == "torch"
    with pytest.raises(FlamesyncError, match="export-onnx"):
        infer.load_default_model(backend="onnx")
    (tmp_path / "m.onnx").unlink()
    assert infer.load_default_model().backend == "torch"


def test_animating_to_a_channel_file_never_imports_torch_or_heavy_scipy(tmp_path):
    import os
    import subprocess
    import sys

    import soundfile as sf

    sf.write(tmp_path / "a.wav", _speech(1.5), 16000)
    code = ("import sys; from flamesync.cli import main; "
            f"rc = main(['--progress', 'none', 'animate', {str(tmp_path / 'a.wav')!r}, '-o', {str(tmp_path / 'a.npz')!r}]); "
            "assert rc == 0, rc; "
            "print(sorted(m for m in ('torch', 'scipy.ndimage', 'scipy.spatial', 'librosa') if m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != "FLAMESYNC_MODEL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    # Start-up time is most of a short job: these imports alone cost more than the network.
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "a.npz").is_file()
