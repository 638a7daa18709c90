"""Running the exported network on onnxruntime, without torch.

``import torch`` alone takes over a second, most of a command-line run's start-up on a short clip.
The shipped checkpoint therefore comes with its ONNX export (``flamesync_default.onnx`` +
``.onnx.json``, written by ``flamesync export-onnx``); when onnxruntime is installed and the
export's recorded weight hash matches the checkpoint beside it, inference runs on it instead.
Training, layer-by-layer streaming (:class:`~flamesync.net.infer.StreamRunner`) and exporting still
use torch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import ModelFileError, require
from .config import ModelConfig

INSTALL = "pip install 'flamesync[onnx]'"
SIDECAR_FORMAT = "flamesync.net.onnx"


def weights_sha256(base: str | Path) -> str:
    """SHA-256 of a checkpoint's ``.safetensors`` file (``base`` is its stem)."""
    base = Path(base)
    return hashlib.sha256(base.with_name(base.name + ".safetensors").read_bytes()).hexdigest()


def read_sidecar(path: str | Path) -> dict:
    """The JSON written beside an exported ``.onnx`` file."""
    side = Path(str(path) + ".json")
    if not side.is_file():
        raise ModelFileError(f"the ONNX model's description {side.name} is missing beside it")
    try:
        meta = json.loads(side.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{side} is not readable JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT or "model" not in meta:
        raise ModelFileError(f"{side} is not a flamesync ONNX description (re-export with 'flamesync export-onnx')")
    from .schema import check_description

    return check_description(meta, str(side))


class OnnxNetwork:
    """The network as an onnxruntime session, with the interface :class:`LoadedModel` needs.

    Attributes
    ----------
    cfg : ModelConfig
    backend : str
        ``"onnx"``.
    """

    backend = "onnx"

    def __init__(self, path: str | Path, cfg: ModelConfig, *, threads: int | None = None):
        ort = require("onnxruntime", feature="running the network without torch", install=INSTALL)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # its graph-optimiser notices are not the user's business
        if threads:
            opts.intra_op_num_threads = int(threads)
        # Idle worker threads would otherwise spin between runs, taking the cores the feature
        # computation between network windows needs.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for unreadable or invalid graphs
            raise ModelFileError(f"{path} is not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
        self.path = Path(path)
        self.cfg = cfg
        self._check_shapes(path)

    def _check_shapes(self, path) -> None:
        """The graph's input and output widths must be those its description promises."""
        def width(arg):
            dim = arg.shape[-1] if arg.shape else None
            return dim if isinstance(dim, int) else None  # symbolic dimensions say nothing

        inputs = {a.name: a for a in self.session.get_inputs()}
        outputs = self.session.get_outputs()
        if "features" not in inputs:
            raise ModelFileError(f"{path}: the graph has no 'features' input; re-export with 'flamesync export-onnx'")
        if len(outputs) != 3:
            raise ModelFileError(f"{path}: the graph has {len(outputs)} outputs, expected 3 (weights, closure, visemes)")
        checks = (
            ("input 'features'", width(inputs["features"]), self.cfg.n_mels),
            (f"output '{outputs[0].name}'", width(outputs[0]), len(self.cfg.channels)),
            (f"output '{outputs[2].name}'", width(outputs[2]), self.cfg.n_visemes),
        )
        for what, got, want in checks:
            if got is not None and got != want:
                raise ModelFileError(f"{path}: the graph's {what} has width {got}, its description says {want}")

    def run_window(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One pass over features ``(2n, n_mels)``: weights ``(n, C)``, closure logits ``(n,)``,
        viseme probabilities ``(n, K)``."""
        x = np.ascontiguousarray(feats, np.float32)[None]
        w, c, v = self.session.run(None, {"features": x})
        v = v[0] - v[0].max(axis=-1, keepdims=True)
        e = np.exp(v)
        return w[0], c[0], (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def load_onnx_model(path: str | Path, *, threads: int | None = None):
    """A :class:`~flamesync.net.infer.LoadedModel` running ``path`` (an exported ``.onnx``) on
    ``threads`` CPU threads (default: onnxruntime's, one per physical core)."""
    from .infer import LoadedModel

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"ONNX model not found: {path}")
    meta = read_sidecar(path)
    return LoadedModel(OnnxNetwork(path, ModelConfig.from_dict(meta["model"]), threads=threads), meta)


def matching_onnx(base: str | Path, *, required: bool = False) -> Path | None:
    """``base.onnx`` if it is the export of checkpoint ``base`` and onnxruntime is installed.

    With ``required``, a missing or stale export or a missing onnxruntime raises instead of
    returning None.
    """
    base = Path(base)
    path = base.with_name(base.name + ".onnx")
    try:
        require("onnxruntime", feature="running the network without torch", install=INSTALL)
        if not path.is_file():
            raise ModelFileError(f"no ONNX export {path.name} beside the checkpoint; run 'flamesync export-onnx'")
        if read_sidecar(path).get("weights_sha256") != weights_sha256(base):
            raise ModelFileError(f"{path.name} was exported from other weights than {base.name}.safetensors; "
                                 "run 'flamesync export-onnx' again")
    except Exception:
        if required:
            raise
        return None
    return path
