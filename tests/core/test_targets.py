"""LinearTargets: linear and logarithmic encodings, intervals in physical units."""

import numpy as np
import pytest

from retroscope.core.params import ParameterSpace, Scalar
from retroscope.core.targets import LinearTargets

SPACE = ParameterSpace((Scalar("n", "ions", 30, 350, integer=True),
                        Scalar("v", "V", 170.0, 300.0)))


def test_round_trip_and_unit_interval():
    t = LinearTargets(SPACE, log=("n",))
    rec = {"n": np.array([30.0, 100.0, 350.0]), "v": np.array([170.0, 235.0, 300.0])}
    y = t.encode(rec)
    np.testing.assert_allclose(y[[0, 2]], [[0, 0], [1, 1]], atol=1e-12)
    # log encoding: 100 sits at ln(100/30)/ln(350/30) of the way, not (100-30)/320
    assert y[1, 0] == pytest.approx(np.log(100 / 30) / np.log(350 / 30))
    assert y[1, 1] == pytest.approx(0.5)
    back = t.decode(y)
    np.testing.assert_allclose(back["n"], rec["n"])
    np.testing.assert_allclose(t.columns_physical(rec), np.stack([rec["n"], rec["v"]], 1))


def test_log_intervals_are_relative_and_linear_ones_symmetric():
    t = LinearTargets(SPACE, log=("n",))
    y = t.encode({"n": np.array([50.0, 300.0]), "v": np.array([200.0, 200.0])})
    half = np.full_like(y, 0.01)
    value = t.columns_physical(t.decode(y))
    low, high = t.bounds(y, half, value)
    rel = np.log(350 / 30) * 0.01
    np.testing.assert_allclose(high[:, 0] / value[:, 0], np.exp(rel))
    np.testing.assert_allclose(value[:, 0] / low[:, 0], np.exp(rel))
    np.testing.assert_allclose(high[:, 1] - value[:, 1], 1.3)
    np.testing.assert_allclose(value[:, 1] - low[:, 1], 1.3)


def test_log_needs_positive_bounds_and_known_columns():
    with pytest.raises(ValueError, match="positive"):
        LinearTargets(ParameterSpace((Scalar("n", "", 0, 10),)), log=("n",))
    with pytest.raises(ValueError, match="not targets"):
        LinearTargets(SPACE, columns=("v",), log=("n",))
