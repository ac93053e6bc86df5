"""The detection network's training module, after Hofer et al., Mach. Learn.: Sci. Technol. 2,
045008 (2021), Sec. 3:

- the summed Mask R-CNN losses (RPN objectness and box regression, ROI classification and box
  regression, mask binary cross-entropy) are back-propagated together;
- SGD with momentum and a step learning-rate schedule (the rate is multiplied by ``decay``
  every ``step_size`` epochs), batch size 4; from random weights (the paper started from
  COCO weights) the first ``warmup_steps`` steps ramp the rate up linearly from 0.1% and the
  gradient norm is clipped at 10, as torchvision's detection reference recipe does; with
  ``--max-minutes`` the decays also follow the clock (:class:`~retroscope.train.schedules.
  TimedStepLR`), so that a run cut short by its time limit still reaches its small rates;
- after every epoch the network is scored on the validation split with the COCO box and mask
  mAP (0.50:0.95), and the epoch with the best mean of the two is kept.

:class:`ObjectTargets` makes the training targets; :func:`run_detector` runs a trained
network on images.
"""


from __future__ import annotations

import lightning as L
import numpy as np
import torch

from retroscope.learners.detection.coco import detection_map
from retroscope.train.schedules import TimedStepLR, trainer_time_fraction


class ObjectTargets:
    """The training targets of a split's rows, made on demand: per row the task's
    ``detection_target`` (boxes, labels, masks) of its stored label arrays, as tensors."""

    def __init__(self, task, labels: dict[str, np.ndarray]) -> None:
        self.task = task
        self.labels = labels

    def __len__(self) -> int:
        return len(next(iter(self.labels.values()))) if self.labels else 0

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        target = self.task.detection_target({k: v[i] for k, v in self.labels.items()})
        return {k: torch.from_numpy(np.asarray(v)) for k, v in target.items()}


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
        if not self._val_preds:
            return
        m = detection_map(self._val_preds, self._val_targets, self.class_names)
        self._val_preds, self._val_targets = [], []
        self.log("val_box_map", float(m["box_map"]), prog_bar=True)
        self.log("val_mask_map", float(m["mask_map"]), prog_bar=True)
        self.log("val_mean_map", float(m["mean_map"]), prog_bar=True)

    def configure_optimizers(self):
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


@torch.no_grad()
def run_detector(model, images: list[np.ndarray], batch_size: int = 8,
                 device: str = "cpu") -> list[dict]:
    """Mask R-CNN outputs as numpy per image: boxes (n, 4), scores, labels, masks (n, H, W)
    with soft values in [0, 1]."""
    model = model.to(device).eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = [torch.as_tensor(np.asarray(x, np.float32), device=device)
                 for x in images[start:start + batch_size]]
        for det in model(batch):
            out.append({"boxes": det["boxes"].cpu().numpy(), "scores": det["scores"].cpu().numpy(),
                        "labels": det["labels"].cpu().numpy(),
                        "masks": det["masks"][:, 0].cpu().numpy()})
    return out
