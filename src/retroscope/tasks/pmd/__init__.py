"""The ``pmd`` task (in progress): H2+ and HeH+ in a few-cycle 800-nm pulse, their
photoelectron momentum maps from the 2D TDSE, after Shvetsov-Shilovski & Lein, PRA 107,
033106 (2023). Plain functions with explicit units, usable from a notebook:

- :func:`ground_state` (bohr, degrees) -> (energy in hartree, wave function on the preset's
  grid);
- :func:`momentum_map` (bohr, W/cm^2, rad, degrees) -> (k_x, k_y in a.u., the map);
- :mod:`.focal`: focal-volume averaging of maps (Eqs. 5-6), their interpolation in the (R, I0)
  plane, and interpolated maps stored as derived (training-only) rows.

:class:`.task.PmdTask` (registered as ``pmd``) plugs them into the pipeline.
"""

from __future__ import annotations

import numpy as np

from retroscope.tasks.pmd.maps import KX_AU, KY_AU, momentum_maps
from retroscope.tasks.pmd.presets import get_preset
from retroscope.tasks.pmd.task import PmdTask
from retroscope.tasks.pmd.tdse import Grid, imaginary_time_ground_state, potentials

TASK = PmdTask()

__all__ = ["TASK", "PmdTask", "ground_state", "momentum_map"]


def ground_state(r_bohr: float, alpha_deg: float = 0.0, molecule: str = "H2+",
                 preset: str = "fast") -> tuple[float, np.ndarray]:
    """The field-free ground state of the model molecule (imaginary time on the preset's
    grid): (energy in hartree, psi (nx, ny) complex128 normalised on the grid)."""
    p = get_preset(preset)
    grid = Grid(p.nx, p.ny, p.dx)
    energy, psi = imaginary_time_ground_state(potentials(grid, r_bohr, alpha_deg, molecule),
                                              grid, dtau=p.dtau)
    return float(energy[0]), psi[0].numpy()


def momentum_map(r_bohr: float, intensity_w_cm2: float, cep_rad: float = 0.0,
                 alpha_deg: float = 0.0, molecule: str = "H2+",
                 preset: str = "fast") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One photoelectron momentum map (mask method, :mod:`.maps`): (k_x (256,), k_y (128,)
    in a.u., the map (256, 128), probability per a.u.^2)."""
    maps = momentum_maps(r_bohr, intensity_w_cm2, cep_rad, alpha_deg, molecule, preset)
    return KX_AU.copy(), KY_AU.copy(), maps["pmd"][0]
