"""Training an instance-segmentation task (Mask R-CNN) with the recipe of Hofer et al.,
Mach. Learn.: Sci. Technol. 2, 045008 (2021), Sec. 3:

- the summed Mask R-CNN losses (RPN objectness and box regression, ROI classification and box
  regression, mask binary cross-entropy) are back-propagated together;
- SGD with momentum and a step learning-rate schedule (the rate is multiplied by ``decay``
  every ``step_size`` epochs), batch size 4; from random weights (the paper started from
  COCO weights) the first ``warmup_steps`` steps ramp the rate up linearly from 0.1% and the
  gradient norm is clipped at 10, as torchvision's detection reference recipe does; with
  ``--max-minutes`` the decays also follow the clock (:class:`~.schedules.TimedStepLR`), so
  that a run cut short by its time limit still reaches its small learning rates;
- after every epoch the network is scored on the validation split with the COCO box and mask
  mAP (0.50:0.95), and the epoch with the best mean of the two is kept.

The run directory has the same shape as a regression run (config.json, model.safetensors with
metadata, normalization.json, calibration.json, checkpoints/, logs/); calibration.json holds
the detection score threshold and the split-conformal scales of the per-object parameters
(:mod:`retroscope.infer.detection`).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch

from retroscope.data.shards import Manifest, write_json_atomic


def detection_collate(batch):
    """Images and targets as lists: Mask R-CNN takes a list of (C, H, W) tensors."""
    images, targets = zip(*batch)
    return list(images), list(targets)


class DetectionModule(L.LightningModule):
    """Mask R-CNN trained on the summed losses; validation by COCO mAP (box and mask)."""

    def __init__(self, model, class_names: tuple[str, ...], lr: float = 5e-3,
                 momentum: float = 0.9, weight_decay: float = 1e-4, step_size: int = 5,
                 decay: float = 0.1, mask_threshold: float = 0.5,
                 warmup_steps: int = 200, steps_per_epoch: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.class_names = tuple(class_names)
        self.save_hyperparameters(ignore=["model"])
        self._val_preds: list[dict] = []
        self._val_targets: list[dict] = []

    def forward(self, images):
        return self.model(images)

    def training_step(self, batch, batch_idx):
        images, targets = batch
        losses = self.model(images, targets)
        loss = sum(losses.values())
        n = len(images)
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False, batch_size=n)
        for name, value in losses.items():
            self.log(f"train_{name}", value, on_epoch=True, on_step=False, batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx):
        images, targets = batch
        outputs = self.model(images)
        threshold = self.hparams.mask_threshold
        for out, tgt in zip(outputs, targets):
            self._val_preds.append({
                "boxes": out["boxes"].detach().cpu(), "scores": out["scores"].detach().cpu(),
                "labels": out["labels"].detach().cpu(),
                "masks": (out["masks"][:, 0] >= threshold).detach().cpu()})
            self._val_targets.append({"boxes": tgt["boxes"].cpu(), "labels": tgt["labels"].cpu(),
                                      "masks": tgt["masks"].bool().cpu()})

    def on_validation_epoch_end(self) -> None:
        from retroscope.evaluate.coco import detection_map

        if not self._val_preds:
            return
        m = detection_map(self._val_preds, self._val_targets, class_names=self.class_names)
        self._val_preds, self._val_targets = [], []
        self.log("val_box_map", float(m["box_map"]), prog_bar=True)
        self.log("val_mask_map", float(m["mask_map"]), prog_bar=True)
        self.log("val_mean_map", float(m["mean_map"]), prog_bar=True)

    def configure_optimizers(self):
        from retroscope.train.schedules import TimedStepLR, trainer_time_fraction

        hp = self.hparams
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum,
                              weight_decay=hp.weight_decay)
        epochs = max(int(self.trainer.max_epochs or 1), 1)
        steps = hp.steps_per_epoch or self.trainer.estimated_stepping_batches // epochs
        sched = TimedStepLR(opt, step_size=max(int(hp.step_size), 1), gamma=hp.decay,
                            steps_per_epoch=max(int(steps), 1), epochs=epochs,
                            warmup_steps=int(hp.warmup_steps),
                            time_fraction=lambda: trainer_time_fraction(self._trainer))
        return [opt], [{"scheduler": sched, "interval": "step"}]


def _od_statistics(dataset, n: int = 256) -> tuple[float, float]:
    idx = np.linspace(0, len(dataset) - 1, min(n, len(dataset))).astype(int)
    xs = np.stack([dataset.task.model_input(dataset.observable(int(i))) for i in idx])
    return float(xs.mean()), float(xs.std() + 1e-6)


def train_detection(task, cfg, out: Path, resume: bool = False, progress: bool = True,
                    callbacks: list | None = None) -> dict:
    """Train, calibrate and save a detection run (called by :func:`retroscope.train.fit.train`
    for tasks whose ``learner`` is ``"detection"``; ``out`` is prepared by the caller)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from retroscope.data.dataset import ShardDataset
    from retroscope.models import build_model
    from retroscope.train.fit import _loader_with, _logger, training_observer

    out = Path(out)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    observer = training_observer(task, cfg.augment, cfg.seed)
    train_set = ShardDataset(cfg.data, task, "train", observer=observer,
                             in_memory=cfg.in_memory, limit=cfg.limit_train)
    val_set = ShardDataset(cfg.data, task, "val", in_memory=cfg.in_memory, limit=cfg.limit_val)
    train_loader = _loader_with(train_set, cfg.batch_size, True, cfg.num_workers, cfg.seed,
                                detection_collate)
    val_loader = _loader_with(val_set, cfg.batch_size, False, cfg.num_workers, cfg.seed,
                              detection_collate)
    mean, std = _od_statistics(train_set)
    input_shape = tuple(train_set[0][0].shape)
    model_kwargs = {**cfg.model_kwargs, "num_classes": len(task.classes) + 1,
                    "image_size": list(input_shape[-2:]), "image_mean": mean, "image_std": std,
                    "in_channels": input_shape[0]}
    model = build_model(cfg.model, **model_kwargs)
    if cfg.precision.startswith("bf16"):
        # oneDNN's bfloat16 convolutions are fast only on NHWC tensors (about 1.7x per step
        # here with them, none without)
        model = model.to(memory_format=torch.channels_last)
    module = DetectionModule(model, task.classes, lr=cfg.lr, momentum=cfg.momentum,
                             weight_decay=cfg.weight_decay, step_size=cfg.step_size,
                             decay=cfg.decay,
                             warmup_steps=min(200, max(len(train_loader) - 1, 1)),
                             steps_per_epoch=len(train_loader))
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="best",
                           monitor="val_mean_map", mode="max", save_last=True)
    callbacks = [ckpt, *(callbacks or [])]
    if progress:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar())
    trainer = L.Trainer(max_epochs=cfg.epochs, accelerator="auto", devices=1,
                        callbacks=callbacks, logger=_logger(cfg, out),
                        enable_progress_bar=progress, enable_model_summary=False,
                        max_time={"minutes": cfg.max_minutes} if cfg.max_minutes else None,
                        num_sanity_val_steps=0, log_every_n_steps=10, precision=cfg.precision,
                        gradient_clip_val=10.0)
    t0 = time.perf_counter()
    trainer.fit(module, train_loader, val_loader,
                ckpt_path=str(out / "checkpoints" / "last.ckpt") if resume else None)
    train_seconds = time.perf_counter() - t0
    best = ckpt.best_model_path or str(out / "checkpoints" / "last.ckpt")
    state = torch.load(best, map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    best_map = ckpt.best_model_score
    model = module.model.cpu().eval().to(memory_format=torch.contiguous_format)

    from retroscope.infer.detection import calibrate_and_save_detection

    summary = calibrate_and_save_detection(task, model, cfg, model_kwargs, out, val_set)
    summary.update({
        "train_seconds": train_seconds, "epochs_run": trainer.current_epoch,
        "best_epoch": int(state.get("epoch", -1)),
        "best_val_mean_map": None if best_map is None else float(best_map),
        "n_train": len(train_set), "n_val": len(val_set),
        "device": str(trainer.strategy.root_device),
        "data_config_hash": Manifest.load(Path(cfg.data)).config_hash})
    write_json_atomic(out / "train_summary.json", summary)
    write_json_atomic(out / "config.json", asdict(cfg))
    train_set.close()
    val_set.close()
    return summary
