"""Soft-core potentials of the 2D model molecules (atomic units), Shvetsov-Shilovski & Lein,
PRA 107, 033106 (2023).

H2+, Eq. (3): two protons at +-(R/2)(cos alpha, sin alpha),

    V(x, y) = -1/sqrt((x - R/2 cos a)^2 + (y - R/2 sin a)^2 + s)
              -1/sqrt((x + R/2 cos a)^2 + (y + R/2 sin a)^2 + s),

with the soft-core parameter s = 0.5 (the value Eq. (7) states; Eq. (3) leaves it unstated;
it gives a ground-state energy of -1.1114 a.u. at R = 2 on a fine grid).

HeH+, Eq. (7): the proton at r1 = +(R/2)(cos a, sin a), the helium nucleus at r2 = -r1
(the midpoint at the origin), beta = 1.063 (the 3D ionisation potential, 1.66 a.u., at
R = 1.4):

    V(r) = -1/sqrt((r - r1)^2 + 1/2) - (1 + exp(-beta (r - r2)^2)) / sqrt((r - r2)^2 + 1/2).
"""

from __future__ import annotations

import math

import numpy as np

SOFT_CORE = 0.5
HEH_BETA = 1.063
MOLECULES = ("H2+", "HeH+")


def nuclei(r_bohr: float, alpha_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Positions (x, y) of the two nuclei: +(R/2) e and -(R/2) e, e = (cos a, sin a)."""
    a = math.radians(alpha_deg)
    half = 0.5 * np.array([math.cos(a), math.sin(a)]) * r_bohr
    return half, -half


def potential(x: np.ndarray, y: np.ndarray, r_bohr: float, alpha_deg: float = 0.0,
              molecule: str = "H2+") -> np.ndarray:
    """V(x, y) in hartree on the points (x, y) (bohr; broadcastable arrays)."""
    if molecule not in MOLECULES:
        raise ValueError(f"molecule must be one of {MOLECULES}, got {molecule!r}")
    if r_bohr < 0:
        raise ValueError(f"internuclear distance must be >= 0 bohr, got {r_bohr}")
    (x1, y1), (x2, y2) = nuclei(r_bohr, alpha_deg)
    d1 = (x - x1) ** 2 + (y - y1) ** 2
    d2 = (x - x2) ** 2 + (y - y2) ** 2
    if molecule == "H2+":
        return -1.0 / np.sqrt(d1 + SOFT_CORE) - 1.0 / np.sqrt(d2 + SOFT_CORE)
    return (-1.0 / np.sqrt(d1 + SOFT_CORE)
            - (1.0 + np.exp(-HEH_BETA * d2)) / np.sqrt(d2 + SOFT_CORE))
