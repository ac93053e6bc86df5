"""Photoelectron momentum maps by the mask method (Tong, Hino & Toshima, PRA 74, 031405
(2006)), as in Shvetsov-Shilovski & Lein (2023), Sec. II B. Atomic units.

Every ``mask_every`` steps the wave function is split by the absorber M of Eq. (4):
psi -> M psi stays on the grid, (1 - M) psi has left the molecule. The removed part is taken
to momentum space, f(k) = (dx^2 / 2 pi) FFT[(1 - M) psi] (so that sum |f|^2 dk^2 is its norm),
and carried to the final time t_end as a Volkov wave,

    f(k) exp(-i [k^2/2 (t_end - t_j) + k_x sum_{steps after t_j} A(t_mid) dt]),

the same velocity-gauge phases the grid propagator applies (the global A^2/2 phase left out
of both, so that parts removed at different times interfere correctly), and summed
coherently. At t_end the electron still on the grid is added the same way, its bound part
left out: the ground state is projected out, and what remains within ``inner_radius`` of
the centre (excited bound states, whose discrete momentum patterns otherwise cover the map
with rings at 1e-3 of its maximum; measured) is cut by a soft window
W = 1 / (1 + exp(-(r - inner_radius) / 2 bohr)). Slow electrons still inside that radius
are lost with it; they lie at the smallest momenta, which the normalisation leaves out. The
map is |sum|^2 on the grid's momenta, interpolated linearly onto
the stored grid k_x in [-4, 4), k_y in [-2, 2) (256 x 128 points), with the total yield
(sum over all momenta) and dP/dk_x (the map integrated over k_y).

About a fifth of the final weight sits at |k| < 0.1 a.u. (slow electrons and the tail of
excited bound states): :data:`LOW_K_AU` marks the spot that is left out when the map is
normalised to its maximum (the network's input).
"""

from __future__ import annotations

import numpy as np
import torch

from retroscope.tasks.pmd.presets import Preset, get_preset
from retroscope.tasks.pmd.pulse import Pulse
from retroscope.tasks.pmd.tdse import Grid, Propagator, imaginary_time_ground_state, potentials

#: the stored momentum grid (a.u.): k_x along the polarisation, k_y across
KX_AU = np.linspace(-4.0, 4.0, 256, endpoint=False)
KY_AU = np.linspace(-2.0, 2.0, 128, endpoint=False)
#: momenta below this (a.u.) are left out of the maximum the map is normalised to
LOW_K_AU = 0.1


def absorber(grid: Grid, preset: Preset) -> np.ndarray:
    """M(x, y) = exp(-b d^2), d the distance (bohr) beyond the absorber's start (a circle of
    radius mask_x for a radial preset, else a box mask_x by mask_y), b = beta per a.u. of
    time x the time between two applications, so the absorption per unit time is the
    paper's whatever dt and mask_every."""
    x, y = grid.mesh()
    if preset.radial:
        d2 = np.clip(np.hypot(x, y) - preset.mask_x, 0.0, None) ** 2
    else:
        d2 = (np.clip(np.abs(x) - preset.mask_x, 0.0, None) ** 2
              + np.clip(np.abs(y) - preset.mask_y, 0.0, None) ** 2)
    return np.exp(-preset.beta_per_time * preset.mask_every * preset.dt * d2)


def to_momentum(psi: torch.Tensor, grid: Grid) -> torch.Tensor:
    """The continuous Fourier transform (1/2 pi) integral psi exp(-i k.r) d^2r on the FFT
    momenta: dx^2 / (2 pi) FFT[psi] (Parseval: sum |.|^2 dk^2 = sum |psi|^2 dx^2)."""
    return torch.fft.fft2(psi) * (grid.dx ** 2 / (2 * np.pi))


def momentum_maps(r_bohr, intensity_w_cm2, cep_rad=0.0, alpha_deg=0.0,
                  molecule: str = "H2+", preset: str | Preset = "fast",
                  precision: str = "complex64", device: str = "cpu") -> dict[str, np.ndarray]:
    """Momentum maps of a batch of molecules and pulses (arguments are scalars or one value
    per map; the batch shares a preset). Returns ``pmd`` (n, 256, 128) float32 on
    :data:`KX_AU` x :data:`KY_AU` (probability per a.u.^2), ``yield_`` (n,) the ionisation
    probability, ``dp_dkx`` (n, 256) and ``ground_energy`` (n,) hartree."""
    p = preset if isinstance(preset, Preset) else get_preset(preset)
    r = np.atleast_1d(np.asarray(r_bohr, dtype=np.float64))
    n = len(r)
    intensity, cep, alpha = (np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()
                             for v in (intensity_w_cm2, cep_rad, alpha_deg))
    grid = Grid(p.nx, p.ny, p.dx)
    v = potentials(grid, r, alpha, molecule, device=device)
    pulses = [Pulse(float(i), float(c)) for i, c in zip(intensity, cep)]
    density, energies = momentum_density(v, grid, pulses, p, precision)
    dk = grid.dk
    yields = density.sum(axis=(1, 2)) * dk[0] * dk[1]
    pmd = np.stack([_resample(np.fft.fftshift(d), grid) for d in density]).astype(np.float32)
    return {"pmd": pmd, "yield_": yields, "dp_dkx": pmd.sum(axis=2) * (KY_AU[1] - KY_AU[0]),
            "ground_energy": energies}


def momentum_density(v: torch.Tensor, grid: Grid, pulses: list, p: Preset,
                     precision: str = "complex64") -> tuple[np.ndarray, np.ndarray]:
    """The mask method on any potentials ``v`` (batch, nx, ny) and pulses (objects with
    ``duration`` and ``vector_potential(t)``, one per potential): the photoelectron density
    |f(k)|^2 (batch, nx, ny) float64 on the grid's FFT momenta (unshifted; its resolution is
    2 pi / the box), and the ground-state energies (batch,) in hartree."""
    n, device = v.shape[0], v.device
    if len(pulses) != n:
        raise ValueError(f"{len(pulses)} pulses for {n} potentials")
    energies, psi0 = imaginary_time_ground_state(v, grid, dtau=p.dtau)
    t_end = max(pl.duration for pl in pulses) + p.after_pulse
    steps = int(round(t_end / p.dt))
    t_mid = (np.arange(steps) + 0.5) * p.dt
    a_mid = np.stack([pl.vector_potential(t_mid) for pl in pulses], axis=1)  # (steps, n)
    # sum of A dt over the steps after step j (what a Volkov wave removed then still gets)
    a_after = np.concatenate([np.cumsum((a_mid * p.dt)[::-1], axis=0)[::-1],
                              np.zeros((1, n))])  # (steps + 1, n): index j = after j steps

    prop = Propagator(v, grid, p.dt, precision=precision)
    real = prop.kx.dtype
    mask = torch.as_tensor(absorber(grid, p), dtype=real, device=device)
    kx = torch.as_tensor(grid.kx, dtype=torch.float64, device=device)[:, None]
    k2 = torch.as_tensor(grid.k_squared(), dtype=torch.float64, device=device)
    a_after_t = torch.as_tensor(a_after, dtype=torch.float64, device=device)
    out = torch.zeros((n, p.nx, p.ny), dtype=torch.complex128, device=device)

    def absorb(psi: torch.Tensor, step: int, t: float) -> torch.Tensor:
        nonlocal out
        removed = to_momentum((1.0 - mask) * psi, grid).to(torch.complex128)
        # the free phase is shared by the batch (nx, ny), the field's is one row per map
        # (batch, nx, 1): two small exponentials instead of one per map and point
        free = torch.exp(-0.5j * k2 * (t_end - t))
        drift = torch.exp(-1j * kx * a_after_t[step][:, None, None])
        out = out + removed * free * drift
        return mask * psi

    psi = prop.run(psi0, lambda t: a_mid, 0.0, steps * p.dt, every=absorb,
                   every_steps=p.mask_every)
    psi = psi.to(torch.complex128)
    overlap = (psi0.conj() * psi).sum(dim=(-2, -1)) * grid.dx ** 2
    x, y = grid.mesh()
    window = torch.as_tensor(1.0 / (1.0 + np.exp(-(np.hypot(x, y) - p.inner_radius) / 2.0)),
                             device=device)
    inner = (psi - overlap[:, None, None] * psi0) * window
    out = out + to_momentum(inner, grid)
    return (out.abs() ** 2).cpu().numpy(), energies.cpu().numpy()


def _resample(density_shifted: np.ndarray, grid: Grid) -> np.ndarray:
    """A map on the grid's (sorted) FFT momenta -> the stored k grid, linearly, zero outside."""
    from scipy.interpolate import RegularGridInterpolator

    kx = np.fft.fftshift(grid.kx)
    ky = np.fft.fftshift(grid.ky)
    interp = RegularGridInterpolator((kx, ky), density_shifted, bounds_error=False,
                                     fill_value=0.0)
    qx, qy = np.meshgrid(KX_AU, KY_AU, indexing="ij")
    return interp(np.stack([qx, qy], axis=-1))
