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

from retroscope.learners.geometry.evaluation import kabsch

__all__ = ["aligned_rmsd", "canonical_rotation", "kabsch", "to_frame"]


def canonical_rotation(momenta_au: np.ndarray, z: np.ndarray, charges: np.ndarray,
                       mask: np.ndarray | None = None) -> np.ndarray:
    """Rotation matrices (B, 3, 3) (or (3, 3) for one event) taking lab vectors into the
    momentum frame of each event; ``mask`` marks the detected ions (at least two). The rule
    is the network's own (:func:`retroscope.models.ion_transformer.momentum_frame`), in
    float64."""
    import torch

    from retroscope.models.ion_transformer import momentum_frame

    p = np.asarray(momenta_au, float)
    single = p.ndim == 2
    if single:
        p, z, charges = p[None], np.asarray(z)[None], np.asarray(charges)[None]
        mask = None if mask is None else np.asarray(mask)[None]
    q = np.asarray(charges, float)
    if mask is not None:
        q = np.where(np.asarray(mask, bool), q, 0.0)
    if (((np.asarray(z) > 0) & (q > 0)).sum(axis=1) < 2).any():
        raise ValueError("the momentum frame needs at least two detected ions per event")
    ions = torch.from_numpy(np.concatenate([np.asarray(z, float)[..., None], q[..., None], p],
                                           axis=-1))
    rot = momentum_frame(ions).numpy()
    return rot[0] if single else rot


def to_frame(vectors: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Vectors (..., N, 3) in lab coordinates turned into the frame of ``rotation``."""
    return np.einsum("...ij,...nj->...ni", rotation, vectors)


def aligned_rmsd(mobile: np.ndarray, target: np.ndarray) -> float:
    """Root-mean-square distance after the Kabsch superposition (same units as the input)."""
    rot, shift = kabsch(mobile, target)
    diff = np.asarray(mobile, float) @ rot.T + shift - np.asarray(target, float)
    return float(np.sqrt((diff ** 2).sum(axis=1).mean()))
