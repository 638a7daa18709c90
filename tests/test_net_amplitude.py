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


def test_one_pole_smoothing_is_causal_carries_state_and_touches_only_its_columns():
    from flamesync.net.amplitude import smooth_channels

    rng = np.random.default_rng(0)
    x = rng.random((200, 4)).astype(np.float32)
    whole, _ = smooth_channels(x, alpha=0.6, columns=[0, 2])
    np.testing.assert_array_equal(whole[:, [1, 3]], x[:, [1, 3]])
    # the recursion itself, from the first frame's value
    y = x[0, 0]
    ref = []
    for v in x[:, 0]:
        y = y + 0.6 * (v - y)
        ref.append(y)
    np.testing.assert_allclose(whole[:, 0], ref, atol=1e-6)
    # in pieces, with the state carried: the same numbers
    parts, state = [], None
    for a, b in ((0, 1), (1, 37), (37, 38), (38, 200)):
        out, state = smooth_channels(x[a:b], alpha=0.6, columns=[0, 2], state=state)
        parts.append(out)
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # causal: changing a later frame changes nothing before it
    x2 = x.copy()
    x2[150:, 0] += 1.0
    np.testing.assert_array_equal(smooth_channels(x2, alpha=0.6, columns=[0])[0][:150, 0],
                                  smooth_channels(x, alpha=0.6, columns=[0])[0][:150, 0])
    # a step rises as 1 - (1 - alpha)^t; alpha 1 is the identity
    step = np.zeros((6, 1), np.float32)
    step[1:] = 1.0
    np.testing.assert_allclose(smooth_channels(step, alpha=0.5, columns=[0])[0][:, 0],
                               [0, 0.5, 0.75, 0.875, 0.9375, 0.96875])
    np.testing.assert_array_equal(smooth_channels(x, alpha=1.0, columns=[0, 1, 2, 3])[0], x)



def test_smoothing_that_follows_falls_keeps_dips_and_smooths_rises():
    from flamesync.net.amplitude import smooth_channels

    rng = np.random.default_rng(1)
    x = rng.random((300, 3)).astype(np.float32)
    whole, _ = smooth_channels(x, alpha=0.6, alpha_closing=1.0, columns=[0, 2])
    np.testing.assert_array_equal(whole[:, 1], x[:, 1])
    y, ref = x[0, 0], []
    for v in x[:, 0]:
        y = y + (1.0 if v < y else 0.6) * (v - y)
        ref.append(y)
    np.testing.assert_allclose(whole[:, 0], ref, atol=1e-6)
    falls = np.r_[False, x[1:, 0] < whole[:-1, 0]]
    np.testing.assert_allclose(whole[falls, 0], x[falls, 0], atol=1e-6)  # every fall followed at once
    # so a one-frame dip keeps its depth, where the symmetric filter fills it in
    dip = np.full((8, 1), 0.8, np.float32)
    dip[4] = 0.05
    assert smooth_channels(dip, alpha=0.6, alpha_closing=1.0, columns=[0])[0][4, 0] == np.float32(0.05)
    assert smooth_channels(dip, alpha=0.6, columns=[0])[0][4, 0] > 0.3
    # streamed in pieces with the state carried: the same numbers
    parts, state = [], None
    for a, b in ((0, 1), (1, 90), (90, 91), (91, 300)):
        out, state = smooth_channels(x[a:b], alpha=0.6, alpha_closing=1.0, columns=[0, 2], state=state)
        parts.append(out)
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # the same rate both ways is the symmetric filter
    np.testing.assert_allclose(smooth_channels(x, alpha=0.6, alpha_closing=0.6, columns=[0])[0],
                               smooth_channels(x, alpha=0.6, columns=[0])[0], atol=1e-6)


def test_checkpoint_schema_checks_the_smoothing_block():
    import pytest

    from flamesync.errors import ModelFileError
    from flamesync.net.schema import check_description

    check_description({"opening_smoothing": {"alpha": 0.7, "channels": ["jawOpen"]}}, "x.json")
    check_description({"opening_smoothing": {"alpha": 0.7, "alpha_closing": 1.0, "channels": ["jawOpen"]}}, "x.json")
    for bad in ({"opening_smoothing": 0.7}, {"opening_smoothing": {"alpha": 0}},
                {"opening_smoothing": {"alpha": 1.5}}, {"opening_smoothing": {"channels": "jawOpen"}},
                {"opening_smoothing": {"alpha": 0.7, "alpha_closing": 0}}):
        with pytest.raises(ModelFileError, match="opening_smoothing"):
            check_description(bad, "x.json")
    check_description({"closure_removes_gain": {"gain": 1.06, "channels": ["jawOpen"]}}, "x.json")
    for bad in ({"closure_removes_gain": 1.06}, {"closure_removes_gain": {"gain": 0}},
                {"closure_removes_gain": {"gain": "1.1"}}, {"closure_removes_gain": {"channels": "jawOpen"}}):
        with pytest.raises(ModelFileError, match="closure_removes_gain"):
            check_description(bad, "x.json")
