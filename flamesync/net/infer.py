"""Running a trained network on audio: whole files in bounded-memory chunks, with invisible joins.

Output frame ``j`` depends only on network frames ``[j - past_frames, j + lookahead_frames]``
(:class:`~flamesync.net.model.ModelConfig`), and the features are computed by one causal stream over
the whole file. So the network runs over windows of ``chunk_frames`` new frames plus ``past_frames``
frames of recomputed context before them (and the look-ahead after), and keeps only the new frames:
every kept frame sees exactly the input it would see in a single pass over the whole file, and the
result equals the one-pass result to float rounding (about 1e-6). Memory is bounded by the chunk size.

The same :class:`NetRunner` drives :class:`flamesync.net.stream.Streamer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..animation import Animation
from ..audio.features import FeatureConfig, LogMelStream
from ..channels import JAW_OPEN_RAD, JAW_ROTATION_IMPLIED
from ..errors import InputError, ModelFileError
from .amplitude import apply_quantile_maps, smooth_channels
from .checkpoint import load_meta, load_weights, stem
from .closure import ClosureDecoder, apply_closures, closure_strength, decode_closures
from .config import ModelConfig

FPS = 50.0
SAMPLE_RATE = 16000
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "assets" / "model" / "flamesync_default"


@dataclass
class RawOutput:
    """Network outputs at 50 fps before closure decoding."""

    weights: np.ndarray  # (T, C)
    closure_prob: np.ndarray  # (T,)
    visemes: np.ndarray  # (T, K) probabilities


class LoadedModel:
    """A network plus everything needed to use it: feature settings, channels, closure decoder.

    Parameters
    ----------
    net : FlameSyncNet or OnnxNetwork
        The torch module, or the same network exported to ONNX and run by onnxruntime
        (:mod:`flamesync.net.onnx_runtime`; no torch import, hence a fast start).
    meta : dict
        The checkpoint JSON (``closure_decoder`` and ``closure_pose`` are optional).
    """

    def __init__(self, net, meta: dict | None = None):
        meta = dict(meta or {})
        self.backend = getattr(net, "backend", "torch")
        self.net = net.eval() if self.backend == "torch" else net
        self.meta = meta
        self.cfg: ModelConfig = net.cfg
        self.features = FeatureConfig.from_dict(meta.get("features", {}))
        self.decoder = ClosureDecoder.from_dict(meta.get("closure_decoder", {}))
        self.pose: dict[str, float] = dict(meta.get("closure_pose", {}))
        self.amplitude_map: dict[str, dict] = dict(meta.get("amplitude_map", {}))
        self.channels: tuple[str, ...] = tuple(self.cfg.channels)
        # Optional causal smoothing of the opening channels after the amplitude map (docs/model.md).
        smoothing = meta.get("opening_smoothing") or {}
        self.smoothing_alpha = float(smoothing.get("alpha", 1.0))
        self.smoothing_alpha_closing = float(smoothing.get("alpha_closing", self.smoothing_alpha))
        self.smoothing_columns = [self.channels.index(c) for c in smoothing.get("channels", ()) if c in self.channels]
        # Optional: a closure takes back the opening gain baked into the map (flamesync.net.train.closure_removes_gain).
        removes = meta.get("closure_removes_gain") or {}
        self.closure_gain = float(removes.get("gain", 1.0))
        self.closure_gain_columns = [self.channels.index(c) for c in removes.get("channels", ()) if c in self.channels]
        self.source: Path | None = getattr(net, "path", None)  # the file it was loaded from, if any

    @property
    def lookahead_seconds(self) -> float:
        """Audio after a frame's time that the frame needs: network look-ahead plus the feature window."""
        return self.cfg.lookahead_frames / FPS + self.features.lookahead_samples / self.features.sample_rate

    def run_window(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One network pass over features ``(2n, n_mels)``; returns numpy weights, closure logits, visemes."""
        if self.backend != "torch":
            return self.net.run_window(feats)
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(feats, np.float32))[None]
            w, c, v = self.net(x)
            return w[0].numpy(), c[0].numpy(), torch.softmax(v[0], -1).numpy()

    def predict_raw(self, audio: np.ndarray, *, chunk_seconds: float = 60.0, progress=None) -> RawOutput:
        """Network outputs for a whole signal, computed in chunks (see the module docstring).

        ``progress(done, total)`` (samples), if given, is called after each chunk; an exception it
        raises stops the work (the Blender add-on cancels this way).
        """
        step = max(1, int(chunk_seconds * SAMPLE_RATE))
        blocks = (np.asarray(audio[i: i + step], np.float32) for i in range(0, len(audio), step))
        return self.predict_raw_blocks(blocks, chunk_seconds=chunk_seconds, total=len(audio), progress=progress)

    def predict_raw_blocks(self, blocks, *, chunk_seconds: float = 60.0, total: int | None = None,
                           progress=None, on_block=None, visemes: bool = True) -> RawOutput:
        """Network outputs for audio that arrives in blocks (e.g. :class:`flamesync.audio.io.AudioBlocks`).

        The same numbers as :meth:`predict_raw` on the concatenated blocks when the blocks hold
        ``chunk_seconds`` of audio each (the last one shorter): the feature stream then sees the
        same pushes. Memory holds one block and the outputs, whatever the length.

        Parameters
        ----------
        blocks : iterable of np.ndarray, shape (n,), float32, 16 kHz mono
        chunk_seconds : float
            Output frames per network pass (as seconds of audio).
        total : int or None
            Total samples, for ``progress``.
        progress : callable or None
            ``progress(done, total)`` in samples after each block (``total`` None when unknown).
        on_block : callable or None
            ``on_block(block)`` for every block, in order, before its features (another consumer
            of the same audio, so the file is read once).
        visemes : bool
            Keep the viseme probabilities (False: ``visemes`` has no columns, which saves memory
            on long audio when only the weights are wanted).

        Returns
        -------
        RawOutput
            ``2 * ceil(N / 320) / 2`` frames at 50 fps for ``N`` samples in all.
        """
        parts = list(self.iter_raw_blocks(blocks, chunk_seconds=chunk_seconds, total=total, progress=progress,
                                          on_block=on_block, visemes=visemes))
        return _concat_raw(parts, len(self.channels), self.cfg.n_visemes if visemes else 0)

    def iter_raw_blocks(self, blocks, *, chunk_seconds: float = 60.0, total: int | None = None,
                        progress=None, on_block=None, visemes: bool = True):
        """:meth:`predict_raw_blocks` one block at a time: yields the :class:`RawOutput` frames
        that each block completes (then the look-ahead frames at the end), consecutive 50 fps
        frames whose concatenation is :meth:`predict_raw_blocks`' result. Nothing is kept between
        blocks but the network's context, so a consumer that writes the frames out holds no more
        than a block whatever the length of the audio (parameters as :meth:`predict_raw_blocks`).
        """
        from concurrent.futures import ThreadPoolExecutor

        runner = NetRunner(self, chunk_frames=max(1, int(round(chunk_seconds * FPS))))
        it = iter(blocks)
        done = 0

        # The next block is read and its features computed in a second thread while the network
        # runs on this one: numpy, soundfile, soxr, torch and onnxruntime release the GIL, so on two
        # cores most of that time is hidden. One block ahead at most keeps memory bounded; the
        # feature stream itself stays sequential (one worker), so the result is unchanged.
        def features():
            block = next(it, None)
            if block is None:
                return None
            block = np.asarray(block, np.float32).reshape(-1)
            if on_block is not None:
                on_block(block)
            return len(block), runner.feats.push(block)

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(features)
            while True:
                got = pending.result()
                if got is None:
                    break
                pending = pool.submit(features)
                n, new = got
                part = _keep(runner.accept(new), visemes)
                done += n
                if progress is not None:
                    progress(done, total)
                # The consumer's work on this block (which releases the GIL in numpy and zlib)
                # overlaps the next block's reading and features.
                yield part
            yield _keep(runner.accept(runner.feats.finish(), final=True), visemes)

    def predict(self, audio: np.ndarray, *, chunk_seconds: float = 60.0, closures: bool = True,
                progress=None) -> Animation:
        """Speech audio to an :class:`Animation` at 50 fps.

        Parameters
        ----------
        audio : np.ndarray, shape (N,), float32, 16 kHz mono
            Use :func:`flamesync.audio.load_audio` to get there from a file or another rate.
        chunk_seconds : float
            Audio per network pass; memory grows with it, results do not depend on it.
        closures : bool
            Decode lip closures and seal the lips during them (the calibrated decoder).
        progress : callable or None
            ``progress(done, total)`` in samples after each chunk (see :meth:`predict_raw`).

        Returns
        -------
        Animation
            Channels: the predicted ARKit speech channels, then ``jaw.rx/ry/rz`` implied by
            ``jawOpen`` (``meta["jaw_rotation"] == "implied"``); frame ``i`` at ``i / 50`` s.
        """
        audio = check_audio(audio)
        raw = self.predict_raw(audio, chunk_seconds=chunk_seconds, progress=progress)
        weights = Postprocessor(self, closures=closures).process(raw.weights, raw.closure_prob)
        return self.to_animation(weights)

    def predict_blocks(self, blocks, *, chunk_seconds: float = 60.0, closures: bool = True, total: int | None = None,
                       progress=None, on_block=None) -> Animation:
        """:meth:`predict` for audio that arrives in blocks of ``chunk_seconds`` (see
        :meth:`predict_raw_blocks`): the same animation as :meth:`predict` on their concatenation,
        without ever holding the whole audio. Blocks are not validated beyond shape: a file reader
        (:class:`flamesync.audio.io.AudioBlocks`) has checked them.
        """
        raw = self.predict_raw_blocks(blocks, chunk_seconds=chunk_seconds, total=total, progress=progress,
                                      on_block=on_block, visemes=False)
        if not len(raw.weights):
            raise InputError("audio contains no samples")
        weights = Postprocessor(self, closures=closures).process(raw.weights, raw.closure_prob)
        del raw
        return self.to_animation(weights)

    def to_animation(self, weights: np.ndarray, *, audio_offset: float = 0.0) -> Animation:
        jaw = np.zeros((len(weights), 3), np.float32)
        if "jawOpen" in self.channels:
            jaw[:, 0] = JAW_OPEN_RAD * weights[:, self.channels.index("jawOpen")]
        data = {c: weights[:, i] for i, c in enumerate(self.channels)}
        meta = {"source": "flamesync.net", "jaw_rotation": JAW_ROTATION_IMPLIED,
                "model": self.meta.get("name", "flamesync_net"), "step": self.meta.get("step")}
        return Animation.from_channels(fps=FPS, data=data, jaw=jaw, audio_offset=audio_offset, meta=meta)


class Postprocessor:
    """Amplitude maps (if the checkpoint has them), then causal closure decoding + sealing, carried
    across calls (so streams match whole files)."""

    def __init__(self, model: LoadedModel, *, closures: bool = True, decoder: ClosureDecoder | None = None):
        self.model = model
        self.closures = closures
        # Another decoder than the model's own: the recogniser fusion decodes its fused probability
        # with thresholds fitted for it (flamesync.net.fusion).
        self.decoder = decoder or model.decoder
        self._dec_state = None
        self._strength_state = None
        self._smooth_state = None

    def process(self, weights: np.ndarray, closure_prob: np.ndarray) -> np.ndarray:
        m = self.model
        if m.amplitude_map:
            weights = apply_quantile_maps(weights, m.amplitude_map, channels=m.channels)
        if min(m.smoothing_alpha, m.smoothing_alpha_closing) < 1.0 and m.smoothing_columns and len(weights):
            weights, self._smooth_state = smooth_channels(weights, alpha=m.smoothing_alpha, columns=m.smoothing_columns,
                                                          alpha_closing=m.smoothing_alpha_closing,
                                                          state=self._smooth_state)
        if not self.closures:
            return np.asarray(weights, np.float32)
        d = self.decoder
        mask, self._dec_state = decode_closures(closure_prob, on=d.on, off=d.off, min_frames=d.min_frames,
                                                state=self._dec_state)
        s, self._strength_state = closure_strength(mask, attack=d.attack, release=d.release,
                                                   state=self._strength_state)
        if not self.model.pose:
            return np.asarray(weights, np.float32)
        if m.closure_gain != 1.0 and m.closure_gain_columns and len(weights):
            weights = np.array(weights, np.float32, copy=True)
            weights[:, m.closure_gain_columns] *= (1.0 - s * np.float32(1.0 - 1.0 / m.closure_gain))[:, None]
        return apply_closures(weights, s, channels=self.model.channels, pose=self.model.pose)


class NetRunner:
    """Incremental network evaluation over a growing feature sequence.

    Audio goes in through :meth:`push`; each call returns the output frames whose full input
    (look-ahead included) has arrived. :meth:`finish` flushes the rest with the end-of-audio padding.
    """

    def __init__(self, model: LoadedModel, *, chunk_frames: int = 3000):
        self.model = model
        self.chunk_frames = int(chunk_frames)
        self.feats = LogMelStream(config=model.features, out_fps=FPS)
        self._buf = np.zeros((0, model.cfg.n_mels), np.float32)  # features from frame 2*_buf_tok
        self._buf_tok = 0  # network frame index of _buf[0:2]
        self._next = 0  # next output frame to produce
        self._past = model.cfg.past_frames
        self._future = model.cfg.lookahead_frames

    @property
    def frames_out(self) -> int:
        return self._next

    def push(self, audio: np.ndarray) -> RawOutput:
        return self.accept(self.feats.push(np.asarray(audio, np.float32).reshape(-1)))

    def finish(self) -> RawOutput:
        return self.accept(self.feats.finish(), final=True)

    def accept(self, new: np.ndarray, *, final: bool = False) -> RawOutput:
        """Take the next feature frames of :attr:`feats` (computed by the caller, e.g. in another
        thread); with ``final`` they are the stream's last. Returns the frames that became ready."""
        self._buf = np.concatenate([self._buf, new]) if len(new) else self._buf
        n_feat = 2 * self._buf_tok + len(self._buf)
        if final:
            return self._run_until(n_feat // 2, final=True)
        # Frame j needs feature frames up to 2 * (j + future).
        ready = max(0, (n_feat - 1) // 2 - self._future + 1)
        return self._run_until(ready, final=False)

    def _run_until(self, ready: int, *, final: bool) -> RawOutput:
        parts = []
        n_feat = 2 * self._buf_tok + len(self._buf)
        # Network frame t reads feature frames 2t-1 and 2t; at the end the stream is padded to even.
        n_tok_avail = n_feat // 2 if final else (n_feat + 1) // 2
        while self._next < ready:
            stop = min(ready, self._next + self.chunk_frames)
            start = max(0, self._next - self._past)
            end = n_tok_avail if final else min(n_tok_avail, stop + self._future)
            lo = 2 * (start - self._buf_tok)
            window = self._buf[lo: lo + 2 * (end - start)]
            if len(window) < 2 * (end - start):
                window = np.pad(window, ((0, 2 * (end - start) - len(window)), (0, 0)))
            w, c, v = self.model.run_window(window)
            keep = slice(self._next - start, stop - start)
            parts.append(RawOutput(w[keep], _sigmoid(c[keep]), v[keep]))
            self._next = stop
        # Keep only the features a future window can still need.
        drop_tok = max(0, self._next - self._past - self._buf_tok)
        if drop_tok:
            self._buf = self._buf[2 * drop_tok:]
            self._buf_tok += drop_tok
        return _concat_raw(parts, len(self.model.channels), self.model.cfg.n_visemes)


class _Stage:
    """One layer group of the network run incrementally: keeps the inputs its next outputs need.

    ``fn`` maps (1, n, D) to (1, n, D') (or a tuple of such); output ``t`` depends on inputs
    ``[t - past, t + future]``. Inputs are torch tensors, or numpy arrays with ``concat=np.concatenate``
    (the ONNX pieces of :mod:`flamesync.net.onnx_stream`).
    """

    def __init__(self, fn, past: int, future: int, *, concat=None):
        self.fn, self.past, self.future = fn, past, future
        self.concat = concat
        self.buf = None
        self.start = 0  # absolute index of buf[0]
        self.n_in = 0
        self.n_out = 0

    def push(self, x, *, final: bool):
        """Add new inputs (or None); return the outputs that became final, or None."""
        if x is not None and len(x):
            if self.buf is None:
                self.buf = x
            elif self.concat is not None:
                self.buf = self.concat([self.buf, x])
            else:
                import torch

                self.buf = torch.cat([self.buf, x])
            self.n_in += len(x)
        if self.buf is None:
            return None
        end = self.n_in if final else max(self.n_out, self.n_in - self.future)
        if end <= self.n_out:
            return None
        w0 = max(0, self.n_out - self.past)
        y = self.fn(self.buf[w0 - self.start:][None])
        y = tuple(t[0, self.n_out - w0: end - w0] for t in y) if isinstance(y, tuple) else y[0, self.n_out - w0: end - w0]
        self.n_out = end
        drop = self.n_out - self.past - self.start
        if drop > 0:
            self.buf = self.buf[drop:]
            self.start += drop
        return y


class StreamRunner:
    """Layer-by-layer incremental evaluation for streaming.

    Unlike :class:`NetRunner`, which recomputes the whole receptive field (``past_frames``) for every
    window, this keeps each layer's recent inputs and recomputes only that layer's own context
    (``attn_past + conv_kernel - 1`` frames), so a push of a few frames costs a few times less. The
    outputs are the same functions of the same inputs, hence equal to the offline ones (to ~1e-6).
    """

    def __init__(self, model: LoadedModel):
        if model.backend != "torch":
            raise ValueError("StreamRunner runs the torch network layer by layer; use NetRunner for ONNX")
        self.model = model
        net, cfg = model.net, model.cfg
        self.feats = LogMelStream(config=model.features, out_fps=FPS)
        self._prev_feat = np.zeros(cfg.n_mels, np.float32)  # feature frame 2t-1 for the next pair
        self._pending: np.ndarray | None = None  # an odd feature frame waiting for its partner
        self._n_feat = 0
        stages = [_Stage(net.front, past=ModelConfig.FRONT_PAST, future=ModelConfig.FRONT_FUTURE)]
        for blk, fut in zip(net.blocks, cfg.attn_future):
            stages.append(_Stage(blk, past=cfg.attn_past + cfg.conv_kernel - 1, future=fut))
        stages.append(_Stage(net.heads, past=0, future=0))
        self.stages = stages

    @property
    def frames_out(self) -> int:
        return self.stages[-1].n_out

    def _pairs(self, new: np.ndarray) -> np.ndarray:
        # Pair t = (feature 2t-1, feature 2t); feature -1 is zeros.
        rows = []
        for f in new:
            if self._n_feat % 2 == 0:
                rows.append(np.concatenate([self._prev_feat, f]))
            self._prev_feat = f
            self._n_feat += 1
        if not rows:
            return np.zeros((0, 2 * self.model.cfg.n_mels), np.float32)
        return np.stack(rows).astype(np.float32)

    def _run_stages(self, x, final: bool):
        """New inputs (or None) through every stage; the heads' outputs that became final, or None."""
        for st in self.stages:
            if x is None and not final:
                break
            x = st.push(x, final=final)
        return x

    def _empty(self) -> RawOutput:
        return _concat_raw([], len(self.model.channels), self.model.cfg.n_visemes)

    def _advance(self, pairs: np.ndarray, final: bool) -> RawOutput:
        import torch

        with torch.no_grad():
            x = self._run_stages(torch.from_numpy(pairs) if len(pairs) else None, final)
            if x is None:
                return self._empty()
            w, c, v = x
            return RawOutput(w.numpy(), _sigmoid(c.numpy()), torch.softmax(v, -1).numpy())

    def push(self, audio: np.ndarray) -> RawOutput:
        return self._advance(self._pairs(self.feats.push(np.asarray(audio, np.float32).reshape(-1))), False)

    def finish(self) -> RawOutput:
        return self._advance(self._pairs(self.feats.finish()), True)


def _keep(raw: RawOutput, visemes: bool) -> RawOutput:
    return raw if visemes else RawOutput(raw.weights, raw.closure_prob, raw.visemes[:, :0].copy())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


def _concat_raw(parts: list[RawOutput], n_ch: int, n_vis: int) -> RawOutput:
    parts = [p for p in parts if len(p.weights)]
    if not parts:
        return RawOutput(np.zeros((0, n_ch), np.float32), np.zeros(0, np.float32), np.zeros((0, n_vis), np.float32))
    return RawOutput(np.concatenate([p.weights for p in parts]), np.concatenate([p.closure_prob for p in parts]),
                     np.concatenate([p.visemes for p in parts]))


def check_audio(audio) -> np.ndarray:
    """Validate an in-memory 16 kHz mono signal; bad input raises a one-line :class:`InputError`."""
    if isinstance(audio, (str, Path)):
        raise InputError("predict() takes samples; load files with flamesync.audio.load_audio first")
    a = np.asarray(audio)
    if a.dtype.kind not in "fiu":
        raise InputError(f"audio samples must be numbers, got dtype {a.dtype}")
    if a.ndim != 1:
        raise InputError(f"audio must be mono samples of shape (N,), got shape {a.shape}")
    if a.size == 0:
        raise InputError("audio contains no samples")
    # No copy of float32 input (an hour of audio is 230 MB).
    a = a.astype(np.float32) / 32768.0 if a.dtype == np.int16 else a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        raise InputError("audio contains NaN or infinite samples")
    return a


def build_model(meta: dict, weights: dict | None = None) -> LoadedModel:
    """A torch-backed :class:`LoadedModel` from checkpoint metadata and (optionally) its weights."""
    from .model import FlameSyncNet

    cfg = ModelConfig.from_dict(meta.get("model", {}))
    net = FlameSyncNet(cfg)
    if weights is not None:
        # Name the first tensor that does not fit (torch's own message lists them all, over lines).
        expected = net.state_dict()
        missing = [k for k in expected if k not in weights]
        extra = [k for k in weights if k not in expected]
        wrong = [k for k in expected if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
        if missing:
            raise ModelFileError(f"checkpoint weights lack tensor '{missing[0]}'"
                                 + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        if extra:
            raise ModelFileError(f"checkpoint weights hold tensor '{extra[0]}', which the model config has no place for"
                                 + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
        if wrong:
            k = wrong[0]
            raise ModelFileError(f"checkpoint tensor '{k}' has shape {tuple(weights[k].shape)}, the model config "
                                 f"needs {tuple(expected[k].shape)}")
        try:
            net.load_state_dict(weights)
        except RuntimeError as exc:
            raise ModelFileError(f"checkpoint weights do not fit the model config ({str(exc).splitlines()[0]})") from None
    return LoadedModel(net, meta)


def load_model(path: str | Path, *, threads: int | None = None) -> LoadedModel:
    """Load a checkpoint written by training (``NAME.safetensors`` + ``NAME.json``), or an exported
    ``NAME.onnx`` (+ ``NAME.onnx.json``), which runs on onnxruntime without torch.

    ``threads`` bounds the CPU threads of an ONNX model's session (None: onnxruntime's default);
    torch models use ``torch.set_num_threads`` of the calling process.
    """
    if str(path).lower().endswith(".onnx"):
        from .onnx_runtime import load_onnx_model

        return load_onnx_model(path, threads=threads)
    meta = load_meta(path)
    model = build_model(meta, load_weights(path))
    model.source = stem(path)
    return model


def load_default_model(*, backend: str = "auto", threads: int | None = None) -> LoadedModel:
    """The shipped model, ``assets/model/flamesync_default.safetensors`` + ``.json``.

    Parameters
    ----------
    backend : {"auto", "torch", "onnx"}
        ``auto`` runs the shipped ONNX export of the same weights on onnxruntime when both are
        present (it starts in a fraction of the time ``import torch`` takes), else torch. The two
        agree to about 1e-6.

    The environment variable ``FLAMESYNC_MODEL`` (a checkpoint path, with or without suffix, or an
    ``.onnx`` file) replaces it, e.g. to try a freshly trained ``<run>/final``. ``threads``: as
    for :func:`load_model` (batch workers run one thread each).
    """
    import os

    if backend not in ("auto", "torch", "onnx"):
        raise InputError(f"backend must be auto, torch or onnx, got {backend!r}")
    env = os.environ.get("FLAMESYNC_MODEL")
    if env:
        return load_model(env, threads=threads)
    base = DEFAULT_CHECKPOINT
    if not base.with_name(base.name + ".safetensors").is_file() or not base.with_name(base.name + ".json").is_file():
        raise ModelFileError(
            f"the default network checkpoint is missing ({stem(base)}.safetensors/.json); "
            "train one with 'flamesync train --config configs/default.yaml'"
        )
    if backend != "torch":
        from .onnx_runtime import matching_onnx

        onnx_path = matching_onnx(base, required=backend == "onnx")
        if onnx_path is not None:
            return load_model(onnx_path, threads=threads)
    return load_model(base, threads=threads)


def predict(audio: np.ndarray, *, model: LoadedModel | None = None, chunk_seconds: float = 60.0,
            closures: bool = True) -> Animation:
    """Animate 16 kHz mono float audio with ``model`` (default: :func:`load_default_model`)."""
    model = model or load_default_model()
    return model.predict(audio, chunk_seconds=chunk_seconds, closures=closures)
