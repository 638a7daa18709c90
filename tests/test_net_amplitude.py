import numpy as np
import pytest

from flamesync.net.amplitude import OPENING_CHANNELS, apply_quantile_maps, fit_quantile_map


def test_quantile_map_undoes_a_monotone_squashing():
    rng = np.random.default_rng(0)
    target = rng.beta(2, 5, 20000)
    pred = 0.1 + 0.6 * target ** 1.3  # an under-opening, compressed version of the target
    m = fit_quantile_map(pred, target, n_quantiles=41)
    assert len(m["x"]) == len(m["y"]) == 41
    assert np.all(np.diff(m["x"]) > 0) and np.all(np.diff(m["y"]) >= 0)
    probe = rng.beta(2, 5, 500)
    got = np.interp(0.1 + 0.6 * probe ** 1.3, m["x"], m["y"])
    assert np.max(np.abs(got - probe)) < 0.02


def test_quantile_map_handles_a_channel_stuck_at_zero():
    pred = np.r_[np.zeros(900), np.linspace(0, 0.2, 100)]
    target = np.r_[np.zeros(900), np.linspace(0, 0.4, 100)]
    m = fit_quantile_map(pred, target)
    assert np.all(np.diff(m["x"]) > 0)
    assert np.interp(0.0, m["x"], m["y"]) == pytest.approx(0.0, abs=1e-6)
    assert np.interp(0.2, m["x"], m["y"]) == pytest.approx(0.4, abs=1e-6)
    with pytest.raises(ValueError, match="no frames"):
        fit_quantile_map(np.zeros(0), np.zeros(0))


def test_apply_maps_touches_only_mapped_channels_and_holds_ends_flat():
    channels = ("jawOpen", "mouthFunnel")
    w = np.array([[-0.1, 0.3], [0.25, 0.3], [0.9, 0.3]], np.float32)
    out = apply_quantile_maps(w, {"jawOpen": {"x": [0.0, 0.5], "y": [0.0, 0.8]}, "cheekPuff": {"x": [0, 1], "y": [1, 0]}},
                              channels=channels)
    np.testing.assert_allclose(out[:, 0], [0.0, 0.4, 0.8])
    np.testing.assert_array_equal(out[:, 1], w[:, 1])
    assert out.dtype == np.float32 and set(OPENING_CHANNELS) >= {"jawOpen"}
