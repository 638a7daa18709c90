"""Log-mel features for the audio-to-face network, computed identically offline and streaming.

Parameters (the defaults of :class:`FeatureConfig`, which checkpoints record):

- 16 kHz mono float audio in [-1, 1];
- frames every 160 samples (10 ms, 100 frames per second); frame ``k`` is *centred* on sample
  ``k * 160`` (time ``k / 100`` s) and covers samples ``[k*160 - 200, k*160 + 200)``: a 400-sample
  (25 ms) periodic Hann window, zero-padded to ``n_fft = 512``. Samples before the start and after the
  end of the audio count as zeros;
- power spectrum, 80 mel bands from ``librosa.filters.mel`` (Slaney scale and area normalisation,
  ``fmin = 40`` Hz, ``fmax = 7600`` Hz), natural log of ``max(mel, 1e-10)``;
- normalisation: each band minus its *causal running mean* (the plain mean of all frames so far for the
  first ``norm_seconds`` of audio, an exponential moving average with that time constant after),
  divided by a fixed scale of 4. Subtracting a per-band level removes overall gain (loudness) and any
  fixed microphone/room colouring (a linear filter is an additive offset per band in the log domain),
  and because the estimate only looks backwards, the stream and the whole file give the same numbers.
- optionally (``floor_rise_db > 0``), 80 more channels: each band's height above its *noise
  floor*, a causal running minimum of the log-mel that may rise by at most ``floor_rise_db``
  decibels per second (:func:`above_noise_floor`), divided by the same scale. A lip closure is a
  moment when every band sinks to its floor: in clean TTS that floor is digital silence, in a room
  it is the noise and reverberation, and in these channels both read as zero.

An audio of ``N`` samples yields ``2 * ceil(N / 320)`` feature frames, i.e. exactly two per 50 fps
output frame. Computing frame ``k`` needs samples up to ``k*160 + 200``: 12.5 ms of look-ahead.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class FeatureConfig:
    """Exact feature parameters (see the module docstring)."""

    sample_rate: int = 16000
    hop: int = 160
    win: int = 400
    n_fft: int = 512
    n_mels: int = 80
    fmin: float = 40.0
    fmax: float = 7600.0
    log_floor: float = 1e-10
    norm_seconds: float = 3.0
    scale: float = 4.0
    floor_rise_db: float = 0.0  # dB per second; 0: no noise-floor channels

    @property
    def n_features(self) -> int:
        """Channels per feature frame: the normalised log-mel, then the heights above the noise floor."""
        return self.n_mels * (2 if self.floor_rise_db > 0 else 1)

    @property
    def fps(self) -> float:
        """Feature frames per second (100 with the defaults)."""
        return self.sample_rate / self.hop

    @property
    def lookahead_samples(self) -> int:
        """Samples after a frame's centre that the frame needs."""
        return self.win - self.win // 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def n_feature_frames(n_samples: int, *, config: FeatureConfig = FeatureConfig(), out_fps: float = 50.0) -> int:
    """Feature frames produced for ``n_samples`` of audio: two per output frame.

    The output has ``ceil(n_samples / (sample_rate / out_fps))`` frames (frame ``i`` at ``i / out_fps``
    seconds), so every sample is covered by some frame.
    """
    per_out = int(round(config.fps / out_fps))
    spf = config.sample_rate / out_fps
    return per_out * int(math.ceil(n_samples / spf))


def mel_basis_filename(config: FeatureConfig = FeatureConfig()) -> str:
    """File name of the cached mel bank for ``config``: ``mel-<hash of its parameters>.npy``."""
    import hashlib
    import json

    key = hashlib.sha1(json.dumps(
        [config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax, "slaney"]).encode()).hexdigest()[:16]
    return f"mel-{key}.npy"


@functools.lru_cache(maxsize=8)
def mel_basis(config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Mel filter bank from ``librosa.filters.mel``, shape (n_mels, n_fft // 2 + 1), float64.

    The bank is cached as ``.npy`` in the flamesync cache: importing librosa (and numba behind it)
    costs over a second, which would otherwise be paid by every cold start. A bank file shipped
    beside this module (:func:`mel_basis_filename`; the Blender add-on's build writes one, since
    Blender has no librosa) is used first.
    """
    from pathlib import Path

    packaged = Path(__file__).with_name(mel_basis_filename(config))
    if packaged.is_file():
        basis = np.load(packaged, allow_pickle=False)
        if basis.shape == (config.n_mels, config.n_fft // 2 + 1):
            basis = np.ascontiguousarray(basis, dtype=np.float64)
            basis.setflags(write=False)
            return basis

    from ..cache import cache_dir

    path = cache_dir("features") / mel_basis_filename(config)
    basis = None
    if path.is_file():
        try:
            basis = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            basis = None
    if basis is None or basis.shape != (config.n_mels, config.n_fft // 2 + 1):
        import librosa

        basis = librosa.filters.mel(
            sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin,
            fmax=config.fmax, htk=False, norm="slaney", dtype=np.float64,
        )
        try:
            from ..fileio import atomic_path

            with atomic_path(path) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, basis, allow_pickle=False)
        except OSError:
            pass  # a read-only cache only costs speed
    basis = np.ascontiguousarray(basis, dtype=np.float64)
    basis.setflags(write=False)  # shared through the lru_cache
    return basis


def frame_log_mel(frames: np.ndarray, *, basis: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Un-normalised log-mel of windowed-to-be frames.

    Parameters
    ----------
    frames : np.ndarray, shape (K, win)
        Raw sample frames.
    basis : np.ndarray, shape (n_mels, n_fft // 2 + 1)

    Returns
    -------
    np.ndarray, shape (K, n_mels), float32
    """
    # float32 throughout: half the memory traffic of float64, and the log-mel differs by ~1e-6.
    window = _hann(config.win).astype(np.float32)
    spec = np.fft.rfft(np.asarray(frames, np.float32) * window, n=config.n_fft, axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    mel = power @ _basis32(basis)
    return np.log(np.maximum(mel, np.float32(config.log_floor)))


_B32: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _basis32(basis: np.ndarray) -> np.ndarray:
    # Transposed float32 copy, made once per bank (the bank is kept referenced so its id stays unique).
    hit = _B32.get(id(basis))
    if hit is None or hit[0] is not basis:
        hit = _B32[id(basis)] = (basis, np.ascontiguousarray(basis.T, dtype=np.float32))
    return hit[1]


def _hann(n: int) -> np.ndarray:
    # Periodic Hann, the STFT convention (librosa/scipy "hann" with fftbins=True).
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def running_mean_normalise(
    logmel: np.ndarray, *, state: tuple[np.ndarray, int] | None, config: FeatureConfig = FeatureConfig()
) -> tuple[np.ndarray, tuple[np.ndarray, int]]:
    """Subtract the causal running per-band mean and scale.

    The mean after ``n`` frames is ``m_n = m_{n-1} + a_n (x_n - m_{n-1})`` with
    ``a_n = max(1 / n, 1 / L)``, ``L = norm_seconds * fps``: the plain mean while ``n <= L``, an
    exponential moving average after. Each frame is normalised by the mean *including* itself.

    Parameters
    ----------
    logmel : np.ndarray, shape (K, n_mels)
    state : (mean (n_mels,), count) or None for a fresh stream

    Returns
    -------
    normalised : np.ndarray, shape (K, n_mels), float32
    state : the state after the last frame
    """
    n_bands = logmel.shape[1]
    if state is None:
        mean, count = np.zeros(n_bands, np.float64), 0
    else:
        mean, count = state[0].copy(), int(state[1])
    length = max(1.0, config.norm_seconds * config.fps)
    out = np.empty(logmel.shape, np.float64)
    k = 0
    # Warm-up phase (plain mean) frame by frame; it lasts at most L frames per stream.
    while k < len(logmel) and count + 1 <= length:
        count += 1
        mean += (logmel[k] - mean) / count
        out[k] = logmel[k] - mean
        k += 1
    if k < len(logmel):
        ys = _ema(logmel[k:], mean, 1.0 / length)
        out[k:] = logmel[k:] - ys
        mean = ys[-1].copy()
        count += len(logmel) - k
    return (out / config.scale).astype(np.float32), (mean, count)


def above_noise_floor(
    logmel: np.ndarray, *, state: tuple[np.ndarray, int] | None, config: FeatureConfig
) -> tuple[np.ndarray, tuple[np.ndarray, int]]:
    """Height of each band above its causal noise-floor estimate.

    The floor is ``f_n = min(x_n, f_{n-1} + r)``: it drops at once to any quieter frame and rises
    by at most ``r`` (``floor_rise_db`` per second, in natural-log units per frame) otherwise, like
    minimum-statistics noise tracking. Unrolled, ``f_n = r n + min_{k <= n} (x_k - r k)``: a running
    minimum, so whole blocks vectorise and a stream carries two numbers per band.

    Parameters
    ----------
    logmel : np.ndarray, shape (K, n_mels)
        Un-normalised log-mel frames.
    state : (running minimum of ``x_k - r k`` (n_mels,), frames seen) or None for a fresh stream

    Returns
    -------
    heights : np.ndarray, shape (K, n_mels), float32, >= 0, divided by ``config.scale``
    state : the state after the last frame
    """
    if len(logmel) == 0:
        return np.zeros(logmel.shape, np.float32), state
    r = config.floor_rise_db * math.log(10.0) / 10.0 / config.fps
    n0 = 0 if state is None else int(state[1])
    t = n0 + np.arange(len(logmel), dtype=np.float64)[:, None]
    shifted = np.asarray(logmel, np.float64) - r * t
    if state is not None:
        shifted = np.concatenate([state[0][None], shifted])
    run = np.minimum.accumulate(shifted, axis=0)
    if state is not None:
        run = run[1:]
    floor = run + r * t
    heights = np.maximum(np.asarray(logmel, np.float64) - floor, 0.0) / config.scale  # >= 0 up to rounding
    return heights.astype(np.float32), (run[-1].copy(), n0 + len(logmel))


def _ema(x: np.ndarray, m0: np.ndarray, alpha: float, block: int = 32) -> np.ndarray:
    """``m_n = (1 - alpha) m_{n-1} + alpha x_n`` from ``m_{-1} = m0``, vectorised in blocks.

    Within a block of ``L`` frames, ``m_n = d^(n+1) m0 + alpha * sum_k d^(n-k) x_k`` with
    ``d = 1 - alpha``: a triangular matrix product. Blocks stay short so the powers of ``d`` stay
    well conditioned and the products small (large ones are slower here: BLAS threading). numpy
    only: scipy.signal alone takes over a second to import.

    Parameters
    ----------
    x : np.ndarray, shape (K, M)
    m0 : np.ndarray, shape (M,)

    Returns
    -------
    np.ndarray, shape (K, M)
    """
    d = 1.0 - alpha
    n = np.arange(block)
    lag = n[:, None] - n[None, :]
    tri = np.where(lag >= 0, alpha * d ** np.maximum(lag, 0), 0.0)  # (L, L)
    decay = d ** (n + 1)  # (L,)
    out = np.empty_like(x, dtype=np.float64)
    m = np.asarray(m0, np.float64)
    for a in range(0, len(x), block):
        xb = x[a:a + block]
        L = len(xb)
        out[a:a + L] = tri[:L, :L] @ xb + decay[:L, None] * m[None, :]
        m = out[a + L - 1]
    return out


class LogMelStream:
    """Incremental feature extractor: push samples, get the frames they complete.

    The concatenation of everything :meth:`push` and :meth:`finish` return equals
    :func:`log_mel` of the concatenated audio (the same code computes both).

    Parameters
    ----------
    config : FeatureConfig
    out_fps : float
        Output frame rate of the network; :meth:`finish` pads to a whole number of output frames.
    block_frames : int
        Frames computed per internal block, which bounds memory for long pushes.
    """

    def __init__(self, *, config: FeatureConfig = FeatureConfig(), out_fps: float = 50.0, block_frames: int = 4096):
        self.config = config
        self.out_fps = out_fps
        self.block_frames = int(block_frames)
        self._basis = mel_basis(config)
        # Buffer starts with the zeros that precede the audio (frame 0 is centred on sample 0).
        self._buf = np.zeros(config.win // 2, np.float32)
        self._buf_start = -(config.win // 2)  # absolute sample index of _buf[0]
        self._next = 0  # next frame index to emit
        self._n_samples = 0
        self._norm_state: tuple[np.ndarray, int] | None = None
        self._floor_state: tuple[np.ndarray, int] | None = None
        self._finished = False

    @property
    def frames_emitted(self) -> int:
        return self._next

    @property
    def samples_pushed(self) -> int:
        return self._n_samples

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add samples (float, shape (n,)); return the newly complete frames, shape (K, n_features)."""
        if self._finished:
            raise InputError("this feature stream is finished; start a new one")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, samples])
        self._n_samples += len(samples)
        # Frame k is complete once samples up to k*hop + win - win//2 (exclusive) exist.
        avail_end = self._n_samples
        n_ready = (avail_end - self.config.lookahead_samples) // self.config.hop + 1
        return self._emit(max(0, n_ready - self._next))

    def finish(self) -> np.ndarray:
        """Pad with zeros to a whole number of output frames and return the remaining frames."""
        if self._finished:
            return np.zeros((0, self.config.n_features), np.float32)
        total = n_feature_frames(self._n_samples, config=self.config, out_fps=self.out_fps)
        last_needed = (total - 1) * self.config.hop + self.config.lookahead_samples
        pad = max(0, last_needed - (self._buf_start + len(self._buf)))
        self._buf = np.concatenate([self._buf, np.zeros(pad, np.float32)])
        out = self._emit(max(0, total - self._next))
        self._finished = True
        return out

    def _emit(self, count: int) -> np.ndarray:
        cfg = self.config
        pieces = []
        while count > 0:
            k = min(count, self.block_frames)
            first = self._next * cfg.hop - cfg.win // 2 - self._buf_start
            idx = first + np.arange(k)[:, None] * cfg.hop + np.arange(cfg.win)[None, :]
            raw = frame_log_mel(self._buf[idx], basis=self._basis, config=cfg)
            feats, self._norm_state = running_mean_normalise(raw, state=self._norm_state, config=cfg)
            if cfg.floor_rise_db > 0:
                heights, self._floor_state = above_noise_floor(raw, state=self._floor_state, config=cfg)
                feats = np.concatenate([feats, heights], axis=1)
            pieces.append(feats)
            self._next += k
            count -= k
            # Drop samples no future frame needs.
            keep_from = self._next * cfg.hop - cfg.win // 2 - self._buf_start
            if keep_from > 0:
                self._buf = self._buf[keep_from:]
                self._buf_start += keep_from
        if not pieces:
            return np.zeros((0, cfg.n_features), np.float32)
        return np.concatenate(pieces, axis=0)


def log_mel(audio: np.ndarray, *, config: FeatureConfig = FeatureConfig(), out_fps: float = 50.0) -> np.ndarray:
    """Normalised log-mel features of a whole signal.

    Parameters
    ----------
    audio : np.ndarray, shape (N,)
        Mono samples at ``config.sample_rate``.

    Returns
    -------
    np.ndarray, shape (2 * ceil(N / 320), n_features), float32
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise InputError(f"features need mono audio of shape (samples,), got {audio.shape}")
    stream = LogMelStream(config=config, out_fps=out_fps)
    head = stream.push(audio)
    tail = stream.finish()
    return np.concatenate([head, tail], axis=0)
