"""The classifier network and the LightningModule that trains it.

The network is a registered model with a classification head (one logit per class) after the
input normalisation (:class:`~retroscope.train.network.NormalisedNetwork`, whose first blocks
can be frozen for transfer learning). It is trained with the cross-entropy of the logits and
the true class; the accuracy is logged once per epoch for each split.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.nn import functional as F

from retroscope.train.network import NormalisedNetwork
from retroscope.train.schedules import optimizer_recipe


class Classifier(NormalisedNetwork):
    """Input normalisation followed by a registered model with a classification head."""

    def __init__(self, model_name: str, model_kwargs: dict, n_classes: int) -> None:
        super().__init__(model_name, model_kwargs, n_classes, head="classification")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, pooled features): one pass for predictions and OOD scores. The head stays
        in float32 under mixed precision (the calibration divides its logits)."""
        features = self.body.embed(self.normalised(x)).float()
        with torch.autocast(device_type=x.device.type, enabled=False):
            logits = self.body.fc(self.body.dropout(features))
        return logits, features


class ClassificationModule(L.LightningModule):
    """Cross-entropy training of a :class:`Classifier`; ``val_loss`` and ``val_accuracy``
    (and the same for training) are logged per epoch."""

    def __init__(self, network: Classifier, lr: float = 2e-3, weight_decay: float = 1e-4,
                 epochs: int = 10, steps_per_epoch: int | None = None,
                 optimizer: str = "adamw", momentum: float = 0.9, step_size: int = 5,
                 decay: float = 0.1) -> None:
        super().__init__()
        self.network = network
        self.save_hyperparameters(ignore=["network"])

    def forward(self, x):
        return self.network(x)

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self.network(x)
        loss = F.cross_entropy(logits, y)
        accuracy = (logits.argmax(dim=1) == y).float().mean()
        self.log(f"{stage}_loss", loss, prog_bar=True, on_epoch=True, on_step=False,
                 batch_size=len(x), sync_dist=True)
        self.log(f"{stage}_accuracy", accuracy, prog_bar=stage == "val", on_epoch=True,
                 on_step=False, batch_size=len(x), sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def configure_optimizers(self):
        """AdamW with a one-cycle schedule, or (``optimizer="sgd"``) SGD with momentum and a
        step schedule: :func:`~retroscope.train.schedules.optimizer_recipe`."""
        return optimizer_recipe(self)
