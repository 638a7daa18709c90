"""The schema of checkpoint descriptions (``NAME.json``, ``NAME.onnx.json``), checked on load.

A description is read from a file anyone can edit; before any field reaches a constructor (and
torch allocates a layer of the size it names) every block is checked here: objects where objects
belong, numbers of the right kind inside sane bounds, lists of names. The message names the field.
"""

from __future__ import annotations

from dataclasses import fields

from ..errors import ModelFileError
from ..numeric import is_finite_number

# Bounds on the network's sizes: far above anything trained here (dim 128, 4 layers, 80 mels),
# far below what would exhaust memory when the layers are built.
_MODEL_BOUNDS = {
    "n_mels": (1, 1024),
    "dim": (1, 4096),
    "heads": (1, 256),
    "layers": (1, 64),
    "ffn_mult": (1, 16),
    "attn_past": (0, 4096),
    "conv_kernel": (1, 255),
    "n_visemes": (1, 1024),
}
_FEATURE_BOUNDS = {
    "sample_rate": (1000, 192000),
    "hop": (1, 48000),
    "win": (1, 65536),
    "n_fft": (2, 65536),
    "n_mels": (1, 1024),
}


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_channel_list(block: dict, where: str, source: str) -> None:
    channels = block.get("channels", [])
    if not (isinstance(channels, list) and all(isinstance(c, str) for c in channels)):
        raise ModelFileError(f"{source}: {where}.channels must be a list of channel names")


def _check_block(cls, block, where: str, source: str, bounds: dict) -> None:
    """``block`` must be an object whose known fields have the type of ``cls``'s defaults."""
    def fail(msg):
        raise ModelFileError(f"{source}: {where}{msg}")

    if not isinstance(block, dict):
        fail(f" must be a JSON object, found {type(block).__name__}")
    for f in fields(cls):
        if f.name not in block:
            continue
        value, default = block[f.name], f.default
        name = f"{where}.{f.name}"
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif _is_int(default):
            ok = _is_int(value)
        elif isinstance(default, float):
            ok = is_finite_number(value)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, tuple):
            ok = isinstance(value, list) and all(
                isinstance(v, str) if default and isinstance(default[0], str) else _is_int(v) for v in value)
        else:
            ok = True
        if not ok:
            raise ModelFileError(f"{source}: {name} has the wrong type ({type(value).__name__}: {value!r:.40})")
        if f.name in bounds:
            lo, hi = bounds[f.name]
            if not lo <= value <= hi:
                raise ModelFileError(f"{source}: {name} = {value} is outside {lo}..{hi}")


def check_description(meta, source: str) -> dict:
    """Check a checkpoint or ONNX description against the schema; return it."""
    from ..audio.features import FeatureConfig
    from .closure import ClosureDecoder
    from .config import ModelConfig

    if not isinstance(meta, dict):
        raise ModelFileError(f"{source}: a checkpoint description must be a JSON object, found {type(meta).__name__}")
    version = meta.get("version", 0)
    if not _is_int(version):
        raise ModelFileError(f"{source}: version {version!r} is not an integer")
    if "model" in meta:
        _check_block(ModelConfig, meta["model"], "model", source, _MODEL_BOUNDS)
        model = meta["model"]
        future = model.get("attn_future")
        if future is not None and any(not 0 <= x <= 64 for x in future):
            raise ModelFileError(f"{source}: model.attn_future entries must be within 0..64")
        if "dropout" in model and not 0 <= model["dropout"] < 1:
            raise ModelFileError(f"{source}: model.dropout = {model['dropout']} is outside [0, 1)")
        try:
            ModelConfig.from_dict(model)
        except ValueError as exc:  # layer counts that do not fit each other
            raise ModelFileError(f"{source}: model: {exc}") from None
    if "features" in meta:
        _check_block(FeatureConfig, meta["features"], "features", source, _FEATURE_BOUNDS)
    if "closure_decoder" in meta:
        _check_block(ClosureDecoder, meta["closure_decoder"], "closure_decoder", source, {"min_frames": (0, 1000)})
    if isinstance(meta.get("model"), dict) and "n_mels" in meta["model"] and "features" in meta:
        n_features = FeatureConfig.from_dict(meta["features"]).n_features
        if meta["model"]["n_mels"] != n_features:
            raise ModelFileError(f"{source}: model.n_mels = {meta['model']['n_mels']} does not match the "
                                 f"{n_features} feature channels the features block makes")
    if "fusion" in meta:
        fusion = meta["fusion"]
        if not isinstance(fusion, dict):
            raise ModelFileError(f"{source}: fusion must be a JSON object, found {type(fusion).__name__}")
        for key in ("bonus", "penalty"):
            if key in fusion and not (is_finite_number(fusion[key]) and 0 <= fusion[key] <= 100):
                raise ModelFileError(f"{source}: fusion.{key} must be a number in 0..100, found {fusion[key]!r:.40}")
        _check_block(ClosureDecoder, fusion.get("decoder", {}), "fusion.decoder", source, {"min_frames": (0, 1000)})
    if "opening_smoothing" in meta:
        sm = meta["opening_smoothing"]
        if not isinstance(sm, dict):
            raise ModelFileError(f"{source}: opening_smoothing must be a JSON object, found {type(sm).__name__}")
        for key in ("alpha", "alpha_closing"):
            a = sm.get(key, 1.0)
            if not (is_finite_number(a) and 0 < a <= 1):
                raise ModelFileError(f"{source}: opening_smoothing.{key} must be a number in (0, 1], found {a!r:.40}")
        _check_channel_list(sm, "opening_smoothing", source)
    if "closure_removes_gain" in meta:
        rg = meta["closure_removes_gain"]
        if not isinstance(rg, dict):
            raise ModelFileError(f"{source}: closure_removes_gain must be a JSON object, found {type(rg).__name__}")
        g = rg.get("gain", 1.0)
        if not (is_finite_number(g) and 0.5 <= g <= 2):
            raise ModelFileError(f"{source}: closure_removes_gain.gain must be a number in [0.5, 2], found {g!r:.40}")
        _check_channel_list(rg, "closure_removes_gain", source)
    for key in ("closure_pose", "amplitude_map"):
        if key in meta and not isinstance(meta[key], dict):
            raise ModelFileError(f"{source}: {key} must be a JSON object, found {type(meta[key]).__name__}")
    pose = meta.get("closure_pose", {})
    bad = [k for k, v in pose.items() if not is_finite_number(v)]
    if bad:
        raise ModelFileError(f"{source}: closure_pose.{bad[0]} is not a number")
    return meta
