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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from retroscope.core.learner import Learner

#: samples per input for the answer and its interval (CPU default)
SAMPLES_PER_EVENT = 16


class GeometryLearner(Learner):
    name = "geometry"
    defaults = {"batch_size": 128, "lr": 1e-3, "weight_decay": 1e-4, "epochs": 30,
                "patience": 10}
    objective_name = "minus the best validation loss"

    def targets(self, task, params, labels):
        """The true positions of every row, (n, N, 3) float32."""
        return torch.from_numpy(np.asarray(labels[task.positions_label], dtype=np.float32))

    def fit(self, task, cfg, out, resume=False, progress=True, callbacks=None) -> dict:
        """Train with EDM's loss and early stopping on the validation loss (starting from
        ``cfg.init_from``'s weights with ``cfg.freeze`` pair blocks frozen, if asked), then
        calibrate on the validation split and write the run."""
        from retroscope.learners.geometry.calibration import calibrate_and_save
        from retroscope.learners.geometry.module import GeometryModule, GeometryNetwork
        from retroscope.train.network import transfer_weights
        from retroscope.train.trainer import fit_best, make_trainer, prepare_data

        train_set, val_set, train_loader, val_loader = prepare_data(task, cfg, self)
        network = GeometryNetwork(cfg.model, cfg.model_kwargs)
        if cfg.init_from:
            transfer_weights(network, cfg.init_from)
        network.freeze(cfg.freeze)
        module = GeometryModule(network, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                epochs=cfg.epochs, steps_per_epoch=len(train_loader),
                                optimizer=cfg.optimizer, momentum=cfg.momentum,
                                step_size=cfg.step_size, decay=cfg.decay)
        trainer, ckpt = make_trainer(cfg, out, "val_loss", "min", len(train_loader), callbacks,
                                     progress, early_stopping=True)
        summary = fit_best(trainer, ckpt, module, train_loader, val_loader, out, resume)
        network = module.network.cpu().eval()
        summary.update(calibrate_and_save(task, network, cfg, Path(out), train_set, val_set,
                                          SAMPLES_PER_EVENT))
        summary.update({"n_train": len(train_set), "n_val": len(val_set)})
        train_set.close()
        val_set.close()
        return summary

    def recalibrate(self, run_dir, data=None) -> dict:
        from retroscope.data.dataset import ShardDataset
        from retroscope.learners.geometry.calibration import calibrate_and_save
        from retroscope.learners.geometry.predictor import Predictor
        from retroscope.runs import read_config
        from retroscope.train.config import TrainConfig

        cfg = TrainConfig(**read_config(run_dir))
        predictor = Predictor(run_dir, device="cpu")
        data = Path(data or cfg.data)
        sets = [ShardDataset(data, predictor.task, split, in_memory=True, learner=self)
                for split in ("train", "val")]
        try:
            return calibrate_and_save(predictor.task, predictor.network, cfg, Path(run_dir),
                                      *sets, predictor.samples_per_event)
        finally:
            for s in sets:
                s.close()

    def default_space(self) -> tuple:
        from retroscope.train.tune import Hyperparameter

        return (Hyperparameter("lr", 1e-4, 3e-3, log=True),
                Hyperparameter("weight_decay", 1e-6, 1e-2, log=True))

    def objective(self, summary: dict) -> float:
        value = summary.get("best_val_loss")
        if value is None or not np.isfinite(value):
            raise RuntimeError("trial summary has no finite best_val_loss")
        return -float(value)

    def predictor(self, run_dir, device=None, **options):
        from retroscope.learners.geometry.predictor import Predictor

        self.refuse_options("prediction", options)
        return Predictor(run_dir, device=device)

    def headline(self, task) -> list[str]:
        unit = task.position_unit
        return ["input", "name", "detected", f"x_{unit}", f"y_{unit}", f"z_{unit}", "ood"]

    def predict_rows(self, predictor, items):
        return predictor.rows(items)

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


LEARNER = GeometryLearner()

__all__ = ["LEARNER", "GeometryLearner"]
