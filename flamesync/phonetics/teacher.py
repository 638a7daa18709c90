"""The coarticulation teacher: timed phones to ARKit-52 speech weights plus the implied jaw rotation.

Phones map to visemes and to per-phone dominance parameters through the tables in
``configs/visemes/`` (``ipa_visemes.tsv``, ``visemes_arkit.tsv``, ``channel_groups.tsv``). The motion
is a dominance blend in the spirit of Cohen & Massaro (1993): every phone pulls each articulator
group (jaw, lips, lip rounding, tongue) towards its viseme's target with a strength that is largest
over the phone's core and decays before it (anticipation) and after it (carry-over),

    x_c(t) = sum_i D_ig(t) T_ic / sum_i D_ig(t),    D_ig(t) = a_ig exp(-(d_i(t) / tau_ig)^k),

with ``d_i(t)`` the distance from ``t`` to phone ``i``'s core, ``g`` the group of channel ``c`` and
``k > 1`` so that the curves are continuously differentiable. Rounded vowels have long anticipation
constants on the rounding group and consonants a weak rounding dominance, so lip rounding starts
several phones ahead of a rounded vowel and passes through the consonants before it. Speaking rate
acts twice: short vowels reach less of their target (undershoot), and the time constants shrink
less than the phones do, so fast speech overlaps more.

Speech needs some things that a blend cannot guarantee; they are enforced afterwards, frame by frame:

- bilabial closure (/p b m/): the lips seal (``mouthClose = jawOpen``, jaw nearly shut, lip
  openers off) on every frame inside the closure, and on the nearest frame when a closure is
  shorter than a frame, however fast the speech;
- labiodentals (/f v/): lower lip rolled in under the upper teeth;
- sibilants: jaw nearly closed;
- silences longer than ``rest_after`` (0.3 s): the face returns to the rest pose (all zeros).

The lips are sealed by ``mouthClose``, which in ARKit closes the lips against the current
``jawOpen``: the teacher keeps an internal ``lipClosure`` amount (0..1) and outputs
``mouthClose = seal * lipClosure * jawOpen``.
"""

from __future__ import annotations

import functools
import math
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..animation import Animation
from ..channels import JAW_OPEN_RAD, JAW_ROTATION, JAW_ROTATION_IMPLIED, SPEECH_CHANNELS
from ..errors import InputError
from ..tables import config_path

CONFIG_DIR = config_path("visemes")
GROUPS: tuple[str, ...] = ("jaw", "lips", "round", "tongue")
LIP_CLOSURE = "lipClosure"  # virtual channel, turned into mouthClose
SILENCE_LABELS = frozenset({"_", "", "sil", "sp", "spn", "pau", "SIL", "<sil>", "h#", "#"})
INTERNAL_RATE = 200.0  # Hz; dominance curves are evaluated here, then low-passed to the frame rate
TEACHER_VERSION = 1

# Style parameters accepted by phones_to_animation, with their defaults.
DEFAULT_STYLE: dict[str, float] = {
    "amplitude": 1.0,       # scale of the free (non-constrained) motion
    "anticipation": 1.0,    # scale of the anticipatory time constants
    "carryover": 1.0,       # scale of the carry-over time constants
    "rate_adapt": 1.0,      # 0 disables speaking-rate dependence
    "exponent": 1.5,        # k in the dominance function (> 1: C1 curves)
    "core": 0.5,            # fraction of each phone's duration held at full dominance
    "smoothing": 0.012,     # s, Gaussian low-pass before sampling at the frame rate
    "seal": 1.0,            # mouthClose / jawOpen ratio that seals the lips on the target rig
    "bilabial_jaw": 0.09,   # jawOpen ceiling during bilabial closures
    "sibilant_jaw": 0.06,   # jawOpen ceiling during sibilants
    "labiodental_jaw": 0.12,
    "constraint_ramp": 0.025,  # s, how far constraint blending reaches outside the interval
    "rest_after": 0.30,     # s, silences at least this long return to rest
    "rest_ramp": 0.12,      # s, time to reach rest inside such a silence
}


# ---------------------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class PhoneEntry:
    """One row of ``ipa_visemes.tsv``."""

    phone: str
    viseme: str
    kind: str              # "vowel" | "consonant" | "silence"
    constraint: str        # "bilabial" | "labiodental" | "sibilant" | "-"
    alpha: tuple[float, float, float, float]  # dominance magnitude per group in GROUPS order
    ant: float             # s
    carry: float           # s
    round_ant: float       # s


@dataclass(frozen=True, eq=False)
class VisemeTables:
    """The loaded tables: phones, viseme targets over the internal channels, channel groups."""

    phones: dict[str, PhoneEntry]
    channels: tuple[str, ...]          # internal channels: SPEECH_CHANNELS + lipClosure
    group_of: np.ndarray               # (C,) int index into GROUPS
    targets: dict[str, np.ndarray]     # viseme -> (C,) float
    max_symbol: int                    # longest phone key, for tokenising


def _read_tsv(path: Path) -> list[dict[str, str]]:
    from ..tables import read_tsv

    return read_tsv(path, pad=True)


def _expand_lr(name: str) -> list[str]:
    return [name[:-2] + "Left", name[:-2] + "Right"] if name.endswith("LR") else [name]


@functools.lru_cache(maxsize=4)
def load_tables(config_dir: str | None = None) -> VisemeTables:
    """Load and check the viseme tables (cached).

    Parameters
    ----------
    config_dir : str or None
        Folder holding ``ipa_visemes.tsv``, ``visemes_arkit.tsv`` and ``channel_groups.tsv``;
        default ``configs/visemes`` of the flamesync checkout.
    """
    from ..channels import parse_assignments

    base = Path(config_dir) if config_dir else CONFIG_DIR
    channels = tuple(SPEECH_CHANNELS) + (LIP_CLOSURE,)
    groups = {r["channel"]: r["group"] for r in _read_tsv(base / "channel_groups.tsv")}
    missing = [c for c in channels if c not in groups]
    if missing:
        raise InputError(f"channel_groups.tsv lacks {', '.join(missing)}")
    group_of = np.array([GROUPS.index(groups[c]) for c in channels], dtype=np.int64)
    targets: dict[str, np.ndarray] = {}
    for row in _read_tsv(base / "visemes_arkit.tsv"):
        vec = np.zeros(len(channels), np.float64)
        for name, value in parse_assignments(row.get("targets", "")).items():
            for n in _expand_lr(name):
                if n not in channels:
                    raise InputError(f"visemes_arkit.tsv: viseme {row['viseme']} names unknown channel {n}")
                vec[channels.index(n)] = value
        targets[row["viseme"]] = vec
    phones: dict[str, PhoneEntry] = {}
    for row in _read_tsv(base / "ipa_visemes.tsv"):
        if row["viseme"] not in targets:
            raise InputError(f"ipa_visemes.tsv: phone {row['phone']} uses unknown viseme {row['viseme']}")
        phones[row["phone"]] = PhoneEntry(
            phone=row["phone"], viseme=row["viseme"], kind=row["kind"], constraint=row["constraint"],
            alpha=tuple(float(row[f"a_{g}"]) for g in GROUPS),  # type: ignore[arg-type]
            ant=float(row["ant_ms"]) / 1000, carry=float(row["carry_ms"]) / 1000,
            round_ant=float(row["round_ant_ms"]) / 1000,
        )
    return VisemeTables(phones, channels, group_of, targets, max(len(p) for p in phones))


# ---------------------------------------------------------------------------------------- phones
_STRIP = set("ˈˌːˑ\u200d\u200c͜͡.-'ʰʲʷˠˤⁿˡʼ˞˥˦˧˨˩0123456789")
_warned: set[str] = set()


def _warn_once(phone: str, how: str) -> None:
    if phone not in _warned:
        _warned.add(phone)
        warnings.warn(f"teacher: phone {phone!r} is not in the viseme table; {how}", stacklevel=3)


def _strip(phone: str) -> str:
    s = unicodedata.normalize("NFD", phone)
    return "".join(ch for ch in s if ch not in _STRIP and not unicodedata.combining(ch))


def _tokenise(text: str, keys: dict[str, PhoneEntry], longest: int) -> tuple[list[str], list[str]]:
    """Greedy longest-match split of ``text`` into table symbols; returns (symbols, unknown chars)."""
    out, unknown, i = [], [], 0
    while i < len(text):
        for n in range(min(longest, len(text) - i), 0, -1):
            if text[i:i + n] in keys:
                out.append(text[i:i + n])
                i += n
                break
        else:
            unknown.append(text[i])
            i += 1
    return out, unknown


def _entry_from_features(phone: str, tables: VisemeTables) -> PhoneEntry | None:
    """Map a phone by its phonetic features (from flamesync.phonetics.phoneset) to a table phone."""
    try:
        from . import phoneset  # the unified inventory, when present
    except ImportError:
        return None
    feats = None
    for name in ("phone_info", "features"):
        fn = getattr(phoneset, name, None)
        if callable(fn):
            try:
                feats = fn(phone)
            except Exception:  # unknown to the inventory as well
                feats = None
            break
    if not feats:
        return None
    get = (lambda k: feats.get(k)) if isinstance(feats, dict) else (lambda k: getattr(feats, k, None))
    return _closest_by_features(get, tables)


def _closest_by_features(get, tables: VisemeTables) -> PhoneEntry | None:
    manner = str(get("manner") or "").lower()
    place = str(get("place") or "").lower()
    rounded = str(get("rounding") or get("rounded") or "").lower() in ("1", "true", "rounded", "yes", "+")
    ph = tables.phones
    if "vowel" in manner or get("height") not in (None, ""):
        height = str(get("height") or "").lower()
        back = str(get("backness") or get("back") or "").lower()
        if "open" in height and "mid" not in height:
            return ph["ɒ" if rounded else "a"]
        if "mid" in height:
            if rounded:
                return ph["o" if "back" in back else "ø"]
            return ph["e" if "front" in back else "ə"]
        if rounded:
            return ph["u" if "back" in back else "y"]
        return ph["i" if "front" in back else "ɨ"]
    if "bilabial" in place:
        return ph["β" if "fric" in manner or "approx" in manner else "p"]
    if "labiodental" in place or "labio-dental" in place:
        return ph["f"]
    if "dental" in place and "alveolar" not in place:
        return ph["θ"]
    if "labial-velar" in place or "labiovelar" in place:
        return ph["w"]
    if "fricative" in manner or "affricate" in manner or "sibilant" in manner:
        if "post" in place or "retroflex" in place or "palato" in place:
            return ph["ʃ"]
        if "alveolar" in place:
            return ph["s"]
    if "velar" in place or "uvular" in place or "palatal" in place:
        return ph["k"]
    if "glottal" in place or "pharyngeal" in place:
        return ph["h"]
    if manner or place:
        return ph["t"]
    return None


def resolve_phone(phone: str, tables: VisemeTables | None = None) -> list[PhoneEntry]:
    """The table entries a phone label stands for, in time order (diphthongs give two).

    Tries, in order: the label itself; the label without stress, length, tone and diacritics;
    a split into listed symbols (diphthongs, affricates, clusters); the phonetic features of the
    unified inventory. Anything left is treated as a neutral consonant, with one warning per label.
    Never raises.
    """
    tables = tables or load_tables()
    return list(_resolve_cached(phone, tables))


@functools.lru_cache(maxsize=4096)
def _resolve_cached(phone: str, tables: VisemeTables) -> tuple[PhoneEntry, ...]:
    keys = tables.phones
    if phone in SILENCE_LABELS or phone.strip() in SILENCE_LABELS:
        return (keys["_"],)
    if phone in keys:
        return (keys[phone],)
    s = _strip(phone)
    if s in keys:
        return (keys[s],)
    if s:
        parts, unknown = _tokenise(s, keys, tables.max_symbol)
        if parts and not unknown:
            return tuple(keys[p] for p in parts)
        if parts:
            _warn_once(phone, f"ignoring {''.join(unknown)!r} and using {' '.join(parts)}")
            return tuple(keys[p] for p in parts)
    entry = _entry_from_features(phone, tables)
    if entry is not None:
        _warn_once(phone, f"mapped by phonetic features to {entry.phone!r}")
        return (entry,)
    _warn_once(phone, "treated as a neutral consonant")
    return (keys["h"],)


def _segments(
    phones: Sequence[Any], duration: float, tables: VisemeTables
) -> tuple[np.ndarray, np.ndarray, list[PhoneEntry]]:
    """Expand phone segments into table entries, filling gaps and the ends with silence.

    Returns starts (P,), ends (P,) and the P entries, sorted by time, covering [0, duration].
    """
    sil = tables.phones["_"]
    items: list[tuple[float, float, PhoneEntry]] = []
    for seg in sorted(phones, key=lambda p: (float(p.start), float(p.end))):
        s, e = float(seg.start), float(seg.end)
        if not (math.isfinite(s) and math.isfinite(e)) or e < s:
            raise InputError(f"phone segment {seg.phone!r} has invalid times {s}..{e}")
        if e <= s:
            continue
        parts = _resolve_cached(str(seg.phone), tables)
        if len(parts) == 1:
            items.append((s, e, parts[0]))
            continue
        # Diphthongs spend a little longer on their first part; clusters split evenly.
        w = np.ones(len(parts))
        if all(p.kind == "vowel" for p in parts):
            w[0] = 1.4
        edges = s + (e - s) * np.concatenate([[0.0], np.cumsum(w) / w.sum()])
        items.extend((float(a), float(b), p) for a, b, p in zip(edges[:-1], edges[1:], parts))
    out: list[tuple[float, float, PhoneEntry]] = []
    t = 0.0
    for s, e, entry in items:
        if s > t + 1e-6:
            out.append((t, s, sil))
        s = max(s, t)  # overlapping input: later phones start where earlier ones end
        if e > s:
            out.append((s, e, entry))
            t = e
    if duration > t + 1e-6:
        out.append((t, duration, sil))
    # Merge adjacent silences so that "long silence" means the whole pause.
    merged: list[tuple[float, float, PhoneEntry]] = []
    for s, e, entry in out:
        if merged and entry.kind == "silence" and merged[-1][2].kind == "silence":
            merged[-1] = (merged[-1][0], e, entry)
        else:
            merged.append((s, e, entry))
    if not merged:
        merged = [(0.0, max(duration, 1e-3), sil)]
    starts = np.array([m[0] for m in merged])
    ends = np.array([m[1] for m in merged])
    return starts, ends, [m[2] for m in merged]


# ---------------------------------------------------------------------------------------- model
def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def local_duration_scale(starts: np.ndarray, ends: np.ndarray, speech: np.ndarray, *, ref: float = 0.08) -> np.ndarray:
    """Speaking-rate factor per phone: mean duration of nearby speech phones over ``ref``.

    Parameters
    ----------
    starts, ends : (P,) seconds
    speech : (P,) bool, False for silences
    ref : float
        A typical phone duration at a normal rate (about 12 phones per second).

    Returns
    -------
    (P,) float, < 1 for fast speech
    """
    dur = ends - starts
    out = np.ones(len(dur))
    idx = np.flatnonzero(speech)
    for k, i in enumerate(idx):
        nb = idx[max(0, k - 2):k + 3]
        out[i] = dur[nb].mean() / ref
    return out


def dominance(
    t: np.ndarray, core_start: np.ndarray, core_end: np.ndarray, alpha: np.ndarray,
    tau_before: np.ndarray, tau_after: np.ndarray, *, exponent: float,
) -> np.ndarray:
    """Dominance of P phones at M times: ``alpha * exp(-(d / tau)^exponent)``.

    Parameters
    ----------
    t : (M,) seconds
    core_start, core_end, alpha, tau_before, tau_after : (P,)
    exponent : float

    Returns
    -------
    (P, M)
    """
    tt = t[None, :]
    before = np.clip(core_start[:, None] - tt, 0.0, None) / tau_before[:, None]
    after = np.clip(tt - core_end[:, None], 0.0, None) / tau_after[:, None]
    return alpha[:, None] * np.exp(-((before + after) ** exponent))


# Rows of the internal-rate curves computed at a time. Blocks of frames start on multiples of it,
# so every row is computed with the same neighbours (the same phones selected, the same matrix
# shapes) whatever the block: the same numbers as one pass.
_BLEND_CHUNK = 2048


@dataclass(frozen=True)
class _Blend:
    """Per-phone quantities of the dominance blend (every array (P,) or (P, ·))."""

    visemes: np.ndarray  # (V, C) the tables' viseme targets
    viseme: np.ndarray  # (P,) each phone's row of it
    gain: np.ndarray  # (P,) undershoot (applied to vowels)
    is_vowel: np.ndarray
    amplitude: float
    alpha: np.ndarray
    ant: np.ndarray
    round_ant: np.ndarray
    carry: np.ndarray
    cs: np.ndarray
    ce: np.ndarray
    reach: float
    n_channels: int


def _blend_setup(starts: np.ndarray, ends: np.ndarray, entries: list[PhoneEntry], tables: VisemeTables,
                 style: dict[str, float]) -> _Blend:
    dur = ends - starts
    is_sil = np.array([e.kind == "silence" for e in entries])
    is_vowel = np.array([e.kind == "vowel" for e in entries])
    names = list(tables.targets)
    row = {n: i for i, n in enumerate(names)}
    visemes = np.stack([tables.targets[n] for n in names])
    viseme = np.array([row[e.viseme] for e in entries], dtype=np.intp)
    # Undershoot: short vowels reach less of their target (applied per block, _targets).
    gain = 1.0 - 0.4 * style["rate_adapt"] * np.exp(-dur / 0.06)
    rate = local_duration_scale(starts, ends, ~is_sil)
    tau_scale = np.clip(rate, 0.6, 1.4) ** (0.5 * style["rate_adapt"])
    alpha = np.array([e.alpha for e in entries])  # (P, G)
    ant = np.array([e.ant for e in entries]) * tau_scale * style["anticipation"]
    round_ant = np.array([e.round_ant for e in entries]) * tau_scale * style["anticipation"]
    carry = np.array([e.carry for e in entries]) * tau_scale * style["carryover"]
    centre = 0.5 * (starts + ends)
    half = np.where(is_sil, 0.5 * dur, 0.5 * style["core"] * dur)
    reach = 8.0 * max(ant.max(), round_ant.max(), carry.max())
    return _Blend(visemes, viseme, gain, is_vowel, float(style["amplitude"]), alpha, ant, round_ant, carry,
                  centre - half, centre + half, reach, len(tables.channels))


def _targets(bl: _Blend, sel: np.ndarray) -> np.ndarray:
    """Target rows of the phones ``sel``, (len(sel), C): made for the phones a block reads, not
    kept for the whole take (an hour's would be tens of MB), with the same arithmetic per value."""
    target = bl.visemes[bl.viseme[sel]]
    vowel = bl.is_vowel[sel]
    target[vowel] *= bl.gain[sel][vowel, None]
    target[:, :-1] *= bl.amplitude  # not lipClosure: closure is a property, not a size
    return target


def _blend_rows(bl: _Blend, tables: VisemeTables, t: np.ndarray, style: dict[str, float]) -> np.ndarray:
    """Dominance-blended internal channels at times ``t``, shape (M, C); ``t[0]`` must be a row
    that starts a :data:`_BLEND_CHUNK` of the whole take (see above)."""
    num = np.zeros((len(t), bl.n_channels))
    den = np.full((len(t), len(GROUPS)), 1e-4)  # a faint pull to rest keeps every frame defined
    chunk = _BLEND_CHUNK
    for a in range(0, len(t), chunk):
        tc = t[a:a + chunk]
        sel = np.flatnonzero((bl.ce + bl.reach >= tc[0]) & (bl.cs - bl.reach <= tc[-1]))
        target = _targets(bl, sel)
        for g, name in enumerate(GROUPS):
            tb = bl.round_ant[sel] if name == "round" else bl.ant[sel]
            D = dominance(tc, bl.cs[sel], bl.ce[sel], bl.alpha[sel, g], tb, bl.carry[sel], exponent=style["exponent"])
            den[a:a + chunk, g] += D.sum(axis=0)
            cols = np.flatnonzero(tables.group_of == g)
            num[a:a + chunk][:, cols] += D.T @ target[:, cols]
    return num / den[:, tables.group_of]


def _blend(
    starts: np.ndarray, ends: np.ndarray, entries: list[PhoneEntry], tables: VisemeTables,
    t: np.ndarray, style: dict[str, float],
) -> np.ndarray:
    """Dominance-blended internal channels at times ``t``, shape (M, C)."""
    return _blend_rows(_blend_setup(starts, ends, entries, tables, style), tables, t, style)


def _frame_weights(frame_t: np.ndarray, s: float, e: float, ramp: float) -> np.ndarray:
    """Constraint weight per frame: 1 on frames inside [s, e] (or the frame nearest its middle when
    none falls inside), easing to 0 within ``ramp`` seconds outside."""
    dist = np.maximum(s - frame_t, 0.0) + np.maximum(frame_t - e, 0.0)
    w = _smoothstep(1.0 - dist / ramp) if ramp > 0 else (dist == 0).astype(float)
    if not (dist == 0).any() and len(frame_t):
        w[int(np.argmin(np.abs(frame_t - 0.5 * (s + e))))] = 1.0
    return w


class _Constraints:
    """The hard constraints of a take, applied to any block of its frames (:meth:`apply`).

    Every constraint changes each frame from that frame's own values, so applying, in the same
    order, the constraints that reach a block gives that block of the whole-take result.
    """

    _PRIORITY = {"sibilant": 0, "labiodental": 1, "bilabial": 2}

    def __init__(self, names: tuple[str, ...], frame_t: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                 entries: list[PhoneEntry], style: dict[str, float]):
        self.names, self.frame_t, self.starts, self.ends, self.entries, self.style = (
            names, frame_t, starts, ends, entries, style)
        ramp = style["constraint_ramp"]
        # Bilabial closures go last so that a neighbouring constraint's ramp never unseals them.
        self.order = np.array(sorted(
            (k for k, en in enumerate(entries) if en.constraint in self._PRIORITY and en.kind != "silence"),
            key=lambda k: self._PRIORITY[entries[k].constraint],
        ), dtype=int)
        self.lo = np.searchsorted(frame_t, starts[self.order] - ramp - 1.0) if len(self.order) else self.order
        self.hi = np.searchsorted(frame_t, ends[self.order] + ramp + 1.0) if len(self.order) else self.order
        # Long silences go back to rest; a frame outside a silence is left as it is (times 1).
        self.rests = [k for k, en in enumerate(entries)
                      if en.kind == "silence" and ends[k] - starts[k] >= style["rest_after"]]
        self.rest_lo = np.searchsorted(frame_t, starts[self.rests], side="left")
        self.rest_hi = np.searchsorted(frame_t, ends[self.rests], side="right")

    def apply(self, x: np.ndarray, first: int) -> np.ndarray:
        """Constrain frames ``first .. first + len(x) - 1``, values (n, C), in place; return ``x``."""
        names, frame_t, style = self.names, self.frame_t, self.style
        col = {n: i for i, n in enumerate(names)}

        def cols(*ns: str) -> list[int]:
            return [col[n] for n in ns]

        jaw, close = col["jawOpen"], col["mouthClose"]
        openers = cols("mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
                       "tongueOut")
        press = cols("mouthPressLeft", "mouthPressRight")
        upper_up = cols("mouthUpperUpLeft", "mouthUpperUpRight")
        lower_down = cols("mouthLowerDownLeft", "mouthLowerDownRight")
        ramp = style["constraint_ramp"]
        stop = first + len(x)
        reach = np.flatnonzero((self.lo < stop) & (self.hi > first)) if len(self.order) else []
        for i in reach:
            k, lo, hi = int(self.order[i]), int(self.lo[i]), int(self.hi[i])
            s, e, entry = self.starts[k], self.ends[k], self.entries[k]
            kind = entry.constraint
            # The weights of the constraint's whole stretch (the "nearest frame" rule looks at all
            # of it), then the part inside this block.
            w = _frame_weights(frame_t[lo:hi], s, e, ramp)[:, None]
            a, b = max(lo, first), min(hi, stop)
            w = w[a - lo: b - lo]
            sl = slice(a - first, b - first)
            cur = x[sl]
            want = cur.copy()
            if kind == "bilabial":
                want[:, jaw] = np.minimum(cur[:, jaw], style["bilabial_jaw"])
                want[:, close] = style["seal"] * want[:, jaw]
                # Everything that parts the lips goes: funnel (rounding during /m/ before /u/ stays in
                # mouthPucker, which keeps them together), upper-lip shrug, lip raisers/lowerers, jaw thrust.
                want[:, openers] = 0.0
                want[:, cols("mouthFunnel", "mouthShrugUpper", "jawForward")] = 0.0
                want[:, press] = np.maximum(cur[:, press], 0.15 if entry.phone == "m" else 0.25)
            elif kind == "labiodental":
                want[:, jaw] = np.minimum(cur[:, jaw], style["labiodental_jaw"])
                want[:, close] = 0.0
                want[:, col["mouthRollLower"]] = np.maximum(cur[:, col["mouthRollLower"]], 0.5)
                want[:, upper_up] = np.maximum(cur[:, upper_up], 0.15)
                want[:, lower_down] = 0.0
                want[:, col["mouthFunnel"]] = np.minimum(cur[:, col["mouthFunnel"]], 0.2)
                want[:, col["tongueOut"]] = 0.0
            elif kind == "sibilant":
                j = np.minimum(cur[:, jaw], style["sibilant_jaw"])
                # keep mouthClose below the jaw so it never pulls the lips through each other
                want[:, close] = np.minimum(cur[:, close], style["seal"] * j)
                want[:, jaw] = j
                want[:, col["tongueOut"]] = 0.0
            x[sl] = cur + w * (want - cur)
        # Long silences: back to rest. At the very start and end of the audio there is no speech to
        # ease from, so those edges are at rest immediately.
        total = self.ends[-1]
        for k, lo, hi in zip(self.rests, self.rest_lo, self.rest_hi):
            a, b = max(int(lo), first), min(int(hi), stop)
            if a >= b:
                continue
            s, e = self.starts[k], self.ends[k]
            ft = frame_t[a:b]
            r = min(style["rest_ramp"], 0.4 * (e - s))
            up = np.ones_like(ft) if s <= 1e-6 else _smoothstep((ft - s) / r)
            down = np.ones_like(ft) if e >= total - 1e-6 else _smoothstep((e - ft) / r)
            w = (up * down * ((ft >= s) & (ft <= e)))[:, None]
            x[a - first: b - first] *= 1.0 - w
        return x


def _constrain(
    x: np.ndarray, names: tuple[str, ...], frame_t: np.ndarray, starts: np.ndarray, ends: np.ndarray,
    entries: list[PhoneEntry], style: dict[str, float],
) -> np.ndarray:
    """Apply the hard constraints to frame values ``x`` (T, C) in place and return it."""
    return _Constraints(names, frame_t, starts, ends, entries, style).apply(x, 0)


def _shape_rows(x: np.ndarray, col: dict[str, int], st: dict[str, float]) -> np.ndarray:
    """Closure, clipping and sealing of blended rows (row by row, so any stretch of rows gives
    that stretch of the whole take)."""
    closure = np.clip(x[:, col[LIP_CLOSURE]], 0.0, 1.0)
    x = np.clip(x, 0.0, 1.0)
    x[:, col["mouthClose"]] = st["seal"] * closure * x[:, col["jawOpen"]]
    for n in ("mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight"):
        x[:, col[n]] *= 1.0 - closure
    x[:, col["mouthFunnel"]] *= 1.0 - 0.6 * closure
    return x


class TeacherFrames:
    """The coarticulation model's frames of a take, computed a block at a time.

    Iterating gives consecutive blocks of frames, each ``(k, C)`` float32 with the channels
    :attr:`channels`; concatenated they are :func:`phones_to_animation`'s values bit for bit
    (that function is this iteration gathered into one array). A consumer that writes each block
    as it comes (an animation file, a stream of layers) keeps memory flat in the take's length.

    Parameters
    ----------
    As :func:`phones_to_animation`.
    """

    def __init__(self, phones: Iterable[Any], *, fps: float = 50.0, duration: float | None = None,
                 tables: VisemeTables | None = None, block_frames: int = 4096, **style: float):
        unknown = sorted(set(style) - set(DEFAULT_STYLE))
        if unknown:
            raise InputError(f"unknown teacher style parameter(s): {', '.join(unknown)}")
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise InputError(f"frame rate must be a positive number, got {fps!r}")
        self.st = {**DEFAULT_STYLE, **{k: float(v) for k, v in style.items()}}
        self.tables = tables or load_tables()
        self.fps = float(fps)
        self.block_frames = int(block_frames)
        phones = list(phones)
        last = max((float(p.end) for p in phones), default=0.0)
        if duration is None:
            duration = last
        if not (math.isfinite(duration) and duration >= 0):
            raise InputError(f"duration must be a non-negative number, got {duration!r}")
        self.n_frames = max(1, int(round(duration * fps)))
        self.channels = tuple(SPEECH_CHANNELS) + JAW_ROTATION
        self.meta: dict[str, Any] = {
            "source": "teacher",
            "teacher_version": TEACHER_VERSION,
            "jaw_rotation": JAW_ROTATION_IMPLIED,
            "n_phones": len(phones),
        }
        if style:
            self.meta["teacher_style"] = {k: float(v) for k, v in style.items()}
        self._frame_t = np.arange(self.n_frames) / fps
        self._span = max(duration, last, self._frame_t[-1]) + 1e-3
        self._segs = _segments(phones, self._span, self.tables)

    def __iter__(self) -> Iterator[np.ndarray]:
        st, tables, fps = self.st, self.tables, self.fps
        n_frames, frame_t, span = self.n_frames, self._frame_t, self._span
        starts, ends, entries = self._segs
        rate = max(INTERNAL_RATE, 2.0 * fps)
        n_t = int(math.ceil(span * rate)) + 2  # internal rows at times np.arange(n_t) / rate
        names = tables.channels
        col = {n: i for i, n in enumerate(names)}
        from scipy.ndimage import gaussian_filter1d

        sigma = max(st["smoothing"], 0.35 / fps) * rate
        radius = int(4.0 * sigma + 0.5)  # gaussian_filter1d's reach (truncate=4)
        keep = [col[n] for n in SPEECH_CHANNELS]
        bl = _blend_setup(starts, ends, entries, tables, st)
        constraints = _Constraints(tuple(SPEECH_CHANNELS), frame_t, starts, ends, entries, st)
        # Blocks of output frames, each from the internal rows it reads plus the smoothing's reach
        # (float64 curves of an hour at 200 Hz would take hundreds of MB). Rows are computed from
        # multiples of _BLEND_CHUNK and those of the previous block reused, so every row, smoothed
        # value and frame is the number one pass over the whole take gives.
        prev, prev0 = np.zeros((0, len(names))), 0
        for f0 in range(0, n_frames, self.block_frames):
            f1 = min(n_frames, f0 + self.block_frames)
            pos = frame_t[f0:f1] * rate
            lo = np.clip(np.floor(pos).astype(int), 0, n_t - 1)
            hi = np.minimum(lo + 1, n_t - 1)
            ca = (max(0, int(lo[0]) - radius) // _BLEND_CHUNK) * _BLEND_CHUNK
            cb = min(n_t, -(-(int(hi[-1]) + 1 + radius) // _BLEND_CHUNK) * _BLEND_CHUNK)
            reuse = prev[max(0, ca - prev0): max(0, cb - prev0)] if ca >= prev0 else prev[:0]
            new0 = ca + len(reuse)
            fresh = _shape_rows(_blend_rows(bl, tables, np.arange(new0, cb) / rate, st), col, st)
            x = np.concatenate([reuse, fresh]) if len(reuse) else fresh
            prev, prev0 = x, ca
            x = gaussian_filter1d(x, sigma=sigma, axis=0, mode="nearest")
            frac = (pos - lo)[:, None]
            frames = x[lo - ca] * (1 - frac) + x[hi - ca] * frac
            frames = np.ascontiguousarray(frames[:, keep])
            frames = constraints.apply(frames, f0)
            frames = np.clip(frames, 0.0, 1.0)
            jaw = np.zeros((f1 - f0, 3), np.float32)
            jaw[:, 0] = JAW_OPEN_RAD * frames[:, SPEECH_CHANNELS.index("jawOpen")]
            yield np.concatenate([frames.astype(np.float32), jaw], axis=1)


def phones_to_animation(
    phones: Iterable[Any],
    *,
    fps: float = 50.0,
    duration: float | None = None,
    tables: VisemeTables | None = None,
    block_frames: int = 4096,
    **style: float,
) -> Animation:
    """Animate timed phones with the coarticulation model.

    Parameters
    ----------
    phones : iterable of PhoneSegment
        Objects with ``start``, ``end`` (seconds) and ``phone`` (unified IPA; ``"_"`` = silence).
        Gaps between segments count as silence.
    fps : float
        Frame rate; frame ``i`` is the pose at time ``i / fps``.
    duration : float or None
        Length in seconds (default: the end of the last phone). The animation has
        ``round(duration * fps)`` frames (at least one).
    tables : VisemeTables or None
        Alternative tables (:func:`load_tables`).
    block_frames : int
        Frames computed at a time (the result does not depend on it; see :class:`TeacherFrames`
        to take the blocks one by one).
    **style
        Overrides of :data:`DEFAULT_STYLE` (``amplitude``, ``anticipation``, ``seal``, ...).

    Returns
    -------
    Animation
        Channels :data:`flamesync.channels.SPEECH_CHANNELS` plus ``jaw.rx/ry/rz`` (the rotation
        implied by ``jawOpen``; ``meta["jaw_rotation"] == "implied"``).
    """
    frames = TeacherFrames(phones, fps=fps, duration=duration, tables=tables, block_frames=block_frames, **style)
    values = np.empty((frames.n_frames, len(frames.channels)), np.float32)
    done = 0
    for block in frames:
        values[done:done + len(block)] = block
        done += len(block)
    return Animation(fps=fps, channels=frames.channels, values=values, meta=dict(frames.meta))


def bilabial_intervals(phones: Iterable[Any]) -> list[tuple[float, float, str]]:
    """(start, end, phone) of every segment whose phone includes a bilabial closure (p, b, m, ...)."""
    tables = load_tables()
    out = []
    for seg in phones:
        parts = _resolve_cached(str(seg.phone), tables)
        if any(p.constraint == "bilabial" for p in parts):
            out.append((float(seg.start), float(seg.end), str(seg.phone)))
    return out
