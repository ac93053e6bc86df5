"""Linear Paul trap in the conventions of CCMD and pylion (Allsopp et al. 2025, Sec. II A).

The rods are driven at +-(V/2) cos(Omega t) (V is the "peak-to-peak" RF amplitude of the
paper); the endcaps at U give an axial field whose strength is set by the geometric factor
kappa (the paper's "eta"). For an ion of charge Q and mass m (Mathieu parameters, tau = Omega t/2):

    q   = 2 Q V / (m Omega^2 r0^2)
    a_z = 8 kappa Q U / (m Omega^2 z0^2),     a_x = a_y = -a_z / 2
    omega_z = sqrt(2 kappa Q U / (m z0^2)),   omega_r = (Omega/2) sqrt(a_r + q^2/2)

In the pseudopotential (secular) approximation an ion feels harmonic springs
k_z = 2 kappa Q U / z0^2 (the same for every mass) and
k_r(m) = Q^2 V^2 / (2 m Omega^2 r0^4) - k_z / 2 (weaker for heavier ions).

The dynamics run in dimensionless units: length l0 = (Q^2 / (4 pi eps0 k_z))^(1/3), energy
k_z l0^2, time 1 / omega_z of the *reference* (laser-cooled) species, mass in units of the
reference mass. The Coulomb energy of two ions at distance r is then 1/r and the axial
potential of every ion z^2/2.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import constants

E_CHARGE = constants.e  # C
EPS0 = constants.epsilon_0  # F/m
AMU = constants.atomic_mass  # kg
K_B = constants.k  # J/K
COULOMB_K = 1.0 / (4.0 * math.pi * EPS0)


class TrapError(ValueError):
    """Trap parameters for which the ions are not confined, or that make no physical sense."""


@dataclass(frozen=True)
class Species:
    """An ion species: mass in u, charge in e, and whether it is laser-cooled (fluoresces)."""

    name: str
    mass_u: float
    charge_e: int = 1
    laser_cooled: bool = False

    @property
    def mass_kg(self) -> float:
        return self.mass_u * AMU

    @property
    def charge_c(self) -> float:
        return self.charge_e * E_CHARGE


SPECIES = {
    "Ca+": Species("Ca+", 40.0, 1, True),
    "CaF+": Species("CaF+", 59.0),
    "ND3+": Species("ND3+", 20.0),
    "NH3+": Species("NH3+", 17.0),
    "Kr+": Species("Kr+", 84.0),
    "Xe+": Species("Xe+", 131.0),
}


def get_species(name_or_mass: str | float | Species) -> Species:
    """A species by name (``"CaF+"``), or a dark singly charged ion of the given mass in u."""
    if isinstance(name_or_mass, Species):
        return name_or_mass
    if isinstance(name_or_mass, str):
        try:
            return SPECIES[name_or_mass]
        except KeyError:
            raise KeyError(f"unknown species {name_or_mass!r}; known: {sorted(SPECIES)} "
                           "(or give a mass in u for a dark ion)") from None
    mass = float(name_or_mass)
    if not mass > 0:
        raise TrapError(f"ion mass must be positive, got {mass} u")
    return Species(f"m{mass:g}+", mass)


@dataclass(frozen=True)
class TrapGeometry:
    """Electrode geometry and drive frequency: r0, z0 in metres, Omega in rad/s."""

    name: str
    r0_m: float
    z0_m: float
    omega_rf: float

    def to_dict(self) -> dict:
        return asdict(self)


TRAPS = {
    "oxford": TrapGeometry("oxford", 3.5e-3, 2.75e-3, 2 * math.pi * 3.85e6),
    "liverpool": TrapGeometry("liverpool", 3.5e-3, 2.75e-3, 2 * math.pi * 3.85e6),
    "jila": TrapGeometry("jila", 3.91e-3, 3.5e-3, 2 * math.pi * 3.555e6),
}


def get_trap(trap: str | TrapGeometry) -> TrapGeometry:
    if isinstance(trap, TrapGeometry):
        return trap
    try:
        return TRAPS[trap.lower()]
    except KeyError:
        raise KeyError(f"unknown trap {trap!r}; known: {sorted(TRAPS)}") from None


@dataclass(frozen=True)
class OperatingPoint:
    """A trap geometry at given voltages: V (RF peak-to-peak, volts), U (endcap, volts), kappa."""

    geometry: TrapGeometry
    v_rf: float
    v_end: float
    kappa: float

    def __post_init__(self) -> None:
        for name in ("v_rf", "v_end", "kappa"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise TrapError(f"{name} must be a positive finite number, got {value}")

    # -- per species -----------------------------------------------------------------------
    def q(self, sp: Species) -> float:
        g = self.geometry
        return 2 * sp.charge_c * self.v_rf / (sp.mass_kg * g.omega_rf**2 * g.r0_m**2)

    def a_z(self, sp: Species) -> float:
        g = self.geometry
        return 8 * self.kappa * sp.charge_c * self.v_end / (sp.mass_kg * g.omega_rf**2
                                                            * g.z0_m**2)

    def a_r(self, sp: Species) -> float:
        return -self.a_z(sp) / 2

    def k_z(self, sp: Species) -> float:
        """Axial spring constant 2 kappa Q U / z0^2 in N/m."""
        return 2 * self.kappa * sp.charge_c * self.v_end / self.geometry.z0_m**2

    def k_r(self, sp: Species) -> float:
        """Radial pseudopotential spring constant in N/m (m omega_r^2)."""
        g = self.geometry
        return (sp.charge_c * self.v_rf) ** 2 / (2 * sp.mass_kg * g.omega_rf**2 * g.r0_m**4) \
            - self.k_z(sp) / 2

    def omega_z(self, sp: Species) -> float:
        return math.sqrt(self.k_z(sp) / sp.mass_kg)

    def omega_r(self, sp: Species) -> float:
        """(Omega/2) sqrt(a_r + q^2/2); raises TrapError when the ion is not confined."""
        b2 = self.a_r(sp) + self.q(sp) ** 2 / 2
        if b2 <= 0:
            raise TrapError(f"{sp.name} is not radially confined at V = {self.v_rf} V, "
                            f"U = {self.v_end} V (a_r + q^2/2 = {b2:.3g} <= 0)")
        return self.geometry.omega_rf / 2 * math.sqrt(b2)

    def check_stable(self, sp: Species) -> None:
        q = self.q(sp)
        if q >= 0.908:
            raise TrapError(f"{sp.name}: Mathieu q = {q:.3f} is outside the first stability "
                            "region (q < 0.908)")
        self.omega_r(sp)

    def cold_fluid_density(self, sp: Species) -> float:
        """n0 = eps0 V^2 / (m r0^4 Omega^2), ions per m^3 (single-species cold fluid)."""
        g = self.geometry
        return EPS0 * self.v_rf**2 / (sp.mass_kg * g.r0_m**4 * g.omega_rf**2) \
            / sp.charge_e**2


@dataclass(frozen=True)
class Units:
    """Dimensionless units of the secular dynamics, fixed by the reference species."""

    length_m: float
    time_s: float
    energy_j: float
    mass_kg: float

    @classmethod
    def of(cls, op: OperatingPoint, reference: Species) -> Units:
        kz = op.k_z(reference)
        length = (COULOMB_K * reference.charge_c**2 / kz) ** (1.0 / 3.0)
        return cls(length, 1.0 / op.omega_z(reference), kz * length**2, reference.mass_kg)

    def temperature(self, kelvin: float) -> float:
        """k_B T in units of k_z l0^2."""
        return K_B * kelvin / self.energy_j


def spring_constants(op: OperatingPoint, species: list[Species],
                     reference: Species) -> tuple[np.ndarray, np.ndarray]:
    """Per-species (radial, axial) spring constants in units of the reference k_z."""
    kz = op.k_z(reference)
    for sp in species:
        op.check_stable(sp)
    radial = np.array([op.k_r(sp) / kz for sp in species])
    axial = np.array([op.k_z(sp) / kz for sp in species])
    return radial, axial
