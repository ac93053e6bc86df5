"""How a map becomes the network's input (the view) and how map files are read (settings)."""

import numpy as np
import pytest

from retroscope.tasks.pmd import TASK
from retroscope.tasks.pmd.maps import KX_AU, KY_AU

KX, KY = np.meshgrid(KX_AU, KY_AU, indexing="ij")
DKY = KY_AU[1] - KY_AU[0]


def _map(k0=0.0):
    """A smooth map with fringes along k_x, centred at k_x = k0."""
    return np.exp(-((KX - k0) ** 2 + 4 * KY ** 2)) * (1 + np.cos(3 * KX)) ** 2 + 1e-12


def test_views_give_the_shapes_their_networks_are_built_for():
    for view, shape in [({}, (1, 256, 128)), ({"quadrant": True}, (1, 128, 64)),
                        ({"crop": "paper"}, (1, 256, 128)), ({"input": "dp_dkx"}, (1, 256))]:
        task = TASK.with_config(**view)
        observable = _map() if task.observable == "pmd" else _map().sum(1) * DKY
        x = task.network_input(observable)
        assert x.shape == shape and x.dtype == np.float32
        assert x.min() >= 0 and x.max() == pytest.approx(1.0)
        assert task.model.kwargs["input_size"] == list(shape[1:])
    assert TASK.with_config(quadrant=True).input_flips == ()


def test_the_quadrant_is_the_first_one():
    m = _map(k0=2.0) * (KY > 0)  # weight only at k_x ~ 2, k_y > 0
    x = TASK.with_config(quadrant=True).network_input(m)[0]
    full = TASK.network_input(m)[0]
    np.testing.assert_array_equal(x, full[128:, 64:])


def test_the_paper_crop_stretches_the_region_above_five_decades():
    m = np.exp(-(KX ** 2 + KY ** 2) / 0.1)  # narrow: W > -5 only for |k| < ~1.07 a.u.
    fixed = TASK.network_input(m)[0]
    cropped = TASK.with_config(crop="paper").network_input(m)[0]
    assert (fixed > 0).mean() < 0.15
    assert (cropped > 0).mean() > 0.6  # the bright region now fills the frame


def test_a_transposed_file_read_with_its_axis_is_the_map():
    m = _map()
    np.testing.assert_allclose(TASK.preprocess(m.T, {"polarization_axis": "columns"}), m,
                               rtol=1e-5, atol=1e-12)
    assert TASK.accepts_for({"polarization_axis": "columns"}).aspect == pytest.approx((0.4, 2 / 3))


def test_a_stated_k_extent_is_interpolated_onto_the_stored_grid():
    kx = np.linspace(-6, 6, 601)[:-1] + 0.01
    ky = np.linspace(-3, 3, 301)[:-1] + 0.01
    big = np.exp(-(kx[:, None] ** 2 + 4 * ky[None] ** 2))
    out = TASK.preprocess(big, {"k_extent_au": [[-6, 6], [-3, 3]]})
    np.testing.assert_allclose(out, np.exp(-(KX ** 2 + 4 * KY ** 2)), atol=3e-3)
    assert TASK.accepts_for({"k_extent_au": [[-6, 6], [-3, 3]]}).problem([(600, 600)]) is None
    with pytest.raises(ValueError, match="k_extent_au must be"):
        TASK.preprocess(big, {"k_extent_au": [[6, -6], [-3, 3]]})
    with pytest.raises(ValueError, match="polarization_axis must be one of"):
        TASK.preprocess(big, {"polarization_axis": "diagonal"})


def test_a_one_dimensional_run_reads_curves_and_integrates_maps(tmp_path):
    task = TASK.with_config(input="dp_dkx")
    curve = _map().sum(1) * DKY
    np.save(tmp_path / "curve.npy", curve)
    np.save(tmp_path / "map.npy", _map())
    np.save(tmp_path / "cube.npy", np.ones((2, 3, 4)))
    items, failures = task.read_experimental([tmp_path / "curve.npy", tmp_path / "map.npy",
                                              tmp_path / "cube.npy"])
    assert len(items) == 2
    np.testing.assert_allclose(items[0][2], curve, rtol=1e-5)
    np.testing.assert_allclose(items[1][2], curve, rtol=1e-5)
    assert [f[0] for f in failures] == [str(tmp_path / "cube.npy")]
    assert "shape (2, 3, 4)" in failures[0][1]


def test_focal_averaged_maps_are_the_weighted_mean_of_maps_up_to_the_peak():
    from retroscope.tasks.pmd.focal import focal_average, focal_intensities

    task = TASK.with_config(preset="smoke", focal_points=3)
    params = {"r_bohr": np.array([2.0]), "intensity_w_cm2": np.array([2e14]),
              "cep_rad": np.zeros(1), "alpha_deg": np.zeros(1)}
    averaged = task.simulate(params, None)["pmd"][0]
    levels = focal_intensities(2e14, 3)
    plain = TASK.with_config(preset="smoke").simulate(
        {**{k: np.repeat(v, 3) for k, v in params.items()}, "intensity_w_cm2": levels},
        None)["pmd"]
    np.testing.assert_allclose(averaged, focal_average(plain, levels, 2e14), rtol=1e-5)
    assert not np.allclose(averaged / averaged.max(), plain[-1] / plain[-1].max(), atol=1e-3)
    with pytest.raises(ValueError, match="focal_points"):
        TASK.with_config(focal_points=1)


def test_the_classifier_view_sorts_r_into_bins_of_one_bohr():
    task = TASK.with_config(classify_r=True, quadrant=True)
    assert task.targets.n_classes == 7
    got = task.targets.encode({"r_bohr": np.array([1.0, 1.99, 2.0, 7.5, 8.0])})
    np.testing.assert_array_equal(got, [0, 0, 1, 6, 6])
    assert TASK.targets.columns == ("r_bohr", "intensity_w_cm2")


def test_intervals_of_r_and_i_stop_at_zero():
    np.testing.assert_array_equal(TASK.targets.limits()[:, 0], [0.0, 0.0])
    assert np.all(np.isinf(TASK.targets.limits()[:, 1]))
