"""The LightningModule that trains every regression task.

The network predicts, per target column, a mean and a log-variance (a heteroscedastic head,
Nix & Weigend 1994; Kendall & Gal 2017). The mean is trained with the mean-squared error (the
loss of Stielow et al. 2020, Sec. 3) and the variance with the Gaussian negative
log-likelihood given the *detached* mean and *detached* features, so that learning the
uncertainty never trades accuracy of the mean for a wider variance (the failure mode of the
plain NLL analysed by Seitzer et al., ICLR 2022) and never destabilises the shared body. Before the loss, the task may replace each target by its
symmetry-equivalent closest to the prediction (``Targets.align``): an icosahedron rotated by a
symmetry element is the same icosahedron, and the loss must not punish that.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from retroscope.train.schedules import TimedOneCycleLR, TimedStepLR, trainer_time_fraction
from retroscope.train.uncertainty import gaussian_nll


class InputNormalization(nn.Module):
    """(x - mean) / std with the training-set statistics stored as buffers."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Network(nn.Module):
    """Input normalisation followed by a registered model with a heteroscedastic head."""

    def __init__(self, model_name: str, model_kwargs: dict, out_dim: int) -> None:
        super().__init__()
        from retroscope.models import build_model

        self.norm = InputNormalization()
        self.body = build_model(model_name, out_dim=out_dim, head="heteroscedastic",
                                **model_kwargs)
        self.out_dim = out_dim
        self.frozen: list[nn.Module] = []

    def freeze(self, k: int) -> None:
        """Freeze the body's first ``k`` blocks (``models.registry.freeze_blocks``)."""
        from retroscope.models.registry import freeze_blocks

        self.frozen = freeze_blocks(self.body, k)
        self.train(self.training)

    def train(self, mode: bool = True):
        """As ``nn.Module.train``, but frozen blocks stay in eval mode: their batch-norm
        statistics are part of what is transferred."""
        super().train(mode)
        for block in self.frozen:
            block.eval()
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar, _ = self.forward_with_features(x)
        return mean, logvar

    def forward_with_features(self, x: torch.Tensor):
        """(mean, log-variance, pooled features): one pass for predictions and OOD scores.

        The log-variance rows of the head read *detached* features: the variance is learned on
        top of the representation that the mean's loss shapes, and the likelihood's large
        gradients for confident misses never reach the shared body.
        """
        features = self.body.embed(self.norm(x)).float()
        # the head stays in float32 under mixed precision: a bfloat16 output carries only
        # about 3 significant digits, too few for a count of hundreds
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = self.body.dropout(features)
            d = self.out_dim
            mean = self.body.fc(h)[:, :d]
            logvar = self.body.fc(h.detach())[:, d:]
        return mean, logvar.clamp(-16.0, 8.0), features


class RegressionModule(L.LightningModule):
    def __init__(self, network: Network, align=None, lr: float = 2e-3,
                 weight_decay: float = 1e-4, epochs: int = 10,
                 steps_per_epoch: int | None = None, optimizer: str = "adamw",
                 momentum: float = 0.9, step_size: int = 5, decay: float = 0.1) -> None:
        super().__init__()
        self.network = network
        self.align = align
        self.save_hyperparameters(ignore=["network", "align"])

    def forward(self, x):
        return self.network(x)

    def _step(self, batch, stage: str):
        x, y = batch
        mean, logvar = self.network(x)
        if self.align is not None:
            y = self.align(mean.detach(), y)
        mse = torch.mean((mean - y) ** 2)
        nll = gaussian_nll(mean.detach(), logvar, y)
        loss = mse + nll
        self.log(f"{stage}_loss", loss, prog_bar=True, on_epoch=True, on_step=False,
                 batch_size=len(x))
        self.log(f"{stage}_mse", mse, on_epoch=True, on_step=False, batch_size=len(x))
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def configure_optimizers(self):
        """AdamW with a one-cycle schedule, or (``optimizer="sgd"``) SGD with momentum whose
        rate is multiplied by ``decay`` every ``step_size`` epochs (MATLAB's sgdm recipe).
        Both follow the clock of a time-limited run. Frozen parameters are left out."""
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        steps = hp.steps_per_epoch or self.trainer.estimated_stepping_batches // max(hp.epochs, 1)
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum,
                                  weight_decay=hp.weight_decay)
            sched = TimedStepLR(opt, step_size=max(int(hp.step_size), 1), gamma=hp.decay,
                                steps_per_epoch=max(int(steps), 1), epochs=max(hp.epochs, 1),
                                time_fraction=lambda: trainer_time_fraction(self._trainer))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        sched = TimedOneCycleLR(
            opt, max_lr=hp.lr, epochs=hp.epochs, steps_per_epoch=max(int(steps), 1),
            pct_start=0.15, time_fraction=lambda: trainer_time_fraction(self._trainer))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
