"""The ``explosion`` task (in progress): molecular geometry from Coulomb-explosion ion
momenta, after MOLEXA (Li et al., Nat. Commun. 2026). The physics as plain functions in
atomic units, usable from a notebook:

- :func:`molecule` (name) -> (element symbols, positions in bohr): ASE's g2 geometries;
- :func:`explode` (positions in bohr, charges, masses in u, optional ionisation times in
  a.u.) -> asymptotic momenta in a.u.; :func:`explode_batch` for padded batches;
- :mod:`.charges` (final charges and charge-up times), :mod:`.frame` (the momentum frame,
  Kabsch alignment).
"""

from __future__ import annotations

from retroscope.tasks.explosion.dynamics import explode, explode_batch, explode_reference
from retroscope.tasks.explosion.molecules import molecule
from retroscope.tasks.explosion.task import ExplosionTask

TASK = ExplosionTask()

__all__ = ["TASK", "ExplosionTask", "explode", "explode_batch", "explode_reference",
           "molecule"]
