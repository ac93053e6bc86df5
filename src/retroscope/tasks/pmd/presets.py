"""Numerical presets of the TDSE (hashed into a data set's manifest with the task's settings).

``paper`` is the grid of Shvetsov-Shilovski & Lein (2023), Sec. II B: x in [-400, 400],
y in [-200, 200] bohr on 4096 x 2048 points (dx = 0.1953), dt = 0.0184, propagation to
4 t_f (t_f the end of the pulse), an absorbing mask M = exp(-beta (r - r_b)^2) beyond
r_b = 150 bohr with beta = 1e-4 per step, i.e. 5.4e-3 per a.u. of time (4-8 h per map on
8 cores). The reduced presets keep its physics and shrink the box to what an 800-nm electron
of up to 4e14 W/cm^2 needs: momenta up to ~3.9 a.u. (pi/dx >= 5 a.u., dx <= 0.5) and
excursions of ~54 bohr along the polarisation before it returns. Their absorber is a box, not
a circle: it starts ``mask_x`` bohr from the centre along x (no closer than ~60-70 bohr at
the highest intensities) and ``mask_y`` along y, where the electron's excursion is small, so
that a box half as wide as it is long still has room to absorb. They run ``after_pulse`` a.u.
past the end of the pulse, absorbing every ``mask_every`` steps with the paper's strength per
unit time. Measured cost and fidelity: ``benchmarks/pmd.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the paper's absorber strength per a.u. of time (beta = 1e-4 per step of 0.0184)
PAPER_BETA_PER_TIME = 1e-4 / 0.0184


@dataclass(frozen=True)
class Preset:
    """One numerical setting of the TDSE: the grid (nx x ny points of dx bohr, x along the
    polarisation), the time step dt, where the absorber starts (``mask_x``, ``mask_y``
    bohr; ``radial``: a circle of radius ``mask_x``, the paper's) and its strength beta (per
    bohr^2 per a.u. of time) applied every ``mask_every`` steps, the time propagated after
    the pulse (a.u.), and the ground-state imaginary time step."""

    name: str
    nx: int
    ny: int
    dx: float
    dt: float
    mask_x: float
    mask_y: float
    after_pulse: float
    mask_every: int = 10
    radial: bool = False
    beta_per_time: float = PAPER_BETA_PER_TIME
    dtau: float = 0.05
    #: the bound region (bohr) left out of the final inner continuum (see maps.py)
    inner_radius: float = 15.0

    def __post_init__(self) -> None:
        half_x, half_y = self.nx * self.dx / 2, self.ny * self.dx / 2
        if not (0 < self.mask_x < half_x and 0 < self.mask_y < half_y):
            raise ValueError(f"preset {self.name}: the absorber must start inside the box "
                             f"(half-widths {half_x:.1f} x {half_y:.1f} bohr)")


PRESETS = {
    "paper": Preset("paper", 4096, 2048, 800 / 4096, 0.0184, 150.0, 150.0,
                    after_pulse=3 * 220.7, mask_every=1, radial=True),
    "production": Preset("production", 512, 512, 0.4, 0.05, 70.0, 70.0, after_pulse=300.0),
    "fast": Preset("fast", 384, 256, 0.5, 0.05, 70.0, 40.0, after_pulse=150.0),
    # the demo's: a box for intensities up to ~2e14 W/cm^2 (quiver radius ~23 bohr)
    "demo": Preset("demo", 128, 96, 0.5, 0.1, 22.0, 16.0, after_pulse=60.0, mask_every=5,
                   inner_radius=12.0),
    # for tests of the machinery only: too coarse for physics (a few hundredths of a second
    # per map)
    "smoke": Preset("smoke", 64, 48, 0.6, 0.15, 12.0, 8.0, after_pulse=30.0, mask_every=4,
                    inner_radius=5.0),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}") from None
