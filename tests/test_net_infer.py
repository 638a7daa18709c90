import numpy as np
import pytest
import torch

from flamesync.audio import load_audio
from flamesync.audio.features import log_mel
from flamesync.channels import JAW_OPEN_RAD, SPEECH_CHANNELS
from flamesync.errors import FlamesyncError, InputError, ModelFileError
from flamesync.net.checkpoint import save_checkpoint
from flamesync.net.closure import ClosureDecoder
from flamesync.net.infer import LoadedModel, load_model, predict
from flamesync.net.model import FlameSyncNet, ModelConfig
from flamesync.net.stream import Streamer
from net_standin import torch_single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SMALL = ModelConfig(dim=48, heads=2, layers=3, attn_past=10, attn_future=(1, 1, 0), dropout=0.0)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = FlameSyncNet(SMALL)
    for blk in net.blocks:
        torch.nn.init.normal_(blk.attn.rel_bias)
    torch.nn.init.normal_(net.head_closure.weight, std=0.5)
    meta = {"closure_decoder": ClosureDecoder(on=0.55, off=0.4, min_frames=3).to_dict(),
            "closure_pose": {"jawOpen": 0.02, "mouthClose": 0.03, "mouthPressLeft": 0.4, "mouthPressRight": 0.4},
            # Stream, chunk and closure tests below then cover the amplitude map too.
            "amplitude_map": {"jawOpen": {"x": [0.0, 0.3, 0.6, 1.0], "y": [0.0, 0.45, 0.8, 1.0]}},
            # ... and the opening smoothing (on a channel the other tests do not look at).
            "opening_smoothing": {"alpha": 0.6, "channels": ["mouthLowerDownLeft"]}}
    return LoadedModel(net, meta)


@pytest.fixture(scope="module")
def audio():
    rng = np.random.default_rng(0)
    n = 16000 * 9 + 77
    t = np.arange(n) / 16000
    return ((np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 2.5 * t) > 0) * 0.3)
            + rng.standard_normal(n) * 0.02).astype(np.float32)


def test_predict_animation_layout(model, audio):
    anim = model.predict(audio)
    assert anim.fps == 50 and anim.n_frames == int(np.ceil(len(audio) / 320))
    assert anim.channels[: len(SPEECH_CHANNELS)] == SPEECH_CHANNELS
    assert anim.meta["jaw_rotation"] == "implied"
    np.testing.assert_allclose(anim.jaw[:, 0], JAW_OPEN_RAD * anim.channel("jawOpen"), rtol=1e-6)


@pytest.mark.parametrize("chunk_seconds", [0.4, 1.0, 2.5])
def test_chunked_equals_whole_file(model, audio, chunk_seconds):
    with torch.no_grad():
        whole = model.net(torch.from_numpy(log_mel(audio))[None])
    raw = model.predict_raw(audio, chunk_seconds=chunk_seconds)
    np.testing.assert_allclose(raw.weights, whole[0][0].numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(raw.closure_prob, torch.sigmoid(whole[1][0]).numpy(), atol=1e-5, rtol=0)


def test_streaming_equals_offline(model, audio):
    offline = model.predict(audio)
    s = Streamer(model)
    rng = np.random.default_rng(2)
    parts, i, first_frames = [], 0, []
    while i < len(audio):
        k = int(rng.integers(1, 9000))
        out = s.push(audio[i:i + k])
        i = min(i + k, len(audio))
        first_frames.append((i, s.frames_out))
        parts.append(out.values)
    parts.append(s.finish().values)
    got = np.concatenate(parts)
    assert got.shape == offline.values.shape
    np.testing.assert_allclose(got, offline.values, atol=1e-5, rtol=0)
    # Fixed latency: after n samples, every frame whose time + look-ahead <= n/16000 is out.
    for n, frames in first_frames:
        expect = int(np.floor((n / 16000 - s.lookahead_seconds) * 50 + 1e-9)) + 1
        assert frames == max(0, expect)


def test_amplitude_map_reshapes_only_its_channels(model, audio):
    bare = LoadedModel(model.net, {k: v for k, v in model.meta.items() if k != "amplitude_map"})
    plain, mapped = bare.predict(audio, closures=False), model.predict(audio, closures=False)
    np.testing.assert_allclose(mapped.channel("jawOpen"), np.interp(plain.channel("jawOpen"), [0, 0.3, 0.6, 1],
                                                                     [0, 0.45, 0.8, 1]), atol=1e-6)
    np.testing.assert_array_equal(plain.channel("mouthFunnel"), mapped.channel("mouthFunnel"))


def test_opening_smoothing_filters_only_its_channels(model, audio):
    bare = LoadedModel(model.net, {k: v for k, v in model.meta.items() if k != "opening_smoothing"})
    plain, smooth = bare.predict(audio, closures=False), model.predict(audio, closures=False)
    x, y = plain.channel("mouthLowerDownLeft"), smooth.channel("mouthLowerDownLeft")
    ref, prev = [], x[0]
    for v in x:
        prev = prev + 0.6 * (v - prev)
        ref.append(prev)
    np.testing.assert_allclose(y, ref, atol=1e-6)
    assert np.abs(np.diff(y, 2)).mean() < 0.8 * np.abs(np.diff(x, 2)).mean()  # smoother
    np.testing.assert_array_equal(plain.channel("mouthLowerDownRight"), smooth.channel("mouthLowerDownRight"))


def test_closure_removes_gain_only_where_lips_close(model, audio):
    from flamesync.net.closure import closure_strength, decode_closures

    raw = model.predict_raw(audio)
    # thresholds from the closure probability's own spread, so closures are a minority of frames
    on, off = np.quantile(raw.closure_prob, [0.8, 0.7])
    d = ClosureDecoder(on=float(on), off=float(off), min_frames=3)
    base = LoadedModel(model.net, {**model.meta, "closure_decoder": d.to_dict()})
    gained = LoadedModel(model.net, {**base.meta, "closure_removes_gain": {"gain": 1.25, "channels": ["mouthLowerDownRight"]}})
    plain, taken = base.predict(audio), gained.predict(audio)
    mask, _ = decode_closures(raw.closure_prob, on=d.on, off=d.off, min_frames=d.min_frames)
    s, _ = closure_strength(mask, attack=d.attack, release=d.release)
    assert (s > 0.5).any() and (s < 1e-3).sum() > 20  # the audio has closures and frames away from them
    x, y = plain.channel("mouthLowerDownRight"), taken.channel("mouthLowerDownRight")
    # mouthLowerDownRight is not a pose channel, so the blend leaves it: only the gain's removal shows
    np.testing.assert_allclose(y, x * (1 - s * (1 - 1 / 1.25)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(y[s < 1e-3], x[s < 1e-3], rtol=1e-3)
    assert (y[s > 0.5] < x[s > 0.5]).any()
    np.testing.assert_array_equal(plain.channel("jawOpen"), taken.channel("jawOpen"))  # not listed
    # without closures decoded there is nothing to take it back
    np.testing.assert_array_equal(base.predict(audio, closures=False).channel("mouthLowerDownRight"),
                                  gained.predict(audio, closures=False).channel("mouthLowerDownRight"))


def test_closures_seal_lips(model, audio):
    plain = model.predict(audio, closures=False)
    sealed = model.predict(audio)
    diff = np.abs(plain.channel("mouthPressLeft") - sealed.channel("mouthPressLeft"))
    assert diff.max() > 0.05  # some closure was decoded and applied
    # Non-closure channels are untouched.
    np.testing.assert_array_equal(plain.channel("mouthFunnel"), sealed.channel("mouthFunnel"))


@pytest.mark.parametrize("bad, msg", [
    (np.zeros(0, np.float32), "no samples"),
    (np.array([0.1, np.nan] * 100, np.float32), "NaN"),
    (np.zeros((100, 2, 2), np.float32), "mono"),
    (np.array(["a", "b"]), "numbers"),
    ("speech.wav", "load_audio"),
])
def test_bad_arrays_give_one_line_errors(model, bad, msg):
    with pytest.raises(InputError) as exc:
        model.predict(bad)
    assert msg in str(exc.value) and "\n" not in str(exc.value)


def test_bad_files_give_one_line_errors(tmp_path):
    import soundfile as sf

    (tmp_path / "text.wav").write_text("not audio at all")
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    for path in (tmp_path, tmp_path / "text.wav", tmp_path / "silent.wav", tmp_path / "empty.wav",
                 tmp_path / "missing.wav"):
        with pytest.raises(InputError) as exc:
            load_audio(path)
        assert "\n" not in str(exc.value)


def test_checkpoint_roundtrip_and_errors(model, audio, tmp_path):
    save_checkpoint(tmp_path / "m", model=model.net, meta={**model.meta, "model": SMALL.to_dict()})
    again = load_model(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(again.predict(audio[:32000]).values, model.predict(audio[:32000]).values)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "bad")
    (tmp_path / "m.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "m")


def test_default_model_missing_is_a_clear_error(monkeypatch, tmp_path):
    import flamesync.net.infer as infer

    monkeypatch.delenv("FLAMESYNC_MODEL", raising=False)
    monkeypatch.setattr(infer, "DEFAULT_CHECKPOINT", tmp_path / "nothing")
    with pytest.raises(FlamesyncError, match="flamesync train"):
        predict(np.zeros(1600, np.float32) + 0.1)


def test_default_model_from_environment(model, monkeypatch, tmp_path):
    save_checkpoint(tmp_path / "m", model=model.net, meta={**model.meta, "model": SMALL.to_dict()})
    monkeypatch.setenv("FLAMESYNC_MODEL", str(tmp_path / "m"))
    a = np.sin(np.arange(8000) / 9).astype(np.float32) * 0.2
    np.testing.assert_array_equal(predict(a).values, model.predict(a).values)


def test_noise_floor_features_run_through_chunks_stream_and_onnx(audio, tmp_path):
    """A model whose features carry the noise-floor channels (160 per frame) works everywhere."""
    from dataclasses import replace

    from flamesync.audio.features import FeatureConfig

    fcfg = FeatureConfig(floor_rise_db=6.0)
    torch.manual_seed(1)
    net = FlameSyncNet(replace(SMALL, n_mels=fcfg.n_features))
    model = LoadedModel(net, {"features": fcfg.to_dict()})
    feats = log_mel(audio, config=fcfg)
    assert feats.shape[1] == 160
    with torch.no_grad():
        whole = model.net(torch.from_numpy(feats)[None])
    raw = model.predict_raw(audio, chunk_seconds=1.0)
    np.testing.assert_allclose(raw.weights, whole[0][0].numpy(), atol=1e-5, rtol=0)
    s = Streamer(model)
    parts = [s.push(audio[i:i + 5000]).values for i in range(0, len(audio), 5000)] + [s.finish().values]
    np.testing.assert_allclose(np.concatenate(parts), model.predict(audio).values, atol=1e-5, rtol=0)
    pytest.importorskip("onnxruntime")
    from flamesync.net.onnx_export import check_onnx, export_onnx

    assert export_onnx(model, tmp_path / "m.onnx")["max_abs_diff"] < 1e-4
    assert check_onnx(model, tmp_path / "m.onnx", seconds=1.3, seed=2) < 1e-4
