"""ONNX export of the network, checked against torch with onnxruntime.

The exported graph is the network only: input ``features`` ``(batch, 2T, n_mels)`` float32 (the
normalised log-mel of :mod:`flamesync.audio.features`), outputs ``weights`` ``(batch, T, C)``,
``closure`` ``(batch, T)`` logits and ``visemes`` ``(batch, T, K)`` logits, with ``T`` dynamic. A JSON
sidecar (``model.onnx.json``) carries what a runtime needs around it: feature parameters, channel
names, look-ahead and past context, the calibrated closure decoder and the closure pose.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, require
from ..fileio import atomic_path, atomic_write_text
from .infer import LoadedModel
from .onnx_runtime import SIDECAR_FORMAT, weights_sha256

INSTALL = "pip install 'flamesync[onnx]'"


def export_onnx(model: LoadedModel, path: str | Path, *, opset: int = 17, check: bool = True,
                check_seconds: float = 7.3) -> dict:
    """Write ``path`` (+ ``path.json``) and, with ``check``, compare onnxruntime with torch.

    Returns
    -------
    dict with ``path``, ``max_abs_diff`` (over all outputs, on ``check_seconds`` of test input and on
    a second length, to exercise the dynamic axis) and ``opset``.
    """
    require("onnx", feature="ONNX export", install=INSTALL)
    if model.backend != "torch":
        raise InputError("ONNX export needs the torch checkpoint (.safetensors), not an ONNX model")
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise InputError(f"ONNX files end in .onnx, got {path.name}")
    net = model.net.eval()
    example = torch.zeros(1, 2 * 100, model.cfg.n_mels)
    import warnings

    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The TorchScript exporter warns about slices it cannot constant-fold; harmless here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (example,), str(tmp), dynamo=False, opset_version=opset,
            input_names=["features"], output_names=["weights", "closure", "visemes"],
            dynamic_axes={"features": {0: "batch", 1: "feature_frames"}, "weights": {0: "batch", 1: "frames"},
                          "closure": {0: "batch", 1: "frames"}, "visemes": {0: "batch", 1: "frames"}},
        )
    side = {
        "format": SIDECAR_FORMAT,
        "inputs": {"features": "(batch, 2T, n_features) normalised log-mel, then the heights above the noise "
                               "floor when features.floor_rise_db > 0; 100 fps"},
        "outputs": {"weights": "(batch, T, C) in [0,1], 50 fps", "closure": "(batch, T) logits",
                    "visemes": "(batch, T, K) logits"},
        "channels": list(model.channels), "fps": 50.0, "features": model.features.to_dict(),
        "lookahead_frames": model.cfg.lookahead_frames, "past_frames": model.cfg.past_frames,
        "closure_decoder": model.decoder.to_dict(), "closure_pose": model.pose,
        # What loading it as a flamesync model needs (flamesync.net.onnx_runtime).
        "model": model.cfg.to_dict(), "step": model.meta.get("step"), "name": model.meta.get("name"),
    }
    if model.amplitude_map:
        side["amplitude_map"] = model.amplitude_map
    if model.meta.get("opening_smoothing"):
        side["opening_smoothing"] = model.meta["opening_smoothing"]
    if model.meta.get("closure_removes_gain"):
        side["closure_removes_gain"] = model.meta["closure_removes_gain"]
    if model.meta.get("fusion"):
        side["fusion"] = model.meta["fusion"]
    if model.source is not None:  # set by load_model, from the checkpoint whose weights it read
        side["weights_sha256"] = weights_sha256(model.source)
    atomic_write_text(path.with_name(path.name + ".json"), json.dumps(side, indent=1))
    report = {"path": str(path), "opset": opset}
    if check:
        report["max_abs_diff"] = check_onnx(model, path, seconds=check_seconds)
    return report


def check_onnx(model: LoadedModel, path: str | Path, *, seconds: float = 7.3, seed: int = 0) -> float:
    """Largest absolute difference between onnxruntime and torch outputs on random features."""
    ort = require("onnxruntime", feature="checking the ONNX export", install=INSTALL)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for n in (int(seconds * 50), int(seconds * 50 * 0.37) + 3):
        x = rng.standard_normal((1, 2 * n, model.cfg.n_mels)).astype(np.float32)
        got = sess.run(None, {"features": x})
        with torch.no_grad():
            ref = [t.numpy() for t in model.net(torch.from_numpy(x))]
        for g, r in zip(got, ref):
            if g.shape != r.shape:
                raise AssertionError(f"ONNX output shape {g.shape} != torch {r.shape}")
            worst = max(worst, float(np.max(np.abs(g - r))))
    return worst
