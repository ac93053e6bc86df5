"""A fourth task, from outside the package, through the whole command line.

The toy task of ``tests/plugins/blob_task.py`` is registered the way a lab's package would be
(an entry point in the group ``retroscope.tasks``, see ``tests/conftest.py``); nothing is
installed and no shared module names it. simulate -> train -> evaluate -> predict then run on
it through ``retroscope``'s commands, as on the built-in tasks.
"""

import json
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from retroscope.cli import app

SRC = Path(__file__).resolve().parents[2] / "src" / "retroscope"


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_plugin_is_found_only_through_its_entry_point(blob_task):
    (ep,) = [ep for ep in entry_points(group="retroscope.tasks") if ep.name == "blob-test"]
    assert ep.value == "blob_task:BlobTask"
    assert type(blob_task).__module__ == "blob_task"  # the plugin's own module, not ours
    shared = [p for p in SRC.rglob("*.py") if "blob" in p.read_text().lower()]
    assert shared == []


def test_simulate_train_evaluate_predict_a_plugin_task_through_the_cli(tmp_path, blob_task):
    data, run = tmp_path / "data", tmp_path / "run"
    assert "blob-test" in _run("tasks")
    _run("simulate", "blob-test", "--n", 160, "--out", data, "--workers", 1,
         "--shard-size", 64, "--seed", 4)
    _run("train", "blob-test", "--data", data, "--out", run, "--epochs", 3,
         "--batch-size", 32)
    config = json.loads((run / "config.json").read_text())
    assert (config["task"], config["learner"]) == ("blob-test", "regression")
    _run("evaluate", run, "--data", data)
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["targets"]) == {"x0_px", "sigma_px"}
    spot = blob_task.simulate({"x0_px": np.array([8.0]), "sigma_px": np.array([2.0])},
                              np.random.default_rng(0))["image"][0]
    np.save(tmp_path / "spot.npy", spot)
    shown = _run("predict", run, tmp_path / "spot.npy", "--out", tmp_path / "answers.csv")
    header, row = (tmp_path / "answers.csv").read_text().splitlines()[:2]
    assert "x0_px_low" in header and "spot.npy" in row
    # the console shows the headline: each target with its interval, the flags, within 80
    # columns; every column is in the file
    assert "x0_px" in shown and " [" in shown and "ood" in shown and "…" not in shown
    assert max(len(line) for line in shown.splitlines()) <= 80
    _run("predict", run, tmp_path / "spot.npy", "--out", tmp_path / "answers.json")
    answer = json.loads((tmp_path / "answers.json").read_text())["rows"][0]
    assert answer["x0_px_low"] <= answer["x0_px"] <= answer["x0_px_high"]


def test_a_plugin_learner_is_reached_only_through_the_protocol(tmp_path):
    """A task naming a learner that lives outside retroscope (``tests/plugins/mean_learner.py``,
    the training mean as the answer) goes through the same commands: shared code asked the
    learner for everything that depends on the kind of network."""
    data, run = tmp_path / "data", tmp_path / "run"
    _run("simulate", "blob-mean-test", "--n", 100, "--out", data, "--workers", 1,
         "--shard-size", 50)
    _run("train", "blob-mean-test", "--data", data, "--out", run)
    assert json.loads((run / "config.json").read_text())["learner"] == "mean-test"
    assert "RMSE" in _run("evaluate", run, "--data", data)
    np.save(tmp_path / "any.npy", np.zeros((13, 17), np.float32))
    out = _run("predict", run, tmp_path / "any.npy", "--out", tmp_path / "answers.csv")
    assert "any.npy" in out
    header = (tmp_path / "answers.csv").read_text().splitlines()[0]
    assert "x0_px_low" in header
