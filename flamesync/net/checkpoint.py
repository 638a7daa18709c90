"""Checkpoint files: weights in safetensors, everything else in a JSON beside them.

A checkpoint ``NAME`` is ``NAME.safetensors`` (model weights) and ``NAME.json`` (format, model and
feature configuration, training step, closure calibration and pose, training config). Training
checkpoints add ``NAME.optim.pt``: the optimizer state, written with ``torch.save`` and read back with
``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers. No file
is ever unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelFileError
from ..fileio import atomic_path, atomic_write_text

if TYPE_CHECKING:  # torch loads only when weights are read or written: ONNX inference runs without it
    import torch

FORMAT = "flamesync.net"
VERSION = 1


def stem(path: str | Path) -> Path:
    """``x.safetensors`` / ``x.json`` / ``x`` -> ``x``."""
    p = Path(path)
    for suffix in (".safetensors", ".json"):
        if p.name.endswith(suffix):
            return p.with_name(p.name[: -len(suffix)])
    return p


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, meta: dict,
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write ``path.safetensors`` + ``path.json`` (+ ``path.optim.pt``) atomically; return the stem."""
    from safetensors.torch import save_file

    base = stem(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(base.with_name(base.name + ".safetensors")) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    if optimizer is not None:
        import torch

        with atomic_path(base.with_name(base.name + ".optim.pt")) as tmp:
            torch.save(optimizer.state_dict(), tmp)
    # The JSON goes last: its presence marks a complete checkpoint.
    atomic_write_text(base.with_name(base.name + ".json"),
                      json.dumps({"format": FORMAT, "version": VERSION, **meta}, indent=1, sort_keys=True))
    return base


def load_meta(path: str | Path) -> dict:
    base = stem(path)
    jpath = base.with_name(base.name + ".json")
    if not jpath.is_file():
        raise ModelFileError(f"checkpoint description not found: {jpath}")
    try:
        meta = json.loads(jpath.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{jpath} is not a readable checkpoint description ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{jpath}: a checkpoint description must be a JSON object, found {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{jpath} is not a flamesync network checkpoint (format {meta.get('format')!r})")
    version = meta.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"{jpath}: version {version!r} is not an integer")
    if version > VERSION:
        raise ModelFileError(f"{jpath} was written by a newer flamesync; upgrade flamesync")
    from .schema import check_description

    return check_description(meta, str(jpath))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    base = stem(path)
    wpath = base.with_name(base.name + ".safetensors")
    if not wpath.is_file():
        raise ModelFileError(f"checkpoint weights not found: {wpath}")
    try:
        return load_file(str(wpath))
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt files
        raise ModelFileError(f"{wpath} is not a readable safetensors file ({exc})") from None


def load_optimizer_state(path: str | Path) -> dict | None:
    base = stem(path)
    opath = base.with_name(base.name + ".optim.pt")
    if not opath.is_file():
        return None
    import torch

    return torch.load(opath, map_location="cpu", weights_only=True)


def average_weights(paths) -> dict[str, torch.Tensor]:
    """The element-wise mean of several checkpoints' weights (a "model soup").

    Averaging is only meaningful for networks fine-tuned from one common start, which stay in one
    basin of the loss; networks trained apart from scratch average into noise. This function checks
    what it can (the same model configuration, tensor names and shapes); the common start is the
    caller's to ensure.

    Parameters
    ----------
    paths : sequence of path
        Two or more checkpoint stems (or their ``.safetensors`` / ``.json`` files).

    Returns
    -------
    dict of str to torch.Tensor : each tensor the mean over the checkpoints, in its stored dtype
    """
    import torch

    paths = [stem(p) for p in paths]
    if len(paths) < 2:
        raise ModelFileError("averaging needs at least two checkpoints")
    first_model = None
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for i, p in enumerate(paths):
        model = load_meta(p)["model"]
        if i == 0:
            first_model = model
        elif model != first_model:
            raise ModelFileError(f"cannot average {p} with {paths[0]}: their model configurations differ")
        weights = load_weights(p)
        if i == 0:
            dtypes = {k: v.dtype for k, v in weights.items()}
            total = {k: v.to(torch.float64) for k, v in weights.items()}
            continue
        if set(weights) != set(total):
            raise ModelFileError(f"cannot average {p} with {paths[0]}: their tensors differ")
        for k, v in weights.items():
            if v.shape != total[k].shape:
                raise ModelFileError(f"cannot average {p} with {paths[0]}: {k} is {tuple(v.shape)}, "
                                     f"not {tuple(total[k].shape)}")
            total[k] += v.to(torch.float64)
    return {k: (v / len(paths)).to(dtypes[k]) for k, v in total.items()}
