"""The crystal task through the shared pipeline: storage, targets, metrics, baseline."""

import numpy as np
import pytest

from retroscope.compute.campaign import generate
from retroscope.core.registry import get_task
from retroscope.data.dataset import ShardDataset
from retroscope.infer.batch import combine_groups, group_key
from retroscope.tasks.crystal.baseline import ImageMatching
from retroscope.tasks.crystal.task import brightness_normalise


@pytest.fixture(scope="module")
def small():
    return get_task("crystal").small()


def _params(**kw):
    base = {"n_ca": 40, "v_rf": 250.0, "v_end": 2.5, "eta": 0.3, "temperature_mk": 5.0}
    base.update(kw)
    return {k: np.array([v]) for k, v in base.items()}


def test_registered_with_paper_box():
    task = get_task("crystal")
    space = task.space
    assert (space["n_ca"].low, space["n_ca"].high) == (30, 350)
    assert (space["v_rf"].low, space["v_rf"].high) == (170.0, 300.0)
    grid = task.paper_grid()
    sizes = [len(p.grid_values()) for p in grid.parameters]
    assert sizes == [33, 14, 21, 24, 3]
    assert int(np.prod(sizes)) == 698544  # the paper's 698 544 images
    gridded = task.with_config(grid="paper")
    assert gridded.space.names == grid.names
    assert task.with_config(**gridded.config()).config() == gridded.config()
    with pytest.raises(ValueError, match="grid"):
        task.with_config(grid="coarse")


def test_simulate_is_deterministic_and_counts_ions(small):
    a = small.simulate(_params(), np.random.default_rng(1))
    b = small.simulate(_params(), np.random.default_rng(1))
    assert a["image"].shape == (1, 48, 40) and a["image"].dtype == np.float16
    np.testing.assert_array_equal(a["image"], b["image"])
    # photons per ion: a crystal well inside the field of view integrates to its ion number
    assert float(a["image"].astype(np.float64).sum()) == pytest.approx(40, rel=0.02)
    length, width = a["extent_um"][0]
    assert length > width > 0  # prolate at these settings


def test_more_ions_make_a_bigger_crystal(small):
    ext = [small.simulate(_params(n_ca=n), np.random.default_rng(0))["extent_um"][0, 0]
           for n in (20, 60)]
    # N ~ R^2 Z at fixed density: 3x the ions -> ~1.44x the length
    assert 1.2 < ext[1] / ext[0] < 1.7


def test_network_input_is_brightness_normalised(small):
    img = small.simulate(_params(), np.random.default_rng(0))["image"][0]
    x = small.network_input(img)
    assert x.shape == (1, 48, 40) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() == pytest.approx(1.0)
    np.testing.assert_allclose(small.network_input(img * 7.5), x, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="2D"):
        brightness_normalise(np.zeros((2, 3, 4)))


def test_with_config_round_trip_and_errors(small):
    again = get_task("crystal").with_config(**small.config())
    assert again.config() == small.config()
    with pytest.raises(ValueError, match="unknown setting"):
        small.with_config(colour="green")


def test_mixed_crystals_add_the_dark_ion_target(small):
    mixed = small.with_config(dark="CaF+", n_dark=(0, 30))
    assert mixed.targets.columns == ("n_ca", "n_dark")
    p = _params(n_ca=30)
    p["n_dark"] = np.array([20])
    out = mixed.simulate(p, np.random.default_rng(0))
    # dark ions do not fluoresce: the image still integrates to the Ca+ number
    assert float(out["image"].astype(np.float64).sum()) == pytest.approx(30, rel=0.02)


def test_summary_metrics_rms_percent(small):
    true = {"n_ca": np.array([100, 200, 50])}
    pred = {"n_ca": np.array([103.0, 194.0, 50.0])}
    s = small.summary_metrics(true, pred)["n_ca"]
    assert s["rms"] == pytest.approx(np.sqrt((9 + 36) / 3))
    assert s["rms_percent"] == pytest.approx(100 * np.sqrt((0.03**2 + 0.03**2) / 3))
    assert s["exact_fraction"] == pytest.approx(1 / 3)
    assert "rms_percent_by_temperature" not in s

    true["temperature_mk"] = np.array([3.0, 19.0, 20.0])  # the default range is 2-20 mK
    rows = small.summary_metrics(true, pred)["n_ca"]["rms_percent_by_temperature"]
    assert [r["n"] for r in rows] == [1, 2]  # the top edge belongs to the last slice
    assert rows[0]["temperature_mk"] == pytest.approx([2.0, 8.0])
    assert rows[0]["rms_percent"] == pytest.approx(3.0)
    assert rows[1]["rms_percent"] == pytest.approx(100 * np.sqrt(0.03**2 / 2))


def test_campaign_stores_images_and_extents(small, tmp_path):
    generate(small, tmp_path / "d", 14, shard_size=7, seed=2, progress=False)
    ds = ShardDataset(tmp_path / "d", small, "train", in_memory=True)
    assert ds.observable(0).shape == (48, 40)
    x, y = ds[0]
    # the network sees the automatic crop to the crystal (0.8 x the frame, multiples of 8)
    assert tuple(x.shape) == (1, 40, 32) and y.shape[-1] == 1
    assert float(x.max()) == pytest.approx(1.0)


def test_image_matching_recovers_the_ion_number(small):
    truth = _params(n_ca=37)
    image = small.simulate(truth, np.random.default_rng(3))["image"][0]
    fit = ImageMatching(small, steps=(8, 2, 1), smooth_px=1.0)
    result = fit.fit(image, {k: float(v[0]) for k, v in truth.items()})
    assert abs(result.n_ca - 37) <= 3
    assert result.n_simulations < 30


def test_sequences_are_grouped_and_combined():
    rows = [{"input": f"crystal_{c}/img_{i}.png", "n_ca": float(100 * c + i),
             "n_ca_low": 100 * c + i - 5.0, "n_ca_high": 100 * c + i + 5.0, "ood": False}
            for c in (1, 2) for i in range(4)]
    out = combine_groups(rows, ["n_ca"], "folder")
    assert [g["n_images"] for g in out] == [4, 4]
    assert out[0]["n_ca"] == pytest.approx(101.5)
    assert out[0]["n_ca_high"] - out[0]["n_ca_low"] == pytest.approx(10.0)
    assert group_key("a/run7_shot3.png", r"regex:run(\d+)_") == "7"
    with pytest.raises(ValueError, match="group must be"):
        group_key("a.png", "by-colour")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, small):
    from retroscope.train.config import TrainConfig
    from retroscope.train.fit import train

    root = tmp_path_factory.mktemp("crystal-run")
    generate(small, root / "data", 120, shard_size=60, seed=0, progress=False)
    cfg = TrainConfig(task="crystal", data=str(root / "data"), model="resnet18",
                      model_kwargs={"base_width": 8, "stem": "small"}, epochs=1, batch_size=16,
                      view={"zoom": False})
    train(get_task("crystal"), cfg, root / "run", progress=False)
    return root


def test_run_records_and_restores_its_input_view(tiny_run):
    import json

    from retroscope.learners.regression.predictor import Predictor

    config = json.loads((tiny_run / "run" / "config.json").read_text())
    assert config["view"] == {"input_scale": 0.8, "zoom": False}
    predictor = Predictor(tiny_run / "run", device="cpu")
    assert predictor.task.zoom is False  # the default (zoom=True) is not what it was trained on
    assert predictor.input_shape == (1, 40, 32)


def test_evaluate_reports_rms_percent_and_bins(tiny_run):
    import json

    from retroscope.evaluate.report import evaluate

    m = evaluate(tiny_run / "run", tiny_run / "data", "test", progress=False)
    summary = m["task_summary"]["n_ca"]
    assert summary["rms_percent"] > 0 and summary["per_bin"]
    assert (tiny_run / "run" / "plots" / "n_ca_by_bin.png").stat().st_size > 1000
    json.loads((tiny_run / "run" / "metrics.json").read_text())  # strict JSON (no NaN)


def test_predict_lab_pngs_in_sequences(tiny_run, tmp_path, small):
    import json

    from PIL import Image

    from retroscope.infer.batch import predict_files

    ds = ShardDataset(tiny_run / "data", small, "train", in_memory=True)
    files = []
    for c in range(2):
        for i in range(2):
            folder = tmp_path / f"crystal_{c}"
            folder.mkdir(exist_ok=True)
            img = (255 * small.network_input(ds.observable(c))[0]).astype(np.uint8)
            Image.fromarray(img).save(folder / f"img_{i}.png")
            files.append(folder / f"img_{i}.png")
    good = tmp_path / "lab.json"
    good.write_text(json.dumps({"pixel_um": small.imaging.pixel_um, "median5": False}))
    rows, failures = predict_files(tiny_run / "run", files, settings=good)
    assert not failures and len(rows) == 4
    groups = combine_groups(rows, ["n_ca"], "folder")
    assert [g["n_images"] for g in groups] == [2, 2]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pixel_size": 4.0}))
    with pytest.raises(ValueError, match="pixel_size"):
        predict_files(tiny_run / "run", files, settings=bad)


def test_symmetrised_prediction_is_flip_invariant(tiny_run, small):
    import json

    import torch

    from retroscope.learners.regression.calibration import run_network
    from retroscope.learners.regression.predictor import Predictor

    predictor = Predictor(tiny_run / "run", device="cpu")
    calib = json.loads((tiny_run / "run" / "calibration.json").read_text())
    assert [tuple(f) for f in calib["input_flips"]] == list(small.input_flips)
    assert predictor.flips == small.input_flips
    ds = ShardDataset(tiny_run / "data", small, "test", in_memory=True)
    x = np.stack([ds[i][0].numpy() for i in range(min(4, len(ds)))])
    mirrored = np.ascontiguousarray(x[..., ::-1])
    a = run_network(predictor.network, x, flips=predictor.flips)
    b = run_network(predictor.network, mirrored, flips=predictor.flips)
    for u, v in zip(a, b):  # the average over the mirror group does not see the mirror
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
    plain = run_network(predictor.network, x)
    with torch.no_grad():
        mean, _, _ = predictor.network.forward_with_features(torch.from_numpy(x))
    np.testing.assert_allclose(plain[0], mean.numpy(), rtol=1e-5, atol=1e-6)
