"""The built-in backend: flamesync's network and closure decoding run inside Blender.

The platform zips (``build.py --platform ...``) carry ``flamesync_lib/`` (the flamesync package's
own audio, feature, network-runner and closure modules, copied at build time), ``model/`` (the
shipped ONNX network) and wheels for onnxruntime, soundfile and soxr that Blender installs with the
extension. This backend calls ``flamesync_lib.pipeline.animate(backend="model")`` on them: the same
code path as ``flamesync animate`` without a transcript, so the keys equal the CLI's. No torch, no
external program, nothing downloaded. Transcripts (forced alignment) and FLAME targets need the
installed ``flamesync`` command (the "cli" backend).
"""

from __future__ import annotations

import importlib
import os

from . import inference

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "model", "flamesync_default.onnx")
VENDOR = "flamesync_lib"

_MODELS: dict = {}  # model path -> loaded network (an onnxruntime session takes a moment to build)


class Cancelled(inference.InferenceError):
    """Raised inside the work when the user cancelled it."""


def bundled() -> bool:
    """Whether this build carries the network and the flamesync modules (the platform zips do)."""
    return os.path.isfile(MODEL) and os.path.isdir(os.path.join(HERE, VENDOR))


def _lib(name: str):
    try:
        return importlib.import_module(f"{__package__}.{VENDOR}.{name}")
    except ImportError as exc:
        raise inference.InferenceError(
            f"the built-in network cannot load ({exc}); install the flamesync zip built for this platform "
            "(build.py --platform ...) or choose the flamesync command backend") from None


def load_network():
    """The shipped network on onnxruntime (loaded once per Blender session)."""
    if not bundled():
        raise inference.InferenceError("this build of the add-on has no built-in network; install the zip built "
                                       "for your platform or choose the flamesync command backend")
    if MODEL not in _MODELS:
        onnx_runtime = _lib("net.onnx_runtime")
        errors = _lib("errors")
        try:
            _MODELS[MODEL] = onnx_runtime.load_onnx_model(MODEL)
        except errors.FlamesyncError as exc:
            raise inference.InferenceError(str(exc)) from None
    return _MODELS[MODEL]


def builtin_backend(audio, *, transcript=None, face=None, fps=30.0, out_path, progress=None, cancelled=None,
                    layers=None) -> None:
    """Animate ``audio`` with the built-in network and write the take to ``out_path`` (a flamesync ``.npz``).

    Parameters
    ----------
    audio : str
        Audio file (WAV, FLAC, OGG, MP3 ...; any rate).
    transcript, face : None
        Not supported here: a transcript or a FLAME face raises :class:`inference.InferenceError`
        that names the backend that can.
    fps : float
        Frame rate of the take.
    out_path : str
    progress : callable or None
        ``progress(done, total, task)``; ``done``/``total`` in audio samples.
    cancelled : callable or None
        Polled between chunks of audio; when it returns True the work stops with :class:`Cancelled`.
    layers : dict or None
        Alive-face keyword arguments of ``flamesync.animate`` (``mouth_only``, ``blinks``, ``gaze``,
        ``brows``, ``head``, ``emotion``, ``intensity``, ``seed``); None: its defaults.
    """
    if transcript:
        raise inference.InferenceError("the built-in network animates audio only; choose the 'flamesync command' "
                                       "backend in the add-on preferences to use the transcript")
    if face:
        raise inference.InferenceError("FLAME targets need the 'flamesync command' backend (it retargets to FLAME)")
    net = load_network()
    pipeline = _lib("pipeline")
    errors = _lib("errors")

    def step(done, total):
        if cancelled is not None and cancelled():
            raise Cancelled("cancelled")
        if progress is not None:
            progress(done, total, "animate")

    step(0, 1)
    try:
        anim = pipeline.animate(audio, fps=float(fps), backend="model", model=net, progress=step, **(layers or {}))
        anim.save(out_path)
    except errors.FlamesyncError as exc:
        raise inference.InferenceError(str(exc)) from None


if bundled():
    inference.register_backend("builtin", builtin_backend, label="Built-in network (in Blender)", first=True)
