"""A tiny procedurally generated corpus with the Corpus reader's API, for the network tests.

Phones are rendered as crude but learnable sounds (vowels as formant-filtered pulse trains, /m/ as a
low hum, /p b/ as silence plus a burst, /s/ as high-passed noise) with piecewise targets that depend
on them, so a model can learn the mapping within a test-sized run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from flamesync.channels import SPEECH_CHANNELS

SR = 16000
FPS = 50

_POSES = {
    "a": {"jawOpen": 0.7, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3},
    "e": {"jawOpen": 0.4, "mouthStretchLeft": 0.3, "mouthStretchRight": 0.3},
    "i": {"jawOpen": 0.15, "mouthSmileLeft": 0.4, "mouthSmileRight": 0.4},
    "o": {"jawOpen": 0.45, "mouthFunnel": 0.5},
    "u": {"jawOpen": 0.2, "mouthPucker": 0.6},
    "m": {"jawOpen": 0.05, "mouthClose": 0.05, "mouthPressLeft": 0.35, "mouthPressRight": 0.35},
    "p": {"jawOpen": 0.05, "mouthClose": 0.05, "mouthPressLeft": 0.45, "mouthPressRight": 0.45},
    "b": {"jawOpen": 0.05, "mouthClose": 0.05, "mouthPressLeft": 0.3, "mouthPressRight": 0.3},
    "s": {"jawOpen": 0.1, "mouthStretchLeft": 0.2, "mouthStretchRight": 0.2},
    "sil": {},
}
_FORMANTS = {"a": (750, 1200), "e": (450, 1900), "i": (280, 2300), "o": (450, 800), "u": (320, 750)}


@dataclass
class PhoneSegment:
    start: float
    end: float
    phone: str
    label: str = ""


@dataclass
class CorpusItem:
    audio: np.ndarray
    sample_rate: int
    targets: np.ndarray
    channels: tuple
    phones: list
    meta: dict = field(default_factory=dict)


def _render(phone: str, n: int, rng: np.random.Generator, f0: float) -> np.ndarray:
    t = np.arange(n) / SR
    if phone in _FORMANTS:
        pulses = np.sign(np.sin(2 * np.pi * f0 * t)) * 0.3
        out = np.zeros(n)
        for f in _FORMANTS[phone]:
            b, a = signal.iirpeak(f, 5.0, fs=SR)
            out += signal.lfilter(b, a, pulses)
        return out * 0.5
    if phone == "m":
        b, a = signal.butter(2, 350, fs=SR)
        return signal.lfilter(b, a, np.sign(np.sin(2 * np.pi * f0 * t))) * 0.15
    if phone in ("p", "b"):
        out = np.zeros(n)
        k = min(n, int(0.012 * SR))
        out[n - k:] = rng.standard_normal(k) * 0.3
        return out
    if phone == "s":
        b, a = signal.butter(4, 4000, "highpass", fs=SR)
        return signal.lfilter(b, a, rng.standard_normal(n)) * 0.15
    return np.zeros(n)


def make_item(rng: np.random.Generator, seconds: float = 3.0) -> CorpusItem:
    phones, chunks = [], []
    t = 0.0
    f0 = rng.uniform(100, 220)
    while t < seconds:
        ph = str(rng.choice(["a", "e", "i", "o", "u", "m", "p", "b", "s", "sil"],
                            p=[.13, .12, .12, .1, .1, .1, .08, .08, .09, .08]))
        dur = float(rng.uniform(0.06, 0.12) if ph in "pbms" else rng.uniform(0.08, 0.25))
        n = int(dur * SR)
        chunks.append(_render(ph, n, rng, f0))
        phones.append(PhoneSegment(t, t + n / SR, ph if ph != "sil" else "", ph))
        t += n / SR
    audio = np.concatenate(chunks)
    n_frames = int(np.ceil(len(audio) / (SR / FPS)))
    targets = np.zeros((n_frames, len(SPEECH_CHANNELS)), np.float32)
    ft = np.arange(n_frames) / FPS
    for seg in phones:
        pose = _POSES[seg.label]
        inside = (ft >= seg.start) & (ft < seg.end)
        for c, v in pose.items():
            targets[inside, SPEECH_CHANNELS.index(c)] = v
    from scipy.ndimage import gaussian_filter1d

    targets = gaussian_filter1d(targets, 1.5, axis=0).astype(np.float32)
    pcm = np.clip(audio * 32767, -32768, 32767).astype(np.int16)
    return CorpusItem(pcm, SR, targets, tuple(SPEECH_CHANNELS), phones, {"voice": "standin"})


class StandinCorpus:
    """In-memory corpus with ``manifest`` and ``items(split)``, like flamesync.data.corpus.Corpus."""

    def __init__(self, *, n_train: int = 24, n_val: int = 6, seed: int = 0, seconds: float = 3.0):
        self.manifest = {"fps": FPS, "sample_rate": SR, "channels": list(SPEECH_CHANNELS), "seed": seed,
                         "stats": {"n_train": n_train, "n_val": n_val}}
        self._sizes = {"train": n_train, "val": n_val, "test_lang": 2}
        self._seed = seed
        self._seconds = seconds

    def items(self, split: str):
        offset = {"train": 0, "val": 1, "test_lang": 2}[split]
        rng = np.random.default_rng([self._seed, offset])
        for _ in range(self._sizes[split]):
            yield make_item(rng, self._seconds)


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def torch_single_thread():
    """Run a module's network tests on one torch thread (restored after).

    Tiny tensors on two threads of a busy 2-core machine are many times slower than on one (the
    OpenMP workers spin against other processes); correctness does not depend on it.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
