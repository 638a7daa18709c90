"""Streaming inference: push audio as it arrives, get animation frames with a fixed latency.

Frame ``j`` (time ``j / 50`` s) is returned by the first :meth:`Streamer.push` after which the stream
holds audio up to ``j / 50 + Streamer.lookahead_seconds`` (92.5 ms with the default model: 80 ms of
network look-ahead plus half a 25 ms feature window). The latency a listener sees is that look-ahead,
plus the time until the audio chunk holding that sample is pushed (the chunk length), plus compute.
Everything is causal apart from that bounded look-ahead, so the frames of a finished stream equal
:meth:`~flamesync.net.infer.LoadedModel.predict` on the whole audio (to float rounding, ~1e-6).
"""

from __future__ import annotations

import numpy as np

from ..animation import Animation
from ..errors import InputError
from .infer import FPS, LoadedModel, NetRunner, Postprocessor, RawOutput, StreamRunner


class Streamer:
    """Incremental audio-to-animation.

    Parameters
    ----------
    model : LoadedModel
    closures : bool
        Decode and apply lip closures (as :meth:`LoadedModel.predict` does).
    layers : flamesync.expressive.Layers or None
        Add the expressive layers (blinks, gaze, brows, head, emotion) to every frame, exactly as
        :func:`flamesync.animate` does on the whole file at 50 fps. They need 20 ms of audio past a
        frame, inside the network's look-ahead, so the latency does not change.

    Examples
    --------
    >>> s = Streamer(model)                      # doctest: +SKIP
    >>> for chunk in microphone_chunks():        # float32, 16 kHz, any length  # doctest: +SKIP
    ...     frames = s.push(chunk)               # Animation of the newly ready frames
    >>> frames = s.finish()                      # the rest, once the audio has ended  # doctest: +SKIP
    """

    def __init__(self, model: LoadedModel, *, closures: bool = True, layers=None):
        self.model = model
        self._layers = None
        if layers is not None and layers.active:
            from ..expressive import LayerStream

            if model.lookahead_seconds < LayerStream.lookahead_seconds:
                raise InputError("this model's look-ahead is too short for the expressive layers")
            self._layers = LayerStream(FPS, layers)
        # The network is stepped layer by layer (each layer recomputes only its own context): the
        # torch modules directly, an ONNX graph cut into the same pieces. A graph that cannot be
        # cut runs whole, over the full receptive field each push.
        if model.backend == "torch":
            self._runner = StreamRunner(model)
        else:
            from .onnx_stream import OnnxStreamRunner

            self._runner = OnnxStreamRunner.for_model(model) or NetRunner(model)
        self._post = Postprocessor(model, closures=closures)
        self._finished = False

    @property
    def lookahead_seconds(self) -> float:
        """Audio after a frame's time that must have arrived before the frame is emitted."""
        return self.model.lookahead_seconds

    @property
    def frames_out(self) -> int:
        return self._runner.frames_out

    def push(self, chunk: np.ndarray) -> Animation:
        """Add 16 kHz mono float samples, shape (n,); return the frames that became ready."""
        if self._finished:
            raise InputError("this stream is finished; start a new Streamer")
        chunk = np.asarray(chunk)
        if chunk.ndim != 1 or chunk.dtype.kind != "f":
            raise InputError(f"stream chunks must be float mono samples of shape (n,), got {chunk.dtype} {chunk.shape}")
        if not np.isfinite(chunk).all():
            raise InputError("stream chunk contains NaN or infinite samples")
        first = self._runner.frames_out
        if self._layers is not None:
            self._layers.feed(chunk)
        return self._emit(self._runner.push(chunk.astype(np.float32)), first)

    def finish(self) -> Animation:
        """End of audio: return the remaining frames (the look-ahead ones, padded like a whole file)."""
        if self._finished:
            raise InputError("this stream is already finished")
        first = self._runner.frames_out
        out = self._emit(self._runner.finish(), first, final=True)
        self._finished = True
        return out

    def _emit(self, raw: RawOutput, first: int, *, final: bool = False) -> Animation:
        w = self._post.process(raw.weights, raw.closure_prob)
        anim = self.model.to_animation(np.asarray(w, np.float32), audio_offset=first / FPS)
        if self._layers is not None:
            from ..expressive import apply_frames

            anim = apply_frames(anim, self._layers.advance(first + anim.n_frames, final=final))
            anim = anim.replace(meta={**anim.meta, "expressive": self._layers.layers.describe()})
        return anim
