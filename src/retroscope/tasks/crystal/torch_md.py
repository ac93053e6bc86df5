"""Batched secular dynamics in torch: many crystals at once on a GPU (or the CPU).

The same energy as :mod:`.dynamics` (pseudopotential springs + all-pairs Coulomb, dimensionless
units of :class:`.trap.Units`), evaluated for a batch of B crystals padded to N ions with a
mask, so one kernel launch serves the whole batch: the O(B N^2) pair terms are a dense tensor,
which a GPU evaluates in microseconds for N of a few hundred. FIRE (Bitzek et al. 2006) and
BAOAB Langevin steps keep per-crystal state (time step, mixing, convergence), so crystals that
have converged stop moving while the others continue.

On the CPU the numba kernels of :mod:`.dynamics` are faster; this module is for CUDA
campaigns (``FormationConfig(backend="torch")``) and is checked against numba in the tests.
"""

from __future__ import annotations

import torch
from torch import Tensor


def forces(pos: Tensor, kr: Tensor, kz: Tensor, charge: Tensor,
           mask: Tensor) -> tuple[Tensor, Tensor]:
    """Forces (B, N, 3) and energies (B,) of padded crystals; padded ions feel and exert none.

    pos (B, N, 3); kr, kz, charge (B, N); mask (B, N) bool, True for real ions.
    """
    m = mask.to(pos.dtype)
    trap = torch.stack([kr, kr, kz], dim=-1)
    f = -trap * pos * m[..., None]
    e_trap = 0.5 * (trap * pos * pos).sum(-1)
    diff = pos[:, :, None, :] - pos[:, None, :, :]  # (B, N, N, 3): r_i - r_j
    r2 = (diff * diff).sum(-1)
    qq = (charge * m)[:, :, None] * (charge * m)[:, None, :]
    eye = torch.eye(pos.shape[1], dtype=torch.bool, device=pos.device)
    pair = mask[:, :, None] & mask[:, None, :] & ~eye
    r2 = torch.where(pair, r2, torch.ones_like(r2))
    qq = torch.where(pair, qq, torch.zeros_like(qq))
    inv_r = torch.rsqrt(r2)
    f = f + ((qq * inv_r**3)[..., None] * diff).sum(2)
    energy = (e_trap * m).sum(-1) + 0.5 * (qq * inv_r).sum((-1, -2))
    return f, energy


def fire_minimise(pos: Tensor, kr: Tensor, kz: Tensor, charge: Tensor, mask: Tensor,
                  ftol: float = 1e-4, max_steps: int = 20000, dt0: float = 0.02,
                  dt_max: float = 0.2) -> tuple[Tensor, Tensor, Tensor]:
    """Batched FIRE with unit masses; returns (positions, steps per crystal, max |F|)."""
    pos = pos.clone()
    b = pos.shape[0]
    dev, dt_type = pos.device, pos.dtype
    v = torch.zeros_like(pos)
    dt = torch.full((b,), dt0, device=dev, dtype=dt_type)
    alpha = torch.full((b,), 0.1, device=dev, dtype=dt_type)
    n_pos = torch.zeros(b, dtype=torch.long, device=dev)
    steps = torch.zeros(b, dtype=torch.long, device=dev)
    f, _ = forces(pos, kr, kz, charge, mask)
    fmax = f.norm(dim=-1).amax(-1)
    for _ in range(max_steps):
        fmax = f.norm(dim=-1).amax(-1)
        active = fmax >= ftol
        if not bool(active.any()):
            break
        steps += active.long()
        p = (f * v).sum((1, 2))
        vn = v.norm(dim=(1, 2))
        fn = f.norm(dim=(1, 2)).clamp_min(1e-300)
        up = p > 0
        mix = ((1 - alpha)[:, None, None] * v
               + (alpha * vn / fn)[:, None, None] * f)
        grow = up & (n_pos >= 5)
        n_pos = torch.where(up, n_pos + 1, torch.zeros_like(n_pos))
        new_dt = torch.where(grow, torch.clamp(dt * 1.1, max=dt_max),
                             torch.where(up, dt, dt * 0.5))
        alpha = torch.where(grow, alpha * 0.99, torch.where(up, alpha, torch.full_like(alpha, 0.1)))
        back = (~up)[:, None, None]
        pos = torch.where(back & active[:, None, None], pos - 0.5 * new_dt[:, None, None] * v, pos)
        v = torch.where(back, torch.zeros_like(v), mix)
        dt = new_dt
        v = v + dt[:, None, None] * f
        step = (dt[:, None, None] * v) * active[:, None, None]
        pos = pos + step
        v = v * active[:, None, None]
        f, _ = forces(pos, kr, kz, charge, mask)
    return pos, steps, f.norm(dim=-1).amax(-1)


def langevin_sample(pos: Tensor, kr: Tensor, kz: Tensor, charge: Tensor, mask: Tensor,
                    mass: Tensor, friction: Tensor, temperature: Tensor, dt: Tensor,
                    n_equilibrate: int, n_samples: int, every: int,
                    generator: torch.Generator | None = None) -> Tensor:
    """Batched BAOAB at per-crystal temperature (B,) and time step (B,); per-ion mass and
    friction (B, N). Returns snapshots (n_samples, B, N, 3)."""
    mass = torch.where(mask, mass, torch.ones_like(mass))
    m3 = mass[..., None]
    kt = temperature[:, None, None]
    h = dt[:, None, None]
    c1 = torch.exp(-friction[..., None] * h)
    c2 = torch.sqrt(1 - c1 * c1)
    maskf = mask[..., None].to(pos.dtype)

    def noise():
        return torch.randn(pos.shape, generator=generator, device=pos.device, dtype=pos.dtype)

    vel = noise() * torch.sqrt(kt / m3) * maskf
    f, _ = forces(pos, kr, kz, charge, mask)
    out = []
    for step in range(n_equilibrate + n_samples * every):
        vel = vel + 0.5 * h * f / m3
        pos = pos + 0.5 * h * vel
        vel = (c1 * vel + c2 * torch.sqrt(kt / m3) * noise()) * maskf
        pos = pos + 0.5 * h * vel
        f, _ = forces(pos, kr, kz, charge, mask)
        vel = vel + 0.5 * h * f / m3
        k = step + 1 - n_equilibrate
        if k > 0 and k % every == 0:
            out.append(pos.clone())
    return torch.stack(out) if out else pos[None].clone()
