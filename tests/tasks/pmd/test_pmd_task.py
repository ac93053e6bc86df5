"""The pmd task through the shared pipeline: maps simulated into shards (the smoke preset),
the network's input of Sec. II A, preprocessing of map files in every scale, refusals, and
a tiny run trained and asked."""

import json

import numpy as np
import pytest

from retroscope.compute.campaign import generate
from retroscope.core.registry import get_task
from retroscope.tasks.pmd.maps import KX_AU, KY_AU


@pytest.fixture(scope="module")
def task():
    return get_task("pmd").with_config(preset="smoke", r_bohr=[1.5, 6.0],
                                       intensity_w_cm2=[1.5e14, 3e14])


@pytest.fixture(scope="module")
def data(task, tmp_path_factory):
    root = tmp_path_factory.mktemp("pmd") / "data"
    generate(task, root, 96, shard_size=48, seed=0, progress=False)
    return root


def test_settings_are_checked_and_hashed(task):
    assert task.settings.preset == "smoke" and task.settings.ranges.r_bohr == (1.5, 6.0)
    assert task.config() != get_task("pmd").config()
    with pytest.raises(ValueError, match="preset"):
        get_task("pmd").with_config(preset="huge")
    assert task.input_flips == ((-1,),)  # alpha fixed at 0: the k_y mirror is a symmetry
    assert get_task("pmd").with_config(alpha_deg=[0.0, 180.0]).input_flips == ()


def test_simulated_maps_are_stored_with_their_parameters(task, data):
    from retroscope.data.dataset import ShardDataset

    train = ShardDataset(data, task, "train", in_memory=True)
    pmd = train.observable(0)
    assert pmd.shape == (len(KX_AU), len(KY_AU)) and pmd.dtype == np.float32
    assert np.all(pmd >= 0) and pmd.max() > 0
    x = task.network_input(pmd)
    assert x.shape == (1, 256, 128) and 0.0 <= x.min() and x.max() == pytest.approx(1.0)
    assert (x == 0).mean() > 0.05  # the floor five decades down is reached at high k
    assert 1.5 <= train.params["r_bohr"].min() and train.params["r_bohr"].max() <= 6.0
    train.close()


def test_preprocess_reads_every_scale_the_same(task, data):
    from retroscope.data.dataset import ShardDataset

    test = ShardDataset(data, task, "train", in_memory=True)
    pmd = test.observable(1).astype(np.float64)
    test.close()
    reference = task.network_input(task.preprocess(pmd))
    unit = task.network_input(pmd)[0]
    log = np.log10(np.clip(pmd, 1e-300, None))
    for image, settings in ((pmd * 1e6, {"scale": "linear"}), (log, {"scale": "log10"}),
                            (unit, {"scale": "unit"})):
        got = task.network_input(task.preprocess(image, settings))
        np.testing.assert_allclose(got, reference, atol=2e-3)
    # another size is resampled onto the stored window
    assert task.preprocess(pmd[::2, ::2]).shape == (256, 128)
    with pytest.raises(ValueError, match="negative"):
        task.preprocess(pmd - pmd.max())
    with pytest.raises(ValueError, match="constant"):
        task.preprocess(np.ones((256, 128)))
    with pytest.raises(ValueError, match="unknown pmd settings"):
        task.preprocess(pmd, {"k_range": 4})


def test_a_tiny_run_trains_and_answers_map_files(task, data, tmp_path):
    from retroscope.infer.batch import predict_files
    from retroscope.train.config import train_config
    from retroscope.train.fit import train

    cfg = train_config(task, data, epochs=2, batch_size=8, seed=0)
    train(task, cfg, tmp_path / "run", progress=False)
    from retroscope.data.dataset import ShardDataset

    ds = ShardDataset(data, task, "train", in_memory=True)
    np.save(tmp_path / "map.npy", ds.observable(0))
    np.save(tmp_path / "transposed.npy", ds.observable(0).T)
    ds.close()
    rows, failures = predict_files(tmp_path / "run", [tmp_path / "map.npy",
                                                      tmp_path / "transposed.npy"])
    assert [r["input"] for r in rows] == ["map.npy"]
    assert {"r_bohr", "r_bohr_low", "intensity_w_cm2", "ood"} <= set(rows[0])
    assert "transposed.npy" in failures[0][0] and "height/width" in failures[0][1]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"] == "plain_cnn"


def test_direct_comparison_finds_a_training_map_itself_and_is_evaluated(task, data, tmp_path):
    """DC+MSE answers a training map with its own parameters, and ``evaluate --baseline``
    runs it against the network on the same test maps."""
    from retroscope.data.dataset import ShardDataset
    from retroscope.evaluate.report import evaluate
    from retroscope.train.config import train_config
    from retroscope.train.fit import train

    train_set = ShardDataset(data, task, "train", in_memory=True)
    maps = [train_set.observable(i) for i in range(len(train_set))]
    dc = task.baseline().fit(maps, train_set.params)
    found = dc.predict(maps[:5])
    np.testing.assert_array_equal(found["r_bohr"], train_set.params["r_bohr"][:5])
    train_set.close()
    train(task, train_config(task, data, epochs=1, batch_size=8, seed=0), tmp_path / "run",
          progress=False)
    metrics = evaluate(tmp_path / "run", data, "test", baseline_n=6, progress=False)
    base = metrics["baseline"]
    assert base["n_maps"] == 6 and base["training_maps"] == len(maps)
    assert 0 <= base["baseline_mae_r_bohr"] < 4.5 and "network_mae_r_bohr" in base
    assert "r_abs_error_bohr" in metrics["task_metrics"]


def test_the_plain_functions_and_the_demo_task():
    from retroscope.tasks.pmd import ground_state, momentum_map

    energy, psi = ground_state(2.0, preset="smoke")
    assert energy == pytest.approx(-1.11, abs=0.02) and psi.shape == (64, 48)
    kx, ky, pmd = momentum_map(2.0, 2e14, preset="smoke")
    assert kx.shape == (256,) and ky.shape == (128,) and pmd.shape == (256, 128)
    demo = get_task("pmd").demo_settings()
    task = get_task("pmd").with_config(**demo.task_config)
    assert task.settings.preset == "demo" and task.settings.ranges.r_bohr == (1.0, 6.0)
    assert demo.baseline_n > 0 and demo.train_minutes <= 2.0
