"""Voice variety for synthetic speech.

:func:`change_voice` runs Praat's "Change gender" (PSOLA resynthesis through praat-parselmouth):
new pitch, formant shift (a shorter or longer vocal tract) and duration; phone and word times are
scaled with the duration. The other augmentations keep every sample where it was, so timings stay
exact: additive noise at a given SNR, synthetic room reverb, band-limiting, a random smooth EQ and
gain. :func:`random_augment` draws a chain of them from a seeded generator.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..errors import InputError, require
from .types import Utterance

_PARSELMOUTH_HINT = "pip install 'flamesync[speech]'  (praat-parselmouth)"


def _parselmouth():
    return require("parselmouth", feature="voice change (Praat)", install=_PARSELMOUTH_HINT)


def median_pitch(audio: np.ndarray, *, sample_rate: int, floor: float = 75.0, ceiling: float = 600.0) -> float:
    """Median F0 in Hz of the voiced frames (Praat's autocorrelation pitch), NaN if unvoiced.

    Parameters
    ----------
    audio : np.ndarray, shape (N,)
    sample_rate : int
    floor, ceiling : float
        Pitch search range in Hz.
    """
    pm = _parselmouth()
    snd = pm.Sound(np.asarray(audio, dtype=np.float64), sampling_frequency=float(sample_rate))
    f0 = snd.to_pitch(pitch_floor=floor, pitch_ceiling=ceiling).selected_array["frequency"]
    f0 = f0[f0 > 0]
    return float(np.median(f0)) if f0.size else float("nan")


def change_gender(
    audio: np.ndarray,
    *,
    sample_rate: int,
    formant_ratio: float = 1.0,
    pitch_median: float = 0.0,
    pitch_range: float = 1.0,
    duration_factor: float = 1.0,
    floor: float = 75.0,
    ceiling: float = 600.0,
    seed: int = 0,
) -> np.ndarray:
    """Praat "Change gender" on raw samples.

    Parameters
    ----------
    audio : np.ndarray, shape (N,)
    sample_rate : int
    formant_ratio : float
        Formant shift ratio (> 1 raises formants: a shorter vocal tract).
    pitch_median : float
        New median pitch in Hz; 0 keeps it.
    pitch_range : float
        Factor on the pitch excursions around the median.
    duration_factor : float
        Output duration / input duration.
    seed : int
        Seed for Praat's random numbers (PSOLA places pulses in unvoiced stretches at random), so
        the result is reproducible.

    Returns
    -------
    np.ndarray, shape (M,), float32
        ``M`` is about ``N * duration_factor``.
    """
    for name, v in (("formant_ratio", formant_ratio), ("pitch_range", pitch_range),
                    ("duration_factor", duration_factor)):
        if not (math.isfinite(v) and v > 0):
            raise InputError(f"{name} must be a positive number, got {v!r}")
    if not (math.isfinite(pitch_median) and pitch_median >= 0):
        raise InputError(f"pitch_median must be >= 0 Hz, got {pitch_median!r}")
    pm = _parselmouth()
    snd = pm.Sound(np.asarray(audio, dtype=np.float64), sampling_frequency=float(sample_rate))
    pm.praat.run(f"random_initializeWithSeedUnsafelyButPredictably ({int(seed)})")
    try:
        out = pm.praat.call(snd, "Change gender", floor, ceiling, formant_ratio, pitch_median,
                            pitch_range, duration_factor)
    finally:
        pm.praat.run("random_initializeSafelyAndUnpredictably ()")
    return np.ascontiguousarray(out.values[0], dtype=np.float32)


def _scale_times(utt: Utterance, audio: np.ndarray) -> Utterance:
    """The utterance with new audio, all times stretched by new/old duration."""
    k = len(audio) / len(utt.audio)
    phones = [replace(p, start=p.start * k, end=p.end * k) for p in utt.phones]
    if phones:
        phones[-1] = replace(phones[-1], end=len(audio) / utt.sample_rate)
    words = [replace(w, start=w.start * k, end=w.end * k) for w in utt.words]
    return replace(utt, audio=audio, phones=phones, words=words)


MIN_TARGET_PITCH = 70.0
MAX_TARGET_PITCH = 400.0


def change_voice(
    utt: Utterance,
    *,
    pitch_factor: float = 1.0,
    formant_ratio: float = 1.0,
    duration_factor: float = 1.0,
    pitch_range: float = 1.0,
    seed: int = 0,
) -> Utterance:
    """Another voice from an utterance: pitch, formants and tempo via Praat, timings scaled.

    Parameters
    ----------
    utt : Utterance
    pitch_factor : float
        New median pitch / old median pitch.
    formant_ratio : float
        Formant shift ratio (about 1.1-1.2 turns a male voice female, 0.85-0.9 the reverse).
    duration_factor : float
        New duration / old duration; every phone and word time is multiplied by the exact ratio
        of output to input length.
    pitch_range : float
        Factor on pitch excursions.
    seed : int
        Seed for Praat's resynthesis (see :func:`change_gender`).
    """
    if not (math.isfinite(pitch_factor) and pitch_factor > 0):
        raise InputError(f"pitch_factor must be a positive number, got {pitch_factor!r}")
    median = 0.0
    if pitch_factor != 1.0:
        median = median_pitch(utt.audio, sample_rate=utt.sample_rate)
        if not math.isfinite(median):
            raise InputError("cannot change the pitch of audio without voiced speech")
        # Praat's Change gender analyses pitch between 75 and 600 Hz; asked for a median outside
        # that band it can spin for many minutes (seen: 679 Hz from a high espeak variant x 1.37),
        # so the target stays inside a human speaking range.
        median = min(max(median * pitch_factor, MIN_TARGET_PITCH), MAX_TARGET_PITCH)
    audio = change_gender(utt.audio, sample_rate=utt.sample_rate, formant_ratio=formant_ratio,
                          pitch_median=median, pitch_range=pitch_range,
                          duration_factor=duration_factor, seed=seed)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0.999:
        audio = audio * (0.999 / peak)  # PSOLA can overshoot a full-scale input
    return with_changed_voice(utt, audio, pitch_factor=pitch_factor, formant_ratio=formant_ratio,
                              duration_factor=duration_factor, pitch_range=pitch_range)


def with_changed_voice(utt: Utterance, audio: np.ndarray, *, pitch_factor: float, formant_ratio: float,
                       duration_factor: float, pitch_range: float) -> Utterance:
    """``utt`` carrying the voice-changed ``audio`` made by :func:`change_voice`, timings scaled."""
    if duration_factor == 1.0:
        audio = _fit_length(audio, len(utt.audio))
        out = replace(utt, audio=audio)
    else:
        out = _scale_times(utt, audio)
    meta = dict(utt.meta)
    meta["voice_change"] = {"pitch_factor": pitch_factor, "formant_ratio": formant_ratio,
                            "duration_factor": duration_factor, "pitch_range": pitch_range}
    return replace(out, meta=meta)


def shift_pitch(utt: Utterance, *, factor: float, seed: int = 0) -> Utterance:
    """Utterance with its median pitch multiplied by ``factor`` (timing unchanged)."""
    return change_voice(utt, pitch_factor=factor, seed=seed)


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if len(x) >= n:
        return np.ascontiguousarray(x[:n])
    return np.concatenate([x, np.zeros(n - len(x), np.float32)])


def change_tempo(audio: np.ndarray, *, rate: float, sample_rate: int = 16000,
                 window_seconds: float = 0.024) -> np.ndarray:
    """Speak faster or slower without moving the pitch (waveform-similarity overlap-add).

    Conversational speech is faster than read speech and its closures shorter, at the same voice:
    resampling (speed perturbation) would also raise the pitch and the formants. Each output window
    is a Hann-weighted stretch of the input taken near its nominal place, ``rate`` times further
    along, shifted by at most a quarter window to where it best continues the previous one (so
    voiced periods line up and no phasiness or clicks are added). Time maps linearly, to within
    that shift (6 ms at the default window), so frame labels follow by ``t_out = t_in / rate``.
    Deterministic; no pitch analysis, so noise and silence stretch as well as voice.

    Parameters
    ----------
    audio : np.ndarray, shape (N,)
    rate : float
        Tempo factor, > 1 faster (shorter output). Between 0.25 and 4.
    sample_rate : int
    window_seconds : float
        Overlap-add window length.

    Returns
    -------
    np.ndarray, shape (round(N / rate),), float32
    """
    if not 0.25 <= rate <= 4.0:
        raise InputError(f"tempo rate must be between 0.25 and 4, got {rate}")
    x = np.asarray(audio, np.float32)
    n_out = int(round(len(x) / rate))
    if n_out == 0 or len(x) == 0:
        return np.zeros(n_out, np.float32)
    win = max(16, int(round(window_seconds * sample_rate)) // 2 * 2)
    hop = win // 2
    tol = win // 4
    # Periodic Hann windows at half overlap sum to one, so the output needs no renormalisation
    # except at the very start.
    w = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)).astype(np.float32)
    n_frames = n_out // hop + 2
    pad = tol + win
    xp = np.concatenate([np.zeros(pad, np.float32), x, np.zeros(pad + int(n_frames * hop * rate) + win, np.float32)])
    y = np.zeros(n_frames * hop + win, np.float32)
    norm = np.zeros_like(y)
    prev = None
    for k in range(n_frames):
        nominal = pad + int(round(k * hop * rate)) - hop
        if prev is None:
            at = nominal
        else:
            # Where the previous window's own continuation would have gone, compared with each
            # candidate start around the nominal one.
            template = xp[prev + hop: prev + hop + win]
            region = xp[nominal - tol: nominal + tol + win]
            score = np.correlate(region, template, mode="valid")
            at = nominal - tol + int(np.argmax(score)) if np.any(score) else nominal
        y[k * hop: k * hop + win] += w * xp[at: at + win]
        norm[k * hop: k * hop + win] += w
        prev = at
    # Output sample i sits at y[i + hop]: the first window was centred on time 0.
    out = y[hop: hop + n_out] / np.maximum(norm[hop: hop + n_out], 1e-3)
    return out.astype(np.float32)


# Vowels a hesitation "um" may borrow (its vowel is a central, unrounded one in English).
HESITATION_VOWELS: tuple[str, ...] = ("ʌ", "ə", "ɜː", "ɐ", "ɑː")


def _held(audio: np.ndarray, start: float, end: float, n_out: int, *, sample_rate: int,
          context: float = 0.015) -> np.ndarray:
    """The sound between ``start`` and ``end`` seconds spoken over ``n_out`` samples, pitch kept.

    Stretched together with ``context`` seconds of its neighbours, which are then cut away, so the
    overlap-add has real signal at both edges instead of the zeros beyond a cut-out segment.
    """
    a = max(0, int(round((start - context) * sample_rate)))
    b = min(len(audio), int(round((end + context) * sample_rate)))
    i0, i1 = int(round(start * sample_rate)) - a, int(round(end * sample_rate)) - a
    rate = (i1 - i0) / max(1, n_out)
    # A 40 ms murmur held for 0.45 s is slowed about tenfold: in equal stages within change_tempo's range.
    stages = max(1, math.ceil(abs(math.log(rate)) / math.log(4.0) - 1e-9)) if rate > 0 else 1
    y = np.asarray(audio[a:b], np.float32)
    for _ in range(stages):
        y = change_tempo(y, rate=min(4.0, max(0.25, rate ** (1.0 / stages))), sample_rate=sample_rate)
    o = int(round(i0 * n_out / max(1, i1 - i0)))
    return _fit_length(y[o:o + n_out], n_out)


def _steady(seg: np.ndarray, sample_rate: int, *, ratio: float = 0.3) -> bool:
    """Whether every 10 ms of ``seg`` is at least ``ratio`` of its loudest 10 ms (RMS)."""
    n = int(sample_rate * 0.01)
    if len(seg) < n:
        return False
    rms = np.sqrt(np.mean(seg[: len(seg) // n * n].reshape(-1, n).astype(np.float64) ** 2, axis=1))
    return bool(rms.max() > 0 and rms.min() >= ratio * rms.max())


def _fade(x: np.ndarray, n: int) -> np.ndarray:
    if n <= 0 or len(x) < 2 * n:
        return x
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
    x = x.copy()
    x[:n] *= ramp
    x[-n:] *= ramp[::-1]
    return x


def insert_hesitation(audio: np.ndarray, phones, *, rng: np.random.Generator, sample_rate: int = 16000,
                      fps: float = 50.0, vowel_seconds: tuple[float, float] = (0.08, 0.2),
                      hold_seconds: tuple[float, float] = (0.15, 0.45), fade_seconds: float = 0.0025):
    """Splice an "um" made of the speaker's own sounds into one of the recording's pauses.

    Conversation is full of hesitations whose /m/ is a long hum with the lips shut; read speech has
    none, and a TTS "um" is a crisp /ʌm/ unlike a real one. This borrows one of the speaker's
    central vowels (:data:`HESITATION_VOWELS`) and one of their /m/ murmurs from the same recording,
    holds them at the speaker's pitch (:func:`change_tempo`) for ``vowel_seconds`` and
    ``hold_seconds``, and inserts the two, with short fades, in the middle of a pause (a silence of
    at least 0.1 s: leading, inner or trailing). Insertion point and lengths fall on frame
    boundaries, so every original frame keeps its content, shifted by whole frames.

    Parameters
    ----------
    audio : np.ndarray, shape (N,)
    phones : sequence of :class:`~flamesync.phonetics.types.PhoneSegment`, times in seconds
    rng : np.random.Generator
    sample_rate : int
    fps : float
        Frame rate that frame indices and boundaries refer to (``sample_rate / fps`` samples a frame).
    vowel_seconds, hold_seconds : (float, float)
        Ranges the vowel's and the /m/'s lengths are drawn from.
    fade_seconds : float
        Raised-cosine fade at each end of the two inserted pieces.

    Returns
    -------
    None when the recording has no pause, no central vowel of at least 50 ms or no steady /m/ of at
    least 40 ms between two other sounds; else ``(audio, phones, source_frame)``: audio (N + K,)
    float32 with K a whole number of frames, the phones with the two inserted and later ones
    shifted, and source_frame
    (ceil((N + K) / spf),) int64, for each output frame the input frame whose targets it takes
    (the borrowed vowel's and murmur's frames, stretched, inside the inserted span).
    """
    from .types import SILENCE, PhoneSegment

    spf = int(round(sample_rate / fps))
    phones = list(phones)
    pauses = [i for i, p in enumerate(phones) if p.phone == SILENCE and p.end - p.start >= 0.1]
    vowels = [p for p in phones if p.phone in HESITATION_VOWELS and p.end - p.start >= 0.05]
    x = np.asarray(audio, np.float32)
    # A murmur between two other sounds, steady in level: one next to a pause often trails off,
    # and an alignment that put part of a silence or a release into it would hold that instead.
    murmurs = [p for j, p in enumerate(phones)
               if p.phone == "m" and p.end - p.start >= 0.04 and 0 < j < len(phones) - 1
               and phones[j - 1].phone != SILENCE and phones[j + 1].phone != SILENCE
               and _steady(x[int(p.start * sample_rate): int(p.end * sample_rate)], sample_rate)]
    if not pauses or not vowels or not murmurs:
        return None
    k = pauses[int(rng.integers(len(pauses)))]
    v = vowels[int(rng.integers(len(vowels)))]
    m = murmurs[int(rng.integers(len(murmurs)))]
    nv = max(1, int(round(rng.uniform(*vowel_seconds) * fps)))
    nm = max(1, int(round(rng.uniform(*hold_seconds) * fps)))
    pause = phones[k]
    at = int(round(0.5 * (pause.start + pause.end) * fps))  # frame the "um" starts at
    at = min(max(at, 0), len(x) // spf)
    fade = int(round(fade_seconds * sample_rate))
    piece_v = _fade(_held(x, v.start, v.end, nv * spf, sample_rate=sample_rate), fade)
    piece_m = _fade(_held(x, m.start, m.end, nm * spf, sample_rate=sample_rate), fade)
    i = at * spf
    out = np.concatenate([x[:i], piece_v, piece_m, x[i:]]).astype(np.float32)

    t0, dv, dm = at / fps, nv / fps, nm / fps
    shift = dv + dm
    new = []
    for j, p in enumerate(phones):
        if j == k:
            new += [PhoneSegment(p.start, t0, p.phone, p.label), PhoneSegment(t0, t0 + dv, v.phone, v.label),
                    PhoneSegment(t0 + dv, t0 + shift, m.phone, m.label),
                    PhoneSegment(t0 + shift, p.end + shift, p.phone, p.label)]
        elif p.end <= t0:
            new.append(p)
        else:
            new.append(PhoneSegment(p.start + shift, p.end + shift, p.phone, p.label))

    n_in = -(-len(x) // spf)
    n_out = n_in + nv + nm
    src = np.arange(n_out, dtype=np.int64)
    src[at + nv + nm:] -= nv + nm

    def stretched(seg, n):
        t = seg.start + (np.arange(n) + 0.5) / n * (seg.end - seg.start)
        return np.clip((t * fps).astype(np.int64), 0, max(0, n_in - 1))

    src[at: at + nv] = stretched(v, nv)
    src[at + nv: at + nv + nm] = stretched(m, nm)
    return out, new, src


# --- augmentations that keep timing -------------------------------------------------------------


def add_noise(
    audio: np.ndarray, *, snr_db: float, rng: np.random.Generator, color: str = "white"
) -> np.ndarray:
    """Add Gaussian noise at a signal-to-noise ratio measured on the active part of the signal.

    Parameters
    ----------
    audio : np.ndarray, shape (N,)
    snr_db : float
        Signal power (frames above -40 dB of the peak) over noise power, in dB.
    rng : np.random.Generator
    color : {"white", "pink", "brown"}
        Noise spectrum slope (0, -3, -6 dB/octave).

    Returns
    -------
    np.ndarray, shape (N,), float32
    """
    x = np.asarray(audio, dtype=np.float64)
    n = rng.standard_normal(len(x))
    if color != "white":
        slope = {"pink": 0.5, "brown": 1.0}.get(color)
        if slope is None:
            raise InputError(f"unknown noise colour {color!r}; use white, pink or brown")
        spec = np.fft.rfft(n)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        n = np.fft.irfft(spec / f**slope, len(n))
    p_sig = _active_power(x)
    p_noise = float(np.mean(n**2)) or 1.0
    n *= math.sqrt(p_sig / p_noise / 10 ** (snr_db / 10))
    return (x + n).astype(np.float32)


def _active_power(x: np.ndarray) -> float:
    frames = x[: len(x) // 256 * 256].reshape(-1, 256) if len(x) >= 256 else x[None, :]
    p = np.mean(frames**2, axis=1)
    active = p[p > p.max() * 1e-4] if p.size and p.max() > 0 else p
    return float(np.mean(active)) if active.size else 0.0


def room_impulse_response(
    *, sample_rate: int, rt60: float, rng: np.random.Generator, direct_to_reverb_db: float = 3.0
) -> np.ndarray:
    """A synthetic room response: a direct impulse then exponentially decaying noise.

    Parameters
    ----------
    sample_rate : int
    rt60 : float
        Time in seconds for the reverb tail to decay by 60 dB.
    rng : np.random.Generator
    direct_to_reverb_db : float
        Energy of the direct path over the energy of the tail.

    Returns
    -------
    np.ndarray, shape (L,), float64
        ``L = rt60 * sample_rate``; sample 0 is the direct path, so convolving keeps timing.
    """
    if not (math.isfinite(rt60) and rt60 > 0):
        raise InputError(f"rt60 must be a positive number of seconds, got {rt60!r}")
    n = max(2, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # ln(1000): 60 dB amplitude decay
    tail[0] = 0.0
    # Early reflections build up over a few ms rather than starting at full level.
    tail *= 1.0 - np.exp(-t / 0.003)
    tail *= math.sqrt(1.0 / (np.sum(tail**2) * 10 ** (direct_to_reverb_db / 10)))
    tail[0] = 1.0
    return tail


def add_reverb(
    audio: np.ndarray, *, sample_rate: int, rt60: float, rng: np.random.Generator,
    direct_to_reverb_db: float = 3.0,
) -> np.ndarray:
    """Convolve with :func:`room_impulse_response`, keep length and peak level.

    Returns
    -------
    np.ndarray, shape (N,), float32
    """
    from scipy.signal import fftconvolve

    x = np.asarray(audio, dtype=np.float64)
    ir = room_impulse_response(sample_rate=sample_rate, rt60=rt60, rng=rng,
                               direct_to_reverb_db=direct_to_reverb_db)
    y = fftconvolve(x, ir)[: len(x)]
    return _match_peak(y, x)


def band_limit(
    audio: np.ndarray, *, sample_rate: int, low_hz: float = 300.0, high_hz: float = 3400.0, order: int = 4
) -> np.ndarray:
    """Zero-phase Butterworth band-pass (telephone-like by default); timing is unchanged.

    Returns
    -------
    np.ndarray, shape (N,), float32
    """
    from scipy.signal import butter, sosfiltfilt

    nyq = sample_rate / 2
    if not 0 <= low_hz < high_hz:
        raise InputError(f"band limits must satisfy 0 <= low < high, got {low_hz}, {high_hz}")
    high = min(high_hz, nyq * 0.98)
    x = np.asarray(audio, dtype=np.float64)
    if low_hz > 0:
        sos = butter(order, [low_hz / nyq, high / nyq], btype="bandpass", output="sos")
    else:
        sos = butter(order, high / nyq, btype="lowpass", output="sos")
    if len(x) <= 3 * (2 * len(sos) + 1):
        return x.astype(np.float32)
    return sosfiltfilt(sos, x).astype(np.float32)


def random_eq(
    audio: np.ndarray, *, sample_rate: int, rng: np.random.Generator, max_gain_db: float = 8.0,
    n_points: int = 8,
) -> np.ndarray:
    """A smooth random spectral tilt/EQ applied as a zero-phase gain curve.

    Gains (dB, uniform in ``±max_gain_db``) are drawn at ``n_points`` log-spaced frequencies from
    50 Hz to Nyquist and interpolated over log frequency.

    Returns
    -------
    np.ndarray, shape (N,), float32
    """
    x = np.asarray(audio, dtype=np.float64)
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    knots = np.geomspace(50.0, sample_rate / 2, n_points)
    gains = rng.uniform(-max_gain_db, max_gain_db, n_points)
    g_db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(knots), gains)
    y = np.fft.irfft(spec * 10 ** (g_db / 20), len(x))
    return _match_peak(y, x)


def apply_gain(audio: np.ndarray, *, gain_db: float, limit: float = 0.999) -> np.ndarray:
    """Scale by ``gain_db``; if that would clip, scale so the peak sits at ``limit`` instead."""
    y = np.asarray(audio, dtype=np.float64) * 10 ** (gain_db / 20)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > limit:
        y *= limit / peak
    return y.astype(np.float32)


def _match_peak(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    py, px = float(np.max(np.abs(y))), float(np.max(np.abs(x)))
    if py > 0 and px > 0:
        y = y * (px / py)
    return y.astype(np.float32)


def random_augment(
    utt: Utterance,
    *,
    rng: np.random.Generator,
    p_voice: float = 0.5,
    p_reverb: float = 0.3,
    p_band: float = 0.15,
    p_eq: float = 0.4,
    p_noise: float = 0.5,
    snr_db: tuple[float, float] = (10.0, 40.0),
    rt60: tuple[float, float] = (0.15, 0.8),
    pitch: tuple[float, float] = (0.75, 1.35),
    formant: tuple[float, float] = (0.88, 1.15),
    tempo: tuple[float, float] = (0.85, 1.2),
    gain_db: tuple[float, float] = (-12.0, 3.0),
) -> Utterance:
    """Draw a chain of augmentations: voice change, reverb, band limit, EQ, noise, gain.

    Each is applied with its probability ``p_*`` and parameters uniform in the given ranges (pitch,
    formant and tempo log-uniform). The chain and its parameters are recorded in
    ``meta["augment"]``. Only the voice change moves timings, and it scales them exactly.
    """
    steps: list[dict] = []
    out = utt
    sr = utt.sample_rate

    def logu(lo, hi):
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    if rng.random() < p_voice:
        pf, fr, dur = logu(*pitch), logu(*formant), 1.0 / logu(*tempo)
        out = change_voice(out, pitch_factor=pf, formant_ratio=fr, duration_factor=dur,
                           seed=int(rng.integers(2**31)))
        steps.append({"op": "change_voice", "pitch_factor": pf, "formant_ratio": fr,
                      "duration_factor": dur})
    audio = out.audio
    if rng.random() < p_reverb:
        r = float(rng.uniform(*rt60))
        audio = add_reverb(audio, sample_rate=sr, rt60=r, rng=rng)
        steps.append({"op": "reverb", "rt60": r})
    if rng.random() < p_band:
        lo, hi = float(rng.uniform(80, 400)), float(rng.uniform(3000, 7000))
        audio = band_limit(audio, sample_rate=sr, low_hz=lo, high_hz=hi)
        steps.append({"op": "band_limit", "low_hz": lo, "high_hz": hi})
    if rng.random() < p_eq:
        audio = random_eq(audio, sample_rate=sr, rng=rng)
        steps.append({"op": "eq"})
    if rng.random() < p_noise:
        s = float(rng.uniform(*snr_db))
        color = str(rng.choice(["white", "pink", "brown"]))
        audio = add_noise(audio, snr_db=s, rng=rng, color=color)
        steps.append({"op": "noise", "snr_db": s, "color": color})
    g = float(rng.uniform(*gain_db))
    audio = apply_gain(audio, gain_db=g)
    steps.append({"op": "gain", "gain_db": g})
    meta = dict(out.meta)
    meta["augment"] = steps
    return replace(out, audio=audio, meta=meta)
