"""The LightningModule that trains every regression task.

The network predicts, per target column, a mean and a log-variance (a heteroscedastic head,
Nix & Weigend 1994; Kendall & Gal 2017). The mean is trained with the mean-squared error (the
loss of Stielow et al. 2020, Sec. 3) and the variance with the Gaussian negative
log-likelihood given the *detached* mean and *detached* features, so that learning the
uncertainty never trades accuracy of the mean for a wider variance (the failure mode of the
plain NLL analysed by Seitzer et al., ICLR 2022) and never destabilises the shared body.
Before the loss, the task may replace each target by its symmetry-equivalent closest to the
prediction (``Targets.align``): an icosahedron rotated by a symmetry element is the same
icosahedron, and the loss must not punish that.
"""

from __future__ import annotations

import lightning as L
import torch

from retroscope.train.network import NormalisedNetwork
from retroscope.train.schedules import optimizer_recipe
from retroscope.train.uncertainty import gaussian_nll


class Network(NormalisedNetwork):
    """Input normalisation followed by a registered model with a heteroscedastic head."""

    def __init__(self, model_name: str, model_kwargs: dict, out_dim: int) -> None:
        super().__init__(model_name, model_kwargs, out_dim, head="heteroscedastic")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar, _ = self.forward_with_features(x)
        return mean, logvar

    def forward_with_features(self, x: torch.Tensor):
        """(mean, log-variance, pooled features): one pass for predictions and OOD scores.

        The log-variance rows of the head read *detached* features: the variance is learned on
        top of the representation that the mean's loss shapes, and the likelihood's large
        gradients for confident misses never reach the shared body.
        """
        features = self.body.embed(self.normalised(x)).float()
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
                 batch_size=len(x), sync_dist=True)
        self.log(f"{stage}_mse", mse, on_epoch=True, on_step=False, batch_size=len(x),
                 sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def configure_optimizers(self):
        """AdamW with a one-cycle schedule, or (``optimizer="sgd"``) SGD with momentum whose
        rate is multiplied by ``decay`` every ``step_size`` epochs (MATLAB's sgdm recipe):
        :func:`~retroscope.train.schedules.optimizer_recipe`."""
        return optimizer_recipe(self)
