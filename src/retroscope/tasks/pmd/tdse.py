"""The 2D time-dependent Schrödinger equation of a one-electron molecule in a laser pulse,
velocity gauge, split-operator (Feit-Fleck-Steiger) propagation; Shvetsov-Shilovski & Lein,
PRA 107, 033106 (2023), Eq. (2). Atomic units.

    i d/dt psi = [-1/2 (d_x^2 + d_y^2) - i A_x(t) d_x + V(x, y)] psi

The A^2/2 term of the minimal coupling is a global phase and is left out. One step of dt:

    psi <- exp(-i V dt/2) F^-1[exp(-i k^2 dt/2) exp(-i k_x A dt) F[exp(-i V dt/2) psi]],

with A taken at the middle of the step (second order in dt). The ground state comes from the
same splitting in imaginary time (t = -i tau), renormalised every step; its energy is the
expectation value <psi|H|psi> with the kinetic energy computed spectrally.

Arrays are torch tensors shaped (batch, nx, ny): x (the polarisation axis) is the first
spatial axis. Propagation runs on any device (CPU or CUDA) in complex64 or complex128; on a
CPU use one thread per process (``torch.set_num_threads(1)``): small FFTs do not scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from retroscope.tasks.pmd.potentials import potential


@dataclass(frozen=True)
class Grid:
    """A uniform grid of ``nx`` x ``ny`` points of spacing ``dx`` (bohr), centred on the
    origin (x_j = (j - nx/2) dx), with its FFT momenta k = 2 pi fftfreq(n, dx) (a.u.)."""

    nx: int
    ny: int
    dx: float

    def __post_init__(self) -> None:
        if self.nx < 4 or self.ny < 4 or self.dx <= 0:
            raise ValueError(f"need nx, ny >= 4 and dx > 0, got {self}")

    @property
    def x(self) -> np.ndarray:
        return (np.arange(self.nx) - self.nx / 2) * self.dx

    @property
    def y(self) -> np.ndarray:
        return (np.arange(self.ny) - self.ny / 2) * self.dx

    @property
    def kx(self) -> np.ndarray:
        return 2 * np.pi * np.fft.fftfreq(self.nx, self.dx)

    @property
    def ky(self) -> np.ndarray:
        return 2 * np.pi * np.fft.fftfreq(self.ny, self.dx)

    @property
    def dk(self) -> tuple[float, float]:
        """Momentum spacings (2 pi / (n dx)) along x and y."""
        return 2 * np.pi / (self.nx * self.dx), 2 * np.pi / (self.ny * self.dx)

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) coordinates of every point, each (nx, ny)."""
        return np.meshgrid(self.x, self.y, indexing="ij")

    def k_squared(self) -> np.ndarray:
        kx, ky = np.meshgrid(self.kx, self.ky, indexing="ij")
        return kx ** 2 + ky ** 2


def _complex(precision: str) -> torch.dtype:
    if precision not in ("complex64", "complex128"):
        raise ValueError(f"precision must be complex64 or complex128, got {precision!r}")
    return torch.complex64 if precision == "complex64" else torch.complex128


def norm(psi: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Sum |psi|^2 dx^2 per batch element (float64)."""
    return (psi.abs() ** 2).sum(dim=(-2, -1)).double() * grid.dx ** 2


def energy(psi: torch.Tensor, v: torch.Tensor, grid: Grid) -> torch.Tensor:
    """<psi|H0|psi> / <psi|psi> per batch element (hartree), the field-free Hamiltonian
    H0 = -1/2 Laplacian + V, the kinetic part exact in Fourier space."""
    k2 = torch.as_tensor(grid.k_squared(), device=psi.device, dtype=psi.real.dtype)
    phi = torch.fft.fft2(psi)
    kinetic = 0.5 * (k2 * phi.abs() ** 2).sum(dim=(-2, -1)) / (grid.nx * grid.ny)
    potential_part = (v * psi.abs() ** 2).sum(dim=(-2, -1))
    return ((kinetic + potential_part) / (psi.abs() ** 2).sum(dim=(-2, -1))).double()


def imaginary_time_ground_state(v: torch.Tensor, grid: Grid, dtau: float = 0.05,
                                tol: float = 1e-10, max_steps: int = 40_000,
                                check_every: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground states of the potentials ``v`` (batch, nx, ny), float64: imaginary-time
    split-operator steps from a Gaussian at the origin, renormalised each step, until the
    energy changes by less than ``tol`` hartree between checks ``check_every`` steps apart.
    Each member of the batch leaves the propagation when it has converged (the number of
    steps is set by the gap to the next gerade state and grows with R), so a batch costs the
    sum of its members, not its slowest member times the batch.
    Returns (energies (batch,), normalised psi (batch, nx, ny) complex128)."""
    v = v.to(torch.float64)
    x, y = (torch.as_tensor(c, dtype=torch.float64, device=v.device) for c in grid.mesh())
    psi = torch.exp(-(x ** 2 + y ** 2) / 2.0).to(torch.complex128).expand_as(v).clone()
    half_v = torch.exp(-0.5 * dtau * v).to(torch.complex128)
    kin = torch.exp(-0.5 * dtau * torch.as_tensor(grid.k_squared(), dtype=torch.float64,
                                                  device=v.device)).to(torch.complex128)
    energies = torch.zeros(v.shape[0], dtype=torch.float64, device=v.device)
    last = torch.full_like(energies, float("inf"))
    active = torch.arange(v.shape[0], device=v.device)
    for step in range(1, max_steps + 1):
        a, hv = psi[active], half_v[active]
        a = hv * torch.fft.ifft2(kin * torch.fft.fft2(hv * a))
        psi[active] = a / norm(a, grid).sqrt()[:, None, None]
        if step % check_every == 0:
            e = energy(psi[active], v[active], grid)
            done = torch.abs(e - last[active]) < tol
            energies[active], last[active] = e, e
            active = active[~done]
            if active.numel() == 0:
                return energies, psi
    raise RuntimeError(f"imaginary-time propagation did not converge to {tol} hartree in "
                       f"{max_steps} steps of {dtau}")


class Propagator:
    """Real-time split-operator steps of Eq. (2) for a batch of potentials ``v``
    (batch, nx, ny) on ``grid`` with time step ``dt`` (a.u.)."""

    def __init__(self, v: torch.Tensor, grid: Grid, dt: float,
                 precision: str = "complex128") -> None:
        self.grid, self.dt = grid, float(dt)
        self.dtype = _complex(precision)
        real = torch.float64 if self.dtype == torch.complex128 else torch.float32
        v = v.to(real)
        self.half_v = torch.exp(-0.5j * self.dt * v.to(self.dtype))
        k2 = torch.as_tensor(grid.k_squared(), dtype=real, device=v.device)
        self.kinetic = torch.exp(-0.5j * self.dt * k2.to(self.dtype))
        self.kx = torch.as_tensor(grid.kx, dtype=real, device=v.device)[:, None]

    def step(self, psi: torch.Tensor, a_x: torch.Tensor) -> torch.Tensor:
        """One step with the vector potential ``a_x`` (batch,) at the step's middle."""
        coupling = torch.exp(-1j * self.dt * a_x.to(self.kx.dtype)[:, None, None]
                             * self.kx).to(self.dtype)
        phi = torch.fft.fft2(self.half_v * psi)
        return self.half_v * torch.fft.ifft2(self.kinetic * coupling * phi)

    def run(self, psi: torch.Tensor, vector_potential: Callable[[np.ndarray], np.ndarray],
            t0: float, t1: float,
            every: Callable[[torch.Tensor, int, float], torch.Tensor] | None = None,
            every_steps: int = 1) -> torch.Tensor:
        """Propagate ``psi`` from ``t0`` to ``t1`` (``t1 - t0`` rounded to whole steps of dt).
        ``vector_potential(t)`` gives A_x at an array of times t: shape (steps,) for one
        pulse shared by the batch, or (steps, batch); it is evaluated once, at every step's
        middle, before the loop. ``every(psi, step, t)`` is called after every
        ``every_steps`` steps and returns the (possibly changed) psi, e.g. to absorb."""
        n_steps = int(round((t1 - t0) / self.dt))
        t_mid = t0 + (np.arange(n_steps) + 0.5) * self.dt
        a = np.asarray(vector_potential(t_mid), dtype=np.float64).reshape(n_steps, -1)
        a = torch.as_tensor(np.broadcast_to(a, (n_steps, psi.shape[0])).copy(),
                            device=psi.device)
        psi = psi.to(self.dtype)
        for n in range(n_steps):
            psi = self.step(psi, a[n])
            if every is not None and (n + 1) % every_steps == 0:
                psi = every(psi, n + 1, t0 + (n + 1) * self.dt)
        return psi


def potentials(grid: Grid, r_bohr, alpha_deg=0.0, molecule: str = "H2+",
               device: str = "cpu") -> torch.Tensor:
    """The potentials (batch, nx, ny) (float64) of molecules with distances ``r_bohr`` and
    angles ``alpha_deg`` (scalars or one per batch element)."""
    r = np.atleast_1d(np.asarray(r_bohr, dtype=np.float64))
    a = np.broadcast_to(np.asarray(alpha_deg, dtype=np.float64), r.shape)
    x, y = grid.mesh()
    v = np.stack([potential(x, y, float(ri), float(ai), molecule) for ri, ai in zip(r, a)])
    return torch.as_tensor(v, dtype=torch.float64, device=device)


def gaussian_packet(grid: Grid, sigma: float, x0: float = 0.0, y0: float = 0.0,
                    k0: float = 0.0) -> torch.Tensor:
    """A normalised Gaussian wave packet (1, nx, ny) complex128 whose probability density has
    standard deviation ``sigma`` along each axis, centred at (x0, y0), momentum k0 along x."""
    x, y = grid.mesh()
    psi = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (4 * sigma ** 2) + 1j * k0 * x)
    psi /= math.sqrt(np.sum(np.abs(psi) ** 2) * grid.dx ** 2)
    return torch.as_tensor(psi[None], dtype=torch.complex128)
