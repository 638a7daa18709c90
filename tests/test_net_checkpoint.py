import numpy as np
import pytest
import torch

from flamesync.errors import ModelFileError
from flamesync.net.checkpoint import average_weights, load_weights, save_checkpoint
from flamesync.net.model import FlameSyncNet, ModelConfig
from net_standin import torch_single_thread  # noqa: F401

SMALL = ModelConfig(dim=32, heads=2, layers=1, ffn_mult=2, attn_future=(1,))


def _save(path, cfg=SMALL, seed=0):
    torch.manual_seed(seed)
    net = FlameSyncNet(cfg)
    return save_checkpoint(path, model=net, meta={"model": cfg.to_dict(), "features": {}, "seed": seed})


def test_average_is_the_elementwise_mean(tmp_path):
    paths = [_save(tmp_path / f"m{i}", seed=i) for i in range(3)]
    soup = average_weights(paths)
    parts = [load_weights(p) for p in paths]
    assert set(soup) == set(parts[0])
    for k, v in soup.items():
        assert v.dtype == parts[0][k].dtype
        want = np.mean([p[k].double().numpy() for p in parts], axis=0)
        np.testing.assert_allclose(v.double().numpy(), want, rtol=1e-6, atol=1e-7)
    # A network averaged with itself is itself, and the file names may carry their suffixes.
    same = average_weights([paths[0], str(paths[0]) + ".safetensors"])
    assert all(torch.equal(same[k], parts[0][k]) for k in same)


def test_average_refuses_what_cannot_be_averaged(tmp_path):
    a = _save(tmp_path / "a")
    other = _save(tmp_path / "b", cfg=ModelConfig(dim=48, heads=2, layers=1, ffn_mult=2, attn_future=(1,)))
    with pytest.raises(ModelFileError, match="model configurations differ"):
        average_weights([a, other])
    with pytest.raises(ModelFileError, match="at least two"):
        average_weights([a])
    with pytest.raises(ModelFileError, match="not found"):
        average_weights([a, tmp_path / "missing"])
