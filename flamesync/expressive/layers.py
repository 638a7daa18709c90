"""The four prosody-driven layers: blinks, gaze, brows and head motion.

Each layer is a small causal state machine stepped frame by frame over :class:`~.prosody.Prosody`
blocks. Decisions at frame ``i`` use only prosody up to frame ``i`` and random draws keyed by the
seed and the frame or event number (:mod:`.rng`); movements already started are rendered forward
from their start time. So a stream cut into any chunks gives exactly the frames of one pass.

Units: angles in degrees inside this module; head pitch positive = chin down, yaw positive =
toward the face's left (+x), roll positive = about +z (forward axis); gaze yaw positive = toward
the face's left, gaze pitch positive = up.
"""

from __future__ import annotations

import math

import numpy as np

from ..channels import EYE_LOOK_DEGREES
from . import rng
from .prosody import Prosody, ema

# Random streams: one per layer (and per kind of draw), so switching a layer off or changing its
# strength never changes what the other layers do.
_BLINK, _BLINK_EVENT, _GAZE, _GAZE_EVENT, _BROW, _BROW_EVENT, _HEAD, _HEAD_EVENT, _SWAY = range(1, 10)


def _min_jerk(x: float) -> float:
    """Minimum-jerk position profile from 0 to 1 (how saccades and reaches are shaped)."""
    return x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)


# ----------------------------------------------------------------------------------------- blinks
def blink_curve(tau: np.ndarray, close: float, hold: float, opening: float) -> np.ndarray:
    """Lid closure 0..1 at ``tau`` seconds (array) after a blink starts.

    Closing is fast and accelerating, the lid rests shut for ``hold``, and opening is slower and
    decelerating (fast release, slow settle), the asymmetry reported for human eyelids.
    """
    tau = np.asarray(tau, np.float64)
    x = np.clip(tau / close, 0.0, 1.0)
    closing = x * x * (3.0 - 2.0 * x)
    y = np.clip(1.0 - (tau - close - hold) / opening, 0.0, 1.0)
    out = np.where(tau < close, closing, np.where(tau < close + hold, 1.0, y * y))
    return np.where(tau <= 0.0, 0.0, out)


class _Carry:
    """Values of movements that outlive a block, handed to the next block (max or sum)."""

    def __init__(self, width: int, *, combine: str):
        self.values = np.zeros((0, width))
        self.combine = combine

    def canvas(self, n: int, reach: int) -> np.ndarray:
        """A zero canvas of ``n + reach`` frames holding the carried values at its start."""
        out = np.zeros((n + reach, self.values.shape[1]))
        m = min(len(self.values), len(out))
        out[:m] = self.values[:m]
        return out

    def paint(self, canvas: np.ndarray, at: int, values: np.ndarray, cols=slice(None)) -> None:
        at = max(0, at)
        end = min(len(canvas), at + len(values))
        if end <= at:
            return
        if self.combine == "max":
            canvas[at:end, cols] = np.maximum(canvas[at:end, cols], values[: end - at])
        else:
            canvas[at:end, cols] += values[: end - at]

    def emit(self, canvas: np.ndarray, n: int) -> np.ndarray:
        self.values = canvas[n:].copy()
        return canvas[:n]


class BlinkLayer:
    """Spontaneous blinks: a renewal process whose hazard rises at pauses and after stresses.

    Parameters
    ----------
    fps : float
    seed : int
    rate : float
        Base blinks per minute while talking (default 20, inside the 15-25 per minute reported
        for people in conversation); pauses raise the realised rate a little.

    Notes
    -----
    The hazard while talking is 0.8 times ``rate``; after a blink it is zero for 0.5 s and ramps
    up over the next 0.5 s. It is multiplied by 10 in the first 500 ms of a pause (phrase ends,
    breaths), by 2 for 300 ms after a stressed syllable, and by 0.8 once a pause has lasted 2 s. A blink is forced
    after 7 s without one. About 7% of blinks are doubled 250-350 ms later; about 10% are partial.
    """

    channels = ("eyeBlinkLeft", "eyeBlinkRight", "eyeSquintLeft", "eyeSquintRight",
                "cheekSquintLeft", "cheekSquintRight")
    _REACH = 0.5  # seconds: longer than any blink

    def __init__(self, fps: float, *, seed: int = 0, rate: float = 20.0):
        self.fps = float(fps)
        self.seed = int(seed)
        self.rate = float(rate)
        self._last = -1.5  # as if a blink had happened 1.5 s before the start
        self._last_stress = -1e9
        self._count = 0
        self._pending: float | None = None  # start time of the second blink of a double
        self._carry = _Carry(2, combine="max")
        self.starts: list[float] = []  # every blink start time, for inspection and tests

    def _start(self, t: float, canvas: np.ndarray, first: int) -> None:
        i = self._count
        self._count += 1
        s = self.seed
        close = rng.between(0.07, 0.11, s, _BLINK_EVENT, i, 0)
        hold = rng.between(0.02, 0.06, s, _BLINK_EVENT, i, 1)
        opening = rng.between(0.13, 0.24, s, _BLINK_EVENT, i, 2)
        amp = 1.0 if rng.uniform(s, _BLINK_EVENT, i, 3) > 0.1 else rng.between(0.55, 0.8, s, _BLINK_EVENT, i, 4)
        # One eye leads by up to 12 ms: visible at high frame rates, a subtle difference at 30 fps.
        lead = rng.between(-0.012, 0.012, s, _BLINK_EVENT, i, 5)
        f0 = int(math.ceil(t * self.fps - 1e-9))
        frames = f0 + np.arange(int(self._REACH * self.fps) + 2)
        tau = frames / self.fps - t
        both = np.stack([amp * blink_curve(tau - max(0.0, lead), close, hold, opening),
                         amp * blink_curve(tau - max(0.0, -lead), close, hold, opening)], axis=1)
        self._carry.paint(canvas, f0 - first, both)
        self.starts.append(t)
        self._last = t
        if self._pending is None and rng.uniform(s, _BLINK_EVENT, i, 6) < 0.07:
            self._pending = t + rng.between(0.25, 0.35, s, _BLINK_EVENT, i, 7)

    def run(self, p: Prosody, rate_scale: np.ndarray, strength: float) -> np.ndarray:
        """Channel values for the frames of ``p``, shape (n, 6), in :attr:`channels` order."""
        n = len(p)
        dt = 1.0 / self.fps
        frames = p.first + np.arange(n)
        t = frames * dt
        canvas = self._carry.canvas(n, int(self._REACH * self.fps) + 3)
        # Hazard per frame apart from the time since the last blink.
        stress = np.where(p.accent > 0, t, -1e9)
        last_stress = np.maximum.accumulate(np.concatenate([[self._last_stress], stress]))[1:]
        if n:
            self._last_stress = float(last_stress[-1])
        mult = np.where(p.active, np.where(t - last_stress <= 0.3, 2.0, 1.0),
                        np.where(p.pause <= 0.5, 16.0, np.where(p.pause >= 2.0, 0.8, 1.0)))
        hazard = (self.rate / 60.0 * 0.65) * mult * np.asarray(rate_scale, np.float64)
        u = rng.uniforms(self.seed, _BLINK, frames)
        k = 0
        while k < n:
            since = t[k:] - self._last
            h = hazard[k:] * np.clip((since - 0.5) / 0.5, 0.0, 1.0)
            fire = (u[k:] < -np.expm1(-h * dt)) | (since >= 7.0)
            j = int(np.argmax(fire)) if fire.any() else n - k
            if self._pending is not None:
                jp = int(np.argmax(t[k:] >= self._pending)) if t[-1] >= self._pending else n - k
                if jp <= j and jp < n - k:
                    self._pending = None
                    self._start(float(t[k + jp]), canvas, p.first)
                    k += jp + 1
                    continue
            if j >= n - k:
                break
            self._start(float(t[k + j]), canvas, p.first)
            k += j + 1
        lids = self._carry.emit(canvas, n) * strength
        # Orbicularis oculi closes the lids and, a little, squints the lower lid and lifts the cheek.
        return np.concatenate([lids, 0.15 * lids, 0.06 * lids], axis=1)


# ------------------------------------------------------------------------------------------ gaze
class GazeLayer:
    """Fixations and saccades around a slowly drifting target (the listener).

    Parameters
    ----------
    fps : float
    seed : int
    drift : float
        Amplitude in degrees of the slow wander of the gaze target (default 2).

    Notes
    -----
    Speakers often look away at the start of a phrase and back at its end (Kendon 1967): at a
    speech onset after a pause of 0.4 s or more the eyes avert (probability 0.5) by 5-10 degrees,
    mostly sideways and up; at a pause of 0.3 s they return to the listener (probability 0.7).
    Between those, fixations last 0.4 s plus an exponential of mean 1.1 s and end in small
    re-fixations of 0.5-2.5 degrees. A saccade takes ``20 ms + 2.5 ms/degree`` (the main sequence)
    along a minimum-jerk profile. Angles are bounded to 15 degrees yaw and 10 degrees pitch.
    """

    MAX_YAW, MAX_PITCH = 15.0, 10.0

    def __init__(self, fps: float, *, seed: int = 0, drift: float = 2.0):
        self.fps = float(fps)
        self.seed = int(seed)
        self.drift = float(drift)
        self._cur = (-1.0, 0.02, 0.0, 0.0, 0.0, 0.0)  # saccade now running: t0, dur, from, to
        self._next = 0.8
        self._count = 0
        self._averted = False
        self._prev_pause = 1e9  # the start of the audio counts as the end of a long pause
        freqs = [rng.between(0.03, 0.09, seed, _GAZE_EVENT, -1, j) for j in range(4)]
        phases = [rng.between(0, 2 * math.pi, seed, _GAZE_EVENT, -2, j) for j in range(4)]
        self._drift_terms = list(zip(freqs, phases))

    @staticmethod
    def _at(sac: tuple, t: float) -> tuple[float, float]:
        t0, dur, y0, p0, y1, p1 = sac
        x = _min_jerk(min(1.0, max(0.0, (t - t0) / dur)))
        return y0 + x * (y1 - y0), p0 + x * (p1 - p0)

    def _saccade(self, t: float, target: tuple[float, float], out: list) -> None:
        i = self._count
        self._count += 1
        here = self._at(self._cur, t)
        yaw = max(-self.MAX_YAW, min(self.MAX_YAW, target[0]))
        pitch = max(-self.MAX_PITCH, min(self.MAX_PITCH, target[1]))
        amp = math.hypot(yaw - here[0], pitch - here[1])
        self._cur = (t, 0.02 + 0.0025 * amp, here[0], here[1], yaw, pitch)
        out.append(self._cur)
        self._next = t + 0.4 + rng.exponential(1.1, self.seed, _GAZE_EVENT, i, 9)

    def centre(self, t: float) -> tuple[float, float]:
        """The drifting gaze target (yaw, pitch) in degrees at ``t`` seconds."""
        (f1, p1), (f2, p2), (f3, p3), (f4, p4) = self._drift_terms
        yaw = self.drift * (0.7 * math.sin(2 * math.pi * f1 * t + p1) + 0.3 * math.sin(2 * math.pi * f2 * t + p2))
        pitch = 0.5 * self.drift * (0.7 * math.sin(2 * math.pi * f3 * t + p3) + 0.3 * math.sin(2 * math.pi * f4 * t + p4))
        return yaw, pitch

    def _decide(self, frame: int, t: float, onset: bool, ret: bool, timer: bool, out: list) -> None:
        """The choices of one frame where something may happen (speech onset, pause, timer)."""
        s, i = self.seed, self._count
        centre = self.centre(t)
        if onset and rng.uniform(s, _GAZE, frame) < 0.5:
            side = 1.0 if rng.uniform(s, _GAZE_EVENT, i, 0) < 0.5 else -1.0
            amp = rng.between(5.0, 10.0, s, _GAZE_EVENT, i, 1)
            angle = 0.6 * rng.between(-0.3, 1.0, s, _GAZE_EVENT, i, 2)  # mostly level or up
            self._averted = True
            self._saccade(t, (centre[0] + side * amp * math.cos(angle), centre[1] + amp * math.sin(angle)), out)
        elif ret and self._averted and rng.uniform(s, _GAZE, frame) < 0.7:
            self._averted = False
            self._saccade(t, centre, out)
        elif timer:
            if self._averted and rng.uniform(s, _GAZE_EVENT, i, 3) < 0.4:
                self._averted = False
                self._saccade(t, centre, out)
            else:
                amp = rng.between(0.5, 2.5, s, _GAZE_EVENT, i, 4)
                angle = rng.between(0, 2 * math.pi, s, _GAZE_EVENT, i, 5)
                base = (self._cur[4], self._cur[5]) if self._averted else centre
                self._saccade(t, (base[0] + amp * math.cos(angle), base[1] + 0.6 * amp * math.sin(angle)), out)

    def run(self, p: Prosody, strength: float) -> np.ndarray:
        """Gaze (yaw, pitch) in degrees for the frames of ``p``, shape (n, 2)."""
        n = len(p)
        dt = 1.0 / self.fps
        frames = p.first + np.arange(n)
        t = frames * dt
        prev_pause = np.concatenate([[self._prev_pause], p.pause[:-1]]) if n else np.zeros(0)
        onset = p.active & (p.speech <= dt * 1.01) & (prev_pause >= 0.4)
        ret = (~p.active) & (np.abs(p.pause - 0.3) < dt / 2)
        cands = np.nonzero(onset | ret)[0]
        start_sac = self._cur
        sacs: list = []
        k, c = 0, 0
        while True:
            kt = max(k, int(math.ceil(self._next * self.fps - 1e-9)) - p.first)
            while c < len(cands) and cands[c] < k:
                c += 1
            kc = int(cands[c]) if c < len(cands) else n
            j = min(kt, kc)
            if j >= n:
                break
            self._decide(int(frames[j]), float(t[j]), bool(onset[j]), bool(ret[j]), j == kt, sacs)
            k = j + 1
        if n:
            self._prev_pause = float(p.pause[-1])
        # Render: every frame follows the latest saccade that started at or before it.
        table = [start_sac] + sacs
        starts = np.array([sac[0] for sac in table])
        which = np.maximum(np.searchsorted(starts, t + 1e-9, side="right") - 1, 0)
        arr = np.array(table)
        t0, dur, y0, p0, y1, p1 = (arr[which, j] for j in range(6))
        x = np.clip((t - t0) / dur, 0.0, 1.0)
        x = x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)
        return np.stack([y0 + x * (y1 - y0), p0 + x * (p1 - p0)], axis=1) * strength


def gaze_to_weights(yaw_pitch: np.ndarray, *, full: float = EYE_LOOK_DEGREES) -> np.ndarray:
    """Conjugate gaze angles to the eight ``eyeLook*`` weights.

    Parameters
    ----------
    yaw_pitch : np.ndarray, shape (n, 2)
        Degrees; yaw positive toward the face's left, pitch positive up.
    full : float
        Angle in degrees that a weight of 1 stands for (:data:`flamesync.channels.EYE_LOOK_DEGREES`,
        which the Live Link Face exporter uses to write eye yaw and pitch).

    Returns
    -------
    np.ndarray, shape (n, 8)
        ``eyeLookDownLeft, eyeLookInLeft, eyeLookOutLeft, eyeLookUpLeft`` then the same for the
        right eye. Looking to the face's left turns the left eye out and the right eye in.
    """
    yaw = np.asarray(yaw_pitch, np.float64)[:, 0] / full
    pitch = np.asarray(yaw_pitch, np.float64)[:, 1] / full
    left_side, right_side = np.clip(yaw, 0, 1), np.clip(-yaw, 0, 1)
    up, down = np.clip(pitch, 0, 1), np.clip(-pitch, 0, 1)
    return np.stack([down, right_side, left_side, up, down, left_side, right_side, up], axis=1)


GAZE_CHANNELS = ("eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
                 "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight")


# ----------------------------------------------------------------------------------------- brows
def _envelope(tau: np.ndarray, attack: float, hold: float, release: float) -> np.ndarray:
    """0 -> 1 -> 0 over ``attack + hold + release`` seconds with smooth ends, at ``tau`` (array)."""
    tau = np.asarray(tau, np.float64)
    up = np.clip(tau / attack, 0.0, 1.0)
    down = np.clip((tau - attack - hold) / release, 0.0, 1.0)
    return up * up * (3.0 - 2.0 * up) * (1.0 - down * down * (3.0 - 2.0 * down))


class BrowLayer:
    """Brow raises on pitch accents (and, under negative emotion, frowns for emphasis).

    Notes
    -----
    A pitch accent (a stressed syllable at least 2 semitones above the speaker's running F0
    baseline) raises the brows with probability 0.6 unless they rose less than 2 s ago: inner and
    outer raisers to ``0.25 + 0.06 * semitones`` (at most 0.6), 120 ms up, 250 ms held, 450 ms
    down. A plain strong stress raises them a little (0.15) with probability 0.15. Under negative
    emotion (``frown`` share per frame) that share of each raise becomes ``browDown`` instead.
    """

    channels = ("browInnerUp", "browOuterUpLeft", "browOuterUpRight", "browDownLeft", "browDownRight")
    _SHAPE = (0.12, 0.25, 0.45)

    def __init__(self, fps: float, *, seed: int = 0):
        self.fps = float(fps)
        self.seed = int(seed)
        self._last = -1e9
        self._count = 0
        self._carry = _Carry(3, combine="max")
        self.starts: list[float] = []

    def run(self, p: Prosody, frown: np.ndarray, strength: float) -> np.ndarray:
        """Channel values for the frames of ``p``, shape (n, 5), in :attr:`channels` order."""
        n = len(p)
        dt = 1.0 / self.fps
        s = self.seed
        reach = int(sum(self._SHAPE) * self.fps) + 2
        canvas = self._carry.canvas(n, reach)
        for k in np.nonzero((p.pitch_accent > 0) | (p.accent > 1.2))[0]:
            frame = p.first + int(k)
            t = frame * dt
            if t - self._last < 2.0:
                continue
            u = rng.uniform(s, _BROW, frame)
            if p.pitch_accent[k] > 0 and u < 0.6:
                amp = min(0.6, 0.25 + 0.06 * float(p.pitch_accent[k]))
            elif p.accent[k] > 1.2 and u < 0.15:
                amp = 0.15
            else:
                continue
            i = self._count
            self._count += 1
            env = amp * _envelope(np.arange(reach) * dt, *self._SHAPE)
            sides = (1.0, rng.between(0.8, 1.0, s, _BROW_EVENT, i, 0), rng.between(0.8, 1.0, s, _BROW_EVENT, i, 1))
            self._carry.paint(canvas, int(k), env[:, None] * np.asarray(sides)[None, :])
            self.starts.append(t)
            self._last = t
        raise_ = self._carry.emit(canvas, n)
        f = np.asarray(frown, np.float64)[:, None]
        return np.concatenate([(1 - f) * raise_, f * raise_[:, 1:]], axis=1) * strength


# ------------------------------------------------------------------------------------------ head
class HeadLayer:
    """Head motion from prosody: nods on stresses, pitch following F0, sway, stillness in pauses.

    Parameters
    ----------
    fps : float
    seed : int
    degrees : float
        Peak nod amplitude in degrees for an ordinary stress (default 3; strong stresses nod up to
        1.3 times this). Sway and F0-following scale with it (sway about 2.5 degrees yaw, 1 pitch,
        1.8 roll at the default; F0 lifts the head 0.7 degrees per semitone, at most 4).

    Notes
    -----
    Nods come on stressed syllables (probability 0.35 + 0.3 * strength, at most one per 450 ms):
    the chin dips and returns along a gamma-shaped pulse peaking 180 ms after the stress, with a
    small random yaw. Sway is a sum of slow sinusoids (0.05-0.3 Hz) whose amplitude follows speech
    activity: full while talking, easing to a quarter within a second or two of pause, so the
    head comes to rest in long pauses.
    """

    _PEAK = 0.18  # seconds from stress to the bottom of a nod
    _REACH = 6.0  # nod pulse length in units of _PEAK

    def __init__(self, fps: float, *, seed: int = 0, degrees: float = 3.0):
        self.fps = float(fps)
        self.seed = int(seed)
        self.degrees = float(degrees)
        self._last = -1e9
        self._count = 0
        self._carry = _Carry(2, combine="sum")  # nod (yaw, pitch)
        self._f0 = 0.0
        self._env = 0.25
        self.starts: list[float] = []
        self._sway = []
        for axis, amp in enumerate((2.5, 1.0, 1.8)):
            terms = []
            for j in range(3):
                f = rng.between(0.05, 0.3, seed, _SWAY, axis, 3 * j)
                ph = rng.between(0.0, 2 * math.pi, seed, _SWAY, axis, 3 * j + 1)
                terms.append((f, ph, amp * (0.6, 0.3, 0.2)[j]))
            self._sway.append(terms)
        # (axis, term) tables of 2 pi f, phase and amplitude for sway().
        self._sway_table = tuple(np.array([[2 * np.pi * t[0] if k == 0 else t[k] for t in terms] for terms in self._sway])
                                 for k in range(3))

    def sway(self, times: np.ndarray) -> np.ndarray:
        """Unscaled sway (yaw, pitch, roll) in degrees at ``times`` seconds, shape (n, 3)."""
        # All nine sinusoids in one evaluation (a stream asks for a frame at a time), summed in the
        # order the terms were drawn.
        f, ph, a = self._sway_table
        terms = a * np.sin(f * np.asarray(times, np.float64)[:, None, None] + ph)
        out = terms[:, :, 0] + terms[:, :, 1] + terms[:, :, 2]
        return out * (self.degrees / 3.0)

    def run(self, p: Prosody, motion: np.ndarray, pitch_bias: np.ndarray, strength: float) -> np.ndarray:
        """Head (yaw, pitch, roll) in degrees for the frames of ``p``, shape (n, 3)."""
        n = len(p)
        dt = 1.0 / self.fps
        s = self.seed
        times = (p.first + np.arange(n)) * dt
        a_env = 1.0 - math.exp(-dt / 0.5)
        a_f0 = 1.0 - math.exp(-dt / 0.3)
        target = np.where(p.active | (p.pause < 0.4), 1.0, 0.25)
        env = ema(target, a_env, self._env)
        f0 = ema(np.where(p.voiced, p.pitch, 0.0), a_f0, self._f0)
        if n:
            self._env, self._f0 = float(env[-1]), float(f0[-1])
        reach = int(self._REACH * self._PEAK * self.fps) + 2
        canvas = self._carry.canvas(n, reach)
        x = np.arange(reach) * dt / self._PEAK
        pulse = x * np.exp(1.0 - x)  # gamma pulse, 1 at the peak
        for k in np.nonzero(p.accent > 0)[0]:
            frame = p.first + int(k)
            t = frame * dt
            if t - self._last < 0.45:
                continue
            strength_k = float(p.accent[k])
            if rng.uniform(s, _HEAD, frame) >= 0.35 + 0.3 * strength_k:
                continue
            i = self._count
            self._count += 1
            amp = self.degrees * min(1.3, max(0.3, 0.3 + 0.4 * strength_k))
            yaw = amp * rng.between(-0.3, 0.3, s, _HEAD_EVENT, i, 0)
            self._carry.paint(canvas, int(k), pulse[:, None] * np.array([[yaw, amp]]))
            self.starts.append(t)
            self._last = t
        nod = self._carry.emit(canvas, n)
        sway = self.sway(times) * env[:, None]
        m = np.asarray(motion, np.float64)
        lift = np.clip(0.7 * f0, -4.0, 4.0) * (self.degrees / 3.0)
        out = np.stack([m * (sway[:, 0] + nod[:, 0]),
                        m * (sway[:, 1] + nod[:, 1] - lift) + np.asarray(pitch_bias, np.float64),
                        m * sway[:, 2]], axis=1)
        return out * strength
