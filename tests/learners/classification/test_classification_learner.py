"""The classification learner end to end on a toy task: the blob of ``tests/plugins`` sorted
into four ranges of its position. Training reaches well above chance, the temperature and
the conformal sets are fitted on the validation split, prediction rows carry the class, its
probability and its set, and a run can start from another with its first blocks frozen."""

import io
import json

import numpy as np
import pytest
import torch
from blob_task import BlobTask
from rich.console import Console

from retroscope.compute.campaign import generate
from retroscope.core.registry import get_learner, register_task
from retroscope.core.targets import BinnedTargets
from retroscope.core.task import ModelSpec
from retroscope.runs import open_run
from retroscope.train.config import train_config
from retroscope.train.fit import train

EDGES = (3.0, 5.5, 8.0, 10.5, 13.0)  # four classes of x0_px: chance is 25%


class BlobClassTask(BlobTask):
    """The blob, its position sorted into four classes by a small plain CNN (the image is
    cropped to 12 x 16 pixels, which halve twice)."""

    name = "blob-class-test"
    learner = "classification"
    model = ModelSpec("plain_cnn", {"input_size": [12, 16], "width": 8, "n_blocks": 2,
                                    "dropout": 0.0})

    def __init__(self) -> None:
        self.targets = BinnedTargets(self.space, "x0_px", EDGES)

    def network_view(self, x):
        return x[:, :12, :16]


TASK = BlobClassTask()
LEARNER = get_learner("classification")


def _cfg(data, **overrides):
    return train_config(TASK, data, **{"epochs": 6, "batch_size": 32, "lr": 1e-2, **overrides})


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A dataset of 240 blobs and a classifier trained and evaluated on it."""
    register_task(TASK)  # runs are reopened by their task's name
    root = tmp_path_factory.mktemp("classifier")
    generate(TASK, root / "data", 240, shard_size=120, seed=3, progress=False)
    summary = train(TASK, _cfg(root / "data"), root / "run", progress=False)
    metrics = LEARNER.evaluate(root / "run", root / "data", "test")
    return root, summary, metrics


def test_accuracy_is_far_above_chance_and_metrics_are_complete(base):
    root, summary, metrics = base
    assert metrics["accuracy"] > 0.7 > 0.25 + 0.3
    assert metrics["accuracy"] > metrics["reference"]["accuracy"] + 0.3
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (4, 4) and matrix.sum() == metrics["n"]
    assert np.trace(matrix) == round(metrics["accuracy"] * metrics["n"])
    assert metrics["classes"][0] == "3 <= x0_px < 5.5 (px)"
    assert len(metrics["per_class_accuracy"]) == 4
    for key in ("set_coverage", "mean_set_size", "expected_calibration_error",
                "expected_calibration_error_uncalibrated", "ood_fraction"):
        assert np.isfinite(metrics[key]), key
    assert 1.0 <= metrics["mean_set_size"] <= 4.0
    assert json.loads((root / "run" / "metrics.json").read_text()) == metrics
    assert (root / "run" / "plots" / "confusion_matrix.png").exists()
    text = io.StringIO()
    for item in LEARNER.report(metrics):
        Console(file=text, width=120).print(item)
    assert "confusion matrix" in text.getvalue() and "temperature" in text.getvalue()
    assert LEARNER.objective(summary) == -summary["best_val_loss"]


def test_temperature_and_sets_are_fitted_on_the_validation_split(base):
    root, summary, _ = base
    calibration = json.loads((root / "run" / "calibration.json").read_text())
    assert calibration["temperature"]["value"] > 0
    assert calibration["temperature"]["val_nll_after"] <= \
        calibration["temperature"]["val_nll_before"] + 1e-9
    assert summary["val_set_coverage"] >= 0.9 - 0.02
    assert calibration["conformal"]["coverage"] == 0.9
    again = LEARNER.recalibrate(root / "run")
    assert again["temperature"] == pytest.approx(summary["temperature"], rel=1e-4)


def test_prediction_rows_carry_class_probability_and_set(base):
    root, _, metrics = base
    predictor = LEARNER.predictor(root / "run", device="cpu")
    rng = np.random.default_rng(0)
    params = {"x0_px": np.array([4.0, 12.0]), "sigma_px": np.array([1.5, 2.0])}
    images = TASK.simulate(params, rng)["image"]
    items = [(f"blob {i}", "memory", image, {}) for i, image in enumerate(images)]
    items.append(("too small", "memory", np.zeros((4, 4), np.float32), {}))
    rows, failures = LEARNER.predict_rows(predictor, items)
    assert [label for label, _ in failures] == ["too small"]
    assert len(rows) == 2
    for row in rows:
        assert set(LEARNER.headline(TASK)) <= set(row)
        assert {"class_index", "class_label", "probability", "set", "set_size", "ood",
                "ood_score", "p_0", "p_3"} <= set(row)
        assert row["class_label"] == metrics["classes"][row["class_index"]]
        assert row["class_label"] in row["set"].split(" | ")
        assert row["probability"] == row[f"p_{row['class_index']}"]
        assert sum(row[f"p_{k}"] for k in range(4)) == pytest.approx(1.0)
    assert [row["class_index"] for row in rows] == [0, 3]


def test_transfer_keeps_frozen_blocks_bit_identical(base, tmp_path):
    root, _, _ = base
    train(TASK, _cfg(root / "data", epochs=2, init_from=str(root / "run"), freeze=1),
          tmp_path / "tuned", progress=False)
    before = open_run(root / "run").state_dict()
    after = open_run(tmp_path / "tuned").state_dict()
    for name, tensor in before.items():
        if name.startswith(("body.blocks.0.", "norm.")):
            assert torch.equal(tensor, after[name]), name  # weights and BN statistics
    assert not torch.equal(before["body.blocks.1.0.weight"], after["body.blocks.1.0.weight"])


def test_a_task_without_binned_targets_is_refused(blob_task):
    with pytest.raises(TypeError, match="BinnedTargets"):
        LEARNER.targets(blob_task, {"x0_px": np.array([4.0])}, {})
