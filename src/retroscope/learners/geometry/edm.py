"""EDM: the preconditioning, training noise and sampler of Karras et al., "Elucidating the
Design Space of Diffusion-Based Generative Models", NeurIPS 2022 (Table 1, Algorithm 2).

A denoiser D(x; sigma) = c_skip x + c_out F(c_in x, c_noise) with

    c_skip = s_d^2 / (sigma^2 + s_d^2),   c_out = sigma s_d / sqrt(sigma^2 + s_d^2),
    c_in = 1 / sqrt(sigma^2 + s_d^2),     c_noise = ln(sigma) / 4,

trained on ln sigma ~ N(P_mean, P_std^2) with the loss weight
lambda(sigma) = (sigma^2 + s_d^2) / (sigma s_d)^2, so that every noise level contributes a
loss of order one. Sampling integrates the probability-flow ODE from sigma_max down a
rho-spaced schedule with Heun's second-order steps (Euler on the last), optionally with
S_churn's stochastic noise injection. MOLEXA's settings (s_d = 0.25, P_mean = -1.2,
P_std = 1.2, sigma 0.002-80) are the defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EDM:
    """The noise model and sampler settings of one diffusion model."""

    sigma_data: float = 0.25
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    steps: int = 10
    s_churn: float = 0.0

    def preconditioning(self, sigma: torch.Tensor):
        """(c_skip, c_out, c_in, c_noise) for noise levels ``sigma`` (B,)."""
        sd2 = self.sigma_data ** 2
        s2 = sigma ** 2
        return (sd2 / (s2 + sd2), sigma * self.sigma_data / torch.sqrt(s2 + sd2),
                1.0 / torch.sqrt(s2 + sd2), torch.log(sigma) / 4.0)

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return (sigma ** 2 + self.sigma_data ** 2) / (sigma * self.sigma_data) ** 2

    def training_sigma(self, n: int, generator: torch.Generator | None = None,
                       device=None) -> torch.Tensor:
        """Noise levels with ln sigma ~ N(p_mean, p_std^2)."""
        z = torch.randn(n, generator=generator, device=device)
        return torch.exp(self.p_mean + self.p_std * z)

    def schedule(self, steps: int | None = None) -> torch.Tensor:
        """sigma_0 = sigma_max > ... > sigma_{N-1} = sigma_min, then 0 (Eq. 5)."""
        n = steps or self.steps
        i = torch.arange(n, dtype=torch.float64)
        lo, hi = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
        sigmas = (hi + i / max(n - 1, 1) * (lo - hi)) ** self.rho
        return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)])

    @torch.no_grad()
    def sample(self, denoise, shape, mask: torch.Tensor, generator: torch.Generator | None = None,
               steps: int | None = None, device=None) -> torch.Tensor:
        """Integrate from pure noise of ``shape`` (B, N, 3) with ``denoise(x, sigma (B,))``
        -> D(x; sigma); ``mask`` (B, N) zeroes padded tokens (Algorithm 2)."""
        sigmas = self.schedule(steps).to(device)
        m = mask[..., None].to(torch.float32)
        x = torch.randn(shape, generator=generator, device=device) * sigmas[0].float() * m
        n = len(sigmas) - 1
        gamma = min(self.s_churn / n, math.sqrt(2) - 1) if self.s_churn > 0 else 0.0
        for i in range(n):
            s_cur, s_next = float(sigmas[i]), float(sigmas[i + 1])
            s_hat = s_cur * (1 + gamma)
            if gamma > 0:
                eps = torch.randn(shape, generator=generator, device=device) * m
                x = x + math.sqrt(s_hat ** 2 - s_cur ** 2) * eps
            b = torch.full((shape[0],), s_hat, device=device)
            d = (x - denoise(x, b)) / s_hat
            x_next = x + (s_next - s_hat) * d
            if s_next > 0:   # Heun's correction
                b2 = torch.full((shape[0],), s_next, device=device)
                d2 = (x_next - denoise(x_next, b2)) / s_next
                x_next = x + (s_next - s_hat) * 0.5 * (d + d2)
            x = x_next * m
        return x
