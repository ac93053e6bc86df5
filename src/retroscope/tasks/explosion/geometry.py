"""Chemistry of a predicted geometry: bonds, bond lengths and angles, and the MOLEXA
criterion "an atom within half its shortest bond".

Bonds are read off the true geometry: two atoms are bonded when closer than 1.2 times the
sum of their covalent radii (Cordero et al., Dalton Trans. 2008, 2832; ASE's table).
"""

from __future__ import annotations

import numpy as np

#: bond when r_ij < BOND_FACTOR (r_cov,i + r_cov,j)
BOND_FACTOR = 1.2


def covalent_radii_bohr(z: np.ndarray) -> np.ndarray:
    from ase.data import covalent_radii

    from retroscope.tasks.explosion.molecules import BOHR_PER_ANGSTROM

    return covalent_radii[np.asarray(z, dtype=int)] * BOHR_PER_ANGSTROM


def bonds(z: np.ndarray, positions_bohr: np.ndarray) -> list[tuple[int, int]]:
    """Bonded pairs (i < j) of one molecule (atoms with Z > 0)."""
    z = np.asarray(z, dtype=int)
    idx = np.flatnonzero(z > 0)
    r = covalent_radii_bohr(z[idx])
    d = np.linalg.norm(positions_bohr[idx, None] - positions_bohr[None, idx], axis=-1)
    close = d < BOND_FACTOR * (r[:, None] + r[None, :])
    return [(int(idx[a]), int(idx[b])) for a, b in zip(*np.nonzero(np.triu(close, 1)))]


def bond_angles(pairs: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(i, centre, k) for every two bonds sharing an atom."""
    out = []
    for c in sorted({a for p in pairs for a in p}):
        nbrs = sorted({a if b == c else b for a, b in pairs if c in (a, b)})
        out += [(i, c, k) for n, i in enumerate(nbrs) for k in nbrs[n + 1:]]
    return out


def angle_deg(pos: np.ndarray, i: int, c: int, k: int) -> float:
    u, v = pos[i] - pos[c], pos[k] - pos[c]
    cos = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def geometry_errors(z: np.ndarray, true: np.ndarray, pred: np.ndarray) -> dict:
    """Per event (n): mean |bond length error| (bohr), mean |bond angle error| (degrees)
    and the share of atoms within half their shortest bond of the truth; NaN where a
    molecule has no bond (or no angle)."""
    n = len(z)
    out = {"bond_length_error_bohr": np.full(n, np.nan),
           "bond_angle_error_deg": np.full(n, np.nan),
           "atoms_within_half_bond": np.full(n, np.nan)}
    for e in range(n):
        pairs = bonds(z[e], true[e])
        if not pairs:
            continue
        length = lambda p, a, b: np.linalg.norm(p[a] - p[b])  # noqa: E731
        out["bond_length_error_bohr"][e] = np.mean([abs(length(pred[e], a, b)
                                                        - length(true[e], a, b))
                                                    for a, b in pairs])
        angles = bond_angles(pairs)
        if angles:
            out["bond_angle_error_deg"][e] = np.mean([abs(angle_deg(pred[e], *t)
                                                          - angle_deg(true[e], *t))
                                                      for t in angles])
        shortest = {}
        for a, b in pairs:
            d = length(true[e], a, b)
            shortest[a] = min(shortest.get(a, np.inf), d)
            shortest[b] = min(shortest.get(b, np.inf), d)
        atoms = np.array(sorted(shortest))
        err = np.linalg.norm(pred[e, atoms] - true[e, atoms], axis=1)
        out["atoms_within_half_bond"][e] = float(np.mean(
            err < 0.5 * np.array([shortest[a] for a in atoms])))
    return out


def bond_lengths(z: np.ndarray, true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) length of every bond of every event, bohr."""
    t, p = [], []
    for e in range(len(z)):
        for a, b in bonds(z[e], true[e]):
            t.append(np.linalg.norm(true[e, a] - true[e, b]))
            p.append(np.linalg.norm(pred[e, a] - pred[e, b]))
    return np.asarray(t), np.asarray(p)
