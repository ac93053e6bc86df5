import numpy as np
import pytest

from retroscope.core.params import (Choice, Orientation, ParameterError, ParameterSpace,
                                    Scalar)

SPACE = ParameterSpace((Scalar("radius_nm", "nm", 30, 160, step=10),
                        Scalar("n_ions", "count", 30, 350, step=10, integer=True),
                        Choice("shape", ("icosahedron", "sphere"))))


def test_grid_has_every_point_once():
    grid = SPACE.grid()
    assert len(grid["radius_nm"]) == 14 * 33 * 2
    rows = set(zip(grid["radius_nm"], grid["n_ions"], grid["shape"]))
    assert len(rows) == 14 * 33 * 2
    assert grid["radius_nm"].max() == 160 and grid["n_ions"].min() == 30


def test_uniform_and_sobol_stay_in_bounds_and_are_seeded():
    for record in (SPACE.sample_uniform(500, np.random.default_rng(1)), SPACE.sample_sobol(500, 1)):
        assert SPACE.validate(record) == 500
        assert np.all(record["n_ions"] == np.floor(record["n_ions"]))
        assert set(np.unique(record["shape"])) == {0.0, 1.0}
    a = SPACE.sample_uniform(10, np.random.default_rng(3))
    b = SPACE.sample_uniform(10, np.random.default_rng(3))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_sobol_covers_the_box_more_evenly_than_random():
    space = ParameterSpace((Scalar("a", "1", 0, 1), Scalar("b", "1", 0, 1)))
    sob = space.sample_sobol(256, 0)
    hist, _, _ = np.histogram2d(sob["a"], sob["b"], bins=4, range=[[0, 1], [0, 1]])
    assert hist.min() == hist.max() == 16  # one base-2 block: perfectly stratified


def test_split_is_hash_mod_7_and_independent_of_order():
    record = SPACE.sample_uniform(7000, np.random.default_rng(0))
    splits = SPACE.splits(record)
    frac = {s: np.mean(splits == s) for s in ("train", "val", "test")}
    assert abs(frac["val"] - 1 / 7) < 0.015 and abs(frac["test"] - 1 / 7) < 0.015
    perm = np.random.default_rng(1).permutation(7000)
    shuffled = {k: v[perm] for k, v in record.items()}
    assert np.array_equal(SPACE.splits(shuffled), splits[perm])
    # float32 round trip through storage keeps the split of float64 grid points
    grid = SPACE.grid()
    assert np.array_equal(SPACE.split_codes(grid), SPACE.split_codes(
        {k: v.astype(np.float64) for k, v in grid.items()}))


def test_split_by_one_category_holds_whole_categories_out():
    space = ParameterSpace(SPACE.parameters, split_by=("n_ions",))
    record = space.sample_uniform(3000, np.random.default_rng(2))
    codes = space.split_codes(record)
    for n in np.unique(record["n_ions"]):
        assert len(set(codes[record["n_ions"] == n])) == 1   # one split per ion number
    assert len(set(codes)) > 3
    assert ParameterSpace.from_dict(space.to_dict()) == space
    assert "split_by" not in SPACE.to_dict()          # old manifests keep their hash
    with pytest.raises(ParameterError, match="split_by"):
        ParameterSpace(SPACE.parameters, split_by=("molecule",))


def test_orientation_is_uniform_in_fundamental_domain():
    space = ParameterSpace((Orientation("orientation", group="I"),))
    q = space.sample_uniform(4000, np.random.default_rng(0))["orientation"]
    space.validate({"orientation": q})
    angle = 2 * np.degrees(np.arccos(np.clip(q[:, 3], -1, 1)))
    assert np.all(q[:, 3] >= 0)
    assert 40 < angle.max() < 45  # the icosahedral fundamental zone reaches ~44.5 deg
    # Haar measure: the fraction within 20 deg equals 60 x the SO(3) fraction
    so3 = (20 * np.pi / 180 - np.sin(20 * np.pi / 180)) / np.pi
    assert abs(np.mean(angle < 20) - 60 * so3) < 0.03


def test_validation_names_the_field():
    with pytest.raises(ParameterError, match="radius_nm"):
        SPACE.validate({"radius_nm": np.array([10.0]), "n_ions": np.array([30.0]),
                        "shape": np.array([0.0])})
    with pytest.raises(ParameterError, match="missing"):
        SPACE.validate({"radius_nm": np.array([40.0])})
    with pytest.raises(ParameterError, match="NaN"):
        SPACE.validate({"radius_nm": np.array([np.nan]), "n_ions": np.array([30.0]),
                        "shape": np.array([0.0])})


def test_round_trip_dict():
    space = ParameterSpace((Scalar("radius_nm", "nm", 30, 160), Orientation("q", group="I"),
                            Choice("shape", ("a", "b"))))
    assert ParameterSpace.from_dict(space.to_dict()) == space
