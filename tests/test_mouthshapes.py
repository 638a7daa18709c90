"""2D mouth shapes: Rhubarb's exact JSON/TSV layout, closures on /b m p/, idle only in silence, no
flicker; OVR viseme weights."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from flamesync.animation import Animation
from flamesync.cli import main
from flamesync.mouthshapes import (MIN_CLOSURE, MIN_CUE, OVR_VISEMES, RHUBARB_SHAPES, ovr_weights, rhubarb_cues,
                                   stabilise)

pytest.importorskip("pocketsphinx")

BILABIAL = {"b", "m", "p"}


@pytest.fixture(scope="module")
def bob(tmp_path_factory) -> Path:
    """'Bob bought a map' spoken by espeak, then animated from the recording and its transcript
    (the --text path: forced alignment), written as Rhubarb JSON and TSV and OVR CSV."""
    d = tmp_path_factory.mktemp("bob")
    assert main(["--progress", "none", "say", "Bob bought a map", "-o", str(d / "say.npz")]) == 0
    assert main(["--progress", "none", "animate", str(d / "say.wav"), "--text", "Bob bought a map",
                 "-o", str(d / "bob.rhubarb.json"), "-o", str(d / "bob.rhubarb.tsv"), "-o", str(d / "bob.ovr.csv"),
                 "-o", str(d / "bob.npz")]) == 0
    return d


def _cues(path: Path) -> list[tuple[float, float, str]]:
    doc = json.loads(path.read_text())
    return [(c["start"], c["end"], c["value"]) for c in doc["mouthCues"]]


def test_rhubarb_json_has_exactly_rhubarbs_fields(bob):
    text = (bob / "bob.rhubarb.json").read_text()
    doc = json.loads(text)
    assert list(doc) == ["metadata", "mouthCues"]
    assert list(doc["metadata"]) == ["soundFile", "duration"]
    assert Path(doc["metadata"]["soundFile"]).name == "say.wav"
    assert doc["metadata"]["duration"] == pytest.approx(0.98, abs=0.05)
    cues = doc["mouthCues"]
    assert cues and all(list(c) == ["start", "end", "value"] for c in cues)
    assert {c["value"] for c in cues} <= set("ABCDEFGHX")
    # Contiguous from 0 to the duration, times in centiseconds written with two decimals.
    assert cues[0]["start"] == 0 and cues[-1]["end"] == doc["metadata"]["duration"]
    assert all(a["end"] == b["start"] for a, b in zip(cues, cues[1:]))
    assert all(c["end"] > c["start"] for c in cues)
    assert re.findall(r'"start": (\S+),', text) and all(re.fullmatch(r"\d+\.\d\d", s)
                                                        for s in re.findall(r'"(?:start|end|duration)": ([^,\s}]+)', text))
    # No two neighbours with the same shape (they would be one cue).
    assert all(a["value"] != b["value"] for a, b in zip(cues, cues[1:]))


def test_bob_bought_a_map_closes_on_every_bilabial_and_idles_only_in_silence(bob):
    anim = Animation.load(bob / "bob.npz")
    phones = anim.meta["phones"]
    assert sum(p[2] in BILABIAL for p in phones) == 5  # b, b, b, m, p (both b's of "Bob" + "bought")
    cues = _cues(bob / "bob.rhubarb.json")
    for start, end, phone in phones:
        if phone in BILABIAL:
            mid = 0.5 * (start + end)
            shape = next(v for a, b, v in cues if a <= mid < b)
            assert shape == "A", f"/{phone}/ at {start:.2f}-{end:.2f} s shows {shape}"
    speech = [(a, b) for a, b, p in phones if p != "_"]
    for a, b, v in cues:
        if v == "X":
            overlap = sum(max(0.0, min(b, e) - max(a, s)) for s, e in speech)
            assert overlap <= 0.011, f"X at {a:.2f}-{b:.2f} s overlaps speech by {overlap:.3f} s"
    # Nothing but closures is shorter than the minimum cue (the final X may be cut by the end).
    for a, b, v in cues[:-1]:
        assert v == "A" or b - a >= MIN_CUE - 0.011, (a, b, v)
        assert v != "A" or b - a >= MIN_CLOSURE - 0.011


def test_rhubarb_tsv_matches_the_json(bob):
    rows = [r.split("\t") for r in (bob / "bob.rhubarb.tsv").read_text().splitlines()]
    cues = _cues(bob / "bob.rhubarb.json")
    assert [(float(t), v) for t, v in rows[:len(cues)]] == [(a, v) for a, _, v in cues]
    assert all(re.fullmatch(r"\d+\.\d\d", t) and v in RHUBARB_SHAPES for t, v in rows)


def test_weights_path_gives_valid_stable_cues(bob):
    import flamesync

    anim = flamesync.animate(bob / "say.wav")  # the network: no phones
    assert "phones" not in anim.meta
    cues = rhubarb_cues(anim)
    assert cues[0][0] == 0 and all(a[1] == b[0] for a, b in zip(cues, cues[1:]))
    values = [v for _, _, v in cues]
    assert "A" in values and "H" not in values  # closures are seen; the tongue is not
    inner = cues[1:-1]
    assert all(v == "A" or b - a >= MIN_CUE - 0.011 for a, b, v in inner)
    # The weights path calls X only where the audio is silent: never in the loud middle.
    from flamesync.audio.io import load_audio

    wave = load_audio(bob / "say.wav")
    for a, b, v in cues:
        if v == "X" and b - a > 0.03:
            seg = wave[int(a * 16000):int(b * 16000)]
            assert np.sqrt(np.mean(seg ** 2)) < 0.05 * np.abs(wave).max()


def test_stabilise_removes_flicker_and_keeps_short_closures():
    # Alternating 20 ms shapes (flicker), a 10 ms closure, a 50 ms pause inside speech.
    segs = [[i * 0.02, (i + 1) * 0.02, "BC"[i % 2]] for i in range(10)]
    segs += [[0.20, 0.21, "A"], [0.21, 0.40, "D"], [0.40, 0.45, "X"], [0.45, 0.70, "C"], [0.70, 1.0, "X"]]
    out = stabilise([list(s) for s in segs])
    assert all(b - a >= MIN_CUE - 1e-9 or v == "A" or i == len(out) - 1 for i, (a, b, v) in enumerate(out))
    closure = [s for s in out if s[2] == "A"]
    assert len(closure) == 1 and closure[0][1] - closure[0][0] >= MIN_CLOSURE - 1e-9
    assert [s[2] for s in out].count("X") == 1  # the short pause holds the shape before it
    assert out[-1][2] == "X" and all(a[1] == pytest.approx(b[0]) for a, b in zip(out, out[1:]))


def test_ovr_visemes(bob):
    with open(bob / "bob.ovr.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["frame", "time", *OVR_VISEMES]
    w = np.array([[float(x) for x in r[2:]] for r in rows[1:]])
    assert w.shape[1] == 15 and np.allclose(w.sum(axis=1), 1.0, atol=1e-5) and (w >= 0).all()
    anim = Animation.load(bob / "bob.npz")
    for start, end, phone in anim.meta["phones"]:
        if phone in BILABIAL and end - start >= 0.05:
            frame = int(round(0.5 * (start + end) * anim.fps))
            assert OVR_VISEMES[int(np.argmax(w[frame]))] == "PP"
    assert OVR_VISEMES[int(np.argmax(w[-1]))] == "sil"
    # From weights alone: same layout, a mix that explains the face, silence where it rests.
    net = ovr_weights(anim.replace(meta={}))
    assert net.shape == (anim.n_frames, 15) and np.allclose(net.sum(axis=1), 1.0, atol=1e-5)
    rest = ovr_weights(Animation.zeros(5, fps=30.0))
    assert np.allclose(rest[:, 0], 1.0)


def test_openxr_visemes_are_the_ovr_weights_under_openxr_names(bob, tmp_path):
    from flamesync.export import export
    from flamesync.mouthshapes import OPENXR_VISEMES

    anim = Animation.load(bob / "bob.npz")
    export(anim, tmp_path / "t.openxr.csv")
    export(anim, tmp_path / "t.openxr.json")
    rows = (tmp_path / "t.openxr.csv").read_text().splitlines()
    assert rows[0].split(",")[2:] == list(OPENXR_VISEMES)
    assert OPENXR_VISEMES[0] == "XR_FACE_TRACKING_VISEME_SIL_META" and OPENXR_VISEMES[5] == "XR_FACE_TRACKING_VISEME_KK_META"
    ovr = (bob / "bob.ovr.csv").read_text().splitlines()
    assert rows[1:] == ovr[1:]  # same values, same enumeration order
    doc = json.loads((tmp_path / "t.openxr.json").read_text())
    assert doc["format"] == "flamesync.openxr-visemes" and doc["visemes"] == list(OPENXR_VISEMES)
    assert len(doc["frames"]) == anim.n_frames and all(len(f) == 15 for f in doc["frames"])


def test_weights_path_opens_b_c_d_by_jaw_relative_to_the_take():
    jaw = np.r_[[0.1] * 10, [0.3] * 10, [0.6] * 10]
    for scale in (1.0, 0.5):  # a rig or network that opens half as far reads the same
        anim = Animation.from_channels(fps=30.0, data={"jawOpen": scale * jaw})
        assert [v for _, _, v in rhubarb_cues(anim)] == ["B", "C", "D"]
    closed = Animation.from_channels(fps=30.0, data={"jawOpen": [0.07] * 9, "mouthClose": [0.07] * 9,
                                                     "mouthPressLeft": [0.25] * 9, "mouthPressRight": [0.25] * 9})
    assert [v for _, _, v in rhubarb_cues(closed)] == ["A"]
