"""Each plot writes a non-empty PNG and returns its path."""

import numpy as np
import pytest

from retroscope.plots import (
    accuracy_vs_compute,
    error_histograms,
    image_grid,
    predicted_vs_true,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_predicted_vs_true_with_intervals(tmp_path):
    rng = np.random.default_rng(0)
    true = rng.uniform(size=(50, 4))
    pred = true + 0.05 * rng.standard_normal((50, 4))
    path = predicted_vs_true(
        true,
        pred,
        ["radius_nm", "q0", "q1", "q2"],
        ["nm", "1", "1", "1"],
        tmp_path / "sub" / "pvt.png",
        low=pred - 0.1,
        high=pred + 0.1,
    )
    assert path == tmp_path / "sub" / "pvt.png"
    assert_png(path)
    assert_png(predicted_vs_true(true[:, :1], pred[:, :1], ["a"], ["V"], tmp_path / "one.png"))
    with pytest.raises(ValueError, match="both low and high"):
        predicted_vs_true(true, pred, list("abcd"), list("1111"), tmp_path / "x.png", low=pred)


def test_error_histograms(tmp_path):
    rng = np.random.default_rng(1)
    errors = {"mean": rng.lognormal(-1, 0.5, 500), "maximum": rng.lognormal(-0.5, 0.5, 500)}
    assert_png(error_histograms(errors, tmp_path / "hist.png", "relative error [%]"))
    assert_png(error_histograms({"e": rng.normal(size=100)}, tmp_path / "lin.png", "e", log=False))
    with pytest.raises(ValueError, match="log=False"):
        error_histograms({"e": np.array([0.0, 1.0])}, tmp_path / "bad.png", "e")


def test_accuracy_vs_compute(tmp_path):
    n = np.array([4, 40, 400, 4000, 10000])
    baseline = {
        "n_simulations": n,
        "median": 30.0 / np.sqrt(n),
        "q05": 10.0 / np.sqrt(n),
        "q95": 90.0 / np.sqrt(n),
        "label": "simplex fit (median)",
    }
    network = [
        {"n_simulations": 5000, "median": 1.0, "q05": 0.3, "q95": 3.0, "label": "net 5k"},
        {"n_simulations": 20000, "median": 0.4, "q05": 0.1, "q95": 1.2, "label": "net 20k",
         "training_simulations": 5800.0},
    ]
    assert_png(accuracy_vs_compute(baseline, network, tmp_path / "acc.png"))
    with pytest.raises(KeyError, match="q95"):
        accuracy_vs_compute({k: v for k, v in baseline.items() if k != "q95"}, [], tmp_path / "b")


def test_image_grid(tmp_path):
    rng = np.random.default_rng(2)
    images = [rng.uniform(size=(32, 32)), rng.uniform(size=(1, 20, 24)), rng.uniform(size=(8, 8))]
    assert_png(image_grid(images, ["truth", "prediction", "small"], tmp_path / "grid.png", ncols=2))
    with pytest.raises(ValueError, match="titles"):
        image_grid(images, ["a"], tmp_path / "bad.png")
