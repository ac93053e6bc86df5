"""The momentum frame the model predicts in, and Kabsch alignment for the metrics.

Canonical frame (MOLEXA's rule, Li et al., Nat. Commun. 2026): x along the momentum of the
heaviest-element ion (highest Z; among identical elements the highest charge, then the
largest momentum, so that the choice does not depend on the order the ions are listed in),
the xy-plane holding the ion whose momentum is most orthogonal to that axis (its y component
positive; any axis perpendicular to x when all momenta are parallel), z = x cross y. The
frame is a proper rotation R (rows: the frame's axes in lab
coordinates); momenta and positions both turn with it, v_frame = R v_lab.

Kabsch (W. Kabsch, Acta Cryst. A 32, 922 (1976)): the proper rotation that best superposes
two centred point sets (a mirror image is not a rotation and does not align).
"""

from __future__ import annotations

import numpy as np


def canonical_rotation(momenta_au: np.ndarray, z: np.ndarray, charges: np.ndarray,
                       mask: np.ndarray | None = None) -> np.ndarray:
    """Rotation matrices (B, 3, 3) (or (3, 3) for one event) taking lab vectors into the
    momentum frame of each event; ``mask`` marks the detected ions (at least two with
    non-parallel momenta)."""
    p = np.asarray(momenta_au, float)
    single = p.ndim == 2
    if single:
        p, z, charges = p[None], np.asarray(z)[None], np.asarray(charges)[None]
        mask = None if mask is None else np.asarray(mask)[None]
    z = np.asarray(z, float)
    charges = np.asarray(charges, float)
    mask = np.ones(p.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    if (mask.sum(axis=1) < 2).any():
        raise ValueError("the momentum frame needs at least two detected ions per event")
    norm = np.linalg.norm(p, axis=-1)
    # lexicographic (Z, charge, |p|) as one key: Z and charge are small integers
    key = np.where(mask, (z * 1000.0 + charges) * 1e6 + np.minimum(norm, 1e6 - 1), -np.inf)
    anchor = np.argmax(key, axis=1)
    rows = np.arange(len(p))
    x = p[rows, anchor] / norm[rows, anchor, None]
    cos = np.abs(np.einsum("bnk,bk->bn", p, x)) / np.maximum(norm, 1e-300)
    cos = np.where(mask & (norm > 0), cos, np.inf)
    cos[rows, anchor] = np.inf
    second = np.argmin(cos, axis=1)
    y = p[rows, second] - np.einsum("bk,bk->b", p[rows, second], x)[:, None] * x
    # all momenta parallel (a linear molecule at rest): any perpendicular axis will do
    fallback = np.cross(x, np.eye(3)[np.argmin(np.abs(x), axis=1)])
    y = np.where((np.linalg.norm(y, axis=1) < 1e-9 * norm[rows, second])[:, None], fallback, y)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    rot = np.stack([x, y, np.cross(x, y)], axis=1)
    return rot[0] if single else rot


def to_frame(vectors: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Vectors (..., N, 3) in lab coordinates turned into the frame of ``rotation``."""
    return np.einsum("...ij,...nj->...ni", rotation, vectors)


def kabsch(mobile: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The proper rotation R (3, 3) and translation t minimising sum |R x + t - y|^2 over
    the rows x of ``mobile`` and y of ``target`` (N, 3)."""
    a = np.asarray(mobile, float)
    b = np.asarray(target, float)
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    h = (a - ca).T @ (b - cb)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, cb - rot @ ca


def aligned_rmsd(mobile: np.ndarray, target: np.ndarray) -> float:
    """Root-mean-square distance after the Kabsch superposition (same units as the input)."""
    rot, shift = kabsch(mobile, target)
    diff = np.asarray(mobile, float) @ rot.T + shift - np.asarray(target, float)
    return float(np.sqrt((diff ** 2).sum(axis=1).mean()))
