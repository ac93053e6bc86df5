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

from pathlib import Path

import numpy as np
import torch

from retroscope.core.learner import Learner


class RegressionLearner(Learner):
    name = "regression"
    defaults = {"batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4}
    objective_name = "minus the best validation loss"
    combines_sequences = True

    def targets(self, task, params, labels):
        """The encoded target columns of every row (``task.targets.encode``), (n, d) float32."""
        return torch.from_numpy(task.targets.encode(params).astype(np.float32))

    def fit(self, task, cfg, out, resume=False, progress=True, callbacks=None) -> dict:
        """AdamW with a one-cycle schedule, early stopping on the validation loss; then the
        conformal intervals and the OOD model (:mod:`.calibration`)."""
        from retroscope.learners.regression.calibration import calibrate_and_save
        from retroscope.learners.regression.module import Network, RegressionModule
        from retroscope.train.network import prepare_network
        from retroscope.train.trainer import fit_best, make_trainer, prepare_data

        train_set, val_set, train_loader, val_loader = prepare_data(task, cfg, self)
        # with init_from (transfer learning): the other run's weights and input normalisation,
        # its first blocks frozen; intervals and OOD model are fitted anew on this data
        network = prepare_network(Network(cfg.model, cfg.model_kwargs, task.targets.dim), cfg,
                                  train_set)
        module = RegressionModule(network, align=task.targets.align, lr=cfg.lr,
                                  weight_decay=cfg.weight_decay, epochs=cfg.epochs,
                                  steps_per_epoch=len(train_loader), optimizer=cfg.optimizer,
                                  momentum=cfg.momentum, step_size=cfg.step_size,
                                  decay=cfg.decay)
        trainer, ckpt = make_trainer(cfg, out, "val_loss", "min", len(train_loader), callbacks,
                                     progress, early_stopping=True)
        summary = fit_best(trainer, ckpt, module, train_loader, val_loader, out, resume)
        network = module.network.cpu().eval().to(memory_format=torch.contiguous_format)
        summary.update(calibrate_and_save(task, network, cfg, out, train_set, val_set))
        summary.update({"n_train": len(train_set), "n_val": len(val_set)})
        train_set.close()
        val_set.close()
        return summary

    def recalibrate(self, run_dir, data=None) -> dict:
        """Refit the intervals and the OOD model on the validation split of ``data``."""
        from retroscope.data.dataset import ShardDataset
        from retroscope.learners.regression.calibration import calibrate_and_save
        from retroscope.learners.regression.predictor import Predictor
        from retroscope.runs import read_config
        from retroscope.train.config import TrainConfig

        cfg = TrainConfig(**read_config(run_dir))
        predictor = Predictor(run_dir, device="cpu")
        data = Path(data or cfg.data)
        sets = [ShardDataset(data, predictor.task, split, in_memory=True, learner=self)
                for split in ("train", "val")]
        try:
            return calibrate_and_save(predictor.task, predictor.network, cfg, Path(run_dir),
                                      *sets)
        finally:
            for s in sets:
                s.close()

    def default_space(self) -> tuple:
        """AdamW's peak learning rate and weight decay."""
        from retroscope.train.tune import Hyperparameter

        return (Hyperparameter("lr", 1e-4, 1e-2, log=True),
                Hyperparameter("weight_decay", 1e-6, 1e-2, log=True))

    def objective(self, summary: dict) -> float:
        value = summary.get("best_val_loss")
        if value is None or not np.isfinite(value):
            raise RuntimeError("trial summary has no finite best_val_loss")
        return -float(value)

    def predictor(self, run_dir, device=None, **options):
        from retroscope.learners.regression.predictor import Predictor

        self.refuse_options("prediction", options)
        return Predictor(run_dir, device=device)

    def headline(self, task) -> list[str]:
        """The task's headline columns (default: every target), then the flags."""
        columns = list(task.headline_columns or task.targets.columns)
        return columns + ["out_of_range", "ood"]

    def predict_rows(self, predictor, items):
        return predictor.rows(items)

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
