"""What the learners that train one network on a dataset share: the training loop around
the learner's network and LightningModule, recalibration, the tuning objective and space.

:class:`NetworkLearner` is a :class:`~retroscope.core.learner.Learner` whose subclasses say only
what differs: the network (``build_network``), its LightningModule (``build_module``), how a
trained network is calibrated (``calibrate_and_save``) and loaded (``predictor_class``). The
regression and classification learners are two such subclasses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from retroscope.core.learner import Learner


class NetworkLearner(Learner):
    """A learner that trains one network with early stopping on the validation loss."""

    defaults = {"batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4}
    objective_name = "minus the best validation loss"

    # -- what a subclass says -------------------------------------------------------------
    def build_network(self, task, cfg):
        """The untrained network (a ``train.network.NormalisedNetwork``) for ``task``."""
        raise NotImplementedError

    def build_module(self, task, network, cfg, steps_per_epoch: int):
        """The LightningModule that trains ``network``."""
        raise NotImplementedError

    def calibrate_and_save(self, task, network, cfg, out: Path, train_set, val_set) -> dict:
        """Fit the run's calibration on ``val_set`` and write it with the weights."""
        raise NotImplementedError

    def predictor_class(self):
        """The class that loads a finished run for prediction (``Predictor(run_dir, device)``)."""
        raise NotImplementedError

    def prepare_network(self, network, cfg, train_set):
        """``network`` ready to train as ``cfg`` asks (``init_from``, ``freeze``): by default
        :func:`retroscope.train.network.prepare_network`, which also sets the input
        normalisation of an image network from ``train_set``."""
        from retroscope.train.network import prepare_network

        return prepare_network(network, cfg, train_set)

    # -- shared -----------------------------------------------------------------------------
    def fit(self, task, cfg, out, resume=False, progress=True, callbacks=None) -> dict:
        """Train with ``cfg.optimizer``'s schedule and early stopping on the validation loss,
        starting (``cfg.init_from``/``cfg.freeze``) from another run's weights and input
        normalisation; then calibrate on the validation split and write the run."""
        from retroscope.train.distributed import world_size
        from retroscope.train.trainer import fit_best, make_trainer, prepare_data

        train_set, val_set, train_loader, val_loader = prepare_data(task, cfg, self)
        network = self.prepare_network(self.build_network(task, cfg), cfg, train_set)
        # with DDP each process takes 1/N of an epoch's batches
        steps_per_epoch = -(-len(train_loader) // world_size(cfg))
        module = self.build_module(task, network, cfg, steps_per_epoch)
        trainer, ckpt = make_trainer(cfg, out, "val_loss", "min", steps_per_epoch, callbacks,
                                     progress, early_stopping=True)
        summary = fit_best(trainer, ckpt, module, train_loader, val_loader, out, resume)
        if not trainer.is_global_zero:     # only process 0 calibrates and writes the run
            train_set.close()
            val_set.close()
            return summary
        network = module.network.cpu().eval().to(memory_format=torch.contiguous_format)
        summary.update(self.calibrate_and_save(task, network, cfg, out, train_set, val_set))
        summary.update({"n_train": len(train_set), "n_val": len(val_set)})
        train_set.close()
        val_set.close()
        return summary

    def recalibrate(self, run_dir, data=None) -> dict:
        """Refit the calibration on the validation split of ``data`` (default: the run's own
        dataset), weights unchanged."""
        from retroscope.data.dataset import ShardDataset
        from retroscope.runs import read_config
        from retroscope.train.config import TrainConfig

        cfg = TrainConfig(**read_config(run_dir))
        predictor = self.predictor_class()(run_dir, device="cpu")
        data = Path(data or cfg.data)
        sets = [ShardDataset(data, predictor.task, split, in_memory=True, learner=self)
                for split in ("train", "val")]
        try:
            return self.calibrate_and_save(predictor.task, predictor.network, cfg,
                                           Path(run_dir), *sets)
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
        self.refuse_options("prediction", options)
        return self.predictor_class()(run_dir, device=device)

    def predict_rows(self, predictor, items):
        return predictor.rows(items)
