"""A third learner from outside retroscope: it "learns" the mean of each target over the
training split and answers it for every input, with the training spread as its interval (the
trivial reference every network must beat). It is registered through the entry-point group
``retroscope.learners`` (see ``tests/conftest.py``); a test runs a task that names it through
the whole command line, so the shared code can only have reached it through the protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from retroscope.core.learner import Learner
from retroscope.data.dataset import ShardDataset
from retroscope.io.atomic import write_json_atomic
from retroscope.runs import CALIBRATION, open_run, save_weights


class MeanLearner(Learner):
    name = "mean-test"
    defaults = {"epochs": 1}
    objective_name = "minus the validation RMSE of the mean (encoded units)"

    def targets(self, task, params, labels):
        return torch.from_numpy(task.targets.encode(params).astype(np.float32))

    def fit(self, task, cfg, out, resume=False, progress=True, callbacks=None) -> dict:
        train_set = ShardDataset(cfg.data, task, "train", learner=self)
        val_set = ShardDataset(cfg.data, task, "val", learner=self)
        mean = train_set.targets.mean(0)
        spread = train_set.targets.std(0)
        rmse = float(torch.sqrt(((val_set.targets - mean) ** 2).mean()))
        shape = task.model_input(train_set.observable(0)).shape
        save_weights(out, {"mean": mean, "spread": spread}, task,
                     {"learner": self.name, "input_shape": json.dumps(list(shape))})
        write_json_atomic(Path(out) / CALIBRATION, {"val_rmse": rmse})
        return {"val_rmse": rmse, "n_train": len(train_set), "n_val": len(val_set)}

    def recalibrate(self, run_dir, data=None) -> dict:
        return json.loads((Path(run_dir) / CALIBRATION).read_text())

    def objective(self, summary: dict) -> float:
        return -summary["val_rmse"]

    def predictor(self, run_dir, device=None, **options):
        self.refuse_options("prediction", options)
        return open_run(run_dir)

    def predict_rows(self, run, items):
        state = run.state_dict()
        inputs, kept, failures = run.accept(items)
        targets = run.task.targets
        value = targets.decode(state["mean"].numpy()[None])
        low = targets.decode((state["mean"] - state["spread"]).numpy()[None])
        high = targets.decode((state["mean"] + state["spread"]).numpy()[None])
        rows = []
        for label, source, _ in kept:
            row = {"input": label, "file": source}
            for col in targets.columns:
                row.update({col: float(value[col][0]), f"{col}_low": float(low[col][0]),
                            f"{col}_high": float(high[col][0])})
            rows.append(row)
        return rows, failures

    def evaluate(self, run_dir, data, split="test", out=None, **options) -> dict:
        options.pop("progress", None)
        self.refuse_options("evaluation", options)
        run = open_run(run_dir)
        dataset = ShardDataset(data, run.task, split, learner=self)
        mean = run.state_dict()["mean"]
        rmse = torch.sqrt(((dataset.targets - mean) ** 2).mean(0)).tolist()
        metrics = {"split": split, "n": len(dataset),
                   "rmse_encoded": dict(zip(run.task.targets.columns, rmse))}
        write_json_atomic(Path(out or run_dir) / "metrics.json", metrics)
        return metrics

    def report(self, metrics: dict) -> list:
        return [f"{name}: RMSE {v:.3g} (encoded)" for name, v in metrics["rmse_encoded"].items()]

    def demo_table(self, task, rows, truth):
        from rich.table import Table

        table = Table(title="the training mean")
        table.add_column("input")
        for row in rows:
            table.add_row(str(row["input"]))
        return table


LEARNER = MeanLearner()
