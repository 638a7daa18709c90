"""The library call and the `flamesync animate` command end to end (text-assisted path)."""

from pathlib import Path

import numpy as np
import pytest

import flamesync
from flamesync.cli import main
from flamesync.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[1] / "assets" / "examples"


@pytest.fixture(scope="module")
def example_anim():
    text = (EXAMPLE / "hello.txt").read_text()
    return flamesync.animate(EXAMPLE / "hello.wav", text=text, fps=30)


def test_text_animation_covers_audio_and_closes_bilabials(example_anim):
    import soundfile as sf

    info = sf.info(str(EXAMPLE / "hello.wav"))
    anim = example_anim
    assert anim.fps == 30 and abs(anim.duration - info.duration) < 2 / 30
    assert anim.audio_path and Path(anim.audio_path).name == "hello.wav"
    assert anim.meta["backend"] == "text"
    head = flamesync.load_face()
    gap = head.mouth_opening(head.animate(anim))
    phones = [p for p in anim.meta["phones"] if p[2] in ("p", "b", "m")]
    assert len(phones) >= 8  # "Put a cap on it, Bob: maybe ... build a better mouth, bit by bit"
    for start, end, *_ in phones:
        frames = gap[int(start * 30): int(np.ceil(end * 30)) + 1]
        assert frames.min() < 0.001, f"lips open during bilabial at {start:.2f}s"
    assert gap.max() > 0.01  # and the vowels do open the mouth


def test_animate_resamples_to_requested_fps(example_anim):
    text = (EXAMPLE / "hello.txt").read_text()
    a24 = flamesync.animate(EXAMPLE / "hello.wav", text=text, fps=24)
    assert a24.fps == 24 and abs(a24.duration - example_anim.duration) < 2 / 24


def test_unknown_backend_and_missing_text():
    with pytest.raises(InputError, match="backend"):
        flamesync.animate(EXAMPLE / "hello.wav", backend="magic")
    with pytest.raises(InputError, match="transcript"):
        flamesync.animate(EXAMPLE / "hello.wav", backend="text")


def test_cli_animate_writes_every_output(tmp_path, capsys):
    outs = [tmp_path / "take.npz", tmp_path / "take.csv"]
    rc = main(["animate", str(EXAMPLE / "hello.wav"), "--text-file", str(EXAMPLE / "hello.txt"),
               *sum((["-o", str(o)] for o in outs), [])])
    assert rc == 0
    for o in outs:
        assert o.is_file() and o.stat().st_size > 0
    anim = flamesync.Animation.load(outs[0])
    assert anim.has("jawOpen") and anim.n_frames > 100


@pytest.mark.parametrize("argv,needle", [
    (["animate", "missing.wav", "-o", "x.npz", "--text", "hi"], "not found"),
    (["animate", "{wav}", "-o", "x.unknownext", "--text", "hi"], "unknown output format"),
    (["animate", "{wav}", "-o", "x.npz", "--text", "   "], "transcript"),
    (["animate", "{wav}", "-o", "nodir/x.npz", "--text", "hello"], "does not exist"),
])
def test_cli_animate_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{wav}", str(EXAMPLE / "hello.wav")) for a in argv]
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc != 0 and needle in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.glob("*x*")), "partial output left behind"


def test_phone_recognition_backend_needs_no_transcript():
    anim = flamesync.animate(EXAMPLE / "hello.wav", backend="phones", fps=30)
    assert anim.meta["backend"] == "phones" and anim.n_frames > 150
    assert anim.channel("jawOpen").max() > 0.2  # it does move the mouth


def test_word_recognition_backend_hears_words_and_rests_on_silence():
    anim = flamesync.animate(EXAMPLE / "hello.wav", backend="words", fps=30)
    assert anim.meta["backend"] == "words" and anim.meta["mode"] == "words"
    heard = set(anim.meta["text"].split())
    said = {w.strip(".,!?").lower() for w in (EXAMPLE / "hello.txt").read_text().split()}
    assert len(heard & said) >= 2, anim.meta["text"]  # a language model's words, not phone soup
    assert anim.channel("jawOpen").max() > 0.2
    room = 1e-3 * np.random.default_rng(0).standard_normal(16000 * 2).astype(np.float32)  # room tone, no speech
    quiet = flamesync.animate(room, sample_rate=16000, backend="words", fps=30)
    assert quiet.meta["text"] == "" and np.abs(quiet.channel("jawOpen")).max() < 0.05


def test_network_progress_reports_samples_and_can_stop():
    from flamesync.audio import load_audio

    wave = load_audio(EXAMPLE / "hello.wav")
    calls = []
    anim = flamesync.animate(EXAMPLE / "hello.wav", backend="model", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (len(wave), len(wave)) and anim.n_frames > 0

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop

    with pytest.raises(Stop):
        flamesync.animate(EXAMPLE / "hello.wav", backend="model", progress=stop)
