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

import torch

from retroscope.core.targets import BinnedTargets
from retroscope.train.network_learner import NetworkLearner


def binned_targets(task) -> BinnedTargets:
    """The task's targets, which must be :class:`BinnedTargets` for this learner."""
    if not isinstance(task.targets, BinnedTargets):
        raise TypeError(f"task {task.name}: the classification learner needs targets = "
                        f"BinnedTargets(space, column, edges), got {task.targets!r}")
    return task.targets


class ClassificationLearner(NetworkLearner):
    name = "classification"
    combines_sequences = False

    def targets(self, task, params, labels):
        """The class index of every row (``BinnedTargets.encode``), (n,) int64."""
        return torch.from_numpy(binned_targets(task).encode(params))

    def build_network(self, task, cfg):
        """A network with one logit per class."""
        from retroscope.learners.classification.module import Classifier

        return Classifier(cfg.model, cfg.model_kwargs, binned_targets(task).n_classes)

    def build_module(self, task, network, cfg, steps_per_epoch):
        """Cross-entropy, accuracy per epoch (:mod:`.module`)."""
        from retroscope.learners.classification.module import ClassificationModule

        return ClassificationModule(network, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
                                    optimizer=cfg.optimizer, momentum=cfg.momentum,
                                    step_size=cfg.step_size, decay=cfg.decay)

    def calibrate_and_save(self, task, network, cfg, out, train_set, val_set) -> dict:
        """Temperature, conformal sets and the OOD model (:mod:`.calibration`)."""
        from retroscope.learners.classification.calibration import calibrate_and_save

        return calibrate_and_save(task, network, cfg, out, train_set, val_set)

    def predictor_class(self):
        from retroscope.learners.classification.predictor import Predictor

        return Predictor

    def headline(self, task) -> list[str]:
        """The class, its calibrated probability, the conformal set and the OOD flag."""
        return ["class_label", "probability", "set", "ood"]

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
