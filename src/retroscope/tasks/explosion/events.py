"""Simulated Coulomb-explosion events, padded to :data:`MAX_ATOMS` ions, for the shards.

One event: a molecule's equilibrium geometry (:mod:`.molecules`), 1 to k atoms displaced
(MOLEXA's conformers) and jittered, turned by a random orientation into the lab frame, its
final charges drawn per element (:mod:`.charges`), charged at once (cheap mode) or unit
charge by unit charge during the pulse (precise mode), and exploded (:mod:`.dynamics`).
Stored per event (arrays padded with zeros, ``mask`` marking the real atoms):

=====================  ===============  ==================================================
``ions``               (10, 5) float32  what a detector records per ion: atomic number Z,
                                        charge q, momentum p_x, p_y, p_z (a.u., lab
                                        frame); a padded row is all zero
``mass_u``             (10,) float32    atomic mass (u)
``position_bohr``      (10, 3) float32  position before the blast, lab frame, centroid 0
``mask``               (10,) bool       a real atom
``ionisation_times``   (10, Q) float32  a.u., each unit charge's arrival in time order (the
                                        first q of the row count; all 0 in the cheap mode)
=====================  ===============  ==================================================
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from retroscope.tasks.explosion.charges import draw_charges, ionisation_times
from retroscope.tasks.explosion.dynamics import integrate
from retroscope.tasks.explosion.molecules import (MAX_ATOMS, atomic_numbers, conformer,
                                                  masses_u, molecule)

#: the stored arrays of one event
EVENT_KEYS = ("ions", "mass_u", "position_bohr", "mask", "ionisation_times")
#: the columns of ``ions``
ION_COLUMNS = ("z", "charge", "px_au", "py_au", "pz_au")


def simulate_events(names, displaced, displacement_angstrom, pulse_fwhm_fs, orientation,
                    rng: np.random.Generator, precise: bool, auger_fs: float,
                    jitter_angstrom: float, charge_ranges: dict,
                    max_charge: int) -> dict[str, np.ndarray]:
    """Events for rows of parameters: molecule names, the number of displaced atoms and
    their displacement (angstrom), the pulse FWHM (fs; precise mode only) and the lab
    orientation (quaternions, scalar last). Deterministic given ``rng``."""
    n = len(names)
    out = {"z": np.zeros((n, MAX_ATOMS), np.int16),
           "charge": np.zeros((n, MAX_ATOMS), np.int16),
           "mass_u": np.zeros((n, MAX_ATOMS), np.float32),
           "position_bohr": np.zeros((n, MAX_ATOMS, 3), np.float64),
           "mask": np.zeros((n, MAX_ATOMS), bool),
           "ionisation_times": np.zeros((n, MAX_ATOMS, max_charge))}
    turn = Rotation.from_quat(np.asarray(orientation, float)).as_matrix()
    for i, name in enumerate(names):
        symbols, eq = molecule(name)
        k = len(symbols)
        if k > MAX_ATOMS:
            raise ValueError(f"{name} has {k} atoms; events hold at most {MAX_ATOMS}")
        d = float(displacement_angstrom[i])
        pos = conformer(eq, rng, max_displaced=int(displaced[i]), displacement_angstrom=(d, d),
                        jitter_angstrom=jitter_angstrom)
        q = draw_charges(symbols, rng, charge_ranges)
        if q.max() > max_charge:
            raise ValueError(f"a charge of {q.max()} exceeds max_charge {max_charge}")
        out["z"][i, :k] = atomic_numbers(symbols)
        out["charge"][i, :k] = q
        out["mass_u"][i, :k] = masses_u(symbols)
        out["position_bohr"][i, :k] = pos @ turn[i].T
        out["mask"][i, :k] = True
        if precise:
            times = ionisation_times(q, rng, float(pulse_fwhm_fs[i]), auger_fs)
            out["ionisation_times"][i, :k, :times.shape[1]] = np.nan_to_num(times)
    exploded = integrate(out["position_bohr"], out["charge"], out["mass_u"],
                         out["ionisation_times"] if precise else None,
                         mask=out["mask"])
    z, charge = out.pop("z"), out.pop("charge")
    out["ions"] = np.concatenate([z[..., None], charge[..., None], exploded.momenta_au],
                                 axis=-1).astype(np.float32)
    out["position_bohr"] = out["position_bohr"].astype(np.float32)
    out["ionisation_times"] = out["ionisation_times"].astype(np.float32)
    return out
