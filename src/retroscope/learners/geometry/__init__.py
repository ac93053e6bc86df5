"""The ``geometry`` learner: a position per token of a set, drawn from a conditional
diffusion model, with calibrated intervals and an OOD flag.

For a :class:`~retroscope.core.task.GeometryTask`: the inputs are sets of tokens (rows of
(Z, q, vector), padded), the targets one 3D position per token (the task's
``positions_label``).

- :mod:`.edm`: Karras et al.'s preconditioning, noise levels and Heun sampler;
- :mod:`.module`: the network (frame, scaling, a registered set model such as
  ``ion_transformer``) and its LightningModule (EDM-weighted MSE, interchangeable undetected
  tokens assigned by the minimum over permutations);
- :mod:`.calibration`, :mod:`.predictor`: K samples per input, their mean the answer, their
  spread conformally scaled into intervals; a feature-density OOD score;
- :mod:`.evaluation`: per-coordinate errors, aligned RMSD, coverage, the task's metrics.

``geometry_regressor`` is the same network trained as a deterministic regressor (one answer
per token, intervals of one conformal width per axis): the baseline that shows what the
diffusion model's sampling adds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from retroscope.train.network_learner import NetworkLearner

#: samples per input for the answer and its interval (CPU default)
SAMPLES_PER_EVENT = 16


class GeometryLearner(NetworkLearner):
    name = "geometry"
    #: what the network is trained for (:data:`.module.OBJECTIVES`)
    objective = "diffusion"
    #: answers drawn per input (the mean is the answer, the spread the interval's shape)
    samples_per_event = SAMPLES_PER_EVENT
    defaults = {"batch_size": 128, "lr": 1e-3, "weight_decay": 1e-4, "epochs": 30,
                "patience": 10}

    def targets(self, task, params, labels):
        """The true positions of every row, (n, N, 3) float32."""
        return torch.from_numpy(np.asarray(labels[task.positions_label], dtype=np.float32))

    def build_network(self, task, cfg):
        from retroscope.learners.geometry.module import GeometryNetwork

        return GeometryNetwork(cfg.model, cfg.model_kwargs, objective=self.objective)

    def prepare_network(self, network, cfg, train_set):
        """``cfg.init_from``'s weights (two-step training) and ``cfg.freeze`` pair blocks
        frozen; a set of tokens has no input normalisation to fit."""
        from retroscope.train.network import transfer_weights

        if cfg.init_from:
            transfer_weights(network, cfg.init_from)
        network.freeze(cfg.freeze)
        return network

    def build_module(self, task, network, cfg, steps_per_epoch):
        """EDM's weighted denoising loss, AdamW one-cycle (:mod:`.module`)."""
        from retroscope.learners.geometry.module import GeometryModule

        return GeometryModule(network, lr=cfg.lr, weight_decay=cfg.weight_decay,
                              epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
                              optimizer=cfg.optimizer, momentum=cfg.momentum,
                              step_size=cfg.step_size, decay=cfg.decay)

    def calibrate_and_save(self, task, network, cfg, out, train_set, val_set) -> dict:
        """Intervals from K samples per input and the OOD model (:mod:`.calibration`)."""
        from retroscope.learners.geometry.calibration import calibrate_and_save

        return calibrate_and_save(task, network, cfg, Path(out), train_set, val_set,
                                  self.samples_per_event)

    def predictor_class(self):
        from retroscope.learners.geometry.predictor import Predictor

        return Predictor

    def default_space(self) -> tuple:
        from retroscope.train.tune import Hyperparameter

        return (Hyperparameter("lr", 1e-4, 3e-3, log=True),
                Hyperparameter("weight_decay", 1e-6, 1e-2, log=True))

    def headline(self, task) -> list[str]:
        unit = task.position_unit
        return ["input", "name", "detected", f"x_{unit}", f"y_{unit}", f"z_{unit}", "ood"]

    def write_extras(self, predictor, rows, out) -> list[Path]:
        """One structure file per input (the task's format, e.g. XYZ) in ``<out stem>_
        structures/``, from the rows' mean positions (momentum frame)."""
        from retroscope.learners.geometry.predictor import structure_files

        return structure_files(predictor.task, rows, Path(out))

    def evaluate(self, run_dir, data, split="test", out=None, **options) -> dict:
        from retroscope.learners.geometry.evaluation import evaluate

        progress = options.pop("progress", True)
        limit = options.pop("limit", None)
        baseline_n = options.pop("baseline_n", 0) or 0
        baseline_kwargs = options.pop("baseline_kwargs", None)
        self.refuse_options("evaluation", options)
        return evaluate(run_dir, data, split, out=out, limit=limit, baseline_n=baseline_n,
                        baseline_kwargs=baseline_kwargs, progress=progress)

    def report(self, metrics: dict) -> list:
        from retroscope.learners.geometry.evaluation import report

        return report(metrics)

    def demo_table(self, task, rows, truth):
        from retroscope.learners.geometry.evaluation import demo_table

        return demo_table(task, rows, truth)


class GeometryRegressorLearner(GeometryLearner):
    """The same network, trained by MSE to answer one position per token (no sampling)."""

    name = "geometry_regressor"
    objective = "regression"
    samples_per_event = 1


LEARNER = GeometryLearner()
REGRESSOR = GeometryRegressorLearner()

__all__ = ["LEARNER", "REGRESSOR", "GeometryLearner", "GeometryRegressorLearner"]
