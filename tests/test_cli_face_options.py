"""--face and --landmarks on the command line: every face spec is documented where --face is
accepted, and user landmarks reach the ARKit-to-FLAME fit from 'retarget' and from 'animate'."""

import json
from pathlib import Path

import numpy as np
import pytest

from flamesync.cli import build_parser, main

EXAMPLE = Path(__file__).resolve().parents[1] / "assets" / "examples"


def _help(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return " ".join(sub.choices[command].format_help().split())


@pytest.mark.parametrize("command", ["animate", "render", "export"])
def test_face_help_lists_every_face_spec(command):
    text = _help(command)
    assert "'default'" in text and "'flame:" in text and "'head:" in text


@pytest.fixture()
def flame_spec(tmp_path, monkeypatch):
    """A small FLAME model file, a fresh map cache, and a fit that records its landmarks."""
    import flamesync.retarget.flame_fit as fit_module
    from flame_synth import make_synthetic_flame, write_flame_pkl

    monkeypatch.setenv("FLAMESYNC_CACHE", str(tmp_path / "cache"))
    pkl = tmp_path / "generic_model.pkl"
    write_flame_pkl(pkl, make_synthetic_flame(n_expr=10))
    fits = []

    def recording_fit(flame, *, source=None, ridge=None, landmarks=None):
        # The real fit registers the default head onto the template (a minute of CPU); what is
        # tested here is which landmarks it is given and how the result is cached.
        fits.append(landmarks)
        report = {"registration_mm": {"mean": 0.0, "median": 0.0, "max": 0.0, "matched": 1.0,
                                      "landmarks_mean": 0.0, "landmarks_max": 0.0},
                  "correspondence_mm": {"mean": 0.0, "max": 0.0}, "landmarks": {},
                  "target_with_offsets": 0, "target_vertices": 0}
        return fit_module.FlameMap(np.zeros((flame.n_expr, 52), np.float32), np.zeros((3, 52), np.float32),
                                   {c: (0.0, 0.0) for c in fit_module.ARKIT_52}, report)

    monkeypatch.setattr(fit_module, "fit_flame_map", recording_fit)
    lm1, lm2 = tmp_path / "lm1.json", tmp_path / "lm2.json"
    lm1.write_text(json.dumps({"nose_tip": 3, "chin": [0.0, -0.1, 0.05]}))
    lm2.write_text(json.dumps({"nose_tip": 4, "chin": [0.0, -0.1, 0.05]}))
    return f"flame:{pkl}", lm1, lm2, fits


def test_retarget_flame_uses_the_landmarks(flame_spec):
    spec, lm1, _, fits = flame_spec
    assert main(["--progress", "none", "retarget", spec, "--landmarks", str(lm1)]) == 0
    assert [Path(x) for x in fits] == [lm1]
    # cached with those landmarks: asking again with them, or with none, does not refit
    assert main(["--progress", "none", "retarget", spec, "--landmarks", str(lm1)]) == 0
    assert main(["--progress", "none", "retarget", spec]) == 0
    assert len(fits) == 1


def test_animate_flame_face_takes_landmarks(flame_spec, tmp_path):
    spec, lm1, lm2, fits = flame_spec
    out = tmp_path / "take.flame.npz"
    wav = str(EXAMPLE / "hello.wav")
    assert main(["--progress", "none", "animate", wav, "--face", spec, "--landmarks", str(lm1), "-o", str(out)]) == 0
    assert [Path(x) for x in fits] == [lm1] and out.is_file()
    # other landmarks: fitted again with them
    assert main(["--progress", "none", "animate", wav, "--face", spec, "--landmarks", str(lm2), "-o", str(out)]) == 0
    assert [Path(x) for x in fits] == [lm1, lm2]


def test_landmarks_need_a_flame_face(tmp_path, capsys):
    lm = tmp_path / "lm.json"
    lm.write_text("{}")
    assert main(["animate", str(EXAMPLE / "hello.wav"), "--landmarks", str(lm), "-o", str(tmp_path / "a.npz")]) == 2
    assert "--landmarks is for FLAME faces" in capsys.readouterr().err
