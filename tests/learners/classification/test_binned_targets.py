"""BinnedTargets: classes that are bins of one scalar parameter."""

import numpy as np
import pytest

from retroscope.core.params import Orientation, ParameterSpace, Scalar
from retroscope.core.targets import BinnedTargets

SPACE = ParameterSpace((Scalar("r_bohr", "bohr", 1.0, 8.0),
                        Scalar("intensity", "W/cm^2", 1e13, 1e14)))
EDGES = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]


def test_bins_are_closed_below_and_the_last_also_above():
    t = BinnedTargets(SPACE, "r_bohr", EDGES)
    r = np.array([1.0, 1.999, 2.0, 4.5, 7.0, 7.999, 8.0])
    index = t.encode({"r_bohr": r, "intensity": np.full(7, 1e13)})
    assert index.dtype == np.int64
    np.testing.assert_array_equal(index, [0, 0, 1, 3, 6, 6, 6])
    assert (t.n_classes, t.dim, t.columns, t.units) == (7, 7, ("r_bohr",), ("bohr",))
    np.testing.assert_allclose(t.centres(), np.arange(1.5, 8.0))
    np.testing.assert_allclose(t.limits(), [[1.0, 8.0]])


def test_labels_name_the_range_and_the_unit():
    t = BinnedTargets(SPACE, "r_bohr", EDGES)
    assert t.labels[0] == "1 <= r_bohr < 2 (bohr)"
    assert t.labels[-1] == "7 <= r_bohr <= 8 (bohr)"
    assert len(t.labels) == 7


def test_decode_gives_the_centre_of_the_most_probable_class():
    t = BinnedTargets(SPACE, "r_bohr", [1.0, 2.0, 4.0, 8.0])
    scores = np.array([[0.1, 0.7, 0.2], [3.0, -1.0, 0.0]])
    np.testing.assert_allclose(t.decode(scores)["r_bohr"], [3.0, 1.5])
    np.testing.assert_allclose(t.decode(np.array([2, 0]))["r_bohr"], [6.0, 1.5])
    with pytest.raises(ValueError, match="class indices"):
        t.decode(np.array([0.5, 1.5]))


def test_values_outside_the_edges_are_refused_by_name():
    t = BinnedTargets(SPACE, "r_bohr", [2.0, 4.0, 6.0])
    with pytest.raises(ValueError, match=r"r_bohr: 2 value\(s\) outside .*\[2, 6\] bohr"):
        t.encode({"r_bohr": np.array([1.5, 3.0, 6.5])})
    with pytest.raises(ValueError, match="r_bohr"):
        t.encode({"r_bohr": np.array([np.nan])})


def test_bad_edges_and_columns_are_refused():
    with pytest.raises(ValueError, match="increasing"):
        BinnedTargets(SPACE, "r_bohr", [1.0, 3.0, 2.0])
    with pytest.raises(ValueError, match="2 classes or more"):
        BinnedTargets(SPACE, "r_bohr", [1.0, 8.0])
    with pytest.raises(ValueError, match="scalar parameter"):
        BinnedTargets(SPACE, "radius", EDGES)
    with pytest.raises(ValueError, match="scalar parameter"):
        BinnedTargets(ParameterSpace((Orientation("q"),)), "q", EDGES)
