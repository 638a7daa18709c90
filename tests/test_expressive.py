"""The alive-face layers: determinism, controls, emotion vs closures, streaming, exports, prosody."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from flamesync.animation import Animation
from flamesync.channels import ARKIT_52, EYE_LOOK_DEGREES
from flamesync.errors import InputError
from flamesync.expressive import EMOTIONS, Layers, LayerStream, add_layers, head_rotvec, load_keys
from flamesync.expressive.emotion import EMOTION_CHANNELS
from flamesync.expressive.layers import BlinkLayer, BrowLayer, GAZE_CHANNELS, gaze_to_weights
from flamesync.expressive.prosody import FrameAnalyzer, yin_f0

from conftest import REPO

FPS = 30.0
# Channels that make /p b m/ closures and vowel openings: no layer or emotion may touch them.
SPEECH_ONLY = [c for c in ARKIT_52 if c.startswith(("jaw", "mouth", "tongue", "cheekPuff"))
               and not c.startswith(("mouthSmile", "mouthFrown", "mouthDimple", "mouthStretch"))]


def speechlike(seconds: float, *, seed: int = 0) -> np.ndarray:
    """Voiced 'syllables' at ~4 per second with a rising-falling F0, in phrases with pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.4 * t) + 25 * (np.sin(2 * np.pi * 1.3 * t) > 0.6)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    syll = (0.12 + np.clip(np.sin(2 * np.pi * 4.1 * t), 0, None) ** 0.7) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.9 * t) ** 2)
    phrase = (np.sin(2 * np.pi * t / 3.7) > -0.45).astype(float)  # ~1.2 s pauses every 3.7 s
    return (0.25 * voice * syll * phrase + 0.002 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def wave():
    return speechlike(40.0)


def blank(wave, fps=FPS) -> Animation:
    n = int(round(len(wave) / 16000 * fps))
    return Animation.zeros(n, fps=fps, channels=("jawOpen", "mouthClose", "mouthSmileLeft"))


def layered(wave, **kw) -> Animation:
    return add_layers(blank(wave), wave, Layers(**kw))


# ------------------------------------------------------------------------------------ prosody
def test_yin_finds_f0_of_harmonic_tones():
    t = np.arange(160) / 4000
    for f in (80.0, 123.0, 210.0, 330.0):
        x = sum(np.sin(2 * np.pi * k * f * t + k) / k for k in range(1, 4))
        est = yin_f0(x[None, :].astype(np.float32))[0]
        assert abs(est - f) / f < 0.02, (f, est)
    noise = np.random.default_rng(0).standard_normal((4, 160)).astype(np.float32)
    assert np.isnan(yin_f0(noise)).all()


def test_analysis_does_not_depend_on_chunking(wave):
    whole = FrameAnalyzer(FPS)
    whole.feed(wave)
    ref = whole.analyse(200)
    parts = FrameAnalyzer(FPS)
    rng = np.random.default_rng(1)
    lv, f0, i = [], [], 0
    while parts.frames_done < 200:
        k = int(rng.integers(1, 3000))
        parts.feed(wave[i:i + k])
        i += k
        stop = min(200, parts.ready())
        if stop > parts.frames_done:
            a, b = parts.analyse(stop)
            lv.append(a)
            f0.append(b)
    np.testing.assert_array_equal(np.concatenate(lv), ref[0])
    np.testing.assert_array_equal(np.concatenate(f0), ref[1])


# ------------------------------------------------------------------------------- determinism
def test_same_seed_same_motion_other_seed_other_motion(wave):
    a = layered(wave, seed=7)
    b = layered(wave, seed=7)
    c = layered(wave, seed=8)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.channels == c.channels
    assert not np.allclose(a.channel("eyeBlinkLeft"), c.channel("eyeBlinkLeft"))
    assert not np.allclose(a.head, c.head)


def test_every_layer_moves_and_stays_in_bounds(wave):
    a = layered(wave)
    blink = a.channel("eyeBlinkLeft")
    assert blink.max() > 0.5 and a.channel("eyeBlinkRight").max() > 0.5
    assert a.channel("eyeSquintLeft").max() == pytest.approx(0.15 * blink.max(), abs=1e-3)
    assert a.weights(GAZE_CHANNELS).max() > 0.05
    assert a.channel("browInnerUp").max() > 0.1
    head = np.degrees(a.head)
    assert np.ptp(head, axis=0).max() > 2.0
    assert np.abs(head).max() < 12.0  # plausible, documented bounds
    # Gaze never rolls the eyes past the bounds (15 deg yaw, 10 deg pitch).
    w = a.weights(GAZE_CHANNELS) * EYE_LOOK_DEGREES
    assert w.max() <= 15.0 + 1e-4
    assert a.values.min() >= 0.0 or a.has("head.rx")


def test_blink_shape_and_timing(wave):
    a = layered(wave, gaze=0, brows=0, head=0)
    b = a.channel("eyeBlinkLeft")
    starts = np.nonzero((b[1:] > 0.5) & (b[:-1] <= 0.5))[0]
    minutes = len(wave) / 16000 / 60
    assert 8 <= len(starts) / minutes <= 40
    # A blink is short: every closure above half lasts under 400 ms.
    above = b > 0.5
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], above.astype(int), [0]]))))[::2]
    assert runs.max() / FPS < 0.4


def test_blinks_prefer_pauses(wave):
    from flamesync.expressive.prosody import ProsodyTracker

    n = int(len(wave) / 16000 * FPS)
    fa = FrameAnalyzer(FPS)
    fa.feed(wave)
    pros = ProsodyTracker(FPS).update(*fa.analyse(n))
    # Frames in a pause or within 300 ms of one: where a blink "at a pause" may start.
    near = np.convolve((~pros.active).astype(float), np.ones(2 * int(0.3 * FPS) + 1), mode="same") > 0
    hits = []
    for seed in range(6):
        stream = LayerStream(FPS, Layers(gaze=0, brows=0, head=0, seed=seed))
        stream.feed(wave)
        stream.advance(n, final=True)
        hits += list(near[np.minimum(np.round(np.asarray(stream.blink_starts) * FPS).astype(int), n - 1)])
    assert np.mean(hits) > near.mean() + 0.08


# ---------------------------------------------------------------------------------- controls
@pytest.mark.parametrize("layer,names", [
    ("blinks", BlinkLayer.channels), ("gaze", GAZE_CHANNELS), ("brows", BrowLayer.channels[:3]), ("head", ("head.rx",)),
])
def test_each_control_switches_its_layer_only(wave, layer, names):
    on = layered(wave)
    off = layered(wave, **{layer: 0})
    half = layered(wave, **{layer: 0.5})
    for n in names:
        assert np.abs(on.channel(n)).max() > 0
        assert np.abs(off.channel(n)).max() == 0, n
    # The other layers do not change when one is switched off (independent random streams).
    others = [c for c in on.channels if c not in names and not c.startswith(("head", "eyeSquint", "cheekSquint"))]
    if layer == "head":
        others = [c for c in on.channels if not c.startswith("head")]
    np.testing.assert_array_equal(on.select(others).values, off.select(others).values)
    if layer != "head":
        np.testing.assert_allclose(half.weights(names[:2]), 0.5 * on.weights(names[:2]), atol=1e-6)
    else:
        np.testing.assert_allclose(np.degrees(half.head), 0.5 * np.degrees(on.head), atol=0.05)


def test_negative_emotion_turns_brow_raises_into_frowns(wave):
    calm = layered(wave, emotion="angry", intensity=1.0, brows=0)
    stressed = layered(wave, emotion="angry", intensity=1.0)
    extra = stressed.channel("browDownLeft") - calm.channel("browDownLeft")
    assert extra.max() > 0.1  # emphasis lowers the brows
    assert np.array_equal(stressed.channel("browInnerUp"), calm.channel("browInnerUp"))  # angry: frown share 1


def test_strength_and_settings_are_checked():
    with pytest.raises(InputError, match="blinks strength"):
        Layers(blinks=3)
    with pytest.raises(InputError, match="unknown emotion"):
        Layers(emotion="bored")
    with pytest.raises(InputError, match="intensity"):
        Layers(emotion="happy", intensity=1.5)
    with pytest.raises(InputError, match="seed"):
        Layers(seed=-1)
    with pytest.raises(InputError, match="key time"):
        Layers(keys=[("soon", "happy", 1.0)])
    assert Layers(keys=[(2, "sad", 0.5), (0, "happy", 1)]).emotion_keys[0].emotion == "happy"  # sorted
    assert not Layers(blinks=0, gaze=0, brows=0, head=0).active
    assert Layers(blinks=0, gaze=0, brows=0, head=0, emotion="sad").active


def test_all_off_leaves_the_animation_alone(wave):
    anim = blank(wave)
    assert add_layers(anim, wave, Layers().off()) is anim


# --------------------------------------------------------------------------------- emotions
def _bilabial_take():
    from flamesync.phonetics.teacher import phones_to_animation
    from flamesync.phonetics.types import PhoneSegment

    seq = "_ m a p a b i m u p i b a m ɔ p _".split()
    phones, t = [], 0.0
    for ph in seq:
        d = 0.3 if ph == "_" else (0.09 if ph in "pbm" else 0.16)
        phones.append(PhoneSegment(t, t + d, ph, ph))
        t += d
    return phones, phones_to_animation(phones, fps=50, duration=t), speechlike(t, seed=4)


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_emotion_never_blocks_closures_or_openings(emotion):
    from flamesync.face import load_face

    phones, speech, audio = _bilabial_take()
    anim = add_layers(speech, audio, Layers(emotion=emotion, intensity=1.0, blinks=2, brows=2, head=2, gaze=2))
    for c in SPEECH_ONLY:
        if speech.has(c):
            np.testing.assert_array_equal(anim.channel(c), speech.channel(c), err_msg=c)
    face = load_face("default")
    opening = np.asarray(face.mouth_opening(face.animate(anim)))
    for p in phones:
        frames = opening[int(round(p.start * 50)): int(round(p.end * 50)) + 1]
        if p.phone in ("p", "b", "m"):
            assert frames.min() < 0.002, (emotion, p)  # the closure threshold of flamesync eval
        elif p.phone in ("a", "ɔ"):
            assert frames.max() > 0.006, (emotion, p)
    if emotion != "neutral":
        pose_moved = [c for c in EMOTION_CHANNELS if np.abs(anim.channel(c) - 0).max() > 0.05]
        assert pose_moved


def test_emotion_keys_blend_over_time(tmp_path, wave):
    path = tmp_path / "mood.tsv"
    path.write_text("time\temotion\tintensity\n0\tneutral\t0\n10\thappy\t1\n# a comment\n30 sad 0.8\n")
    keys = load_keys(path)
    assert [k.emotion for k in keys] == ["neutral", "happy", "sad"]
    a = add_layers(blank(wave), wave, Layers(keys=keys, blinks=0, gaze=0, brows=0, head=0))
    smile = a.channel("mouthSmileLeft")
    assert smile[0] == 0 and smile[int(10 * FPS)] == pytest.approx(0.45, abs=1e-4)
    assert smile[int(5 * FPS)] == pytest.approx(0.225, abs=0.01)
    assert a.channel("mouthFrownLeft")[int(35 * FPS)] == pytest.approx(0.8 * 0.35, abs=1e-4)
    j = tmp_path / "mood.json"
    j.write_text(json.dumps([{"time": 0, "emotion": "angry", "intensity": 0.5}, [2, "surprised", 1]]))
    assert [k.emotion for k in load_keys(j)] == ["angry", "surprised"]


@pytest.mark.parametrize("text,msg", [
    ("0 furious 1\n", "unknown emotion"), ("x happy 1\n", "not a number"), ("0 happy 2\n", "intensity"),
    ("", "no emotion keys"), ("0 happy 1 2 3\n", "expected"),
])
def test_bad_emotion_keys_are_one_line_errors(tmp_path, text, msg):
    p = tmp_path / "k.tsv"
    p.write_text(text)
    with pytest.raises(InputError, match=msg):
        load_keys(p)


# -------------------------------------------------------------------------------- streaming
def test_streaming_equals_offline_for_every_layer():
    import torch

    from flamesync.net.infer import LoadedModel
    from flamesync.net.model import FlameSyncNet, ModelConfig
    from flamesync.net.stream import Streamer
    from flamesync.pipeline import animate

    torch.manual_seed(0)
    cfg = ModelConfig(dim=32, heads=2, layers=2, attn_past=8, attn_future=(1, 1), dropout=0.0)
    model = LoadedModel(FlameSyncNet(cfg), {})
    audio = speechlike(12.0, seed=2)
    layers = Layers(keys=load_keys_rows([[0, "happy", 0.5], [6, "angry", 1.0]]), seed=5)
    offline = animate(audio, sample_rate=16000, fps=50, backend="model", model=model, layers=layers)
    s = Streamer(model, layers=layers)
    rng = np.random.default_rng(3)
    parts, i = [], 0
    while i < len(audio):
        k = int(rng.integers(1, 7000))
        parts.append(s.push(audio[i:i + k]))
        i += k
        # Fixed latency: the layers never hold frames back beyond the network's own look-ahead.
        expect = int(np.floor((min(i, len(audio)) / 16000 - s.lookahead_seconds) * 50 + 1e-9)) + 1
        assert s.frames_out == max(0, expect)
    parts.append(s.finish())
    assert all(p.channels == offline.channels for p in parts)
    got = np.concatenate([p.values for p in parts])
    assert got.shape == offline.values.shape
    np.testing.assert_allclose(got, offline.values, atol=1e-5, rtol=0)
    for layer_channel in ("eyeBlinkLeft", "eyeLookOutLeft", "browInnerUp", "head.rx", "mouthSmileLeft"):
        assert np.abs(offline.channel(layer_channel)).max() > 0, layer_channel


def load_keys_rows(rows):
    from flamesync.expressive.emotion import keys_from_rows

    return keys_from_rows(rows)


# ---------------------------------------------------------------------------------- exports
def _known_take(n: int = 40) -> tuple[Animation, np.ndarray, np.ndarray]:
    t = np.arange(n) / FPS
    ypr = np.stack([6 * np.sin(2 * np.pi * t), -4 * np.cos(3 * t), 2 * np.sin(5 * t)], axis=1)
    gaze = np.stack([12 * np.sin(4 * t), -8 * np.sin(2 * t)], axis=1)
    data = {c: np.zeros(n) for c in ARKIT_52}
    for c, col in zip(GAZE_CHANNELS, gaze_to_weights(gaze).T):
        data[c] = col
    data["eyeBlinkLeft"] = np.linspace(0, 1, n)
    anim = Animation.from_channels(fps=FPS, data=data, head=head_rotvec(ypr))
    return anim, ypr, gaze


def test_head_rotvec_and_sway_equal_their_general_forms_exactly():
    """head_rotvec and HeadLayer.sway are written out for speed; they must give the very numbers of
    the quaternion composition and the term-by-term sum they replace (offline and live share them)."""
    from flamesync.expressive.engine import _head_rotvec_composed
    from flamesync.expressive.layers import HeadLayer

    rng = np.random.default_rng(4)
    ypr = np.concatenate([20 * rng.standard_normal((500, 3)), 1e-5 * rng.standard_normal((200, 3)),
                          1e-8 * rng.standard_normal((100, 3)), np.zeros((5, 3))])
    ypr[::3, 1] = 0.0
    ypr[::4, 0] = -ypr[::4, 0]
    np.testing.assert_array_equal(head_rotvec(ypr), _head_rotvec_composed(ypr))
    head = HeadLayer(50.0, seed=7, degrees=4.5)
    t = np.arange(3000) / 50.0
    ref = np.zeros((len(t), 3))
    for axis, terms in enumerate(head._sway):
        for f, ph, a in terms:
            ref[:, axis] += a * np.sin(2 * np.pi * f * t + ph)
    np.testing.assert_array_equal(head.sway(t), ref * (4.5 / 3.0))


def test_live_link_csv_carries_head_and_eye_rotation(tmp_path):
    from flamesync.export import export

    anim, ypr, gaze = _known_take()
    path = export(anim, tmp_path / "take.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    col = {k: np.array([float(r[k]) for r in rows]) for k in rows[0] if k != "Timecode"}
    np.testing.assert_allclose(np.degrees(col["HeadYaw"]), ypr[:, 0], atol=1e-3)
    np.testing.assert_allclose(np.degrees(col["HeadPitch"]), ypr[:, 1], atol=1e-3)
    np.testing.assert_allclose(np.degrees(col["HeadRoll"]), ypr[:, 2], atol=1e-3)
    for eye in ("Left", "Right"):
        # Yaw positive toward the face's left, pitch positive looking down (as for the head).
        np.testing.assert_allclose(np.degrees(col[f"{eye}EyeYaw"]), gaze[:, 0], atol=1e-3)
        np.testing.assert_allclose(np.degrees(col[f"{eye}EyePitch"]), -gaze[:, 1], atol=1e-3)
    np.testing.assert_allclose(col["EyeBlinkLeft"], anim.channel("eyeBlinkLeft"), atol=1e-5)


def test_live_link_csv_of_an_animated_take_has_a_live_face(tmp_path, wave):
    from flamesync.export import export

    anim = layered(wave[: 16000 * 12])
    path = export(anim, tmp_path / "take.csv")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    values = np.array([[float(x) for x in r[2:]] for r in rows[1:]])
    moving = {rows[0][2 + j] for j in np.nonzero(np.abs(values).max(axis=0) > 0)[0]}
    assert {"EyeBlinkLeft", "EyeBlinkRight", "BrowInnerUp", "HeadYaw", "HeadPitch", "HeadRoll",
            "LeftEyeYaw", "RightEyePitch", "EyeLookOutLeft"} <= moving


def test_gltf_carries_head_rotation_and_gaze(tmp_path):
    import pygltflib

    from _export_helpers import gltf_validator, validate_gltf
    from flamesync.export import export
    from flamesync.export.gltf import _blob_of, _read_accessor, read_weights
    from flamesync.face import load_face
    from flamesync.numeric import quat_to_rotvec

    anim, ypr, gaze = _known_take(24)
    path = export(anim, tmp_path / "take.glb", face=load_face("default"))
    gltf = pygltflib.GLTF2.load(str(path))
    blob = _blob_of(gltf, path)
    head_node = next(i for i, n in enumerate(gltf.nodes) if n.name == "head")
    ch = next(c for c in gltf.animations[0].channels if c.target.node == head_node and c.target.path == "rotation")
    quats = _read_accessor(gltf, blob, gltf.animations[0].samplers[ch.sampler].output)  # x, y, z, w
    rot = quat_to_rotvec(quats[:, [3, 0, 1, 2]])
    np.testing.assert_allclose(rot, anim.head, atol=1e-5)
    _, weights, names = read_weights(path)
    for c in GAZE_CHANNELS:
        np.testing.assert_allclose(weights[:, names.index(c)], anim.channel(c), atol=1e-6)
    if gltf_validator() is not None:
        issues = validate_gltf(path)["issues"]
        assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:5]


# -------------------------------------------------------------------------------------- CLI
def _cli(*args):
    env = {"PYTHONPATH": str(REPO)}
    import os

    env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "flamesync", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    import soundfile as sf

    path = tmp_path_factory.mktemp("clip") / "speech.wav"
    sf.write(str(path), speechlike(8.0, seed=9), 16000)
    return path


def test_cli_flags_switch_layers_and_mouth_only(clip, tmp_path):
    outs = {}
    for name, flags in {"on": [], "mouth": ["--mouth-only"], "noblink": ["--no-blinks"],
                        "late": ["--timing-offset", "0.1", "--backend", "model"],
                        "base": ["--backend", "model"], "seed": ["--seed", "11"]}.items():
        out = tmp_path / f"{name}.npz"
        proc = _cli("animate", clip, "-o", out, *flags)
        assert proc.returncode == 0, proc.stderr
        outs[name] = Animation.load(out)
    on, mouth = outs["on"], outs["mouth"]
    assert not mouth.has("eyeBlinkLeft") and not mouth.has("head.rx")
    assert on.channel("eyeBlinkLeft").max() > 0.5 and on.has("head.rx")
    for c in mouth.channels:
        if c in SPEECH_ONLY or c.startswith("jaw."):  # the lips are the same with the layers on
            np.testing.assert_array_equal(on.channel(c), mouth.channel(c), err_msg=c)
    assert outs["noblink"].channel("eyeBlinkLeft").max() == 0
    np.testing.assert_array_equal(outs["noblink"].head, on.head)
    assert not np.array_equal(outs["seed"].channel("eyeBlinkLeft"), on.channel("eyeBlinkLeft"))
    late, base = outs["late"], outs["base"]
    np.testing.assert_allclose(late.values[3:], base.values[:-3], atol=1e-6)  # 0.1 s = 3 frames at 30 fps


@pytest.mark.parametrize("flags,msg", [
    (["--emotion", "bored"], "unknown emotion"), (["--intensity", "2", "--emotion", "happy"], "intensity"),
    (["--head", "-1"], "head strength"), (["--emotion-keys", "missing.tsv"], "not found"),
    (["--timing-offset", "nan"], "timing-offset"),
])
def test_cli_bad_layer_options_fail_in_one_line(clip, tmp_path, flags, msg):
    out = tmp_path / "x.npz"
    proc = _cli("animate", clip, "-o", out, *flags)
    assert proc.returncode != 0
    assert msg in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


# --------------------------------------------------------------------------------------- eval
def test_alive_metrics_measure_what_they_say():
    from flamesync.eval.alive import alive_metrics, blinks, checks, pause_mask, pool
    from flamesync.phonetics.types import PhoneSegment

    fps, n = 50.0, 3000  # one minute
    lid = np.zeros(n)
    for s in range(100, n - 10, 150):  # 20 blinks, 10 frames (200 ms) above 0.1 each
        lid[s: s + 10] = [0.2, 0.6, 1.0, 1.0, 0.9, 0.7, 0.5, 0.3, 0.15, 0.12]
    data = {"eyeBlinkLeft": lid, "eyeBlinkRight": lid, "browInnerUp": np.zeros(n)}
    data["browInnerUp"][300::600] = 0.5  # 5 raises
    t = np.arange(n) / fps
    ypr = np.stack([2 * np.sin(t), 3 * np.sin(0.5 * t), np.zeros(n)], axis=1)
    anim = Animation.from_channels(fps=fps, data=data, head=head_rotvec(ypr))
    starts, durs = blinks(anim)
    assert len(starts) == 20 and np.allclose(durs, 0.2)
    phones = [PhoneSegment(1.9, 2.3, "_", "sil"), PhoneSegment(10.0, 10.1, "_", "sil")]
    mask = pause_mask(phones, n, fps, near=0.3)
    assert mask[int(1.7 * fps)] and not mask[int(1.5 * fps)] and not mask[int(10.05 * fps)]  # 100 ms: no pause
    m = alive_metrics(anim, speechlike(60.0), phones, 60.0)
    assert m["blinks_per_min"] == pytest.approx(20.0) and m["blink_ms"] == pytest.approx(200.0)
    assert m["blinks_at_pause"] == pytest.approx(1 / 20)  # the blink at 2.0 s
    assert m["head_yaw_range"] == pytest.approx(4.0, abs=0.05) and m["head_pitch_range"] == pytest.approx(6.0, abs=0.05)
    assert m["brow_raises_per_min"] == pytest.approx(5.0)
    overall = pool([m, m])
    assert overall["blinks_per_min"] == pytest.approx(20.0)
    names = [what for what, _, _ in checks(overall)]
    assert any("blink rate" in w for w in names) and any("F0" in w for w in names)


def test_lip_metrics_ignore_the_layers(realspeech_dir):
    """The lips are scored in the head's frame: the layers leave every lip metric unchanged."""
    from flamesync.audio.io import load_audio
    from flamesync.eval.runner import _aligned_phones, realspeech_clips, score_animation
    from flamesync.face import load_face
    from flamesync.phonetics.teacher import phones_to_animation

    clip = next(c for c in realspeech_clips(realspeech_dir) if "LJ001-0001" in c.name)
    wave = load_audio(clip.path)
    phones = _aligned_phones(clip, wave, 16000)
    face = load_face("default")
    speech = phones_to_animation(phones, fps=50, duration=len(wave) / 16000)
    alive = add_layers(speech, wave, Layers(head=2.0))
    a = score_animation(speech, phones, len(wave) / 16000, face, system="s", clip="c")
    b = score_animation(alive, phones, len(wave) / 16000, face, system="s", clip="c")
    for k in ("closure", "open_vowel_mm", "rest", "lag_ms", "corr", "jitter", "closed_vowels"):
        assert getattr(a, k) == pytest.approx(getattr(b, k), abs=1e-6, nan_ok=True), k


def test_say_takes_the_same_layer_options(tmp_path):
    from flamesync.cli import main

    alive, mouth = tmp_path / "a.npz", tmp_path / "m.npz"
    assert main(["say", "Put a cap on it, Bob.", "-o", str(alive), "--emotion", "happy", "--seed", "2"]) == 0
    assert main(["say", "Put a cap on it, Bob.", "-o", str(mouth), "--mouth-only"]) == 0
    a, m = Animation.load(alive), Animation.load(mouth)
    assert a.has("head.rx") and a.channel("mouthSmileLeft").max() > 0.2 and not m.has("head.rx")
    # (Two TTS runs differ slightly, so the lips are compared on one take elsewhere.)
    assert a.meta["expressive"]["emotion"] == [[0.0, "happy", 0.6]] and "expressive" not in m.meta
