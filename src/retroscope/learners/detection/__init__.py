"""The ``detection`` learner: objects with a class, a box, a mask and physical parameters.

For tasks derived from :class:`~retroscope.core.task.DetectionTask`:

- :mod:`.module`: the training targets, the LightningModule (Mask R-CNN's summed losses, SGD
  with a step schedule, validation by COCO mAP) and :func:`~.module.run_detector`;
- :mod:`.coco`: COCO box and mask mAP (torchmetrics; pycocotools as a cross-check);
- :mod:`.calibration`: per-object split-conformal intervals, shape thresholds and the
  calibrated confidence of each evidence group, for the network's and the refined detections;
- :mod:`.predictor`: a trained run that finds and describes objects;
- :mod:`.evaluation`: ``metrics.json``, example plots and the task's own comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retroscope.core.learner import Learner


class DetectionLearner(Learner):
    name = "detection"
    defaults = {"batch_size": 4, "lr": 5e-3, "momentum": 0.9, "step_size": 5, "decay": 0.1}
    objective_name = "best validation mean of box and mask mAP"
    combines_sequences = False

    def targets(self, task, params, labels):
        """Per row the task's boxes, labels and masks (:class:`.module.ObjectTargets`)."""
        from retroscope.learners.detection.module import ObjectTargets

        return ObjectTargets(task, labels)

    def collate(self):
        from retroscope.learners.detection.module import detection_collate

        return detection_collate

    def fit(self, task, cfg, out, resume=False, progress=True, callbacks=None) -> dict:
        """Mask R-CNN from random weights with the recipe of :mod:`.module`, best epoch by the
        validation mean of box and mask mAP; then the per-object calibration."""
        if cfg.init_from or cfg.freeze:
            raise ValueError("the detection learner does not start from another run "
                             "(--init-from, --freeze): train it from scratch")
        if cfg.devices * cfg.num_nodes > 1:
            # its validation mAP is computed over the whole split in one process
            raise ValueError("the detection learner trains in one process: leave --devices "
                             "and --num-nodes at 1")
        import torch

        from retroscope.data.shards import Manifest
        from retroscope.learners.detection.calibration import calibrate_and_save
        from retroscope.learners.detection.module import DetectionModule
        from retroscope.models import build_model
        from retroscope.train.trainer import fit_best, input_statistics, make_trainer, prepare_data

        train_set, val_set, train_loader, val_loader = prepare_data(task, cfg, self)
        mean, std = input_statistics(train_set, n=256)
        input_shape = tuple(train_set[0][0].shape)
        model_kwargs = {**cfg.model_kwargs, "num_classes": len(task.classes) + 1,
                        "image_size": list(input_shape[-2:]), "image_mean": mean,
                        "image_std": std, "in_channels": input_shape[0]}
        model = build_model(cfg.model, **model_kwargs)
        if cfg.precision.startswith("bf16"):
            # oneDNN's bfloat16 convolutions are fast only on NHWC tensors (about 1.7x per
            # step here with them, none without)
            model = model.to(memory_format=torch.channels_last)
        module = DetectionModule(model, task.classes, lr=cfg.lr, momentum=cfg.momentum,
                                 weight_decay=cfg.weight_decay, step_size=cfg.step_size,
                                 decay=cfg.decay,
                                 warmup_steps=min(200, max(len(train_loader) - 1, 1)),
                                 steps_per_epoch=len(train_loader))
        trainer, ckpt = make_trainer(cfg, out, "val_mean_map", "max", len(train_loader),
                                     callbacks, progress, num_sanity_val_steps=0,
                                     gradient_clip_val=10.0)
        summary = fit_best(trainer, ckpt, module, train_loader, val_loader, out, resume)
        model = module.model.cpu().eval().to(memory_format=torch.contiguous_format)
        summary.update(calibrate_and_save(task, model, cfg, model_kwargs, out, val_set))
        summary.update({"n_train": len(train_set), "n_val": len(val_set),
                        "data_config_hash": Manifest.load(Path(cfg.data)).config_hash})
        train_set.close()
        val_set.close()
        return summary

    def recalibrate(self, run_dir, data=None, limit: int | None = None) -> dict:
        """Rewrite calibration.json of a trained run from the validation split of ``data``
        (default: the run's own data set, which must have the simulation settings the run was
        trained on); the weights are not touched. Returns the new record."""
        from retroscope.data.dataset import ShardDataset
        from retroscope.data.shards import Manifest
        from retroscope.io.atomic import write_json_atomic
        from retroscope.learners.detection.calibration import calibration_record
        from retroscope.learners.detection.predictor import DetectionPredictor
        from retroscope.runs import CALIBRATION, read_config

        run_dir = Path(run_dir)
        config = read_config(run_dir)
        data = Path(data or config["data"])
        predictor = DetectionPredictor(run_dir, refine=False)
        stored = config.get("data_config_hash") or config.get("data_hash")
        found = Manifest.load(data).config_hash
        if stored and found != stored:
            raise ValueError(f"{data}: its simulation settings (config hash {found[:12]}) are "
                             f"not the ones run {run_dir} was trained on ({stored[:12]})")
        val_set = ShardDataset(data, predictor.task, "val", in_memory=True, limit=limit)
        try:
            record = calibration_record(predictor.task, predictor.model.cpu(), val_set,
                                        float(predictor.calibration["coverage"]),
                                        predictor.score_threshold)
        finally:
            val_set.close()
        write_json_atomic(run_dir / CALIBRATION, record)
        return record

    def default_space(self) -> tuple:
        """SGD with a step schedule: learning rate, momentum, epochs per decay and the decay
        factor, over wide ranges (a task may state its paper's, see ``Task.tuning_space``)."""
        from retroscope.train.tune import Hyperparameter

        return (Hyperparameter("lr", 1e-4, 1e-2, log=True),
                Hyperparameter("momentum", 0.7, 0.95),
                Hyperparameter("step_size", 2, 15, integer=True),
                Hyperparameter("decay", 1e-3, 1.0, log=True))

    def objective(self, summary: dict) -> float:
        value = summary.get("best_val_mean_map")
        if value is None or not np.isfinite(value):
            raise RuntimeError("trial summary has no finite best_val_mean_map")
        return float(value)

    def predictor(self, run_dir, device=None, refine=None, **options):
        """:class:`.predictor.DetectionPredictor`; ``refine``: see there."""
        from retroscope.learners.detection.predictor import DetectionPredictor

        self.refuse_options("prediction", options)
        return DetectionPredictor(run_dir, device=device, refine=refine)

    def headline(self, task) -> list[str]:
        """Per object: its class, score and calibrated confidence, which row it repeats, the
        task's headline columns and the shape flag."""
        return ["object", "class", "score", "confidence", "duplicate_of",
                *task.headline_columns, "unlike_training"]

    def predict_rows(self, predictor, items):
        return predictor.rows(items)

    def evaluate(self, run_dir, data, split="test", out=None, refine=None, **options) -> dict:
        from retroscope.learners.detection.evaluation import evaluate_detection

        options.pop("progress", None)
        self.refuse_options("evaluation", options)
        return evaluate_detection(run_dir, data, split, out=out, refine=refine)

    def report(self, metrics: dict) -> list:
        from retroscope.learners.detection.evaluation import report

        return report(metrics)

    def demo_table(self, task, rows, truth):
        from retroscope.learners.detection.evaluation import demo_table

        return demo_table(task, rows, truth)


LEARNER = DetectionLearner()
