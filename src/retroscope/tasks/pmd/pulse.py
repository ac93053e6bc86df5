"""The few-cycle laser pulse of Shvetsov-Shilovski & Lein, PRA 107, 033106 (2023), Eq. (1).

Atomic units throughout (time in a.u. = 24.19 as, field in a.u. = 5.142e11 V/m). The vector
potential along x is

    A(t) = (-1)^n_p (F0 / omega) sin^2(omega t / (2 n_p)) sin(omega t + phi),  0 <= t <= T,

with T = n_p 2 pi / omega and A = 0 outside; the field is F = -dA/dt. For 800 nm,
omega = 0.05695 a.u. (one cycle 110.3 a.u.). The peak field of an intensity I is
F0 = sqrt(I / 3.50945e16 W/cm^2) (1e14 W/cm^2: 0.0534 a.u.), and the ponderomotive energy
U_p = F0^2 / (4 omega^2) (1e14 W/cm^2 at 800 nm: 5.98 eV).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: 800 nm in atomic units of angular frequency (hbar omega = 1.5498 eV)
OMEGA_800NM = 0.05695
#: the intensity of a field of one atomic unit (W/cm^2): I = F0^2 x this
ATOMIC_INTENSITY_W_CM2 = 3.50945e16
#: one hartree in eV
HARTREE_EV = 27.211386


def peak_field(intensity_w_cm2: float) -> float:
    """F0 (a.u.) of a linearly polarised pulse of peak intensity ``intensity_w_cm2``."""
    if intensity_w_cm2 < 0:
        raise ValueError(f"intensity must be >= 0 W/cm^2, got {intensity_w_cm2}")
    return math.sqrt(intensity_w_cm2 / ATOMIC_INTENSITY_W_CM2)


def ponderomotive_energy(intensity_w_cm2: float, omega: float = OMEGA_800NM) -> float:
    """U_p = F0^2 / (4 omega^2), in hartree."""
    return peak_field(intensity_w_cm2) ** 2 / (4.0 * omega ** 2)


@dataclass(frozen=True)
class Pulse:
    """Eq. (1): a sin^2-envelope pulse of ``cycles`` optical cycles, polarised along x."""

    intensity_w_cm2: float
    cep_rad: float = 0.0
    cycles: int = 2
    omega: float = OMEGA_800NM

    def __post_init__(self) -> None:
        if self.cycles < 1 or self.omega <= 0 or self.intensity_w_cm2 < 0:
            raise ValueError(f"need cycles >= 1, omega > 0 and intensity >= 0, got {self}")

    @property
    def f0(self) -> float:
        """Peak field amplitude (a.u.)."""
        return peak_field(self.intensity_w_cm2)

    @property
    def duration(self) -> float:
        """T = cycles x 2 pi / omega (a.u.); A and F vanish outside [0, T]."""
        return self.cycles * 2.0 * math.pi / self.omega

    def vector_potential(self, t) -> np.ndarray:
        """A_x(t) of Eq. (1) (a.u.)."""
        t = np.asarray(t, dtype=np.float64)
        inside = (t >= 0.0) & (t <= self.duration)
        w, n = self.omega, self.cycles
        a = ((-1) ** n * self.f0 / w * np.sin(w * t / (2 * n)) ** 2
             * np.sin(w * t + self.cep_rad))
        return np.where(inside, a, 0.0)

    def electric_field(self, t) -> np.ndarray:
        """F_x(t) = -dA_x/dt (a.u.), analytically."""
        t = np.asarray(t, dtype=np.float64)
        inside = (t >= 0.0) & (t <= self.duration)
        w, n = self.omega, self.cycles
        env = np.sin(w * t / (2 * n)) ** 2
        d_env = (w / n) * np.sin(w * t / (2 * n)) * np.cos(w * t / (2 * n))
        d_a = (-1) ** n * self.f0 / w * (d_env * np.sin(w * t + self.cep_rad)
                                         + env * w * np.cos(w * t + self.cep_rad))
        return np.where(inside, -d_a, 0.0)


@dataclass(frozen=True)
class FlatTopPulse:
    """A nearly monochromatic pulse for checks of the ATI comb (not the paper's):
    A(t) = (F0/omega) f(t) sin(omega t + phi), f rising as sin^2 over ``ramp_cycles``, flat
    for ``flat_cycles``, falling as sin^2 over ``ramp_cycles``. Its photoelectrons come at
    E_n = n omega - I_p - U_p."""

    intensity_w_cm2: float
    flat_cycles: int = 4
    ramp_cycles: int = 1
    cep_rad: float = 0.0
    omega: float = OMEGA_800NM

    @property
    def f0(self) -> float:
        return peak_field(self.intensity_w_cm2)

    @property
    def duration(self) -> float:
        return (self.flat_cycles + 2 * self.ramp_cycles) * 2.0 * math.pi / self.omega

    def vector_potential(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        ramp = self.ramp_cycles * 2.0 * math.pi / self.omega
        rise = np.sin(0.5 * math.pi * np.clip(t / ramp, 0.0, 1.0)) ** 2
        fall = np.sin(0.5 * math.pi * np.clip((self.duration - t) / ramp, 0.0, 1.0)) ** 2
        a = self.f0 / self.omega * np.minimum(rise, fall) * np.sin(self.omega * t + self.cep_rad)
        return np.where((t >= 0.0) & (t <= self.duration), a, 0.0)
