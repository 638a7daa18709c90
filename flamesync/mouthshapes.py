"""2D mouth shapes from any animation: Rhubarb Lip Sync's cue letters and Meta/OVR's 15 visemes.

Two sources, whichever the animation has:

- **Phones** (``meta["phones"]``, ``[start, end, phone]``: the transcript and word backends and
  ``say``). Each phone goes through the coarticulation teacher's phone -> viseme table
  (``configs/visemes/ipa_visemes.tsv`` via :func:`flamesync.phonetics.teacher.resolve_phone`, so
  every phone of every engine and language is covered) and then through the small tables below.
- **ARKit weights** (the network, or any imported animation). Each frame is explained as a
  non-negative mix of the teacher's viseme poses (``visemes_arkit.tsv``), by non-negative least
  squares over the mouth channels; the shape whose visemes carry most of the mix wins. A tongue
  cannot be seen in ARKit weights, so Rhubarb's ``H`` (L) comes only from phones, and OVR's ``nn``
  (n, l: the same lips and jaw as ``DD``) only from phones as well.

Rhubarb cues never flicker: a shape must lead by a margin to replace the current one (hysteresis,
weights path), cues shorter than :data:`MIN_CUE` merge into a neighbour, closures (``A``) are kept
however short but lengthened to :data:`MIN_CLOSURE` (a missed closure on /b m p/ is the most
visible lip-sync error), and pauses shorter than :data:`MIN_PAUSE` inside speech hold the previous
shape instead of flashing the idle mouth. ``X`` (idle) is used only where the audio is silent.
"""

from __future__ import annotations

import functools

import numpy as np

from .animation import Animation

RHUBARB_SHAPES = ("A", "B", "C", "D", "E", "F", "G", "H", "X")
OVR_VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")
# OpenXR's XR_META_face_tracking_visemes: the same 15 visemes, enumerated in the same order
# (XrFaceTrackingVisemeMETA 0..14), each a value in [0, 1].
OPENXR_VISEMES = tuple(f"XR_FACE_TRACKING_VISEME_{v.upper()}_META" for v in OVR_VISEMES)

MIN_CUE = 0.06      # s: shortest non-closure cue (two frames at 30 fps)
MIN_CLOSURE = 0.04  # s: closures are lengthened to this (one frame at 24 fps is 0.042 s)
MIN_PAUSE = 0.20    # s: shorter pauses inside speech hold the shape before them
HYSTERESIS = 0.12   # weights path: a new shape must lead the current one by this much of the mix
CUE_RESOLUTION = 0.01  # s: Rhubarb writes centiseconds
RIDGE = 0.03        # weights path: penalty on the size of the viseme mix (see _mixes)

# Teacher viseme (visemes_arkit.tsv) -> Rhubarb shape. None: takes the neighbouring vowel's shape
# (h is shaped by the vowel it precedes). Laterals (H) are decided per phone, see _rhubarb_for_phone.
VISEME_TO_RHUBARB = {
    "rest": "X", "PP": "A", "BF": "A", "FF": "G", "VW": "G", "TH": "B", "DD": "B", "SS": "B", "SH": "B",
    "KK": "B", "HH": None, "RR": "E", "RT": "B", "WW": "F", "JJ": "B", "AA": "D", "AE": "C", "AH": "C",
    "OA": "E", "EH": "C", "EE": "B", "IH": "B", "IY": "B", "AX": "C", "ER": "E", "UU": "F", "UH": "F",
    "OO": "F", "AO": "E", "YY": "F", "OE": "E", "UI": "B", "EU": "C",
}

# Teacher viseme -> OVR viseme (phone-level refinements for nn and kk in _ovr_for_phone).
VISEME_TO_OVR = {
    "rest": "sil", "PP": "PP", "BF": "PP", "FF": "FF", "VW": "FF", "TH": "TH", "DD": "DD", "SS": "SS",
    "SH": "CH", "KK": "kk", "HH": None, "RR": "RR", "RT": "RR", "WW": "ou", "JJ": "ih", "AA": "aa",
    "AE": "aa", "AH": "aa", "OA": "oh", "EH": "E", "EE": "E", "IH": "ih", "IY": "ih", "AX": "aa", "ER": "RR",
    "UU": "ou", "UH": "ou", "OO": "oh", "AO": "oh", "YY": "ou", "OE": "oh", "UI": "ih", "EU": "E",
}

# The teacher viseme whose pose stands for each OVR viseme when reading ARKit weights (nn: as DD).
OVR_POSES = {"PP": "PP", "FF": "FF", "TH": "TH", "DD": "DD", "kk": "KK", "CH": "SH", "SS": "SS", "RR": "RR",
             "aa": "AA", "E": "EH", "ih": "IH", "oh": "OO", "ou": "UU"}

_LATERAL = {"l", "ɫ", "ɭ", "ʎ", "ʟ", "ɬ", "ɮ"}


# --------------------------------------------------------------------------------------- phones
def _entries(phone: str):
    from .phonetics.teacher import resolve_phone

    return resolve_phone(phone)


def _rhubarb_for_phone(phone: str) -> list[str | None]:
    """Shapes for one phone label, in time order (a diphthong gives two)."""
    out = []
    for e in _entries(phone):
        if e.phone in _LATERAL:
            out.append("H")
        else:
            out.append(VISEME_TO_RHUBARB.get(e.viseme, "B"))
    return out


def _ovr_for_phone(phone: str) -> list[str | None]:
    from .phonetics.phoneset import inventory

    inv = inventory()
    out = []
    for e in _entries(phone):
        info = inv.get(e.phone)
        if e.phone in _LATERAL or (info is not None and info.manner == "nasal"
                                   and info.place not in ("bilabial", "labiodental", "velar", "uvular")):
            out.append("nn")
        elif info is not None and info.place in ("velar", "uvular") and info.kind == "consonant":
            out.append("kk")
        else:
            out.append(VISEME_TO_OVR.get(e.viseme, "DD"))
    return out


def _phone_segments(phones, mapper, *, silent: str, fallback: str) -> list[list]:
    """``[[start, end, label], ...]`` from ``[start, end, phone]``: diphthongs split in equal
    parts, ``None`` labels (h) take the next spoken label (else the previous, else ``fallback``)."""
    from .phonetics.teacher import SILENCE_LABELS

    segs: list[list] = []
    for start, end, phone in phones:
        start, end = float(start), float(end)
        if end <= start:
            continue
        if phone in SILENCE_LABELS or str(phone).strip() in SILENCE_LABELS:
            segs.append([start, end, silent])
            continue
        labels = mapper(str(phone))
        step = (end - start) / len(labels)
        for i, lab in enumerate(labels):
            segs.append([start + i * step, start + (i + 1) * step, lab])
    for i, s in enumerate(segs):
        if s[2] is None:
            nxt = next((t[2] for t in segs[i + 1:] if t[2] not in (None, silent)), None)
            prev = next((t[2] for t in reversed(segs[:i]) if t[2] not in (None, silent)), None)
            s[2] = nxt or prev or fallback
    return segs


# -------------------------------------------------------------------------------------- weights
@functools.lru_cache(maxsize=1)
def _pose_table():
    """(mouth channel names, {teacher viseme: (C,) ARKit pose}) with lipClosure turned into
    mouthClose as the teacher does (mouthClose = lipClosure * jawOpen)."""
    from .channels import SPEECH_CHANNELS
    from .phonetics.teacher import LIP_CLOSURE, load_tables

    tables = load_tables()
    names = [c for c in SPEECH_CHANNELS if c in tables.channels]
    idx = {c: i for i, c in enumerate(tables.channels)}
    poses = {}
    for vis, vec in tables.targets.items():
        pose = np.array([vec[idx[c]] for c in names], np.float64)
        if "mouthClose" in names:
            pose[names.index("mouthClose")] = vec[idx[LIP_CLOSURE]] * vec[idx["jawOpen"]]
        poses[vis] = pose
    return tuple(names), poses


def _mixes(anim: Animation, visemes: list[str]) -> np.ndarray:
    """Per frame, the non-negative weights of ``visemes``' poses that best explain the frame,
    shape (T, len(visemes))."""
    from scipy.optimize import nnls

    names, poses = _pose_table()
    basis = np.stack([poses[v] for v in visemes], axis=1)  # (C, K)
    # A small ridge term: many poses differ mostly in how far they open the jaw, and plain NNLS
    # would as happily explain a wide-open jaw by 2.5 x a barely-open consonant as by one open
    # vowel. The penalty on the weights' size prefers few poses near full strength.
    k = basis.shape[1]
    basis = np.vstack([basis, np.sqrt(RIDGE) * np.eye(k)])
    x = anim.weights(names).astype(np.float64)             # (T, C)
    out = np.zeros((anim.n_frames, len(visemes)))
    pad = np.zeros(k)
    for t in range(anim.n_frames):
        if np.abs(x[t]).max() > 1e-6:
            out[t], _ = nnls(basis, np.concatenate([x[t], pad]))
    return out


def _silent_frames(anim: Animation, audio_path: str | None) -> np.ndarray | None:
    """Per frame, True where the audio is silent (RMS over the frame below 2% of the take's
    loudest frame, or the absolute silence level); None without readable audio."""
    if not audio_path:
        return None
    try:
        from .audio.io import SAMPLE_RATE, SILENT_PEAK, load_audio

        wave = load_audio(audio_path, allow_silent=True)
    except Exception:  # the audio moved or is unreadable: fall back to the face alone
        return None
    n = anim.n_frames
    rms = np.zeros(n)
    for i in range(n):
        t = anim.audio_offset + i / anim.fps
        a = int(max(0, (t - 0.5 / anim.fps) * SAMPLE_RATE))
        b = int(min(len(wave), (t + 0.5 / anim.fps) * SAMPLE_RATE))
        if b > a:
            rms[i] = float(np.sqrt(np.mean(np.square(wave[a:b], dtype=np.float64))))
    top = rms.max() if n else 0.0
    return rms < max(0.02 * top, SILENT_PEAK)


def _frame_segments_rhubarb(anim: Animation, audio_path: str | None) -> list[list]:
    letters = [s for s in RHUBARB_SHAPES if s not in ("H", "X")]
    visemes = [v for v, s in VISEME_TO_RHUBARB.items() if s in letters]
    mix = _mixes(anim, visemes)
    scores = np.zeros((anim.n_frames, len(letters)))
    for j, v in enumerate(visemes):
        scores[:, letters.index(VISEME_TO_RHUBARB[v])] += mix[:, j]
    silent = _silent_frames(anim, audio_path)
    if silent is None:
        silent = mix.sum(axis=1) < 0.15  # no audio: a face near rest is taken as silence
    # B, C and D differ by how far the mouth opens, which the mix spreads over many similar poses
    # (C alone has five): the family's total goes to one of them by the jaw opening, relative to
    # the take's own wide-open level (networks and rigs open less than the teacher's poses).
    jaw = anim.weights(["jawOpen"])[:, 0].astype(np.float64)
    speech = jaw[~silent] if (~silent).any() else jaw
    ref = max(float(np.percentile(speech, 95)) if speech.size else 0.0, 0.2)
    fam = [letters.index(c) for c in "BCD"]
    total = scores[:, fam].sum(axis=1)
    pick = np.where(jaw >= 0.7 * ref, fam[2], np.where(jaw >= 0.35 * ref, fam[1], fam[0]))
    scores[:, fam] = 0.0
    scores[np.arange(anim.n_frames), pick] = total
    segs: list[list] = []
    current = None
    for t in range(anim.n_frames):
        if silent[t]:
            shape = "X"
        else:
            best = int(np.argmax(scores[t]))
            shape = letters[best]
            # Hysteresis: keep the current shape unless the new one leads by a clear margin.
            if current in letters and current != shape:
                if scores[t, best] - scores[t, letters.index(current)] < HYSTERESIS * max(scores[t].sum(), 1e-9):
                    shape = current
        current = shape
        start = anim.audio_offset + t / anim.fps
        segs.append([start, start + 1.0 / anim.fps, shape])
    return segs


# ------------------------------------------------------------------------------------ smoothing
def _merge_equal(segs: list[list]) -> list[list]:
    out: list[list] = []
    for s in segs:
        if out and out[-1][2] == s[2] and abs(out[-1][1] - s[0]) < 1e-9:
            out[-1][1] = s[1]
        elif s[1] - s[0] > 1e-9:
            out.append(list(s))
    return out


def _dur(s) -> float:
    return s[1] - s[0]


def stabilise(segs: list[list]) -> list[list]:
    """Rhubarb cues without flicker (see the module docs): ``[[start, end, shape], ...]`` in,
    contiguous cues out."""
    segs = _merge_equal(segs)
    # Short pauses inside speech hold the shape before them (no idle flash between words).
    for i in range(1, len(segs) - 1):
        if segs[i][2] == "X" and _dur(segs[i]) < MIN_PAUSE:
            segs[i][2] = segs[i - 1][2]
    segs = _merge_equal(segs)
    # Short cues merge into a neighbour (the longer one that is not a closure or the idle mouth);
    # a short cue between two closures stays (the open syllable between them must be seen).
    changed = True
    while changed:
        changed = False
        order = sorted(range(len(segs)), key=lambda i: _dur(segs[i]))
        for i in order:
            s = segs[i]
            if s[2] in ("A", "X") or _dur(s) >= MIN_CUE - 1e-9:
                continue
            cands = [j for j in (i - 1, i + 1) if 0 <= j < len(segs) and segs[j][2] not in ("A", "X")]
            if not cands:
                continue
            j = max(cands, key=lambda k: _dur(segs[k]))
            segs[j][0], segs[j][1] = min(segs[j][0], s[0]), max(segs[j][1], s[1])
            del segs[i]
            segs = _merge_equal(segs)
            changed = True
            break
    # Closures shorter than MIN_CLOSURE borrow time from neighbours that can spare it.
    for i, s in enumerate(segs):
        need = MIN_CLOSURE - _dur(s)
        if s[2] != "A" or need <= 1e-9:
            continue
        for j, side in ((i - 1, 0), (i + 1, 1)):
            if not 0 <= j < len(segs) or need <= 1e-9:
                continue
            spare = max(0.0, _dur(segs[j]) - (MIN_CLOSURE if segs[j][2] == "A" else MIN_CUE / 2))
            take = min(spare, need if j == i + 1 else need / 2)
            if side == 0:
                segs[j][1] -= take
                s[0] -= take
            else:
                segs[j][0] += take
                s[1] += take
            need -= take
    return segs


def _quantise(segs: list[list], duration: float) -> list[tuple[float, float, str]]:
    """Boundaries on the centisecond grid, contiguous from 0 to ``duration``."""
    if not segs:
        return [(0.0, round(duration, 2), "X")] if duration > 0 else []
    q = lambda t: round(round(t / CUE_RESOLUTION) * CUE_RESOLUTION, 2)  # noqa: E731
    end_all = q(duration)
    cues: list[list] = []
    if q(segs[0][0]) > 0:
        cues.append([0.0, q(segs[0][0]), "X"])  # before the first phone / frame: idle
    for s in segs:
        a, b = q(s[0]), min(q(s[1]), end_all)
        if cues:
            a = cues[-1][1]
        if b <= a:
            # The cue vanished on the grid; a closure keeps one grid step (never lose a /b m p/).
            if s[2] != "A" or a + CUE_RESOLUTION > end_all:
                continue
            b = round(a + CUE_RESOLUTION, 2)
        if cues and cues[-1][2] == s[2]:
            cues[-1][1] = b
        else:
            cues.append([a, b, s[2]])
    if cues and cues[-1][1] < end_all:
        if cues[-1][2] == "X":
            cues[-1][1] = end_all
        else:
            cues.append([cues[-1][1], end_all, "X"])  # after the last phone: silence
    return [(a, b, v) for a, b, v in cues]


def audio_duration(anim: Animation, audio_path: str | None) -> float:
    """Seconds of the referenced audio when readable, else of the animation."""
    if audio_path:
        try:
            import soundfile as sf

            return float(sf.info(str(audio_path)).duration)
        except Exception:  # not readable by libsndfile (MP3 on old versions, moved): the frames
            pass
    return anim.audio_offset + anim.duration


def rhubarb_cues(anim: Animation, *, audio_path: str | None = None,
                 duration: float | None = None) -> list[tuple[float, float, str]]:
    """Rhubarb mouth cues ``(start, end, shape)`` covering ``[0, duration]`` seconds, contiguous,
    in centiseconds, shapes from :data:`RHUBARB_SHAPES`.

    Parameters
    ----------
    anim : Animation
        With ``meta["phones"]`` the phones decide; otherwise the ARKit weights (and the audio's
        loudness for silence) do.
    audio_path : str or None
        The audio, for silence detection on the weights path and for the duration.
    duration : float or None
        Length of the take; default :func:`audio_duration`.
    """
    audio_path = audio_path or anim.audio_path
    if duration is None:
        duration = audio_duration(anim, audio_path)
    phones = anim.meta.get("phones")
    if phones:
        segs = _phone_segments(phones, _rhubarb_for_phone, silent="X", fallback="B")
    else:
        segs = _frame_segments_rhubarb(anim, audio_path)
    return _quantise(stabilise(segs), duration)


def ovr_weights(anim: Animation, *, audio_path: str | None = None) -> np.ndarray:
    """Meta/OVR viseme weights per frame, shape (T, 15) in :data:`OVR_VISEMES` order, rows sum to 1.

    From phones: each frame takes the viseme of the phone at its time, blended over a 60 ms
    triangular window so that visemes cross-fade instead of switching. From weights: the non-negative
    mix of the visemes' poses that explains the frame; what the mix leaves unexplained is ``sil``.
    """
    n = anim.n_frames
    out = np.zeros((n, len(OVR_VISEMES)))
    phones = anim.meta.get("phones")
    if phones:
        segs = _phone_segments(phones, _ovr_for_phone, silent="sil", fallback="DD")
        times = anim.audio_offset + np.arange(n) / anim.fps
        starts = np.array([s[0] for s in segs])
        ends = np.array([s[1] for s in segs])
        cols = np.array([OVR_VISEMES.index(s[2]) for s in segs], dtype=np.int64)
        rows = np.arange(n)
        # Samples of a +-30 ms triangle around each frame: the visemes cross-fade over ~60 ms.
        for k, w in ((-0.03, 0.25), (-0.015, 0.5), (0.0, 1.0), (0.015, 0.5), (0.03, 0.25)):
            tt = times + k
            j = np.searchsorted(starts, tt, side="right") - 1
            inside = (j >= 0) & (tt < ends[np.clip(j, 0, None)]) if len(segs) else np.zeros(n, bool)
            col = np.where(inside, cols[np.clip(j, 0, None)] if len(segs) else 0, 0)  # outside: sil
            np.add.at(out, (rows, col), w)
    else:
        names = list(OVR_POSES)
        mix = _mixes(anim, [OVR_POSES[v] for v in names])
        for j, v in enumerate(names):
            out[:, OVR_VISEMES.index(v)] = mix[:, j]
        total = out.sum(axis=1)
        over = total > 1.0
        out[over] /= total[over, None]
        out[:, 0] = np.clip(1.0 - out.sum(axis=1), 0.0, 1.0)
    sums = out.sum(axis=1, keepdims=True)
    out = np.where(sums > 0, out / np.maximum(sums, 1e-12), 0.0)
    out[sums[:, 0] == 0, 0] = 1.0
    return out.astype(np.float32)
