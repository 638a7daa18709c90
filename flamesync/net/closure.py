"""Lip-closure decoding and application.

The network's closure output is a per-frame probability of a bilabial closure (/p b m/). It is turned
into closures with a causal hysteresis decoder (so streaming and offline agree frame for frame), and
decoded closures pull the lip channels smoothly to the closure pose measured on the training
targets. The thresholds are calibrated on noisy, reverberant synthetic validation speech
(:func:`calibrate_threshold`), never on real recordings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .targets import closure_segments

# Channels a closure overrides: the jaw and the lip-sealing shapes. Rounding (funnel/pucker) and
# smiles are left to the network so coarticulation such as the rounded /m/ of "moon" survives.
CLOSURE_CHANNELS: tuple[str, ...] = (
    "jawOpen", "mouthClose", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
)


@dataclass(frozen=True)
class ClosureDecoder:
    """Hysteresis decoder settings.

    Attributes
    ----------
    on : float
        A closure starts when the probability reaches ``on``.
    off : float
        It ends when the probability falls below ``off`` (``off <= on``) ...
    min_frames : int
        ... but not before it has lasted ``min_frames`` frames.
    attack, release : float
        Per-frame smoothing of the closure strength towards 1 (closing) and 0 (opening). At 0.7
        the lips still seal within the two frames a shortest closure lasts (0.91 of the way), and
        the gap moves less abruptly than at 0.85, which the jitter metric sees (docs/model.md).
    """

    on: float = 0.5
    off: float = 0.35
    min_frames: int = 3
    attack: float = 0.7
    release: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ClosureDecoder":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def decode_closures(prob: np.ndarray, *, on: float, off: float, min_frames: int,
                    state: tuple[bool, int] | None = None) -> tuple[np.ndarray, tuple[bool, int]]:
    """Causal hysteresis decoding of closure probabilities.

    Parameters
    ----------
    prob : np.ndarray, shape (T,)
    state : (closed, frames_closed) carried from a previous call, or None

    Returns
    -------
    mask : np.ndarray, shape (T,), bool
    state : the state after the last frame
    """
    closed, run = state if state is not None else (False, 0)
    mask = np.zeros(len(prob), bool)
    for t, p in enumerate(np.asarray(prob, np.float64)):
        if closed:
            if p < off and run >= min_frames:
                closed, run = False, 0
        elif p >= on:
            closed, run = True, 0
        if closed:
            run += 1
        mask[t] = closed
    return mask, (closed, run)


def closure_strength(mask: np.ndarray, *, attack: float, release: float,
                     state: float | None = None) -> tuple[np.ndarray, float]:
    """Smooth a closure mask into a strength in [0, 1] with one-pole attack/release. Shape (T,)."""
    s = 0.0 if state is None else float(state)
    out = np.zeros(len(mask), np.float32)
    for t, m in enumerate(mask):
        target = 1.0 if m else 0.0
        s += (attack if target > s else release) * (target - s)
        out[t] = s
    return out, s


def apply_closures(weights: np.ndarray, strength: np.ndarray, *, channels: tuple[str, ...],
                   pose: dict[str, float]) -> np.ndarray:
    """Blend the closure channels towards ``pose`` by ``strength``.

    Parameters
    ----------
    weights : np.ndarray, shape (T, C)
    strength : np.ndarray, shape (T,)
    channels : names of the C columns
    pose : closure value per channel (channels absent from it are untouched)

    Returns
    -------
    np.ndarray, shape (T, C), float32
    """
    out = np.array(weights, np.float32, copy=True)
    s = np.asarray(strength, np.float32)
    for name in CLOSURE_CHANNELS:
        if name in pose and name in channels:
            j = channels.index(name)
            out[:, j] += s * (np.float32(pose[name]) - out[:, j])
    return out


def closure_scores(masks: list[np.ndarray], labels: list[np.ndarray], speech: list[np.ndarray], *,
                   fps: float = 50.0) -> dict:
    """How well decoded closures match labelled /p b m/ frames.

    Parameters
    ----------
    masks : per utterance, decoded closure, shape (T,) bool
    labels : per utterance, labelled closure frames, shape (T,)
    speech : per utterance, frames inside some phone (not silence), shape (T,) bool

    Returns
    -------
    dict with ``recall`` (share of labelled closures with a decoded closed frame within one frame of
    them), ``false_rate`` (share of other speech frames, more than one frame from a labelled closure,
    decoded closed), ``spurious_per_min`` (decoded closures touching no labelled one, per minute of
    speech: the lips shutting on a vowel, as opposed to a closure held a little long) and
    ``n_closures``.
    """
    hit = total = fp = neg = spurious = 0
    speech_frames = 0
    for m, lab, sp in zip(masks, labels, speech):
        lab = np.asarray(lab) > 0.5
        near = lab.copy()
        near[1:] |= lab[:-1]
        near[:-1] |= lab[1:]
        for a, b in closure_segments(lab):
            total += 1
            hit += bool(m[max(0, a - 1): b + 1].any())
        other = np.asarray(sp, bool) & ~near
        neg += int(other.sum())
        fp += int((m & other).sum())
        spurious += sum(not near[a:b].any() for a, b in closure_segments(m))
        speech_frames += int(np.asarray(sp, bool).sum())
    return {
        "recall": hit / total if total else float("nan"),
        "false_rate": fp / neg if neg else float("nan"),
        "spurious_per_min": spurious / (speech_frames / fps / 60.0) if speech_frames else float("nan"),
        "n_closures": total,
    }


def vowel_middles(phones, n_frames: int, *, fps: float = 50.0, trusted: np.ndarray | None = None) -> np.ndarray:
    """Frame spans of the middle half of each vowel, where a closure shows as a vowel shut.

    The same spans as the evaluation's vowels-shut metric (``flamesync.eval.metrics``), at the
    network's frame rate; vowels touching a distrusted frame are left out.

    Parameters
    ----------
    phones : aligned phones (``.phone``, ``.start``, ``.end`` in seconds)
    n_frames : frames of the utterance
    trusted : np.ndarray, shape (n_frames,), bool, or None (all trusted)

    Returns
    -------
    np.ndarray, shape (V, 2), int: ``[start, stop)`` per vowel
    """
    from ..phonetics.phoneset import inventory

    phone_set = inventory()
    spans = []
    for s in phones:
        info = phone_set.get(s.phone)
        if info is None or not info.is_vowel or n_frames == 0:
            continue
        quarter = (s.end - s.start) / 4
        a = max(0, min(int(np.floor((s.start + quarter) * fps)), n_frames - 1))
        b = max(1, min(int(np.ceil((s.end - quarter) * fps)), n_frames))
        if trusted is not None and not np.asarray(trusted[a:b]).all():
            continue
        spans.append((a, b))
    return np.asarray(spans, np.int64).reshape(-1, 2)


def vowel_closure_rate(masks: list[np.ndarray], vowels: list[np.ndarray]) -> float:
    """Share of vowels (spans from :func:`vowel_middles`) with a decoded closure frame in them."""
    hit = total = 0
    for m, spans in zip(masks, vowels):
        for a, b in spans:
            total += 1
            hit += bool(m[a:b].any())
    return hit / total if total else float("nan")


def calibrate_threshold(probs: list[np.ndarray], labels: list[np.ndarray], speech: list[np.ndarray], *,
                        base: ClosureDecoder = ClosureDecoder(), max_false_rate: float = 0.03,
                        vowels: list[np.ndarray] | None = None,
                        max_vowel_rate: float | None = None) -> tuple[ClosureDecoder, dict]:
    """Grid-search the decoder on (noisy, reverberant) validation data.

    Picks the decoder with the highest closure recall among those that close the lips on at most
    ``max_false_rate`` of the other speech frames (ties: fewer false closures); a missed /p b m/
    is the visible error the issue is about, but lips shutting on vowels hurts openness. With
    ``max_vowel_rate`` (and ``vowels``, per utterance the spans of :func:`vowel_middles`), a
    decoder must also close during at most that share of vowels: the currency the evaluation
    counts. If no setting meets the budgets, the one maximising ``recall - 2 * false_rate`` is taken.

    Returns
    -------
    decoder : the chosen :class:`ClosureDecoder`
    report : its scores, the rule used, and the scores of the naive 0.5 decision
    """
    results = []
    # Steps of 0.025: near the budget, recall moves by about 5 points per 0.05 of threshold.
    for on in np.arange(0.10, 0.951, 0.025):
        for gap in (0.1, 0.2, 0.3):
            for min_frames in (2, 3, 4):
                dec = ClosureDecoder(on=round(float(on), 3), off=round(max(0.02, float(on) - gap), 3),
                                     min_frames=min_frames, attack=base.attack, release=base.release)
                masks = [decode_closures(p, on=dec.on, off=dec.off, min_frames=dec.min_frames)[0] for p in probs]
                sc = closure_scores(masks, labels, speech)
                if vowels is not None:
                    sc["vowel_rate"] = vowel_closure_rate(masks, vowels)
                results.append((dec, sc))
    if max_vowel_rate is not None and vowels is None:
        raise ValueError("a vowel budget needs the vowels' spans")
    ok = [(d, sc) for d, sc in results if sc["false_rate"] <= max_false_rate
          and (max_vowel_rate is None or sc["vowel_rate"] <= max_vowel_rate)]
    budget = f"false_rate <= {max_false_rate}" + (f" and vowel_rate <= {max_vowel_rate}"
                                                  if max_vowel_rate is not None else "")
    if ok:
        best, best_scores = max(ok, key=lambda r: (r[1]["recall"], -r[1]["false_rate"]))
        rule = f"max recall with {budget}"
    else:
        best, best_scores = max(results, key=lambda r: r[1]["recall"] - 2.0 * r[1]["false_rate"])
        rule = f"no setting had {budget}: max recall - 2 * false_rate"
    naive = closure_scores([np.asarray(p) >= 0.5 for p in probs], labels, speech)
    return best, {"calibrated": best_scores, "naive_0.5": naive, "rule": rule}
