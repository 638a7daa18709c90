"""Training the audio-to-face network on the synthetic corpus.

``train(config)`` reads (or builds) the corpus, trains with on-the-fly acoustic augmentation, logs
losses to ``<out_dir>/log.csv`` (one row per logged step) and ``<out_dir>/log.jsonl`` (validation),
saves ``<out_dir>/last`` checkpoints, resumes from them, and finally calibrates the closure decoder on
noisy, reverberant validation speech and writes ``<out_dir>/final``.

Determinism: the batch of step ``s`` is a pure function of ``(seed, s)`` (its own random generator),
and the torch generator (dropout) is re-seeded from ``(seed, s)`` every step, so an interrupted and
resumed run reproduces the uninterrupted one.
"""

from __future__ import annotations

import copy
import csv
import functools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..audio.features import FeatureConfig, log_mel
from ..errors import FlamesyncError, InputError
from ..fileio import atomic_write_text
from ..numeric import is_finite_number
from .amplitude import OPENING_CHANNELS, fit_quantile_map, smooth_channels
from .augment import AugmentConfig, add_pause_sounds, augment, mask_frequencies
from .checkpoint import average_weights, load_meta, load_optimizer_state, load_weights, save_checkpoint, stem
from .closure import ClosureDecoder, CLOSURE_CHANNELS, calibrate_threshold, vowel_middles
from .model import FlameSyncNet, ModelConfig, count_parameters
from .targets import VISEME_CLASSES, frame_labels

FPS = 50.0
SAMPLES_PER_FRAME = 320

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "out_dir": None,  # default: <cache>/runs/<config name>
    "device": "auto",  # auto | cpu | cuda
    "threads": None,  # torch CPU threads (None: torch's default)
    "data_workers": 1,  # processes preparing batches (augmentation + features) ahead of the trainer
    "init": None,  # checkpoint whose weights start the run (fine-tuning); "default" = the shipped network
    # real: real-speech corpora ({name|path, source, layout, check_share, check_offset};
    # flamesync.data.real), built on first use; check_share: a share of their train speakers left
    # out as a check set (eval --val-half check), check_offset: where its band of the speaker hash
    # starts, so a later check set can share no speaker with an earlier one; real_share: the share of training crops drawn from them
    "corpus": {"path": None, "name": "default", "synth": {}, "real": [], "real_share": 0.5},
    "features": {},
    "model": {},
    "augment": {},
    "train": {
        "steps": 6000,
        "batch_size": 16,
        "crop_seconds": 4.0,
        "lr": 1.5e-3,
        "min_lr_ratio": 0.05,
        "warmup_steps": 300,
        "weight_decay": 0.01,
        "grad_clip": 1.0,
        "p_clean": 0.1,
        "p_silence": 0.2,
        "silence_seconds": [0.5, 3.0],
        "p_pause": 0.0,
        "p_speed": 0.0,
        "speed": [1.0, 1.0],
        "p_tempo": 0.0,
        "tempo": [1.0, 1.0],
        "p_hesitation": 0.0,
        "log_every": 25,
        "val_every": 500,
        "ckpt_every": 250,
        "max_val_items": 64,
        "loss": {"weights": 1.0, "velocity": 0.5, "acceleration": 0.0, "range": 0.0, "closure": 0.5,
                 "closure_pos_weight": 4.0, "closure_hard_negative": 1.0,
                 "closure_hard_negative_visemes": ["TDNL", "KG"], "closure_detection": 0.0, "visemes": 0.2},
    },
    # data: "synthetic" (held-out voices, made noisy and reverberant) or "real" (the real corpora's
    # speaker-disjoint val split, as recorded)
    "calibration": {"max_items": 200, "max_false_rate": 0.03, "amplitude_map": False, "data": "synthetic"},
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Read a YAML training config over :data:`DEFAULTS`; unknown top-level keys are an error."""
    cfg: dict = {}
    name = "default"
    if path is not None:
        import yaml

        p = Path(path)
        if not p.is_file():
            raise InputError(f"training config not found: {p}")
        try:
            cfg = yaml.safe_load(p.read_text("utf-8")) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{p} is not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(cfg, dict):
            raise InputError(f"{p} must contain a mapping of settings")
        name = p.stem
    unknown = set(cfg) - set(DEFAULTS) - {"name"}
    if unknown:
        raise InputError(f"unknown training config keys: {', '.join(sorted(unknown))}")
    # A real corpus's source folder is written relative to the config file.
    for spec in (cfg.get("corpus") or {}).get("real") or ():
        if isinstance(spec, dict) and spec.get("source") and path is not None and not Path(spec["source"]).is_absolute():
            spec["source"] = str((Path(path).resolve().parent / spec["source"]).resolve())
    cfg = _merge(DEFAULTS, cfg)
    cfg = _merge(cfg, overrides or {})
    cfg.setdefault("name", name)
    hard_negative_mask(cfg["train"]["loss"].get("closure_hard_negative_visemes", HARD_NEGATIVE_VISEMES))  # typos fail here
    cal = cfg["calibration"]
    _check_number(cal.get("max_vowel_rate"), "calibration.max_vowel_rate", 0.0, 1.0)
    sm = _check_number(cal.get("opening_smoothing"), "calibration.opening_smoothing", 0.0, 1.0,
                       open_low=True, meaning=" (the smoothing's alpha)")
    closing = _check_number(cal.get("opening_smoothing_closing"), "calibration.opening_smoothing_closing", 0.0, 1.0,
                            open_low=True, meaning=" (the smoothing's alpha where the mouth closes)")
    if closing is not None and sm is None:
        raise InputError("calibration.opening_smoothing_closing needs calibration.opening_smoothing (the rate on rises)")
    if sm is not None and not cal.get("amplitude_map"):
        raise InputError("calibration.opening_smoothing needs calibration.amplitude_map: true "
                         "(the map is what is fitted on the smoothed opening)")
    _check_number(cal.get("closure_attack"), "calibration.closure_attack", 0.0, 1.0, open_low=True,
                  meaning=" (the share of the way to the closure pose the lips move per frame)")
    gain = _check_number(cal.get("opening_gain"), "calibration.opening_gain", 0.5, 2.0)
    if gain is not None and not cal.get("amplitude_map"):
        raise InputError("calibration.opening_gain needs calibration.amplitude_map: true (it scales the fitted map)")
    removes = cal.get("closure_removes_gain")
    if removes is not None and not isinstance(removes, bool):
        raise InputError(f"calibration.closure_removes_gain must be true or false, got {removes!r}")
    if removes and gain is None:
        raise InputError("calibration.closure_removes_gain needs calibration.opening_gain (the gain it removes)")
    for spec in cfg["corpus"].get("real") or ():
        share = spec.get("check_share", 0.0) if isinstance(spec, dict) else 0.0
        _check_number(share, "corpus.real check_share", 0.0, 1.0, open_high=True)
        offset = spec.get("check_offset", 0.0) if isinstance(spec, dict) else 0.0
        _check_number(offset, "corpus.real check_offset", 0.0, 1.0 - share, high_text="1 - check_share")
    return cfg


def _check_number(value, name: str, low: float, high: float, *, open_low: bool = False,
                  open_high: bool = False, high_text: str | None = None, meaning: str = ""):
    """``value`` unchanged when it is None or a number (not a bool) in the interval; else InputError.

    The interval is closed unless ``open_low``/``open_high``; ``high_text`` names a bound that is
    computed (e.g. ``1 - check_share``) so the message says where it comes from.
    """
    if value is None:
        return None
    ok = is_finite_number(value)
    if ok:
        ok = (low < value if open_low else low <= value) and (value < high if open_high else value <= high)
    if not ok:
        bounds = (f"{'(' if open_low else '['}{low:g}, {high_text or format(high, 'g')}"
                  f"{')' if open_high else ']'}")
        raise InputError(f"{name} must be a number in {bounds}{meaning}, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------- data
@dataclass
class Example:
    """One utterance prepared for training: audio and frame-aligned targets at 50 fps."""

    audio: np.ndarray  # (N,) int16 or float32
    weights: np.ndarray  # (T, C) float32, model channel order
    channel_mask: np.ndarray  # (C,) float32, 1 where the corpus has the channel
    closure: np.ndarray  # (T,) float32
    visemes: np.ndarray  # (T,) int64
    speech: np.ndarray  # (T,) bool, inside a non-silence phone
    trusted: np.ndarray | None = None  # (T,) bool, False on frames of distrusted words (real speech)
    source: str = ""  # the real recording's source (meta["source"]); "" for synthetic speech
    phones: tuple | None = None  # the aligned phones of a real recording (for spliced hesitations)

    @property
    def n_frames(self) -> int:
        return len(self.closure)


def prepare_examples(items, channels: tuple[str, ...], *, limit: int | None = None) -> list[Example]:
    """Turn corpus items into :class:`Example` s (targets mapped to ``channels`` by name)."""
    out = []
    for i, item in enumerate(items):
        if limit is not None and i >= limit:
            break
        if int(item.sample_rate) != 16000:
            raise InputError(f"corpus audio must be 16 kHz, got {item.sample_rate}")
        audio = np.asarray(item.audio)
        n = int(math.ceil(len(audio) / SAMPLES_PER_FRAME))
        src = np.asarray(item.targets, np.float32)
        idx = {c: j for j, c in enumerate(item.channels)}
        w = np.zeros((n, len(channels)), np.float32)
        mask = np.zeros(len(channels), np.float32)
        m = min(n, len(src))
        for j, c in enumerate(channels):
            if c in idx:
                w[:m, j] = src[:m, idx[c]]
                if m < n and m > 0:
                    w[m:, j] = src[m - 1, idx[c]]
                mask[j] = 1.0
        closure, vis = frame_labels(item.phones, n, fps=FPS)
        out.append(Example(audio=audio, weights=w, channel_mask=mask, closure=closure, visemes=vis, speech=vis > 0,
                           trusted=trusted_frames((item.meta or {}).get("mask"), n),
                           source=str((item.meta or {}).get("source") or ""),
                           phones=tuple(item.phones) if (item.meta or {}).get("source") else None))
    return out


def with_hesitation(ex: Example, rng: np.random.Generator) -> Example:
    """``ex`` with an "um" of the speaker's own sounds spliced into one of its pauses.

    :func:`flamesync.phonetics.augment.insert_hesitation` makes the sound; targets follow the
    frames it was made of, labels come from the new phones. ``ex`` itself when it has nothing to
    make an "um" from (no pause, central vowel or /m/, or no phones: synthetic speech).
    """
    from ..phonetics.augment import insert_hesitation

    if not ex.phones:
        return ex
    made = insert_hesitation(_audio_float(ex.audio), ex.phones, rng=rng, sample_rate=int(FPS * SAMPLES_PER_FRAME),
                             fps=FPS)
    if made is None:
        return ex
    audio, phones, src = made
    src = np.minimum(src, ex.n_frames - 1)
    closure, vis = frame_labels(phones, len(src), fps=FPS)
    return Example(audio=audio, weights=ex.weights[src], channel_mask=ex.channel_mask, closure=closure, visemes=vis,
                   speech=vis > 0, trusted=None if ex.trusted is None else ex.trusted[src], source=ex.source,
                   phones=tuple(phones))


def trusted_frames(mask_spans, n_frames: int) -> np.ndarray | None:
    """Frames (at :data:`FPS`) outside the distrusted time spans of a real item, shape (n_frames,) bool.

    None when there is nothing to distrust (every frame counts).
    """
    if not mask_spans:
        return None
    t = (np.arange(n_frames) + 0.5) / FPS
    ok = np.ones(n_frames, bool)
    for a, b in mask_spans:
        ok &= ~((t >= float(a)) & (t < float(b)))
    return ok


def _audio_float(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.int16:
        return a.astype(np.float32) / 32768.0
    return np.asarray(a, np.float32)


def _lay_out_crop(ex: Example, rng: np.random.Generator, total: int, *, p_silence: float, p_pause: float,
                  silence_seconds: tuple[float, float]):
    """Lay out one crop of ``total`` frames from ``ex``: audio, targets and where a pause sound may go.

    Three layouts: a plain crop; the utterance's start after extra silence (``p_silence``); or the
    utterance's end, a long pause, then its start again (``p_pause``: the same voice on both sides,
    like a speaker stopping between phrases). Extra silence is targeted with the utterance's first
    (rest) frame, and is trusted only when the utterance starts (and, for a pause, ends) in silence.

    Returns
    -------
    audio (total * SAMPLES_PER_FRAME,) float32, weights (total, C), closure (total,), visemes (total,),
    valid (total,) bool, pause (start, stop) in samples or None
    """
    n = ex.n_frames
    spf = SAMPLES_PER_FRAME
    audio = np.zeros(total * spf, np.float32)
    rest = ex.weights[:1]
    # Each layout is a list of (source frame range or None for silence, length in frames).
    if p_pause > 0 and rng.random() < p_pause and not ex.speech[0] and not ex.speech[-1] and n >= 20:
        gap = min(total - 20, int(rng.uniform(*silence_seconds) * FPS))
        k1 = min(n, int((total - gap) * rng.uniform(0.25, 0.75)))
        k2 = min(n, total - gap - k1)
        parts = [((n - k1, n), k1), (None, gap), ((0, k2), k2)]
        pause = ((k1 + 5) * spf, (k1 + gap - 5) * spf)
        lead_ok = True
    elif p_silence > 0 and rng.random() < p_silence:
        lead = min(total - 1, int(rng.uniform(*silence_seconds) * FPS))
        k = min(n, total - lead)
        parts = [(None, lead), ((0, k), k)]
        lead_ok = not ex.speech[0]
        # Stop short of the utterance so the breath stays inside the targets' rest.
        pause = (0, max(0, lead - 5) * spf) if lead_ok else None
    else:
        start = int(rng.integers(0, n - total + 1)) if n > total else 0
        k = min(n, total)
        parts = [((start, start + k), k)]
        lead_ok, pause = True, None
    ws, cls, vis, valid = [], [], [], []
    at = 0
    for src, k in parts:
        if src is None:
            ws.append(np.repeat(rest, k, axis=0))
            cls.append(np.zeros(k, np.float32))
            vis.append(np.zeros(k, np.int64))
            valid.append(np.full(k, lead_ok))
        else:
            a, b = src
            seg = _audio_float(ex.audio[a * spf: b * spf])
            audio[at * spf: at * spf + len(seg)] = seg
            ws.append(ex.weights[a:b])
            cls.append(ex.closure[a:b])
            vis.append(ex.visemes[a:b])
            valid.append(np.ones(k, bool) if ex.trusted is None else ex.trusted[a:b])
        at += k
    pad = total - at
    ws.append(np.zeros((pad, ex.weights.shape[1]), np.float32))
    cls.append(np.zeros(pad, np.float32))
    vis.append(np.zeros(pad, np.int64))
    valid.append(np.zeros(pad, bool))
    return (audio, np.concatenate(ws).astype(np.float32), np.concatenate(cls).astype(np.float32),
            np.concatenate(vis).astype(np.int64), np.concatenate(valid), pause)


def change_speed(audio: np.ndarray, frames: list[np.ndarray], n_out: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Play a crop faster or slower (pitch moves with it, as in Kaldi's speed perturbation).

    Parameters
    ----------
    audio : (K * SAMPLES_PER_FRAME,) float32, K input frames
    frames : per-frame arrays with first axis K (targets), resampled by nearest frame
    n_out : output length in frames

    Returns
    -------
    audio (n_out * SAMPLES_PER_FRAME,) float32, the frame arrays with first axis n_out
    """
    from scipy.signal import resample_poly

    k = len(audio) // SAMPLES_PER_FRAME
    g = math.gcd(n_out, k)
    out = resample_poly(audio, n_out // g, k // g).astype(np.float32)
    return _fit_frames(out, frames, k, n_out)


def _fit_frames(audio: np.ndarray, frames: list[np.ndarray], k: int, n_out: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Audio cut or padded to ``n_out`` frames; frame arrays of ``k`` frames mapped by nearest frame."""
    audio = np.pad(audio, (0, max(0, n_out * SAMPLES_PER_FRAME - len(audio))))[: n_out * SAMPLES_PER_FRAME]
    idx = np.minimum(((np.arange(n_out) + 0.5) * k / n_out).astype(np.int64), k - 1)
    return audio.astype(np.float32, copy=False), [f[idx] for f in frames]


def change_tempo_frames(audio: np.ndarray, frames: list[np.ndarray], n_out: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Speak a crop faster or slower at the same pitch; frame arrays follow by nearest frame.

    Parameters
    ----------
    audio : (K * SAMPLES_PER_FRAME,) float32, K input frames
    frames : per-frame arrays with first axis K (targets)
    n_out : output length in frames

    Returns
    -------
    audio (n_out * SAMPLES_PER_FRAME,) float32, the frame arrays with first axis n_out
    """
    from ..phonetics.augment import change_tempo

    k = len(audio) // SAMPLES_PER_FRAME
    out = change_tempo(audio, rate=k / n_out, sample_rate=int(FPS * SAMPLES_PER_FRAME))
    return _fit_frames(out, frames, k, n_out)


def make_batch(examples: list[Example], *, rng: np.random.Generator, batch_size: int, crop_frames: int,
               p_clean: float, aug: AugmentConfig, fcfg: FeatureConfig, p_silence: float = 0.0,
               silence_seconds: tuple[float, float] = (0.5, 3.0), p_pause: float = 0.0, p_speed: float = 0.0,
               speed: tuple[float, float] = (1.0, 1.0), p_tempo: float = 0.0,
               tempo: tuple[float, float] = (1.0, 1.0), real: list[Example] | None = None,
               real_share: float = 0.0, p_hesitation: float = 0.0) -> dict[str, torch.Tensor]:
    """A batch of random crops, each independently augmented (a pure function of ``rng``).

    Corpus utterances have short pauses only, but real recordings have long ones, during which the
    feature normalisation settles on the noise floor and people breathe; with probability
    ``p_silence`` a crop starts with extra silence before an utterance, with ``p_pause`` it holds a
    long pause between an utterance's end and its start, and augmentation fills either with room
    tone, noise and often a breath (rest targets). With probability ``p_speed`` the crop is played
    at a speed drawn from ``speed`` (read and conversational speech is faster than TTS, and its
    closures shorter). With probability ``p_tempo`` it is also spoken at a tempo drawn from ``tempo``,
    the pitch kept (:func:`flamesync.phonetics.augment.change_tempo`): fast speech of the same voice,
    as in conversation. With ``real`` given, a crop comes from those real recordings with probability
    ``real_share`` (they go through the same augmentation); with probability ``p_hesitation`` a real
    recording first gets an "um" made of its speaker's own sounds (:func:`with_hesitation`).
    """
    feats, ws, cms, cls, vis, valid = [], [], [], [], [], []
    for _ in range(batch_size):
        # Draw the pool only when there is a choice, so synthetic-only runs keep their random stream.
        pool = real if real and real_share > 0 and rng.random() < real_share else examples
        ex = pool[int(rng.integers(len(pool)))]
        # Drawn only when enabled and the recording is real, so other configs keep their random stream.
        if p_hesitation > 0 and ex.phones and rng.random() < p_hesitation:
            ex = with_hesitation(ex, rng)
        s = float(rng.uniform(*speed)) if p_speed > 0 and rng.random() < p_speed else 1.0
        # Drawn only when enabled, so configs without tempo keep their random stream.
        t = float(rng.uniform(*tempo)) if p_tempo > 0 and rng.random() < p_tempo else 1.0
        total = max(1, int(round(crop_frames * s * t)))
        audio, w, c, v, ok, pause = _lay_out_crop(ex, rng, total, p_silence=p_silence, p_pause=p_pause,
                                                  silence_seconds=silence_seconds)
        clean = rng.random() < p_clean
        if not clean and pause is not None and pause[1] > pause[0] and rng.random() < aug.p_pause_sound:
            audio = add_pause_sounds(audio, pause[0], pause[1], rng=rng, config=aug)
        if t != 1.0:
            audio, (w, c, v, ok) = change_tempo_frames(audio, [w, c, v, ok], max(1, int(round(total / t))))
        if len(audio) != crop_frames * SAMPLES_PER_FRAME:
            audio, (w, c, v, ok) = change_speed(audio, [w, c, v, ok], crop_frames)
        if not clean:
            audio = augment(audio, rng=rng, config=aug)
        f = log_mel(audio, config=fcfg)
        if not clean and rng.random() < aug.p_freq_mask:
            f = mask_frequencies(f, rng=rng, max_bins=aug.freq_mask_bins, groups=fcfg.n_features // fcfg.n_mels)
        feats.append(f)
        ws.append(w)
        cms.append(ex.channel_mask)
        cls.append(c)
        vis.append(v)
        valid.append(ok)
    return {
        "feats": torch.from_numpy(np.stack(feats)),
        "weights": torch.from_numpy(np.stack(ws)),
        "channel_mask": torch.from_numpy(np.stack(cms)),
        "closure": torch.from_numpy(np.stack(cls)),
        "visemes": torch.from_numpy(np.stack(vis)),
        "valid": torch.from_numpy(np.stack(valid).astype(np.float32)),
    }


class BatchSource:
    """Batches by step number, optionally prepared ahead in worker processes.

    Batch ``s`` is a pure function of ``(seed, s)``, so prefetching in other processes changes
    nothing but speed. Workers are forked and inherit the examples without copying them.
    """

    def __init__(self, examples: list[Example], *, seed: int, tc: dict, aug: AugmentConfig, fcfg: FeatureConfig,
                 workers: int, depth: int = 3, real: list[Example] | None = None, real_share: float = 0.0):
        self.args = dict(batch_size=int(tc["batch_size"]), crop_frames=int(round(tc["crop_seconds"] * FPS)),
                         p_clean=float(tc["p_clean"]), aug=aug, fcfg=fcfg, p_silence=float(tc.get("p_silence", 0.0)),
                         silence_seconds=tuple(tc.get("silence_seconds", (0.5, 3.0))),
                         p_pause=float(tc.get("p_pause", 0.0)), p_speed=float(tc.get("p_speed", 0.0)),
                         speed=tuple(tc.get("speed", (1.0, 1.0))), p_tempo=float(tc.get("p_tempo", 0.0)),
                         tempo=tuple(tc.get("tempo", (1.0, 1.0))), real=real or None,
                         real_share=float(real_share) if real else 0.0,
                         p_hesitation=float(tc.get("p_hesitation", 0.0)))
        self.examples, self.seed, self.depth = examples, seed, depth
        self.pool = None
        self.pending: dict[int, Any] = {}
        if workers > 0:
            from ..forking import fork_pool

            global _WORKER_SOURCE
            _WORKER_SOURCE = self
            self.pool = fork_pool(workers)

    def make(self, step: int) -> dict[str, torch.Tensor]:
        return make_batch(self.examples, rng=np.random.default_rng([self.seed, step]), **self.args)

    def get(self, step: int, end: int) -> dict[str, torch.Tensor]:
        if self.pool is None:
            return self.make(step)
        for s in range(step, min(end, step + self.depth)):
            if s not in self.pending:
                self.pending[s] = self.pool.apply_async(_worker_batch, (s,))
        return self.pending.pop(step).get()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


_WORKER_SOURCE: BatchSource | None = None


def _worker_batch(step: int) -> dict[str, torch.Tensor]:
    return _WORKER_SOURCE.make(step)


# ---------------------------------------------------------------------------------------- loss
# Viseme classes whose frames the closure output confuses most with /p b m/: the alveolar and velar
# stops and nasals share a bilabial's closure silence or nasal murmur and differ from it only in the
# neighbouring formant transitions. On noisy synthetic validation they hold about two thirds of the
# frames the calibrated decoder closes wrongly (/n/ alone a quarter; on clean speech half).
HARD_NEGATIVE_VISEMES: tuple[str, ...] = ("TDNL", "KG")


def hard_negative_mask(classes) -> torch.Tensor:
    """1.0 for each viseme class (in :data:`VISEME_CLASSES` order) named in ``classes``, else 0.0.

    Raises :class:`InputError` for a name that is not a viseme class, so a typo in a config fails
    before training starts rather than silently weighting nothing.
    """
    names = list(classes)
    unknown = sorted(set(names) - set(VISEME_CLASSES))
    if unknown:
        raise InputError(f"train.loss.closure_hard_negative_visemes: unknown viseme classes {', '.join(unknown)} "
                         f"(known: {', '.join(VISEME_CLASSES)})")
    return torch.tensor([float(c in names) for c in VISEME_CLASSES])


@functools.lru_cache(maxsize=8)
def _cached_hard_negative_mask(classes: tuple[str, ...]) -> torch.Tensor:
    # The loss runs every step on the same few settings: build each mask once, not per batch.
    return hard_negative_mask(classes)


def compute_loss(outputs, batch: dict[str, torch.Tensor], lw: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of: L1 on weights, L1 on their frame-to-frame velocity and acceleration, the
    range term (:func:`range_loss`), closure BCE with positive frames weighted ``closure_pos_weight``
    and the frames of the classes in ``closure_hard_negative_visemes`` (absent: the other stops and
    nasals, :data:`HARD_NEGATIVE_VISEMES`) ``closure_hard_negative``, a
    per-closure detection term (:func:`closure_detection_loss`), and viseme cross-entropy. Padded
    frames are excluded. The acceleration, range, hard-negative and detection weights may be absent
    from ``lw`` (as in older configs: 0, 0, 1 and 0); the optional terms are computed anyway, for the
    training log."""
    pred_w, closure_logit, vis_logit = outputs
    valid = batch["valid"]  # (B, T)
    cmask = batch["channel_mask"][:, None, :]  # (B, 1, C)
    tw = batch["weights"]
    m = valid[..., None] * cmask
    l_w = ((pred_w - tw).abs() * m).sum() / m.sum().clamp_min(1.0)
    mv = (valid[:, 1:] * valid[:, :-1])[..., None] * cmask
    dv = (pred_w[:, 1:] - pred_w[:, :-1]) - (tw[:, 1:] - tw[:, :-1])
    l_v = (dv.abs() * mv).sum() / mv.sum().clamp_min(1.0)
    # Acceleration: frame-to-frame wobble that the velocity term barely sees (it shows as jitter).
    ma = (valid[:, 2:] * valid[:, 1:-1] * valid[:, :-2])[..., None] * cmask
    da = torch.diff(pred_w, n=2, dim=1) - torch.diff(tw, n=2, dim=1)
    l_acc = (da.abs() * ma).sum() / ma.sum().clamp_min(1.0)
    l_range = range_loss(pred_w, tw, valid, batch["channel_mask"])
    tc = batch["closure"]
    mask = _cached_hard_negative_mask(tuple(lw.get("closure_hard_negative_visemes", HARD_NEGATIVE_VISEMES)))
    hard = mask.to(batch["visemes"].device)[batch["visemes"]] * (1.0 - tc)
    wc = valid * (1.0 + (float(lw["closure_pos_weight"]) - 1.0) * tc
                  + (float(lw.get("closure_hard_negative", 1.0)) - 1.0) * hard)
    l_c = (F.binary_cross_entropy_with_logits(closure_logit, tc, reduction="none") * wc).sum() / wc.sum().clamp_min(1.0)
    l_det = closure_detection_loss(closure_logit, tc * valid)
    ce = F.cross_entropy(vis_logit.reshape(-1, vis_logit.shape[-1]), batch["visemes"].reshape(-1), reduction="none")
    l_a = (ce * valid.reshape(-1)).sum() / valid.sum().clamp_min(1.0)
    total = (lw["weights"] * l_w + lw["velocity"] * l_v + lw.get("acceleration", 0.0) * l_acc
             + lw.get("range", 0.0) * l_range
             + lw["closure"] * l_c + lw.get("closure_detection", 0.0) * l_det + lw["visemes"] * l_a)
    parts = {"loss": float(total.detach()), "l_weights": float(l_w.detach()), "l_velocity": float(l_v.detach()),
             "l_acceleration": float(l_acc.detach()), "l_range": float(l_range.detach()),
             "l_closure": float(l_c.detach()),
             "l_detection": float(l_det.detach()), "l_visemes": float(l_a.detach())}
    return total, parts


def range_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, channel_mask: torch.Tensor, *,
               window: int = 5) -> torch.Tensor:
    """L1 between the prediction's and the target's spread over time, per sequence and channel.

    An L1 fit predicts the median of what the audio leaves possible, so wherever the network is
    unsure it drifts to a half-open mouth and its range shrinks (open vowels under-open; see
    :mod:`flamesync.net.amplitude`). This term asks each crop's output to move over the same range as
    its target, the "global variance" remedy for over-smoothing in statistical speech synthesis. Both
    curves are first averaged over ``window`` frames, so frame-to-frame wobble (which the jitter
    metric punishes) cannot buy range.

    Parameters
    ----------
    pred, target : torch.Tensor, shape (B, T, C)
    valid : torch.Tensor, shape (B, T), 1 on real frames, 0 on padding
    channel_mask : torch.Tensor, shape (B, C), 1 where the target channel is defined
    window : int
        Odd length of the moving average, in frames.

    Returns
    -------
    torch.Tensor, scalar: mean over (sequence, channel) of |std(smoothed pred) - std(smoothed target)|
    """
    w = valid[:, None, :].to(pred.dtype)  # (B, 1, T)
    pad = window // 2
    share_valid = F.avg_pool1d(w, window, stride=1, padding=pad, count_include_pad=False).clamp_min(1e-6)

    def smooth(x):  # moving average over valid frames only, (B, T, C) -> (B, C, T)
        return F.avg_pool1d(x.transpose(1, 2) * w, window, stride=1, padding=pad, count_include_pad=False) / share_valid

    n = w.sum(-1).clamp_min(1.0)  # (B, 1)

    def spread(x):  # (B, C, T) -> (B, C)
        mean = (x * w).sum(-1) / n
        return (((x - mean[..., None]) ** 2 * w).sum(-1) / n + 1e-8).sqrt()

    d = (spread(smooth(pred)) - spread(smooth(target))).abs() * channel_mask
    return d.sum() / channel_mask.sum().clamp_min(1.0)


def closure_detection_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over labelled closures of -log P(the closure is detected on at least one of its frames).

    The decoder fires when any frame's probability crosses its threshold, and a /p b m/ counts as
    closed when any of its frames is; per-frame BCE instead spreads a hard closure's probability thinly
    over all its frames. Frames are treated as independent detectors (noisy-OR):
    ``P = 1 - prod_t (1 - p_t)``, computed in log space.

    Parameters
    ----------
    logits : torch.Tensor, shape (B, T)
    labels : torch.Tensor, shape (B, T), 1 on closure frames (0 on padding)

    Returns
    -------
    torch.Tensor, scalar (0 when the batch holds no closure)
    """
    pos = labels > 0.5
    starts = pos.clone()
    starts[:, 1:] &= ~pos[:, :-1]
    n_seg = int(starts.sum())
    if n_seg == 0:
        return logits.sum() * 0.0
    # Number the closures 0 .. n_seg-1 across the batch, in row-major order.
    seg = torch.cumsum(starts.reshape(-1).long(), 0).reshape(pos.shape) - 1
    log_miss = torch.zeros(n_seg, dtype=logits.dtype, device=logits.device)
    log_miss = log_miss.index_add(0, seg[pos], -F.softplus(logits[pos]))  # log prod (1 - p_t)
    return -torch.log(-torch.expm1(log_miss.clamp(max=-1e-6))).mean()


# ---------------------------------------------------------------------------------------- corpus
def corpus_path(spec: dict) -> Path:
    """Folder of the corpus described by ``spec`` (a config's ``corpus`` entry or one of its ``extra``)."""
    from ..cache import cache_dir

    return Path(spec["path"]) if spec.get("path") else cache_dir("corpora") / str(spec.get("name", "default"))


def _open_one(spec: dict, seed: int):
    """One corpus; synthesised (or extended) first when it holds fewer hours than ``spec["synth"]`` asks."""
    from ..data.corpus import Corpus

    path = corpus_path(spec)
    synth = dict(spec.get("synth") or {})
    manifest = path / "manifest.json"
    ready = False
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text("utf-8"))
            ready = bool(m.get("complete")) and float(m.get("config", {}).get("hours", 0)) >= float(synth.get("hours", 0))
        except ValueError:
            ready = False
    if not ready:
        from ..data.synth import synthesize_corpus

        if "hours" not in synth:
            raise InputError(f"no complete corpus at {path} and the config gives no synth.hours to make one")
        synth.setdefault("seed", seed)
        synthesize_corpus(path, **synth)
    return Corpus(path)


def open_corpus(cfg: dict):
    """The main corpus named by ``cfg["corpus"]``; synthesised (or finished) first if incomplete.

    ``cfg["corpus"]["synth"]`` holds the keyword arguments of
    :func:`flamesync.data.synth.synthesize_corpus` (``hours``, ``seed``, ``workers``, ...).
    """
    return _open_one(cfg["corpus"], int(cfg["seed"]))


def open_corpora(cfg: dict) -> list:
    """The main corpus followed by those in ``cfg["corpus"]["extra"]`` (each ``{name|path, synth}``)."""
    return [open_corpus(cfg)] + [_open_one(spec, int(cfg["seed"])) for spec in cfg["corpus"].get("extra") or ()]


def open_real_corpora(cfg: dict) -> list:
    """The real-speech corpora of ``cfg["corpus"]["real"]``, each built first if it is missing.

    Each entry is ``{name or path, source, layout, val_share, seed, check_share, check_offset}``: ``source`` is
    the folder of transcribed recordings that :func:`flamesync.data.real.build_real_corpus` aligns
    into the corpus folder, ``val_share`` the share of its speakers held out (default 0.15), ``seed``
    which ones (default: the run's seed; pin it when runs of other seeds must hold out the same
    speakers), ``check_share`` a share of the train split's speakers training leaves out as well
    (:func:`flamesync.data.real.in_check_set`; default 0) and ``check_offset`` where that share's
    band of the speaker hash starts (default 0).
    """
    from ..data.corpus import Corpus

    out = []
    for spec in cfg["corpus"].get("real") or ():
        path = corpus_path(spec)
        manifest = path / "manifest.json"
        ready = False
        if manifest.is_file():
            try:
                m = json.loads(manifest.read_text("utf-8"))
                ready = m.get("kind") == "real" and bool(m.get("complete"))
            except ValueError:
                ready = False
        if not ready:
            if not spec.get("source"):
                raise InputError(f"no real-speech corpus at {path} and the config gives no 'source' folder to build it from")
            from ..data.real import build_real_corpus

            build_real_corpus(spec["source"], path, layout=spec.get("layout", "auto"), seed=int(spec.get("seed", cfg["seed"])),
                              val_share=float(spec.get("val_share", 0.15)))
        out.append(Corpus(path))
    return out


def _interleave(lists: list[list]) -> list:
    """Items of several lists alternating (a, b, a, b, ...), so any prefix samples every list."""
    out = []
    for i in range(max((len(l) for l in lists), default=0)):
        out.extend(l[i] for l in lists if i < len(l))
    return out


# ---------------------------------------------------------------------------------------- training
def _device(cfg: dict) -> torch.device:
    want = cfg.get("device", "auto")
    if want == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(want)


def _lr_at(step: int, tc: dict) -> float:
    warm = max(1, int(tc["warmup_steps"]))
    if step < warm:
        return tc["lr"] * (step + 1) / warm
    frac = (step - warm) / max(1, tc["steps"] - warm)
    floor = tc["min_lr_ratio"]
    return tc["lr"] * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def _step_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def closure_pose(examples: list[Example], channels: tuple[str, ...]) -> dict[str, float]:
    """Median target of each closure channel over labelled /p b m/ frames (the teacher's seal)."""
    rows = [ex.weights[ex.closure > 0.5] for ex in examples]
    rows = [r for r in rows if len(r)]
    if not rows:
        return {}
    med = np.median(np.concatenate(rows), axis=0)
    return {c: float(med[channels.index(c)]) for c in CLOSURE_CHANNELS if c in channels}


def train(config: dict, *, corpus=None, out_dir: str | Path | None = None, stop_after: int | None = None,
          show_progress: bool = True) -> dict:
    """Train (or resume) and return a summary.

    Parameters
    ----------
    config : dict
        From :func:`load_config`.
    corpus : object with ``manifest`` and ``items(split)``, or a list of them, optional
        Defaults to :func:`open_corpora` (the config's corpus and its ``extra`` ones).
    out_dir : path, optional
        Overrides ``config["out_dir"]``.
    stop_after : int, optional
        Stop (with a checkpoint) once this step count is reached, as an interruption would.
    """
    from ..cache import cache_dir
    from ..progress import emit, get_mode

    cfg = config
    if cfg["calibration"].get("max_vowel_rate") is not None and cfg["calibration"].get("data", "synthetic") != "real":
        # Checked before the hours of training, not after them.
        raise InputError("calibration.max_vowel_rate needs calibration.data: real (vowels are counted on "
                         "aligned real recordings)")
    tc = cfg["train"]
    seed = int(cfg["seed"])
    out = Path(out_dir or cfg.get("out_dir") or cache_dir("runs") / cfg.get("name", "default"))
    out.mkdir(parents=True, exist_ok=True)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    device = _device(cfg)
    fcfg = FeatureConfig.from_dict(cfg["features"])
    # The network's input width is the features' (model.n_mels counts feature channels).
    mcfg = ModelConfig.from_dict({**cfg["model"], "n_mels": fcfg.n_features})
    aug = AugmentConfig.from_dict(cfg["augment"])
    # Before any corpus is built: a checkpoint that cannot start this run should fail at once.
    init_weights = None
    if cfg.get("init") and not (out / "last.json").is_file():
        init_weights = init_weights_for(cfg["init"], cfg["model"], mcfg)
    if corpus is None:
        corpora = open_corpora(cfg)
    else:
        corpora = list(corpus) if isinstance(corpus, (list, tuple)) else [corpus]
    real_corpora = open_real_corpora(cfg)
    manifests = [dict(getattr(c, "manifest", {}) or {}) for c in corpora]
    for m in manifests:
        if float(m.get("fps", FPS)) != FPS:
            raise InputError(f"corpus targets must be at {FPS:g} fps, got {m.get('fps')}")
    manifest = manifests[0]
    real_manifests = [dict(c.manifest) for c in real_corpora]

    train_ex = [ex for c in corpora for ex in prepare_examples(c.items("train"), mcfg.channels)]
    real_train = [ex for c, spec in zip(real_corpora, cfg["corpus"].get("real") or ())
                  for ex in prepare_examples(_training_items(c, spec), mcfg.channels)]
    real_val = _interleave([prepare_examples(c.items("val"), mcfg.channels) for c in real_corpora])
    # The closure decoder is fitted on one half of the held-out speakers; the other half is left
    # for comparing networks (flamesync eval --real-val).
    real_cal = _interleave([prepare_examples(_calibration_half(c), mcfg.channels) for c in real_corpora])
    # Validation and calibration draw on every corpus alike (the extra ones hold other voices).
    n_val = int(cfg["calibration"]["max_items"])
    val_ex = _interleave([prepare_examples(c.items("val"), mcfg.channels, limit=-(-n_val // len(corpora)))
                          for c in corpora])[:n_val]
    if not train_ex:
        raise InputError("the corpus has no training items")
    crop_frames = int(round(tc["crop_seconds"] * FPS))

    torch.manual_seed(seed)
    model = FlameSyncNet(mcfg).to(device)
    if init_weights is not None:
        model.load_state_dict(init_weights)
    opt = torch.optim.AdamW(model.parameters(), lr=tc["lr"], weight_decay=tc["weight_decay"], betas=(0.9, 0.98))
    step = 0
    last = out / "last"
    prior_seconds = 0.0  # training time of the run before this resume
    if (out / "last.json").is_file():
        meta = load_meta(last)
        if meta.get("train_config", {}).get("model") != cfg["model"] or meta.get("seed") != seed:
            raise InputError(f"{out} holds a run with a different model config or seed; use another out_dir")
        model.load_state_dict(load_weights(last))
        ostate = load_optimizer_state(last)
        if ostate is not None:
            opt.load_state_dict(ostate)
        step = int(meta["step"])
        prior_seconds = float(meta.get("train_seconds", 0.0))
    _truncate_logs(out, step)

    fixed_val = _fixed_val_batches(val_ex, seed=seed, fcfg=fcfg, crop_frames=crop_frames,
                                   n=int(tc["max_val_items"]))
    fixed_val += _fixed_val_batches(real_val, seed=seed, fcfg=fcfg, crop_frames=crop_frames,
                                    n=int(tc["max_val_items"]), kind="real")
    lw = tc["loss"]
    total_steps = int(tc["steps"])
    end = total_steps if stop_after is None else min(total_steps, int(stop_after))
    pose = closure_pose(train_ex, mcfg.channels)
    base_meta = {
        "model": mcfg.to_dict(), "features": fcfg.to_dict(), "seed": seed, "fps": FPS,
        "channels": list(mcfg.channels), "train_config": cfg, "closure_pose": pose,
        "corpus": {k: manifest.get(k) for k in ("seed", "stats", "fps", "channels")},
        "extra_corpora": [{k: m.get(k) for k in ("seed", "stats", "config")} for m in manifests[1:]],
        "real_corpora": [{k: m.get(k) for k in ("stats", "config", "layout", "dropped", "speakers", "source")}
                         for m in real_manifests],
        "init": str(cfg["init"]) if cfg.get("init") else None,
        "parameters": count_parameters(model),
    }

    def save(name: str, extra: dict | None = None, with_opt: bool = True):
        save_checkpoint(out / name, model=model, optimizer=opt if with_opt else None,
                        meta={**base_meta, "step": step, "train_seconds": prior_seconds + time.monotonic() - t0,
                              **(extra or {})})

    t0 = time.monotonic()
    bar = None
    if show_progress and get_mode() == "bar" and step < end:
        from tqdm.auto import tqdm

        bar = tqdm(total=end, initial=step, desc="train", dynamic_ncols=True, leave=False)
    source = BatchSource(train_ex, seed=seed, tc=tc, aug=aug, fcfg=fcfg,
                         workers=int(cfg.get("data_workers") or 0) if step < end else 0,
                         real=real_train, real_share=float(cfg["corpus"].get("real_share", 0.0)))
    csv_path = out / "log.csv"
    fields = ["step", "lr", "loss", "l_weights", "l_velocity", "l_acceleration", "l_range", "l_closure", "l_detection",
              "l_visemes", "seconds"]
    new_csv = not csv_path.is_file()
    if not new_csv:  # a run started by older code keeps its own columns
        with open(csv_path, newline="") as fh:
            fields = next(csv.reader(fh), None) or fields
    try:
        with open(csv_path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            if new_csv:
                writer.writeheader()
            while step < end:
                model.train()
                torch.manual_seed(_step_seed(seed, step))
                batch = source.get(step, end)
                batch = {k: v.to(device) for k, v in batch.items()}
                lr = _lr_at(step, tc)
                for g in opt.param_groups:
                    g["lr"] = lr
                loss, parts = compute_loss(model(batch["feats"]), batch, lw)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(tc["grad_clip"]))
                opt.step()
                step += 1
                if step % int(tc["log_every"]) == 0 or step == total_steps:
                    writer.writerow({"step": step, "lr": f"{lr:.6g}", **{k: f"{v:.6f}" for k, v in parts.items()},
                                     "seconds": f"{time.monotonic() - t0:.1f}"})
                    fh.flush()
                    emit("train", step=step, total=total_steps, **parts)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{parts['loss']:.4f}")
                if fixed_val and (step % int(tc["val_every"]) == 0 or step == total_steps):
                    val = evaluate_loss(model, fixed_val, lw, device)
                    with open(out / "log.jsonl", "a") as jf:
                        jf.write(json.dumps({"step": step, "val": val}) + "\n")
                    emit("val", step=step, **val)
                if step % int(tc["ckpt_every"]) == 0 or step == end:
                    save("last")
    except KeyboardInterrupt:
        save("last")
        raise
    finally:
        source.close()
        if bar is not None:
            bar.close()
    summary = {"out_dir": str(out), "step": step, "seconds": prior_seconds + time.monotonic() - t0,
               "parameters": count_parameters(model)}
    if step >= total_steps:
        on_real = cfg["calibration"].get("data", "synthetic") == "real"
        if on_real and not real_val:
            raise InputError("calibration.data is 'real' but the real corpora have no val items")
        decoder, report = calibrate(model, real_calibration_items(real_cal or real_val, cfg["calibration"]) if on_real else val_ex,
                                    cfg, device=device, as_recorded=on_real)
        amplitude = report.pop("amplitude_map", None)
        save("final", {"closure_decoder": decoder.to_dict(), "calibration": report,
                       "train_seconds": summary["seconds"], **({"amplitude_map": amplitude} if amplitude else {}),
                       **(map_entries(cfg["calibration"], tuple(model.cfg.channels)) if amplitude else {})},
             with_opt=False)
        summary.update(calibration=report, closure_decoder=decoder.to_dict(), final=str(out / "final"))
    return summary


def opening_smoothing(calibration: dict, channels: tuple[str, ...]) -> dict | None:
    """The checkpoint's ``opening_smoothing`` entry that ``calibration.opening_smoothing`` asks for.

    Parameters
    ----------
    calibration : the config's ``calibration`` section
    channels : the network's output channels

    Returns
    -------
    dict with ``alpha``, ``channels`` (the mouth-opening channels the network has) and, when
    ``calibration.opening_smoothing_closing`` differs from it, ``alpha_closing``; or None when the
    config sets no smoothing (or alpha 1, which leaves the opening as it is)
    """
    alpha = calibration.get("opening_smoothing")
    closing = calibration.get("opening_smoothing_closing")
    if alpha is None or (float(alpha) >= 1.0 and (closing is None or float(closing) >= 1.0)):
        return None
    entry = {"alpha": float(alpha), "channels": [c for c in OPENING_CHANNELS if c in channels]}
    if closing is not None and float(closing) != float(alpha):
        entry["alpha_closing"] = float(closing)
    return entry


def closure_removes_gain(calibration: dict, channels: tuple[str, ...]) -> dict | None:
    """The checkpoint's ``closure_removes_gain`` entry that ``calibration.closure_removes_gain`` asks for.

    The opening gain widens every opening, including the one a closure starts from; since the
    closure pose only blends towards shut by a strength that rises over a few frames, a short
    closure keeps a share of that wider opening. With this entry the decoder's closure strength
    ``s`` takes the gain back, ``w * (1 - s * (1 - 1 / gain))``, before the pose is blended in.
    Parameters as :func:`opening_smoothing`; returns a dict with ``gain`` and ``channels`` (the
    mouth-opening channels the network has), or None when the config does not ask for it.
    """
    if not calibration.get("closure_removes_gain") or calibration.get("opening_gain") is None:
        return None
    return {"gain": float(calibration["opening_gain"]), "channels": [c for c in OPENING_CHANNELS if c in channels]}


#: Checkpoint entries that belong to the amplitude map they were calibrated with (map_entries).
MAP_ENTRIES = ("opening_smoothing", "closure_removes_gain")


def closure_base(calibration: dict) -> ClosureDecoder:
    """The decoder whose attack and release the threshold search keeps: the default one, with
    ``calibration.closure_attack`` when set. A faster attack lets a short decoded closure shut a wider
    opening (a two-frame closure keeps ``(1 - attack) ** 2`` of the opening it starts from)."""
    attack = calibration.get("closure_attack")
    return ClosureDecoder() if attack is None else ClosureDecoder(attack=float(attack))


def map_entries(calibration: dict, channels: tuple[str, ...]) -> dict:
    """The checkpoint entries of :data:`MAP_ENTRIES` that the calibration section asks for, by name
    (:func:`opening_smoothing`, :func:`closure_removes_gain`); absent ones are left out."""
    entries = {"opening_smoothing": opening_smoothing(calibration, channels),
               "closure_removes_gain": closure_removes_gain(calibration, channels)}
    return {k: v for k, v in entries.items() if v}


def recalibrate(checkpoint, config: dict, *, out: str | Path, fusion: bool = False) -> dict:
    """Fit a trained network's closure decoder anew on real speech and save it as another checkpoint.

    The weights are copied unchanged (or, given several checkpoints, averaged: see
    :func:`flamesync.net.checkpoint.average_weights`); only ``closure_decoder`` and ``calibration`` in the
    description change (and ``amplitude_map``, refitted on the same speech, when
    ``calibration.amplitude_map`` is set). Uses the config's real corpora (their "calibrate" half of the val
    speakers) and its ``calibration`` settings (``max_items``, ``max_false_rate``, ``sources``).

    Parameters
    ----------
    checkpoint : path or "default", or a list of them
        The network (``"default"``: the shipped one). A list of two or more: networks fine-tuned from
        one start, whose weights are averaged; the description is the first one's, with
        ``averaged_from`` listing them all.
    config : dict
        From :func:`load_config`; ``corpus.real`` must name at least one real corpus.
    out : path
        Checkpoint stem to write (``out.safetensors`` + ``out.json``).
    fusion : bool
        Instead, fit the fusion with the word recogniser (:mod:`flamesync.net.fusion`) on the same
        items and add it as ``fusion``; the network's own decoder and amplitude map stay as they are.

    Returns
    -------
    dict : the calibration report (with the chosen decoder under ``decoder``)
    """
    from .infer import DEFAULT_CHECKPOINT

    paths = [DEFAULT_CHECKPOINT if str(c) == "default" else Path(c)
             for c in (checkpoint if isinstance(checkpoint, (list, tuple)) else [checkpoint])]
    path = paths[0]
    meta = load_meta(path)
    if len(paths) > 1:
        meta = {**meta, "averaged_from": [str(p) for p in paths]}
    # Made before the minutes of calibration, so an unwritable place fails first, as training does.
    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {Path(out).parent}: {exc.strerror}") from None
    mcfg = ModelConfig.from_dict(meta["model"])
    model = FlameSyncNet(mcfg)
    model.load_state_dict(average_weights(paths) if len(paths) > 1 else load_weights(path))
    real_corpora = open_real_corpora(config)
    if not real_corpora:
        raise InputError("recalibration needs a real-speech corpus (corpus.real in the config, or --real DIR)")
    items = _interleave([prepare_examples(_calibration_half(c), mcfg.channels) for c in real_corpora])
    items = real_calibration_items(items, config["calibration"])
    if not items:
        raise InputError("the real corpora hold no val items to calibrate on")
    cfg = {**config, "features": meta.get("features", {}), "seed": meta.get("seed", 0)}
    if fusion:
        settings, report = calibrate_fusion_real(model, items, cfg, base=ClosureDecoder.from_dict(
            meta.get("closure_decoder") or {}))
        report["sources"] = sorted({ex.source for ex in items})
        new = {**meta, "fusion": {**settings.to_dict(), "calibration": report}, "fusion_from": str(path)}
        new.pop("format", None)
        new.pop("version", None)
        save_checkpoint(out, model=model, meta=new)
        return {**report, "fusion": settings.to_dict()}
    decoder, report = calibrate(model, items, cfg, as_recorded=True)
    amplitude = report.pop("amplitude_map", None)
    report["sources"] = sorted({ex.source for ex in items})
    new = {**meta, "closure_decoder": decoder.to_dict(), "calibration": report, "recalibrated_from": str(path)}
    if amplitude:  # asked for (calibration.amplitude_map); otherwise the weights' old map still fits them
        new["amplitude_map"] = amplitude
        # The map was fitted on the opening as smoothed by this config (or unsmoothed): the pair belongs
        # together, so a smoothing (or gain removal) the old description carried goes with its old map.
        for key in MAP_ENTRIES:
            new.pop(key, None)
        new.update(map_entries(config["calibration"], tuple(mcfg.channels)))
    new.pop("format", None)
    new.pop("version", None)
    save_checkpoint(out, model=model, meta=new)
    return {**report, "decoder": decoder.to_dict()}


def _training_items(corpus, spec: dict):
    """The corpus's train items less the speakers its spec holds out as a check set."""
    from ..data.real import in_check_set

    share = float(spec.get("check_share", 0.0))
    offset = float(spec.get("check_offset", 0.0))
    seed = int(corpus.manifest.get("seed", 0))
    return [it for it in corpus.items("train") if not in_check_set(it.meta, seed=seed, share=share, offset=offset)]


def _calibration_half(corpus):
    from ..data.real import val_role

    seed = int(corpus.manifest.get("seed", 0))
    return (it for it in corpus.items("val") if val_role(it.meta, seed=seed) == "calibrate")


def real_calibration_items(real_val: list[Example], ccfg: dict) -> list[Example]:
    """Up to ``ccfg["max_items"]`` real validation items, spread evenly over the split, from the
    sources ``ccfg["sources"]`` names (all when absent, or when none of those sources is there,
    as when fine-tuning on a user's own recordings alone)."""
    keep = set(ccfg.get("sources") or ())
    items = [ex for ex in real_val if not keep or ex.source in keep] or list(real_val)
    n = int(ccfg["max_items"])
    if len(items) <= n:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def init_weights_for(init: str, model_cfg: dict, mcfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The weights a run starts from (``init``: a checkpoint, ``"default"``: the shipped network).

    The checkpoint's model config must equal the run's (``model_cfg`` as written in the config, or
    ``mcfg`` once resolved): fine-tuning keeps the architecture.
    """
    from .infer import DEFAULT_CHECKPOINT

    path = DEFAULT_CHECKPOINT if str(init) == "default" else Path(init)
    meta = load_meta(path)
    theirs = (meta.get("train_config") or {}).get("model", meta.get("model"))
    if theirs != model_cfg and ModelConfig.from_dict(meta.get("model", {})).to_dict() != mcfg.to_dict():
        raise InputError(f"init checkpoint {path} has another model config than this run; fine-tuning keeps the architecture")
    return load_weights(path)


def _truncate_logs(out: Path, step: int) -> None:
    """Drop log rows beyond the checkpoint being resumed, so logs read like one uninterrupted run."""
    csv_path = out / "log.csv"
    if csv_path.is_file():
        lines = csv_path.read_text().splitlines()
        keep = lines[:1] + [l for l in lines[1:] if l and int(l.split(",", 1)[0]) <= step]
        atomic_write_text(csv_path, "\n".join(keep) + "\n" if step > 0 else "")
        if step == 0:
            csv_path.unlink()
    jpath = out / "log.jsonl"
    if jpath.is_file():
        keep = [l for l in jpath.read_text().splitlines() if l and json.loads(l)["step"] <= step]
        atomic_write_text(jpath, "".join(l + "\n" for l in keep))


def _fixed_val_batches(val_ex: list[Example], *, seed: int, fcfg: FeatureConfig, crop_frames: int, n: int,
                       kind: str | None = None):
    """Validation batches made once: half clean, half strongly augmented (always reverb and noise).

    With ``kind`` given, every item is taken as it is (real recordings) and logged under that name.
    """
    if not val_ex:
        return []
    hard = AugmentConfig(p_reverb=1.0, p_noise=1.0, p_freq_mask=0.0)
    batches = []
    fixed_kind = kind
    for i in range(min(n, len(val_ex))):
        rng = np.random.default_rng([seed, 1_000_003, i])
        kind = fixed_kind or ("noisy" if i % 2 else "clean")
        b = make_batch([val_ex[i]], rng=rng, batch_size=1, crop_frames=min(crop_frames * 2, val_ex[i].n_frames),
                       p_clean=0.0 if kind == "noisy" else 1.0, aug=hard, fcfg=fcfg)
        batches.append((kind, b))
    return batches


@torch.no_grad()
def evaluate_loss(model: FlameSyncNet, batches, lw: dict, device) -> dict[str, float]:
    """Mean validation losses per kind (clean / noisy)."""
    model.eval()
    sums: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for kind, b in batches:
        b = {k: v.to(device) for k, v in b.items()}
        _, parts = compute_loss(model(b["feats"]), b, lw)
        s = sums.setdefault(kind, {})
        for k, v in parts.items():
            s[k] = s.get(k, 0.0) + v
        counts[kind] = counts.get(kind, 0) + 1
    return {f"{kind}_{k}": v / counts[kind] for kind, s in sums.items() for k, v in s.items()}


@torch.no_grad()
def calibrate_fusion_real(model: FlameSyncNet, val_ex: list[Example], cfg: dict, *,
                          base: ClosureDecoder) -> tuple["FusionSettings", dict]:
    """Fit the recogniser fusion (:func:`flamesync.net.fusion.calibrate_fusion`) on real recordings
    as they are: the network's closure probabilities, the word recogniser's evidence on the same
    audio, and the items' trusted /p b m/ labels. ``base`` gives the attack and release kept."""
    from ..phonetics.textanimate import recognized_phones
    from ..progress import track
    from .fusion import calibrate_fusion, heard_evidence

    model.eval()
    fcfg = FeatureConfig.from_dict(cfg["features"])
    probs, evidence, labels, speech = [], [], [], []
    for ex in track(val_ex, desc="recognise and fuse"):
        audio = _audio_float(ex.audio)
        _, logit, _ = model(torch.from_numpy(log_mel(audio, config=fcfg))[None])
        n = min(ex.n_frames, logit.shape[1])
        probs.append(torch.sigmoid(logit[0, :n]).numpy())
        evidence.append(heard_evidence(recognized_phones(audio)[1], n, fps=FPS))
        trusted = np.ones(n, bool) if ex.trusted is None else ex.trusted[:n]
        labels.append(ex.closure[:n] * trusted)
        speech.append(ex.speech[:n] & trusted)
    if not probs:
        raise InputError("no items to fit the recogniser fusion on")
    settings, report = calibrate_fusion(probs, evidence, labels, speech, base=base,
                                        max_false_rate=float(cfg["calibration"].get("max_false_rate", 0.03)))
    report["n_items"] = len(probs)
    report["data"] = "real speech: the real corpora's speaker-disjoint val split (calibrate half), as recorded"
    return settings, report


@torch.no_grad()
def calibrate(model: FlameSyncNet, val_ex: list[Example], cfg: dict, *, device=None,
              as_recorded: bool = False) -> tuple[ClosureDecoder, dict]:
    """Choose the closure decoder on noisy, reverberant versions of the validation utterances.

    With ``as_recorded``, the utterances (real recordings) are used as they are, and frames of
    distrusted words count neither as closures nor as other speech.

    With ``calibration.amplitude_map`` set, the report's ``amplitude_map`` holds quantile maps for
    the mouth-opening channels fitted on the same predictions (:mod:`flamesync.net.amplitude`); with
    ``calibration.opening_smoothing`` too, on those predictions smoothed as the checkpoint will smooth
    them, so the smoothed opening keeps the teacher's range instead of losing its peaks; with
    ``calibration.opening_gain``, the map's teacher side is scaled by it (capped at 1).
    """
    model.eval()
    device = device or torch.device("cpu")
    fcfg = FeatureConfig.from_dict(cfg["features"])
    hard = AugmentConfig(p_reverb=1.0, p_noise=1.0)
    channels = tuple(model.cfg.channels)
    fit_map = bool(cfg["calibration"].get("amplitude_map"))
    smoothing = opening_smoothing(cfg["calibration"], channels) if fit_map else None
    max_vowel_rate = cfg["calibration"].get("max_vowel_rate")
    if max_vowel_rate is not None and not (as_recorded and all(ex.phones for ex in val_ex)):
        raise InputError("calibration.max_vowel_rate needs real recordings with aligned phones to calibrate on "
                         "(train --recalibrate with a real corpus)")
    probs, labels, speech, preds, targets, vowels = [], [], [], [], [], []
    for i, ex in enumerate(val_ex):
        audio = _audio_float(ex.audio)
        if not as_recorded:
            audio = augment(audio, rng=np.random.default_rng([int(cfg["seed"]), 2_000_003, i]), config=hard)
        feats = torch.from_numpy(log_mel(audio, config=fcfg))[None].to(device)
        w, logit, _ = model(feats)
        n = min(ex.n_frames, logit.shape[1])
        probs.append(torch.sigmoid(logit[0, :n]).cpu().numpy())
        trusted = np.ones(n, bool) if ex.trusted is None else ex.trusted[:n]
        labels.append(ex.closure[:n] * trusted)
        speech.append(ex.speech[:n] & trusted)
        if ex.phones:
            vowels.append(vowel_middles(ex.phones, n, fps=FPS, trusted=trusted))
        if fit_map:
            pred = w[0, :n].cpu().numpy()
            if smoothing:
                # Inference smooths after the map; the map is fitted before it. The piecewise-linear,
                # monotone map and the unit-gain filter nearly commute, and fitting on what the
                # smoother leaves is what restores the peaks it takes off.
                pred, _ = smooth_channels(pred, alpha=smoothing["alpha"], alpha_closing=smoothing.get("alpha_closing"),
                                          columns=[channels.index(c) for c in smoothing["channels"]])
            preds.append(pred)
            targets.append(np.where(ex.channel_mask[None] > 0, ex.weights[:n], np.nan))
    base = closure_base(cfg["calibration"])
    if not probs:
        return base, {"note": "no validation items; default thresholds"}
    decoder, report = calibrate_threshold(
        probs, labels, speech, base=base, max_false_rate=float(cfg["calibration"].get("max_false_rate", 0.03)),
        vowels=vowels if len(vowels) == len(probs) else None,
        max_vowel_rate=None if max_vowel_rate is None else float(max_vowel_rate))
    report["n_items"] = len(probs)
    report["data"] = ("real speech: the real corpora's speaker-disjoint val split, as recorded" if as_recorded
                      else "val split, every item with reverb (RT60 0.1-0.9 s) and noise (5-35 dB SNR)")
    if fit_map:
        p, t = np.concatenate(preds), np.concatenate(targets)
        report["amplitude_map"] = {}
        for name in OPENING_CHANNELS:
            if name in channels:
                j = channels.index(name)
                ok = np.isfinite(t[:, j])
                if ok.any():
                    report["amplitude_map"][name] = fit_quantile_map(p[ok, j], t[ok, j])
        gain = cfg["calibration"].get("opening_gain")
        if gain is not None:
            # The quantile map matches the teacher's spread of opening over all frames, not its
            # open-vowel peaks, which the network's reach a little short of; a gain on the teacher
            # side (capped at full weight) opens every vowel proportionally wider.
            for m in report["amplitude_map"].values():
                m["y"] = [min(1.0, float(gain) * v) for v in m["y"]]
    return decoder, report
