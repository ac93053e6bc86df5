"""The network of a ``geometry`` run and the LightningModule that trains it.

Inputs are sets of tokens (B, N, 5): (Z, q, p_x, p_y, p_z), with Z = 0 for padding and q = 0
for an undetected token of a known formula; targets are one 3D position per token (B, N, 3),
in the same (lab) frame as the momenta. The network turns both into the canonical momentum
frame (``models.ion_transformer.momentum_frame``), scales positions per axis by
``position_scale`` (MOLEXA: 23.6, 20.0, 15.8 bohr, so that sigma_data = 0.25 fits) and
denoises them with EDM preconditioning (:mod:`.edm`). The loss is EDM's weighted MSE over
real tokens; among undetected tokens of the same Z (interchangeable queries) each target is
first assigned to the prediction it is closest to (the minimum over their permutations).

``objective="regression"`` makes the same network a deterministic regressor (the baseline
the diffusion model is compared with): the denoiser reads no noisy positions (x = 0) at the
fixed level sigma_max, where c_skip x vanishes and D = c_out F, so it answers one position
per token directly, trained by the plain MSE (in units of sigma_data^2, the EDM weight at
large sigma); its "samples" are that one answer.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import nn

from retroscope.learners.geometry.edm import EDM
from retroscope.train.schedules import optimizer_recipe

#: MOLEXA's per-axis position scale in the momentum frame (bohr)
POSITION_SCALE = (23.6, 20.0, 15.8)
#: what the denoiser is trained for: EDM's denoising, or one direct answer (a regressor)
OBJECTIVES = ("diffusion", "regression")
#: noise levels of the validation loss: ln sigma at -1.5, -0.5, 0.5, 1.5 standard deviations
VAL_Z = (-1.5, -0.5, 0.5, 1.5)


def to_frame(ions: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Tokens with their momenta turned by ``rotation`` (B, 3, 3)."""
    p = torch.einsum("bij,bnj->bni", rotation, ions[..., 2:5])
    return torch.cat([ions[..., :2], p], dim=-1)


class GeometryNetwork(nn.Module):
    """A registered set model (``encode``, ``embed``, ``forward``) wrapped with the frame,
    the position scale and EDM's preconditioning."""

    def __init__(self, model_name: str, model_kwargs: dict, edm: EDM | None = None,
                 position_scale=POSITION_SCALE, objective: str = "diffusion") -> None:
        super().__init__()
        from retroscope.models import build_model

        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.objective = objective

        self.body = build_model(model_name, out_dim=3, head="diffusion", **model_kwargs)
        self.register_buffer("position_scale", torch.tensor(position_scale, dtype=torch.float32))
        self.edm = edm or EDM()
        self.frozen: list[nn.Module] = []

    @property
    def blocks(self):
        return self.body.encoder.blocks

    def freeze(self, k: int) -> None:
        from retroscope.models.registry import freeze_blocks

        self.frozen = freeze_blocks(self, k)

    def frame(self, ions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens in the momentum frame, the rotation (B, 3, 3) from the lab frame)."""
        from retroscope.models.ion_transformer import momentum_frame

        rotation = momentum_frame(ions)
        return to_frame(ions, rotation), rotation

    def condition(self, ions_frame: torch.Tensor):
        return self.body.encode(ions_frame)

    def embed(self, ions: torch.Tensor) -> torch.Tensor:
        """Pooled features of each event (for out-of-distribution scores)."""
        return self.body.embed(self.frame(ions)[0])

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, nodes, valid) -> torch.Tensor:
        """D(x; sigma) on scaled positions x (B, N, 3)."""
        c_skip, c_out, c_in, c_noise = self.edm.preconditioning(sigma)
        f = self.body(c_in[:, None, None] * x, c_noise, nodes, valid)
        return (c_skip[:, None, None] * x + c_out[:, None, None] * f) * valid[..., None]

    def regress(self, nodes, valid) -> torch.Tensor:
        """The regressor's answer: D(0; sigma_max) on scaled positions (B, N, 3)."""
        b, n = valid.shape
        sigma = torch.full((b,), self.edm.sigma_max, device=valid.device)
        return self.denoise(torch.zeros(b, n, 3, device=valid.device), sigma, nodes, valid)

    @torch.no_grad()
    def sample(self, ions: torch.Tensor, k: int, generator: torch.Generator | None = None,
               steps: int | None = None) -> torch.Tensor:
        """``k`` samples of the positions of each event, in the momentum frame (bohr),
        shape (B, k, N, 3)."""
        ions_frame, _ = self.frame(ions)
        nodes, valid = self.condition(ions_frame)
        b, n = valid.shape
        if self.objective == "regression":
            x = self.regress(nodes, valid)[:, None].expand(b, k, n, 3)
            return x * self.position_scale
        nodes = nodes.repeat_interleave(k, dim=0)
        valid_k = valid.repeat_interleave(k, dim=0)
        x = self.edm.sample(lambda x, s: self.denoise(x, s, nodes, valid_k), (b * k, n, 3),
                            valid_k, generator=generator, steps=steps, device=ions.device)
        return (x * self.position_scale).reshape(b, k, n, 3)


def assign_undetected(pred: torch.Tensor, target: torch.Tensor, ions: torch.Tensor) -> torch.Tensor:
    """``target`` with the positions of undetected tokens of equal Z permuted within each
    event to the assignment closest to ``pred`` (Hungarian, on squared distances)."""
    from scipy.optimize import linear_sum_assignment

    z = ions[..., 0].round().long()
    undetected = (z > 0) & (ions[..., 1] <= 0)
    if not undetected.any():
        return target
    p, t = pred.detach().cpu().numpy(), target.detach().cpu().numpy().copy()
    target = target.clone()
    for b in torch.nonzero(undetected.sum(1) > 1).flatten().tolist():
        zb = z[b].cpu().numpy()
        und = undetected[b].cpu().numpy()
        for element in np.unique(zb[und]):
            idx = np.flatnonzero(und & (zb == element))
            if len(idx) < 2:
                continue
            pb, tb = p[b][idx], t[b][idx]
            cost = ((pb[:, None, :] - tb[None, :, :]) ** 2).sum(-1)
            _, cols = linear_sum_assignment(cost)
            target[b, torch.as_tensor(idx)] = torch.as_tensor(tb[cols], dtype=target.dtype,
                                                              device=target.device)
    return target


class GeometryModule(L.LightningModule):
    def __init__(self, network: GeometryNetwork, lr: float = 1e-3, weight_decay: float = 1e-4,
                 epochs: int = 10, steps_per_epoch: int | None = None,
                 optimizer: str = "adamw", momentum: float = 0.9, step_size: int = 5,
                 decay: float = 0.1) -> None:
        super().__init__()
        self.network = network
        self.save_hyperparameters(ignore=["network"])

    def _inputs(self, batch):
        ions, positions = batch
        n = int((ions[..., 0] > 0).any(0).nonzero().max()) + 1   # trim common padding
        ions, positions = ions[:, :n], positions[:, :n]
        ions_frame, rotation = self.network.frame(ions)
        target = torch.einsum("bij,bnj->bni", rotation, positions) / self.network.position_scale
        nodes, valid = self.network.condition(ions_frame)
        return ions, target * valid[..., None], nodes, valid

    def _loss(self, ions, target, nodes, valid, sigma, noise) -> torch.Tensor:
        edm = self.network.edm
        x = (target + sigma[:, None, None] * noise) * valid[..., None]
        denoised = self.network.denoise(x, sigma, nodes, valid)
        target = assign_undetected(denoised, target, ions)
        err = ((denoised - target) ** 2).sum(-1)                        # (B, N)
        w = edm.loss_weight(sigma)[:, None] * valid
        return (w * err).sum() / (3.0 * valid.sum().clamp(min=1))

    def _regression_loss(self, ions, target, nodes, valid) -> torch.Tensor:
        pred = self.network.regress(nodes, valid)
        target = assign_undetected(pred, target, ions)
        err = ((pred - target) ** 2).sum(-1) * valid
        return err.sum() / (3.0 * self.network.edm.sigma_data ** 2 * valid.sum().clamp(min=1))

    def training_step(self, batch, batch_idx):
        ions, target, nodes, valid = self._inputs(batch)
        if self.network.objective == "regression":
            loss = self._regression_loss(ions, target, nodes, valid)
            self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False,
                     batch_size=len(ions), sync_dist=True)
            return loss
        sigma = self.network.edm.training_sigma(len(ions), device=ions.device)
        loss = self._loss(ions, target, nodes, valid, sigma, torch.randn_like(target))
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False,
                 batch_size=len(ions), sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        ions, target, nodes, valid = self._inputs(batch)
        if self.network.objective == "regression":
            loss = self._regression_loss(ions, target, nodes, valid)
            self.log("val_loss", loss, prog_bar=True, on_epoch=True, on_step=False,
                     batch_size=len(ions), sync_dist=True)
            return loss
        edm = self.network.edm
        g = torch.Generator(device=ions.device).manual_seed(batch_idx)
        losses = []
        for z in VAL_Z:
            sigma = torch.full((len(ions),), float(np.exp(edm.p_mean + edm.p_std * z)),
                               device=ions.device)
            noise = torch.randn(target.shape, generator=g, device=ions.device)
            losses.append(self._loss(ions, target, nodes, valid, sigma, noise))
        loss = torch.stack(losses).mean()
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, on_step=False,
                 batch_size=len(ions), sync_dist=True)
        return loss

    def configure_optimizers(self):
        """AdamW with a one-cycle schedule (:func:`~retroscope.train.schedules.optimizer_recipe`)."""
        return optimizer_recipe(self)
