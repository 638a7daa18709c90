import numpy as np
import pytest
import torch

from flamesync.channels import SPEECH_CHANNELS
from flamesync.net.model import FlameSyncNet, ModelConfig, count_parameters
from flamesync.net.targets import VISEME_CLASSES
from net_standin import torch_single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _net(cfg=ModelConfig(), seed=0):
    torch.manual_seed(seed)
    net = FlameSyncNet(cfg).eval()
    for blk in net.blocks:  # untrained biases are zero; randomise so the band structure is exercised
        torch.nn.init.normal_(blk.attn.rel_bias)
    return net


def test_shapes_and_ranges():
    net = _net()
    with torch.no_grad():
        w, c, v = net(torch.randn(3, 2 * 77, 80))
    assert w.shape == (3, 77, len(SPEECH_CHANNELS)) and c.shape == (3, 77) and v.shape == (3, 77, len(VISEME_CLASSES))
    assert float(w.min()) >= 0 and float(w.max()) <= 1


def test_default_size_and_latency_budget():
    cfg = ModelConfig()
    n = count_parameters(FlameSyncNet(cfg))
    assert 0.4e6 < n < 3e6
    # 80 ms of network look-ahead + 12.5 ms feature half-window <= 100 ms.
    assert cfg.lookahead_frames * 20 + 12.5 <= 100


def test_deterministic_for_seed():
    x = torch.randn(1, 200, 80)
    with torch.no_grad():
        a = _net(seed=3)(x)
        b = _net(seed=3)(x)
        c = _net(seed=4)(x)
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("n", [1, 31, 32, 33, 500])
def test_blocked_attention_equals_masked_reference(n):
    net = _net()
    x = torch.randn(2, 2 * n, 80)
    with torch.no_grad():
        a = net(x)
        for blk in net.blocks:
            blk.attn.impl = "mask"
        b = net(x)
    for u, v in zip(a, b):
        assert torch.allclose(u, v, atol=1e-5)


def test_receptive_field_is_bounded_both_ways():
    cfg = ModelConfig()
    net = _net(cfg)
    n, j = 400, 200
    x = torch.randn(1, 2 * n, 80)
    with torch.no_grad():
        ref = net(x)[0][0, j]
        fut = x.clone()
        fut[:, 2 * (j + cfg.lookahead_frames) + 1:] += 3 * torch.randn_like(fut[:, 2 * (j + cfg.lookahead_frames) + 1:])
        past = x.clone()
        cut = 2 * (j - cfg.past_frames) - 1
        past[:, :cut] += 3 * torch.randn_like(past[:, :cut])
        near = x.clone()
        near[:, 2 * (j + cfg.lookahead_frames)] += 3.0
        assert torch.equal(net(fut)[0][0, j], ref)
        assert torch.equal(net(past)[0][0, j], ref)
        # ... and the last frame inside the look-ahead does matter.
        assert not torch.equal(net(near)[0][0, j], ref)
