"""The ``classification`` learner: which bin of one physical parameter an input belongs to,
with a calibrated probability, a conformal set of classes and an OOD flag.

A task uses it by declaring ``learner = "classification"`` and ``targets = BinnedTargets(space,
column, edges)`` (:class:`~retroscope.core.targets.BinnedTargets`: class k holds
edges[k] <= value < edges[k + 1]), e.g. a paper's classifier of maps into ranges of a
distance.

- :mod:`.module`: the network (a registered model with a classification head, input
  normalisation, freezable blocks) and its LightningModule (cross-entropy, accuracy per epoch;
  AdamW with a one-cycle schedule or SGD with a step schedule);
- :mod:`.calibration`: temperature scaling, split-conformal prediction sets and the
  feature-density OOD threshold, fitted on the validation split;
- :mod:`.predictor`: a trained run that turns inputs into classes, probabilities and sets;
- :mod:`.evaluation`: ``metrics.json`` (accuracy, confusion matrix, set coverage, calibration
  error) and the confusion-matrix plot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from retroscope.core.learner import Learner
from retroscope.core.targets import BinnedTargets


def binned_targets(task) -> BinnedTargets:
    """The task's targets, which must be :class:`BinnedTargets` for this learner."""
    if not isinstance(task.targets, BinnedTargets):
        raise TypeError(f"task {task.name}: the classification learner needs targets = "
                        f"BinnedTargets(space, column, edges), got {task.targets!r}")
    return task.targets


class ClassificationLearner(Learner):
    name = "classification"
    defaults = {"batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4}
    objective_name = "minus the best validation loss"
    combines_sequences = False

    def targets(self, task, params, labels):
        """The class index of every row (``BinnedTargets.encode``), (n,) int64."""
        return torch.from_numpy(binned_targets(task).encode(params))

    def fit(self, task, cfg, out, resume=False, progress=True, callbacks=None) -> dict:
        """Cross-entropy with ``cfg.optimizer``'s schedule, early stopping on the validation
        loss; then temperature, conformal sets and the OOD model (:mod:`.calibration`).
        ``cfg.init_from``/``cfg.freeze`` start from another classifier run's weights."""
        from retroscope.learners.classification.calibration import calibrate_and_save
        from retroscope.learners.classification.module import Classifier, ClassificationModule
        from retroscope.train.network import prepare_network
        from retroscope.train.trainer import fit_best, make_trainer, prepare_data

        n_classes = binned_targets(task).n_classes
        train_set, val_set, train_loader, val_loader = prepare_data(task, cfg, self)
        network = prepare_network(Classifier(cfg.model, cfg.model_kwargs, n_classes), cfg,
                                  train_set)
        module = ClassificationModule(network, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                      epochs=cfg.epochs, steps_per_epoch=len(train_loader),
                                      optimizer=cfg.optimizer, momentum=cfg.momentum,
                                      step_size=cfg.step_size, decay=cfg.decay)
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
        """Refit the temperature, the conformal sets and the OOD model on the validation
        split of ``data``."""
        from retroscope.data.dataset import ShardDataset
        from retroscope.learners.classification.calibration import calibrate_and_save
        from retroscope.learners.classification.predictor import Predictor
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
        """The peak learning rate and the weight decay."""
        from retroscope.train.tune import Hyperparameter

        return (Hyperparameter("lr", 1e-4, 1e-2, log=True),
                Hyperparameter("weight_decay", 1e-6, 1e-2, log=True))

    def objective(self, summary: dict) -> float:
        value = summary.get("best_val_loss")
        if value is None or not np.isfinite(value):
            raise RuntimeError("trial summary has no finite best_val_loss")
        return -float(value)

    def predictor(self, run_dir, device=None, **options):
        from retroscope.learners.classification.predictor import Predictor

        self.refuse_options("prediction", options)
        return Predictor(run_dir, device=device)

    def headline(self, task) -> list[str]:
        """The class, its calibrated probability, the conformal set and the OOD flag."""
        return ["class_label", "probability", "set", "ood"]

    def predict_rows(self, predictor, items):
        return predictor.rows(items)

    def evaluate(self, run_dir, data, split="test", out=None, **options) -> dict:
        from retroscope.learners.classification.evaluation import evaluate

        options.pop("progress", None)
        self.refuse_options("evaluation", options)
        return evaluate(run_dir, data, split, out=out)

    def report(self, metrics: dict) -> list:
        from retroscope.learners.classification.evaluation import report

        return report(metrics)

    def demo_table(self, task, rows, truth):
        from retroscope.learners.classification.evaluation import demo_table

        return demo_table(task, rows, truth)


LEARNER = ClassificationLearner()
