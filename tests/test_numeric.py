import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from flamesync.numeric import gaussian_smooth, is_finite_number, quat_to_rotvec, rotvec_to_quat, slerp_rotvec


@pytest.mark.parametrize("sigma", [0.1, 0.4, 0.667, 1.3, 5.0])
def test_gaussian_smooth_matches_scipy_nearest_mode(sigma):
    x = np.random.default_rng(0).standard_normal((50, 4))
    np.testing.assert_allclose(gaussian_smooth(x, sigma), gaussian_filter1d(x, sigma, axis=0, mode="nearest"),
                               atol=1e-12)


def test_gaussian_smooth_keeps_constants_and_short_inputs():
    np.testing.assert_allclose(gaussian_smooth(np.full((3, 2), 7.0), 2.0), 7.0)
    assert gaussian_smooth(np.zeros((0, 2)), 1.0).shape == (0, 2)


def test_quaternion_round_trip_and_scipy_agreement():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((200, 3)) * rng.uniform(0, 3.0, (200, 1))
    v[:3] = [[0, 0, 0], [1e-9, 0, 0], [0, 0, 3.14159]]
    q = rotvec_to_quat(v)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    scipy_q = Rotation.from_rotvec(v).as_quat()  # x, y, z, w
    same = np.abs(np.sum(q[:, [1, 2, 3, 0]] * scipy_q, axis=1))
    np.testing.assert_allclose(same, 1.0, atol=1e-9)
    np.testing.assert_allclose(Rotation.from_rotvec(quat_to_rotvec(q)).as_matrix(), Rotation.from_rotvec(v).as_matrix(),
                               atol=1e-9)


def test_slerp_matches_scipy():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((100, 3))
    b = rng.standard_normal((100, 3))
    t = rng.uniform(0, 1, 100)
    r_a, r_b = Rotation.from_rotvec(a), Rotation.from_rotvec(b)
    want = (r_a * Rotation.from_rotvec((r_a.inv() * r_b).as_rotvec() * t[:, None])).as_matrix()
    got = Rotation.from_rotvec(slerp_rotvec(a, b, t)).as_matrix()
    np.testing.assert_allclose(got, want, atol=1e-9)
    np.testing.assert_allclose(Rotation.from_rotvec(slerp_rotvec(a, b, np.zeros(100))).as_matrix(), r_a.as_matrix(),
                               atol=1e-9)
    np.testing.assert_allclose(Rotation.from_rotvec(slerp_rotvec(a, b, np.ones(100))).as_matrix(), r_b.as_matrix(),
                               atol=1e-9)


@pytest.mark.parametrize("value, expected", [
    (0, True), (-3, True), (2.5, True), (np.float64(1.5), True),
    (True, False), (False, False), (float("nan"), False), (float("inf"), False), (-float("inf"), False),
    ("1.0", False), (None, False), ([1.0], False),
])
def test_is_finite_number_rejects_bools_strings_and_non_finite(value, expected):
    assert is_finite_number(value) is expected
