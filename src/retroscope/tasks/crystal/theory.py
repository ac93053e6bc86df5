"""Cold-fluid theory of a single-species ion crystal in a linear Paul trap.

At zero temperature a large one-component plasma in a harmonic trap is a uniformly charged
spheroid (Turner, Phys. Fluids 30, 3196 (1987); Dubin, PRL 66, 2076 (1991)) with density
n0 = eps0 (2 k_r + k_z) / Q^2 (= eps0 V^2 / (m r0^4 Omega^2) in the pseudopotential), radius
R and half-length Z with N = (4/3) pi R^2 Z n0, and aspect ratio alpha = Z / R fixed by

    omega_z^2 / omega_p^2 = k_z / (2 k_r + k_z) = N_z(alpha),

N_z the depolarisation factor of the spheroid along its axis (1/3 for a sphere). For alpha > 1
this is Turner's Q_1(alpha / sqrt(alpha^2 - 1)) / (alpha^2 - 1), Q_1(x) = (x/2) ln((x+1)/(x-1)) - 1.
"""

from __future__ import annotations

import math

from scipy.optimize import brentq


def depolarisation_axial(alpha: float) -> float:
    """N_z of a spheroid with aspect ratio alpha = Z/R (prolate > 1 > oblate)."""
    if abs(alpha - 1.0) < 1e-9:
        return 1.0 / 3.0
    if alpha > 1.0:
        e = math.sqrt(1.0 - 1.0 / alpha**2)
        return (1.0 - e * e) / e**3 * (math.atanh(e) - e)
    e = math.sqrt(1.0 - alpha**2)
    return (1.0 / e**2) * (1.0 - math.sqrt(1.0 - e * e) / e * math.asin(e))


def turner_q1(alpha: float) -> float:
    """Turner's form of N_z for a prolate spheroid (alpha > 1), for cross-checking."""
    x = alpha / math.sqrt(alpha**2 - 1.0)
    return ((x / 2.0) * math.log((x + 1.0) / (x - 1.0)) - 1.0) / (alpha**2 - 1.0)


def aspect_ratio(k_r: float, k_z: float) -> float:
    """alpha = Z/R of the cold-fluid spheroid for radial / axial spring constants."""
    target = k_z / (2.0 * k_r + k_z)
    if not 0.0 < target < 1.0:
        raise ValueError(f"no confined spheroid for k_r = {k_r}, k_z = {k_z}")
    return brentq(lambda a: depolarisation_axial(a) - target, 1e-4, 1e4, xtol=1e-12)


def spheroid(n_ions: int, k_r: float, k_z: float, charge: float = 1.0,
             coulomb: float = 1.0) -> dict:
    """Density, radius, half-length and aspect ratio of the cold-fluid spheroid.

    In the dimensionless units of :mod:`.dynamics` (coulomb = 1, springs in units of k_z):
    the density is n0 = (2 k_r + k_z) / (4 pi coulomb charge^2) ions per l0^3.
    """
    n0 = (2.0 * k_r + k_z) / (4.0 * math.pi * coulomb * charge**2)
    alpha = aspect_ratio(k_r, k_z)
    radius = (3.0 * n_ions / (4.0 * math.pi * n0 * alpha)) ** (1.0 / 3.0)
    return {"density": n0, "radius": radius, "half_length": alpha * radius, "aspect": alpha,
            "wigner_seitz": (3.0 / (4.0 * math.pi * n0)) ** (1.0 / 3.0)}
