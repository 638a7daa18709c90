"""Closure evidence from a word recogniser, fused with the network's closure probability.

The network hears acoustics frame by frame; a word recogniser with a language model (pocketsphinx,
as phoneme tools such as Rhubarb use) hears words, whose forced alignment says where it heard
/p b m/ and where it heard a vowel. The fusion adds that evidence to the network's closure logit
and decodes the result with its own calibrated decoder:

    logit(p) = logit(p_net) + bonus * heard_pbm - penalty * heard_vowel

Every other channel (the jaw, rounding, the amplitude map) stays the network's. The settings
(``bonus``, ``penalty`` and the decoder) are fitted on real speech (:func:`calibrate_fusion`) and
stored in the checkpoint description under ``"fusion"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .closure import ClosureDecoder, calibrate_threshold
from .targets import VISEME_CLASSES, frame_labels

# Viseme classes of vowels and the palatal glide: the lips are apart in all of them. /w/ and the
# close rounded vowels (class W) narrow the lips a lot, so hearing them is no evidence against a
# closure.
_OPEN_CLASSES = frozenset(VISEME_CLASSES.index(c) for c in ("Y", "E", "A", "O", "U"))

BONUS_GRID: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
PENALTY_GRID: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)

_LOGIT_CLIP = 1e-6


@dataclass(frozen=True)
class FusionSettings:
    """How recogniser evidence moves the closure decision.

    Attributes
    ----------
    bonus : float
        Added to the closure logit on frames where the recogniser heard /p b m/ (one frame of slack
        either side, for boundary placement).
    penalty : float
        Subtracted on frames where it heard a vowel.
    decoder : ClosureDecoder
        Hysteresis thresholds for the fused probability.
    """

    bonus: float = 0.0
    penalty: float = 0.0
    decoder: ClosureDecoder = field(default_factory=ClosureDecoder)

    def to_dict(self) -> dict:
        return {"bonus": self.bonus, "penalty": self.penalty, "decoder": self.decoder.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "FusionSettings":
        return cls(bonus=float(d.get("bonus", 0.0)), penalty=float(d.get("penalty", 0.0)),
                   decoder=ClosureDecoder.from_dict(d.get("decoder") or {}))


def heard_evidence(phones: Iterable, n_frames: int, *, fps: float = 50.0) -> np.ndarray:
    """Frames where a recogniser heard /p b m/ and where it heard a vowel.

    Parameters
    ----------
    phones : iterable of objects with ``start``, ``end`` (seconds) and ``phone`` (IPA)
        The recognised words' aligned phones.
    n_frames : int
    fps : float

    Returns
    -------
    np.ndarray, shape (2, n_frames), bool
        Row 0: /p b m/ (widened by one frame each side); row 1: vowels.
    """
    closure, vis = frame_labels(list(phones), n_frames, fps=fps)
    pbm = closure > 0.5
    wide = pbm.copy()
    wide[1:] |= pbm[:-1]
    wide[:-1] |= pbm[1:]
    vowel = np.isin(vis, list(_OPEN_CLASSES)) & ~wide
    return np.stack([wide, vowel])


def fuse_closure_prob(prob: np.ndarray, evidence: np.ndarray, *, bonus: float, penalty: float) -> np.ndarray:
    """The network's closure probability moved by recogniser evidence, in the logit domain.

    Parameters
    ----------
    prob : np.ndarray, shape (T,)
    evidence : np.ndarray, shape (2, T'), bool
        From :func:`heard_evidence`; ``T'`` may differ from ``T`` by the rounding of the frame
        count (missing frames count as no evidence).

    Returns
    -------
    np.ndarray, shape (T,), float32
    """
    p = np.clip(np.asarray(prob, np.float64), _LOGIT_CLIP, 1.0 - _LOGIT_CLIP)
    n = min(len(p), evidence.shape[1])
    shift = np.zeros(len(p))
    shift[:n] = bonus * evidence[0, :n] - penalty * evidence[1, :n]
    logit = np.log(p) - np.log1p(-p) + shift
    return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)


def calibrate_fusion(probs: list[np.ndarray], evidence: list[np.ndarray], labels: list[np.ndarray],
                     speech: list[np.ndarray], *, base: ClosureDecoder = ClosureDecoder(),
                     max_false_rate: float, bonuses: tuple[float, ...] = BONUS_GRID,
                     penalties: tuple[float, ...] = PENALTY_GRID) -> tuple[FusionSettings, dict]:
    """Choose bonus, penalty and decoder jointly: the highest closure recall at a false rate within
    budget (ties: fewer false closures), as :func:`flamesync.net.closure.calibrate_threshold` does
    for the network alone.

    Parameters
    ----------
    probs, evidence, labels, speech : per utterance
        Network closure probabilities (T,), :func:`heard_evidence` (2, T), labelled closure frames
        (T,) and speech frames (T,) bool, with distrusted frames already removed from the last two.
    max_false_rate : float

    Returns
    -------
    settings : FusionSettings
    report : the chosen scores and, per (bonus, penalty), the best decoder's recall and false rate
    """
    grid = []
    for bonus in bonuses:
        for penalty in penalties:
            fused = [fuse_closure_prob(p, e, bonus=bonus, penalty=penalty) for p, e in zip(probs, evidence)]
            dec, rep = calibrate_threshold(fused, labels, speech, base=base, max_false_rate=max_false_rate)
            grid.append((FusionSettings(bonus=bonus, penalty=penalty, decoder=dec), rep["calibrated"],
                         rep["rule"].startswith("max recall")))
    within = [g for g in grid if g[2]] or grid
    best, scores, _ = max(within, key=lambda g: (g[1]["recall"], -g[1]["false_rate"]))
    report = {
        "rule": f"max recall with false_rate <= {max_false_rate} over bonus x penalty x decoder",
        "calibrated": scores,
        "grid": [{"bonus": s.bonus, "penalty": s.penalty, "recall": round(sc["recall"], 4),
                  "false_rate": round(sc["false_rate"], 4), "within_budget": ok} for s, sc, ok in grid],
    }
    return best, report


def fusion_settings(model) -> FusionSettings:
    """The fusion fitted for ``model`` (a :class:`flamesync.net.infer.LoadedModel`), from its description."""
    from ..errors import InputError

    block = model.meta.get("fusion")
    if not block:
        raise InputError("this network has no recogniser fusion fitted; fit one with "
                         "'flamesync train --recalibrate CHECKPOINT --fusion --out NEW'")
    return FusionSettings.from_dict(block)


def predict_fused(model, audio: np.ndarray, *, settings: FusionSettings | None = None, phones=None,
                  progress=None):
    """Animate speech with the network, its closures decided with the word recogniser's evidence.

    Parameters
    ----------
    model : flamesync.net.infer.LoadedModel
    audio : np.ndarray, shape (N,), float32, 16 kHz mono
    settings : FusionSettings or None
        Default: the model's own (:func:`fusion_settings`).
    phones : list of PhoneSegment or None
        The recognised words' aligned phones, when already known (e.g. shared with another system
        on the same audio); default: recognise them here (about a third of real time).
    progress : callable or None
        As for :meth:`LoadedModel.predict_raw`.

    Returns
    -------
    Animation
        At 50 fps, the network's channels; ``meta["text"]`` holds the recognised words and
        ``meta["phones"]`` their phones.
    """
    from .infer import Postprocessor, check_audio

    settings = settings or fusion_settings(model)
    audio = check_audio(audio)
    words = None
    if phones is None:
        from ..phonetics.textanimate import recognized_phones

        words, phones = recognized_phones(audio)
    raw = model.predict_raw(audio, progress=progress)
    evidence = heard_evidence(phones, len(raw.closure_prob))
    prob = fuse_closure_prob(raw.closure_prob, evidence, bonus=settings.bonus, penalty=settings.penalty)
    weights = Postprocessor(model, decoder=settings.decoder).process(raw.weights, prob)
    anim = model.to_animation(weights)
    meta = {**anim.meta, "closures": "fused with the word recogniser",
            "phones": [[round(p.start, 4), round(p.end, 4), p.phone] for p in phones]}
    if words is not None:
        meta["text"] = words
    return anim.replace(meta=meta)
