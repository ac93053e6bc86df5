"""Reference geometries of small molecules, and conformers around them.

The equilibrium geometries are ASE's g2 collection (MP2/6-31G(d); Curtiss et al., J. Chem.
Phys. 106, 1063 (1997)), read offline through ``ase.build.molecule``: water has O-H
0.969 angstrom and 104.0 degrees. Positions are returned in bohr (1 angstrom = 1.8897 bohr,
from scipy.constants), relative to the geometric centroid. Conformers follow MOLEXA's data
(Li et al., Nat. Commun. 2026): the equilibrium geometry with 1 to k atoms displaced by
0.1-0.3 angstrom in random directions, plus a small Gaussian jitter of every atom standing
in for the zero-point spread.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import constants

#: bohr per angstrom (CODATA, scipy.constants): 1.8897261
BOHR_PER_ANGSTROM = 1e-10 / constants.physical_constants["Bohr radius"][0]
#: electron masses per unified atomic mass unit (CODATA): 1822.888
ELECTRON_MASSES_PER_U = constants.physical_constants["atomic mass constant"][0] / constants.m_e
#: the elements MOLEXA's data hold
ELEMENTS = ("H", "C", "N", "O", "F", "Si", "P", "S", "Cl")
#: events are padded to this many atoms
MAX_ATOMS = 10


def _ase_molecule(name: str):
    try:
        from ase.build import molecule as build
    except ImportError as err:  # pragma: no cover - ase is a core dependency
        raise ImportError("the explosion task needs ase (pip install ase)") from err
    try:
        return build(name)
    except KeyError:
        raise ValueError(f"unknown molecule {name!r}: not in ASE's g2 collection "
                         f"(see retroscope.tasks.explosion.molecules.g2_names())") from None


@lru_cache(maxsize=None)
def _molecule(name: str) -> tuple[tuple[str, ...], np.ndarray]:
    atoms = _ase_molecule(name)
    symbols = tuple(atoms.get_chemical_symbols())
    unknown = sorted(set(symbols) - set(ELEMENTS))
    if unknown:
        raise ValueError(f"molecule {name!r} holds {unknown}, outside {ELEMENTS}")
    positions = np.asarray(atoms.positions, float) * BOHR_PER_ANGSTROM
    positions = positions - positions.mean(axis=0)
    positions.setflags(write=False)
    return symbols, positions


def molecule(name: str) -> tuple[tuple[str, ...], np.ndarray]:
    """The g2 equilibrium geometry of ``name`` (e.g. ``"H2O"``, ``"CH3CH2OH"``): its element
    symbols and positions of shape (N, 3) in bohr, centred on the geometric centroid."""
    symbols, positions = _molecule(name)
    return symbols, positions.copy()


@lru_cache(maxsize=None)
def g2_names(max_atoms: int = 9, min_atoms: int = 2,
             elements: tuple[str, ...] = ELEMENTS) -> tuple[str, ...]:
    """Names of the g2 molecules with ``min_atoms`` to ``max_atoms`` atoms, all of
    ``elements`` (123 with 2-9 atoms of MOLEXA's nine elements, single atoms excluded)."""
    from ase.collections import g2

    names = []
    for name in g2.names:
        symbols = g2[name].get_chemical_symbols()
        if min_atoms <= len(symbols) <= max_atoms and set(symbols) <= set(elements):
            names.append(name)
    return tuple(sorted(names))


def atomic_numbers(symbols) -> np.ndarray:
    """Z of each element symbol."""
    from ase.data import atomic_numbers as table

    return np.array([table[s] for s in symbols], dtype=np.int64)


def masses_u(symbols) -> np.ndarray:
    """Standard atomic masses (u) of each element symbol (ASE's table, IUPAC)."""
    from ase.data import atomic_masses, atomic_numbers as table

    return np.array([atomic_masses[table[s]] for s in symbols], dtype=float)


def conformer(positions_bohr: np.ndarray, rng: np.random.Generator, max_displaced: int = 2,
              displacement_angstrom: tuple[float, float] = (0.1, 0.3),
              jitter_angstrom: float = 0.05) -> np.ndarray:
    """A conformer near ``positions_bohr`` (N, 3): 1 to ``max_displaced`` atoms (at most N)
    moved by a length uniform in ``displacement_angstrom`` along random directions, every
    atom then jittered by a Gaussian of ``jitter_angstrom`` per coordinate; re-centred on the
    centroid. Returns bohr."""
    pos = np.array(positions_bohr, float)
    n = len(pos)
    lo, hi = displacement_angstrom
    if not 0 <= lo <= hi:
        raise ValueError(f"displacement_angstrom must be 0 <= low <= high, got {displacement_angstrom}")
    if max_displaced > 0:
        k = int(rng.integers(1, min(max_displaced, n) + 1))
        moved = rng.choice(n, size=k, replace=False)
        direction = rng.normal(size=(k, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        length = rng.uniform(lo, hi, size=(k, 1)) * BOHR_PER_ANGSTROM
        pos[moved] += direction * length
    if jitter_angstrom > 0:
        pos += rng.normal(scale=jitter_angstrom * BOHR_PER_ANGSTROM, size=pos.shape)
    return pos - pos.mean(axis=0)
