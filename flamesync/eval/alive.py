"""Metrics of the alive-face layers: blinks, head motion and brow raises against human statistics.

All measured on the animation itself, against the audio and the clip's forced alignment:

- blink rate (per minute) and blink duration: a blink is an upward crossing of 0.5 by the mean
  of ``eyeBlinkLeft/Right``; its duration runs from the lid leaving 0.1 to it returning below 0.1.
- share of blinks that start in a pause or within 300 ms of one, with the chance level (the
  share of the clip's time that is in or that near a pause) beside it; pauses are the
  alignment's silences of at least 150 ms.
- head rotation range (degrees, max - min of yaw, pitch, roll) and the Pearson correlation of
  head pitch (up positive) with F0 (voiced frames, semitones) and of head angular speed with the
  loudness envelope (both smoothed over 200 ms).
- brow-raise rate: upward crossings of 0.15 by ``browInnerUp`` per minute.

The reference ranges (:data:`HUMAN_RANGES`) and their sources are in ``docs/expressive.md``.
"""

from __future__ import annotations

import math

import numpy as np

from ..animation import Animation
from .metrics import SILENCE

# (low, high) of what people do, as summarised in docs/expressive.md.
HUMAN_RANGES = {
    "blinks_per_min": (10.0, 33.0),  # conversation (Bentivoglio et al. 1997; Doughty 2001)
    "blink_ms": (100.0, 400.0),  # a full blink, closing to reopened (Caffier et al. 2003)
    "head_range_deg": (2.0, 20.0),  # per axis over a clip of speech (Hadar et al. 1983; Busso et al. 2007)
    "brow_raises_per_min": (2.0, 30.0),  # plausibility band, see docs (Flecha-Garcia 2010)
}


def _crossings_up(x: np.ndarray, level: float) -> np.ndarray:
    return np.nonzero((x[1:] >= level) & (x[:-1] < level))[0] + 1


def blinks(anim: Animation) -> tuple[np.ndarray, np.ndarray]:
    """Blink start times and durations in seconds, shape (k,) each."""
    if not anim.has("eyeBlinkLeft"):
        return np.zeros(0), np.zeros(0)
    lid = 0.5 * (anim.channel("eyeBlinkLeft") + anim.weights(["eyeBlinkRight"])[:, 0])
    starts, durations = [], []
    for i in _crossings_up(lid, 0.5):
        a = i
        while a > 0 and lid[a - 1] >= 0.1:
            a -= 1
        b = i
        while b < len(lid) and lid[b] >= 0.1:
            b += 1
        starts.append(a / anim.fps)
        durations.append((b - a) / anim.fps)
    return np.asarray(starts), np.asarray(durations)


def pause_mask(phones, n: int, fps: float, *, min_pause: float = 0.15, near: float = 0.0) -> np.ndarray:
    """Frames (n,) inside a silence of at least ``min_pause`` s, widened by ``near`` s each side."""
    mask = np.zeros(n, bool)
    for s in phones:
        if s.phone == SILENCE and s.end - s.start >= min_pause:
            a = max(0, int(math.floor((s.start - near) * fps)))
            b = min(n, int(math.ceil((s.end + near) * fps)))
            mask[a:b] = True
    return mask


def _smooth(x: np.ndarray, fps: float, seconds: float = 0.2) -> np.ndarray:
    k = max(1, int(round(seconds * fps)))
    return np.convolve(x, np.ones(k) / k, mode="same")


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) < 1e-9 or np.std(b) < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def envelopes(wave: np.ndarray, fps: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Loudness (dB) and F0 (semitones re 100 Hz, NaN unvoiced) of 16 kHz audio at ``fps``, shape (n,)."""
    from ..expressive.prosody import FrameAnalyzer

    fa = FrameAnalyzer(fps)
    fa.feed(wave)
    level, f0 = fa.analyse(n)
    return level, 12.0 * np.log2(f0 / 100.0)


def alive_metrics(anim: Animation, wave: np.ndarray, phones, duration: float) -> dict[str, float]:
    """The alive-face figures of one animation (see the module docstring), as a dict."""
    fps = anim.fps
    n = anim.n_frames
    minutes = duration / 60.0
    starts, durs = blinks(anim)
    near = pause_mask(phones, n, fps, near=0.3)
    idx = np.minimum((starts * fps).astype(int), max(n - 1, 0))
    out = {
        "minutes": minutes,
        "n_blinks": int(len(starts)),
        "blinks_per_min": len(starts) / minutes if minutes > 0 else float("nan"),
        "blink_ms": float(np.median(durs) * 1000) if len(durs) else float("nan"),
        "blinks_at_pause": float(np.mean(near[idx])) if len(idx) else float("nan"),
        "pause_chance": float(near.mean()) if n else float("nan"),
    }
    if anim.head is not None:
        from ..export.tables import head_yaw_pitch_roll

        ypr = np.degrees(head_yaw_pitch_roll(anim.head).astype(np.float64))
        out.update(head_yaw_range=float(np.ptp(ypr[:, 0])), head_pitch_range=float(np.ptp(ypr[:, 1])),
                   head_roll_range=float(np.ptp(ypr[:, 2])))
        level, semis = envelopes(wave, fps, n)
        up = -ypr[:, 1]
        voiced = np.isfinite(semis)
        out["head_f0_corr"] = _corr(_smooth(up, fps)[voiced], semis[voiced]) if voiced.sum() > 10 else float("nan")
        speed = np.concatenate([[0.0], np.linalg.norm(np.diff(ypr, axis=0), axis=1) * fps])
        out["head_energy_corr"] = _corr(_smooth(speed, fps), _smooth(np.maximum(level, -60.0), fps))
    else:
        out.update(head_yaw_range=0.0, head_pitch_range=0.0, head_roll_range=0.0,
                   head_f0_corr=float("nan"), head_energy_corr=float("nan"))
    brow = anim.weights(["browInnerUp"])[:, 0]
    out["brow_raises_per_min"] = len(_crossings_up(brow, 0.15)) / minutes if minutes > 0 else float("nan")
    return out


def pool(rows: list[dict[str, float]]) -> dict[str, float]:
    """Overall figures: rates over the total time, medians of per-clip durations and ranges."""
    if not rows:
        return {}
    minutes = sum(r["minutes"] for r in rows)
    n_blinks = sum(r["n_blinks"] for r in rows)
    weights = [r["n_blinks"] for r in rows]

    def wmean(key):
        vals = [(r[key], w) for r, w in zip(rows, weights) if w and not math.isnan(r[key])]
        return sum(v * w for v, w in vals) / sum(w for _, w in vals) if vals else float("nan")

    def med(key):
        vals = [r[key] for r in rows if not math.isnan(r[key])]
        return float(np.median(vals)) if vals else float("nan")

    return {
        "minutes": minutes, "n_blinks": n_blinks,
        "blinks_per_min": n_blinks / minutes if minutes else float("nan"),
        "blink_ms": wmean("blink_ms"),
        "blinks_at_pause": wmean("blinks_at_pause"),
        "pause_chance": float(np.mean([r["pause_chance"] for r in rows])),
        "head_yaw_range": med("head_yaw_range"), "head_pitch_range": med("head_pitch_range"),
        "head_roll_range": med("head_roll_range"),
        "head_f0_corr": med("head_f0_corr"), "head_energy_corr": med("head_energy_corr"),
        "brow_raises_per_min": sum(r["brow_raises_per_min"] * r["minutes"] for r in rows) / minutes if minutes else float("nan"),
    }


def checks(overall: dict[str, float]) -> list[tuple[str, str, bool]]:
    """Each overall figure against its human range: (what, measured, inside)."""
    lo, hi = HUMAN_RANGES["blinks_per_min"]
    rows = [(f"blink rate {lo:g}-{hi:g}/min", f"{overall['blinks_per_min']:.1f}/min",
             lo <= overall["blinks_per_min"] <= hi)]
    lo, hi = HUMAN_RANGES["blink_ms"]
    rows.append((f"blink duration {lo:g}-{hi:g} ms", f"{overall['blink_ms']:.0f} ms", lo <= overall["blink_ms"] <= hi))
    rows.append(("blinks at pauses above chance", f"{overall['blinks_at_pause']:.0%} vs {overall['pause_chance']:.0%}",
                 overall["blinks_at_pause"] > overall["pause_chance"]))
    lo, hi = HUMAN_RANGES["head_range_deg"]
    for axis in ("yaw", "pitch", "roll"):
        v = overall[f"head_{axis}_range"]
        rows.append((f"head {axis} range {lo:g}-{hi:g} deg", f"{v:.1f} deg", lo <= v <= hi))
    rows.append(("head pitch follows F0 (r > 0)", f"r = {overall['head_f0_corr']:.2f}", overall["head_f0_corr"] > 0))
    rows.append(("head speed follows loudness (r > 0)", f"r = {overall['head_energy_corr']:.2f}",
                 overall["head_energy_corr"] > 0))
    lo, hi = HUMAN_RANGES["brow_raises_per_min"]
    v = overall["brow_raises_per_min"]
    rows.append((f"brow raises {lo:g}-{hi:g}/min", f"{v:.1f}/min", lo <= v <= hi))
    return rows


def format_alive(rows: list[tuple[str, str, dict]], overall: dict[str, dict]) -> str:
    """Per (clip, system) lines and an OVERALL line per system."""
    def f(x, fmt):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)

    head = (f"{'clip':42s} {'system':7s} {'blinks/min':>10s} {'blink ms':>8s} {'at pause':>8s} {'chance':>6s} "
            f"{'yaw':>5s} {'pitch':>5s} {'roll':>5s} {'r F0':>5s} {'r loud':>6s} {'brows/min':>9s}")
    lines = [head, "-" * len(head)]
    for clip, system, m in list(rows) + [("OVERALL", s, m) for s, m in overall.items()]:
        lines.append(f"{clip[:42]:42s} {system:7s} {f(m['blinks_per_min'], '10.1f')} {f(m['blink_ms'], '8.0f')} "
                     f"{f(m['blinks_at_pause'], '8.0%')} {f(m['pause_chance'], '6.0%')} "
                     f"{f(m['head_yaw_range'], '5.1f')} {f(m['head_pitch_range'], '5.1f')} "
                     f"{f(m['head_roll_range'], '5.1f')} {f(m['head_f0_corr'], '5.2f')} "
                     f"{f(m['head_energy_corr'], '6.2f')} {f(m['brow_raises_per_min'], '9.1f')}")
    return "\n".join(lines)
