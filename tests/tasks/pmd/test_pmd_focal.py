"""Focal-volume averaging (Eqs. 5-6 of Shvetsov-Shilovski & Lein 2023) and the interpolation of
maps in the (R, I0) plane (``retroscope.tasks.pmd.focal``), on synthetic maps: no TDSE.

The volume element is held against a Gaussian beam integrated numerically cell by cell,
I(r, z) = I0 / (1 + z^2) exp(-2 r^2 / (1 + z^2)) with w0 = z_R = 1: in u = r^2 a cell's volume
is pi du dz, so volumes below are in units of pi w0^2 z_R, as the module's are.
"""

import numpy as np
import pytest
from scipy.integrate import quad

from retroscope.core.registry import get_task
from retroscope.data.dataset import ShardDataset
from retroscope.data.shards import DatasetError, Manifest
from retroscope.tasks.pmd.focal import (
    focal_average,
    focal_intensities,
    focal_volume_element,
    focal_weights,
    interpolate_maps,
    write_interpolated_maps,
)
from retroscope.tasks.pmd.task import PmdRanges, PmdSettings, PmdTask

PEAK = 2e14  # W/cm^2
LOWEST = 0.1  # of the peak
SHAPE = (256, 128)


@pytest.fixture(scope="module")
def beam():
    """Intensities (in units of I0) of the cell centres of a (u = r^2, z) grid covering the
    region where I >= LOWEST I0 (z in [0, 3], mirrored to z < 0), and the volume of one cell
    (both halves)."""
    z_max = np.sqrt(1 / LOWEST - 1)
    u_max = 0.5 * (1 / LOWEST) / np.e  # largest (1 + z^2)/2 ln(I0 / (I (1 + z^2)))
    nz, nu = 2400, 1600
    z = (np.arange(nz) + 0.5) * z_max / nz
    u = (np.arange(nu) + 0.5) * u_max / nu
    s = 1 + z[:, None] ** 2
    intensity = (np.exp(-2 * u[None, :] / s) / s).ravel()
    return intensity, 2 * (z_max / nz) * (u_max / nu)


def test_volume_element_is_the_volume_of_a_gaussian_beam_per_intensity(beam):
    """-dV/dI of Eq. (6) integrated over bins of intensity equals the volume of the beam whose
    intensity lies in each bin; a spurious factor 1/I or a missing term would be off by far
    more than 0.2 % somewhere between 0.1 I0 and I0 (measured: 3e-4 at worst)."""
    intensity, cell = beam
    edges = np.geomspace(LOWEST, 1.0, 13)
    counted = np.histogram(intensity, bins=edges)[0] * cell
    element = np.array([quad(lambda x: focal_volume_element(x, PEAK), a * PEAK, b * PEAK)[0]
                        for a, b in zip(edges[:-1], edges[1:])])
    np.testing.assert_allclose(element, counted, rtol=2e-3)


def test_weights_give_the_volume_and_the_mean_intensity_of_the_beam(beam):
    """The weights integrate anything linear in I exactly: sum_j w_j is the volume where
    I >= I_1 and sum_j w_j I_j the integral of I over it, both counted on the beam."""
    intensity, cell = beam
    nodes = focal_intensities(PEAK, n=10, lowest_fraction=LOWEST)
    w = focal_weights(nodes, PEAK)
    inside = intensity >= LOWEST
    assert w.sum() == pytest.approx(inside.sum() * cell, rel=1e-4)
    assert w @ (nodes / PEAK) == pytest.approx(intensity[inside].sum() * cell, rel=1e-4)


def test_the_map_at_the_peak_counts():
    """The element vanishes at I0, but the map there still has weight (what only the peak
    reaches stays in the average); all weights are positive."""
    w = focal_weights(focal_intensities(PEAK), PEAK)
    assert np.all(w > 0) and w[-1] > 0.1 * w[-2]


def test_focal_intensities_and_their_checks():
    nodes = focal_intensities(4e14)
    assert len(nodes) == 10 and nodes[0] == pytest.approx(4e13) and nodes[-1] == 4e14
    for bad in ([1e14, 3e14], [3e14, 1e14, 4e14], [0.0, 4e14], [1e14, 5e14]):
        with pytest.raises(ValueError):
            focal_weights(bad, 4e14)


def test_focal_average_of_maps_that_do_not_change_with_intensity():
    base = np.random.default_rng(0).random(SHAPE)
    nodes = focal_intensities(PEAK)
    np.testing.assert_allclose(focal_average(np.stack([base] * 10), nodes, PEAK), base,
                               rtol=1e-12)


@pytest.mark.parametrize(("f", "n", "rtol"), [
    (lambda x: x, 10, 1e-12),  # linear in I: exact
    (lambda x: x**3, 10, 5e-2),
    (lambda x: x**3, 40, 3e-3),
    (lambda x: np.exp(8 * (x - 1)), 40, 5e-3),  # a yield rising steeply towards the peak
])
def test_focal_average_matches_the_weighted_integral(f, n, rtol):
    """Maps f(I / I0) x a fixed pattern average to the integral of f (-dV/dI) over the
    integral of -dV/dI, both by adaptive quadrature of Eq. (6), within the trapezoid's
    error (second order in the step)."""
    nodes = focal_intensities(PEAK, n=n)
    base = np.random.default_rng(1).random(SHAPE)
    maps = f(nodes / PEAK)[:, None, None] * base
    lo = nodes[0]
    num = quad(lambda x: f(x / PEAK) * focal_volume_element(x, PEAK), lo, PEAK, limit=200)[0]
    den = quad(lambda x: focal_volume_element(x, PEAK), lo, PEAK, limit=200)[0]
    np.testing.assert_allclose(focal_average(maps, nodes, PEAK), num / den * base, rtol=rtol)


def irregular_points(n=25):
    """Random (R, I0) points over the paper's box, its four corners included."""
    rng = np.random.default_rng(2)
    r = np.concatenate([[1.0, 8.0, 1.0, 8.0], rng.uniform(1, 8, n)])
    i = np.concatenate([[1e14, 1e14, 4e14, 4e14], rng.uniform(1e14, 4e14, n)])
    return r, i


def coefficients():
    rng = np.random.default_rng(3)
    return rng.random(SHAPE), rng.uniform(-0.2, 0.2, SHAPE), rng.uniform(-0.5, 0.5, SHAPE)


def test_a_map_linear_in_r_and_intensity_is_reproduced():
    """Linear interpolation is exact for maps linear in (R, I0), at any new point."""
    a, b, c = coefficients()
    r, i = irregular_points()

    def truth(r, i):
        return a + b * np.asarray(r)[:, None, None] + c * (np.asarray(i) / 1e14)[:, None, None]

    new_r, new_i = np.array([2.345, 7.5]), np.array([3.21e14, 1.1e14])
    got = interpolate_maps(r, i, truth(r, i), new_r, new_i, log=False)
    np.testing.assert_allclose(got, truth(new_r, new_i), rtol=1e-10, atol=1e-12)


def test_log_interpolation_reproduces_a_map_whose_logarithm_is_linear():
    """In log10 (the default) a map 10^(a + b R + c I0), a yield growing over decades with
    the intensity, is reproduced exactly; a linear blend of the same maps is not (on a few
    wide triangles, as a small campaign has)."""
    a, b, c = coefficients()
    r, i = irregular_points(n=3)

    def truth(r, i):
        return 10.0 ** (a + b * np.asarray(r)[:, None, None]
                        + c * (np.asarray(i) / 1e14)[:, None, None])

    new_r, new_i = np.array([4.4]), np.array([2.5e14])
    got = interpolate_maps(r, i, truth(r, i), new_r, new_i)
    np.testing.assert_allclose(got, truth(new_r, new_i), rtol=1e-9)
    linear = interpolate_maps(r, i, truth(r, i), new_r, new_i, log=False)
    assert np.max(np.abs(linear / truth(new_r, new_i) - 1)) > 0.1


def test_points_outside_the_hull_are_named():
    r, i = irregular_points()
    maps = np.ones((len(r), 4, 2))
    with pytest.raises(ValueError, match=r"1 point\(s\) outside .*\(R=9 bohr, I0=2e\+14"):
        interpolate_maps(r, i, maps, [4.0, 9.0], [2e14, 2e14])
    with pytest.raises(ValueError, match="span no area"):
        interpolate_maps([1.0, 2.0, 3.0], [1e14, 2e14, 3e14], np.ones((3, 4, 2)), [2.0], [2e14])
    maps[1] = 0.0
    with pytest.raises(ValueError, match=r"map\(s\) \[1\] have negative values or none"):
        interpolate_maps(r, i, maps, [4.0], [2e14])


def test_interpolated_maps_are_stored_as_training_rows_only(tmp_path):
    """Written once, every row derived: the whole set is training data and validation and
    test are empty, whatever the rows' hashes; the manifest names the source."""
    task = get_task("pmd")
    r, i = np.array([1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]), np.linspace(1e14, 4e14, 7)
    maps = np.random.default_rng(4).random((7, *SHAPE)).astype(np.float32)
    out = tmp_path / "interpolated"
    assert set(task.space.split_codes({"r_bohr": r, "intensity_w_cm2": i,
                                       "cep_rad": np.zeros(7), "alpha_deg": np.zeros(7)})) \
        & {0, 1}, "the test needs rows that would hash to validation or test"
    manifest = write_interpolated_maps(out, task, r, i, maps, source="100 averaged maps",
                                       shard_size=4)
    assert Manifest.load(out).derived["source"] == "100 averaged maps"
    assert manifest.sampling == "derived" and len(manifest.shards) == 2
    train = ShardDataset(out, task, "train", in_memory=True)
    np.testing.assert_array_equal(train.params["r_bohr"], r)
    np.testing.assert_array_equal(train._cache, maps)
    for split in ("val", "test"):
        with pytest.raises(DatasetError, match="split is empty"):
            ShardDataset(out, task, split)
    with pytest.raises(DatasetError, match="already exists"):
        write_interpolated_maps(out, task, r, i, maps, source="again")


def test_interpolation_needs_a_fixed_cep():
    task = PmdTask(PmdSettings(ranges=PmdRanges(cep_rad=(0.0, 6.0))))
    with pytest.raises(ValueError, match="cep_rad varies"):
        write_interpolated_maps("unused", task, [2.0], [2e14], np.ones((1, *SHAPE)), "x")


def test_interpolation_between_training_maps_only_and_merged(tmp_path):
    """``retroscope pmd interpolate`` draws points inside the hull of the training rows of a
    campaign, interpolates only from those rows (a validation or test map must not leak into
    training), and its derived set merges with the campaign leaving validation and test as
    they were."""
    import json

    from typer.testing import CliRunner

    from retroscope.cli import app
    from retroscope.data.merge import merge_datasets

    data, extra = tmp_path / "focal", tmp_path / "interp"
    config = json.dumps({"preset": "smoke", "focal_points": 2,
                         "ranges": {"r_bohr": [1, 8], "intensity_w_cm2": [1e14, 2e14]}})
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "pmd", "--n", "40", "--out", str(data),
                                 "--workers", "1", "--shard-size", "20", "--config", config])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["pmd", "interpolate", str(data), "--n", "12",
                                 "--out", str(extra), "--seed", "3"])
    assert result.exit_code == 0, result.output
    task = get_task("pmd").with_config(**Manifest.load(data).config)
    train = ShardDataset(data, task, "train")
    made = ShardDataset(extra, task, "train")
    assert len(made) == 12 and "training maps" in Manifest.load(extra).derived["source"]
    r, i = train.params["r_bohr"], train.params["intensity_w_cm2"]
    assert np.all((made.params["r_bohr"] >= r.min()) & (made.params["r_bohr"] <= r.max()))
    assert np.all((made.params["intensity_w_cm2"] >= i.min())
                  & (made.params["intensity_w_cm2"] <= i.max()))
    # the interpolation uses the training rows alone: redoing it from them gives the maps
    maps = np.stack([train.observable(k) for k in range(len(train))])
    again = interpolate_maps(r, i, maps, made.params["r_bohr"], made.params["intensity_w_cm2"])
    np.testing.assert_allclose(np.stack([made.observable(k) for k in range(12)]), again,
                               rtol=1e-4)
    merged = tmp_path / "merged"
    merge_datasets([data, extra], merged)
    for split in ("val", "test"):
        before, after = ShardDataset(data, task, split), ShardDataset(merged, task, split)
        np.testing.assert_array_equal(before.params["r_bohr"], after.params["r_bohr"])
    assert len(ShardDataset(merged, task, "train")) == len(train) + 12
    result = runner.invoke(app, ["pmd", "interpolate", str(data), "--n", "5",
                                 "--out", str(extra)])
    assert result.exit_code == 1 and "already exists" in result.output
