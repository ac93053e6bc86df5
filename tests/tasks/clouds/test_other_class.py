"""The non-Gaussian "other" class (rings and crescents): profile, label, table, description."""

import math

import numpy as np
import pytest
from scipy.special import i0

from retroscope.core.registry import get_task
from retroscope.learners.detection.evaluation import interval_coverage
from retroscope.tasks.clouds.profiles import LABEL_LEVEL, Cloud
from retroscope.tasks.clouds.task import CLOUD_COLUMNS, MAX_CLOUDS, od_centroid

SHAPE = (128, 128)


def _ring(**kw):
    base = dict(kind="other", x0=64.0, y0=60.0, wx=30.0, wy=30.0, theta=0.0, od_peak=1.2,
                ring_width=3.0, crescent=0.0, crescent_angle=0.0)
    base.update(kw)
    return Cloud(**base)


def test_ring_integral_and_mask_area_match_the_analytic_ring():
    ring = _ring()
    od = ring.od(SHAPE)
    # thin circular ring: 2 pi R x (radial Gaussian integral w sqrt(pi/2)) x peak
    assert od.sum() == pytest.approx(2 * math.pi * 30.0 * 3.0 * math.sqrt(math.pi / 2) * 1.2,
                                     rel=0.02)
    assert od.max() == pytest.approx(1.2, rel=0.02)
    # the label is the e^-2 level set: the annulus |r - R| <= w, area 2 pi R (2 w)
    mask = ring.mask(SHAPE)
    assert mask.sum() == pytest.approx(2 * math.pi * 30.0 * 6.0, rel=0.05)
    assert not mask[60, 64]  # hollow: the centre is not part of the cloud
    assert np.all(od[mask] >= LABEL_LEVEL * 1.2 - 1e-12)
    x1, y1, x2, y2 = ring.box(SHAPE)
    assert (x2 - x1) == pytest.approx(2 * (30 + 3), abs=1.5)
    assert (y2 - y1) == pytest.approx(2 * (30 + 3), abs=1.5)


def test_crescent_azimuthal_integral():
    c = 1.5
    full, crescent = _ring().od(SHAPE).sum(), _ring(crescent=c, crescent_angle=0.7).od(SHAPE)
    # mean of exp(-c (1 - cos phi)) over the circle is exp(-c) I0(c)
    assert crescent.sum() / full == pytest.approx(math.exp(-c) * i0(c), rel=0.02)
    # the bright side points along crescent_angle
    x, y = od_centroid(crescent, crescent > 0)
    assert math.atan2(y - 60.0, x - 64.0) == pytest.approx(0.7, abs=0.05)


def test_ring_parameters_are_checked():
    with pytest.raises(ValueError, match="ring_width"):
        _ring(ring_width=0.0)
    with pytest.raises(ValueError, match="crescent"):
        _ring(crescent=-1.0)
    with pytest.raises(ValueError, match="only for kind 'other'"):
        Cloud("MOT", 1.0, 1.0, 2.0, 2.0, ring_width=1.0)
    with pytest.raises(ValueError, match="no label ellipse"):
        _ring().label_ellipse()
    with pytest.raises(ValueError, match="shape"):
        _ring().box()


def test_task_stores_labels_and_describes_rings():
    task = get_task("clouds")
    assert task.classes == ("MOT", "ODT", "BEC", "other")
    assert "n_other" in task.space.names
    row = {"n_mot": 1, "n_odt": 2, "n_bec": 1, "n_other": 1, "probe_kcounts": 8.0,
           "fringe_contrast": 0.02, "fluorescence": 0}
    od, table = task.simulate_shot(row, np.random.default_rng(4))
    assert table.shape == (MAX_CLOUDS, len(CLOUD_COLUMNS))
    assert sorted(table[:, 0].astype(int)) == [1, 2, 2, 3, 4]  # nothing dropped from the table
    target = task.detection_target({"clouds": table})
    assert sorted(target["labels"].tolist()) == [1, 2, 2, 3, 4]
    truth = task.true_objects({"clouds": table}, od[None])
    ring = next(t for t in truth if t["class"] == "other")
    assert np.isnan(ring["wx"]) and np.isfinite(ring["atom_number"])
    # describing the true ring mask: centroid near the truth, no Gaussian parameters
    k = int(np.nonzero(target["labels"] == 4)[0][0])
    det = {"boxes": target["boxes"][k:k + 1], "scores": np.ones(1), "labels": np.array([4]),
           "masks": target["masks"][k:k + 1].astype(float)}
    obj = task.describe_objects(od[None], det)[0]
    assert obj["class"] == "other" and np.isnan(obj["wx"]) and np.isnan(obj["amplitude"])
    hx, hy = task.interval_scales(obj)["x0"], task.interval_scales(obj)["y0"]
    assert abs(obj["x0"] - ring["x0"]) < 0.2 * hx and abs(obj["y0"] - ring["y0"]) < 0.2 * hy
    assert set(task.interval_scales(obj)) == {"x0", "y0", "atom_number"}
    assert obj["atom_number"] == pytest.approx(ring["atom_number"], rel=0.2)


def test_coverage_skips_parameters_a_pair_does_not_share():
    task = get_task("clouds")
    ring = {"class": "other", "box": [10, 10, 30, 30], "x0": 20.0, "y0": 20.0,
            "atom_number": 100.0, "x0_low": 19.0, "x0_high": 21.0, "y0_low": 19.0,
            "y0_high": 21.0, "atom_number_low": 90.0, "atom_number_high": 110.0}
    truth_mot = {"class": "MOT", "x0": 20.5, "y0": 25.0, "wx": 8.0, "wy": 8.0, "theta": 0.0,
                 "amplitude": 1.0, "atom_number": 105.0}
    cov = interval_coverage(task, [[ring]], [[truth_mot]], [[(0, 0, 0.6)]])
    assert cov == {"x0": 1.0, "y0": 0.0, "atom_number": 1.0}


def test_three_class_data_sets_keep_three_classes():
    old = get_task("clouds").with_config(max_per_kind=[1, 2, 1])
    assert old.classes == ("MOT", "ODT", "BEC") and "n_other" not in old.space.names
    with pytest.raises(ValueError, match="max_per_kind"):
        get_task("clouds").with_config(max_per_kind=[2, 2, 1, 1])


def test_demo_files_are_triplets_that_read_back_to_the_stored_od(tmp_path):
    from retroscope.compute.campaign import generate
    from retroscope.data.dataset import ShardDataset

    task = get_task("clouds").with_config(shape=[32, 32])
    generate(task, tmp_path / "d", 14, shard_size=7, seed=3, progress=False)
    test = ShardDataset(tmp_path / "d", task, "train", in_memory=True)
    files, truth = task.demo_files(test, tmp_path / "files", 2)
    shots = [f for f in files if (tmp_path / "files") in f.parents]
    assert len(shots) == 6 and [t["input"] for t in truth[:2]] == ["demo000", "demo001"]
    items, failures = task.read_experimental([tmp_path / "files" / "shots"], {})
    assert failures == [] and len(items) == 2
    for i, (_, _, od, _) in enumerate(items):
        stored = np.clip(test.observable(i), -1.0, 6.0)
        # 16-bit rounding of the frames: below 1% of an OD unit where the OD is moderate
        moderate = np.abs(stored) < 3
        np.testing.assert_allclose(od[moderate], stored[moderate], atol=0.01)


def test_gaussian_comparison_counts_rings_apart():
    from retroscope.tasks.clouds.evaluation import gaussian_comparison

    task = get_task("clouds").with_config(shape=[64, 64])
    table = np.zeros((MAX_CLOUDS, len(CLOUD_COLUMNS)), np.float32)
    table[0, :7] = [1, 20.0, 22.0, 8.0, 6.0, 0.3, 1.0]  # a MOT
    table[1, :7] = [2, 44.0, 40.0, 12.0, 3.0, -0.4, 1.5]  # an ODT
    od = task.true_objects({"clouds": table}, None)
    image = sum(t["gaussian"].render((64, 64)) for t in od)
    det = {"boxes": np.stack([t["box"] for t in od]).astype(np.float32),
           "scores": np.ones(2), "labels": np.array([1, 4]),  # the ODT taken for a ring
           "masks": np.stack([t["mask"] for t in od]).astype(float)}
    objects = task.describe_objects(image[None], det)
    result = gaussian_comparison([image], [od], [objects], [[(0, 0, 1.0), (1, 1, 1.0)]],
                                 max_fits=0)
    assert result["clouds"] == 1 and result["matched_as_non_gaussian"] == 1
    assert all(np.isfinite(v) for k, v in result["rmse"]["mask"]["truth"].items()
               if v is not None)
