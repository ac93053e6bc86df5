"""The ``regression`` learner: physical parameters with calibrated intervals and an OOD flag.

- :mod:`.module`: the network (a registered model with a heteroscedastic head, input
  normalisation) and its LightningModule (MSE on the mean, Gaussian NLL on the variance;
  AdamW with a one-cycle schedule that also follows the clock);
- :mod:`.calibration`: split-conformal intervals and the feature-density OOD threshold, fitted
  on the validation split, and the files they are stored in;
- :mod:`.predictor`: a trained run that turns inputs into values, intervals and flags;
- :mod:`.evaluation`: ``metrics.json``, plots and the task's classical baseline.
"""

from __future__ import annotations

import numpy as np
import torch

from retroscope.train.network_learner import NetworkLearner


class RegressionLearner(NetworkLearner):
    name = "regression"
    combines_sequences = True

    def targets(self, task, params, labels):
        """The encoded target columns of every row (``task.targets.encode``), (n, d) float32."""
        return torch.from_numpy(task.targets.encode(params).astype(np.float32))

    def build_network(self, task, cfg):
        """A heteroscedastic network with one mean and one log-variance per target column."""
        from retroscope.learners.regression.module import Network

        return Network(cfg.model, cfg.model_kwargs, task.targets.dim)

    def build_module(self, task, network, cfg, steps_per_epoch):
        """MSE on the mean and Gaussian NLL on the variance (:mod:`.module`)."""
        from retroscope.learners.regression.module import RegressionModule

        return RegressionModule(network, align=task.targets.align, lr=cfg.lr,
                                weight_decay=cfg.weight_decay, epochs=cfg.epochs,
                                steps_per_epoch=steps_per_epoch, optimizer=cfg.optimizer,
                                momentum=cfg.momentum, step_size=cfg.step_size,
                                decay=cfg.decay)

    def calibrate_and_save(self, task, network, cfg, out, train_set, val_set) -> dict:
        """Conformal intervals and the OOD model (:mod:`.calibration`)."""
        from retroscope.learners.regression.calibration import calibrate_and_save

        return calibrate_and_save(task, network, cfg, out, train_set, val_set)

    def predictor_class(self):
        from retroscope.learners.regression.predictor import Predictor

        return Predictor

    def headline(self, task) -> list[str]:
        """The task's headline columns (default: every target), then the flags."""
        columns = list(task.headline_columns or task.targets.columns)
        return columns + ["out_of_range", "ood"]

    def evaluate(self, run_dir, data, split="test", out=None, **options) -> dict:
        from retroscope.learners.regression.evaluation import evaluate

        baseline_n = options.pop("baseline_n", 0) or 0
        baseline_kwargs = options.pop("baseline_kwargs", None)
        progress = options.pop("progress", True)
        self.refuse_options("evaluation", options)
        return evaluate(run_dir, data, split, out=out, baseline_n=baseline_n,
                        baseline_kwargs=baseline_kwargs, progress=progress)

    def report(self, metrics: dict) -> list:
        from retroscope.learners.regression.evaluation import report

        return report(metrics)

    def demo_table(self, task, rows, truth):
        from retroscope.learners.regression.evaluation import demo_table

        return demo_table(task, rows, truth)


LEARNER = RegressionLearner()
