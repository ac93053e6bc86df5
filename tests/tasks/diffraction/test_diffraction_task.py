"""The diffraction task as the pipeline sees it: targets, symmetry-aware loss, preprocessing,
campaigns on Dask, and the simplex baseline."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from retroscope.compute.campaign import generate
from retroscope.compute.executors import Dask, ProcessPool
from retroscope.core.registry import get_task
from retroscope.data.shards import Manifest, read_shard
from retroscope.tasks.diffraction import symmetry


@pytest.fixture(scope="module")
def task():
    return get_task("diffraction")


@pytest.fixture(scope="module")
def small(task):
    return task.small()


def test_targets_round_trip_and_ranges(task):
    rng = np.random.default_rng(0)
    record = task.space.sample_uniform(2000, rng)
    y = task.targets.encode(record)
    assert y.shape == (2000, 5)
    assert y.min() > -1e-6 and y.max() < 1 + 1e-6  # each column scaled by its range
    assert y.min(axis=0).max() < 0.1 and y.max(axis=0).min() > 0.9
    back = task.targets.decode(y)
    assert np.allclose(back["radius_nm"], record["radius_nm"])
    assert symmetry.misorientation_deg(back["orientation"], record["orientation"]).max() < 1e-6


def test_alignment_makes_loss_blind_to_symmetry(task):
    rng = np.random.default_rng(1)
    record = task.space.sample_uniform(64, rng)
    group = symmetry.icosahedral_group()
    # the same physical orientations, expressed by other group elements (outside the domain)
    g = group[rng.integers(0, 60, size=64)]
    other = (Rotation.from_quat(record["orientation"]) * g).as_quat()
    other *= np.where(rng.random(64) < 0.5, -1, 1)[:, None]  # q and -q are one rotation
    s, o = task.targets.scale(), task.targets.offset()
    target = torch.tensor(task.targets.encode(record), dtype=torch.float32)
    pred_equiv = torch.tensor((np.column_stack([other, record["radius_nm"]]) - o) / s,
                              dtype=torch.float32)
    aligned = task.targets.align(pred_equiv, target)
    assert torch.allclose(aligned, pred_equiv, atol=1e-4)  # zero loss for an equivalent answer
    # while a genuinely different orientation keeps a loss
    wrong = target.clone()
    wrong[:, :4] += 0.3
    assert torch.mean((task.targets.align(wrong, target) - wrong) ** 2) > 1e-3


def test_metrics_follow_appendix_c(task):
    rng = np.random.default_rng(2)
    true = task.space.sample_uniform(50, rng)
    pred = {"radius_nm": true["radius_nm"] + 1.3, "orientation": true["orientation"]}
    m = task.metrics(true, pred)
    assert np.allclose(m["rel_error_radius_nm_percent"], 100 * 1.3 / 130)
    assert np.allclose(m["mean_rel_error_percent"], 100 * 1.3 / 130 / 5)
    assert np.allclose(m["radius_error_nm"], 1.3) and np.allclose(m["orientation_error_deg"], 0, atol=1e-5)
    rot = Rotation.from_rotvec(np.radians(2.0) * np.array([0, 0, 1.0]))
    pred = {"radius_nm": true["radius_nm"],
            "orientation": (Rotation.from_quat(true["orientation"]) * rot).as_quat()}
    assert np.allclose(task.metrics(true, pred)["orientation_error_deg"], 2.0, atol=1e-6)


def test_simulated_images_and_network_input(small):
    params = small.space.sample_uniform(3, np.random.default_rng(3))
    images = small.simulate(params, np.random.default_rng(0))["image"]
    assert images.shape == (3, 64, 64) and np.all(np.isfinite(images))
    assert np.isclose(images.astype(np.float32).max(), 0.0, atol=1e-3)  # normalised to max
    x = small.network_input(images[0])
    assert x.shape == (1, 64, 64) and x.min() >= 0 and x.max() <= 1


def test_preprocess_recovers_a_pattern_from_a_larger_linear_detector(task):
    params = task.space.sample_uniform(1, np.random.default_rng(4))
    image = task.simulate(params, None)["image"][0].astype(np.float64)
    linear = 10.0 ** image * 5e4 + 3.0  # counts with a dark offset
    big = np.kron(linear, np.ones((2, 2)))  # a 256 x 256 detector, same geometry
    back = task.preprocess(big, {"scale": "linear", "background": 3.0})
    mask = task.detector_mask()
    good = mask & (image > -4)
    assert np.corrcoef(back[good], image[good])[0, 1] > 0.99
    with pytest.raises(ValueError, match="2D"):
        task.preprocess(np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        task.preprocess(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="scale"):
        task.preprocess(np.ones((8, 8)), {"scale": "sqrt"})


@pytest.mark.parametrize("executor_cls", [Dask, ProcessPool])
def test_parallel_campaign_is_byte_identical_to_in_process(tmp_path, small, executor_cls):
    generate(small, tmp_path / "a", 12, shard_size=4, seed=5, progress=False)
    executor = executor_cls(workers=2)
    try:
        generate(small, tmp_path / "b", 12, shard_size=4, seed=5, executor=executor,
                 progress=False)
    finally:
        executor.close()
    ma, mb = Manifest.load(tmp_path / "a"), Manifest.load(tmp_path / "b")
    assert ma.config_hash == mb.config_hash and ma.config["msft"]["n_xy"] == 32
    for s in ma.shards:
        _, da, sa = read_shard(tmp_path / "a" / s.file)
        _, db, sb = read_shard(tmp_path / "b" / s.file)
        assert da["image"].tobytes() == db["image"].tobytes()
        assert np.array_equal(sa, sb)


def test_config_round_trips_through_the_manifest(task, small):
    rebuilt = task.with_config(**small.config())
    assert rebuilt.config() == small.config()
    with pytest.raises(ValueError, match="unknown setting"):
        task.with_config(wavelenght_nm=13.5)


def test_simplex_baseline_improves_on_its_start(small):
    params = small.space.sample_uniform(1, np.random.default_rng(6))
    observable = small.simulate(params, None)["image"][0]
    fit = small.baseline(n_starts=2, max_evals_per_start=30, seed=0)
    trace = fit.fit(small.network_input(observable)[0])
    assert trace.n_simulations == 60
    assert trace.misfit[-1] < trace.misfit[0]  # the simplex descends
    errors = fit.errors_along(trace, {k: v[0] for k, v in params.items()},
                              np.array([1, 60]))
    assert errors.shape == (2,) and np.all(np.isfinite(errors))


def test_png_and_cxi_of_one_pattern_give_the_same_input(task, tmp_path):
    from retroscope.io.readers import read_images, write_cxi, write_png

    params = task.space.sample_uniform(1, np.random.default_rng(7))
    x = task.network_input(task.simulate(params, None)["image"][0])[0]
    write_png(tmp_path / "p.png", x)
    write_cxi(tmp_path / "p.cxi", x[None])
    (_, png), = read_images(tmp_path / "p.png")
    (_, cxi), = read_images(tmp_path / "p.cxi")
    a = task.network_input(task.preprocess(png, {"scale": "unit"}))
    b = task.network_input(task.preprocess(cxi, {"scale": "unit"}))
    assert np.abs(a - x).max() < 1e-3 and np.abs(b - x).max() < 1e-5


def test_reference_guess_is_the_identity_rotation_and_the_mean_radius():
    """Guessing without a network: the identity rotation is off by about 30 degrees (median)
    from orientations spread over the icosahedral fundamental domain."""
    task = get_task("diffraction")
    true = task.space.sample_uniform(400, np.random.default_rng(0))
    guess = task.reference_prediction(true, 400)
    assert np.allclose(guess["orientation"], [0, 0, 0, 1])
    assert np.allclose(guess["radius_nm"], true["radius_nm"].mean())
    median_deg = np.median(task.metrics(true, guess)["orientation_error_deg"])
    assert 20 < median_deg < 40
