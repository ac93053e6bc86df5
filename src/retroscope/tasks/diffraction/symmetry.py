"""Orientations of symmetric clusters: point groups, fundamental domain, misorientation.

Quaternions are scipy's scalar-last ``(x, y, z, w)``; composition ``r * g`` means "apply g,
then r" (``(r * g).apply(v) == r.apply(g.apply(v))``), i.e. the Hamilton product
``q_r q_g``. A body with point group G (its rotations g map it onto itself) looks the same in the
orientations ``r`` and ``r * g``, so an orientation is the coset ``r G``. Its representative in
the fundamental domain is the element of ``r G`` with the smallest rotation angle, with w >= 0
(Stielow et al. 2020, App. A: for G = I the domain is a dodecahedron in the imaginary part of the
quaternion, largest angle about 44.5 deg). Haar-uniform sampling follows Shoemake (1992,
"Uniform random rotations", Graphics Gems III), as ``Rotation.random`` does.
"""

from __future__ import annotations

from functools import cache, lru_cache

import numpy as np
from scipy.optimize import nnls
from scipy.spatial import HalfspaceIntersection
from scipy.spatial.transform import Rotation


@cache
def _group(name: str | None) -> Rotation:
    return Rotation.identity(1) if name is None else Rotation.create_group(name)


def group(name: str | None) -> Rotation:
    """The rotations of a scipy point group (``'I'``, ``'O'``, ``'T'``, ``'D5'``, ``'C2'`` ...);
    ``None`` (no symmetry) gives the identity alone. Cached."""
    return _group(name)


def icosahedral_group() -> Rotation:
    """The 60 rotations mapping the icosahedron with vertices at the cyclic permutations of
    (0, +-1, +-phi) onto itself."""
    return group("I")


def _as_rotation(quat_xyzw) -> Rotation:
    return Rotation.from_quat(np.asarray(quat_xyzw, dtype=np.float64).reshape(-1, 4))


def reduce_to_fundamental(quat_xyzw, group: str | None = "I") -> np.ndarray:
    """The equivalent quaternions ``q g`` (g in the group) of smallest angle, w >= 0, (n, 4)."""
    return _as_rotation(quat_xyzw).reduce(right=_group(group)).as_quat(canonical=True)


def sample_fundamental(n: int, rng: np.random.Generator, group: str | None = "I") -> np.ndarray:
    """``n`` Haar-uniform orientations reduced into the fundamental domain, (n, 4)."""
    return Rotation.random(n, rng=rng).reduce(right=_group(group)).as_quat(canonical=True)


def misorientation_deg(q_pred, q_true, group: str | None = "I") -> np.ndarray:
    """Smallest rotation angle (deg) taking ``q_pred`` to any equivalent of ``q_true``, (n,).

    The geodesic distance on SO(3) modulo the group: ``min_g angle(pred^-1 true g)``; conjugation
    leaves angles unchanged, so it is symmetric in its arguments and invariant under ``q g``.
    """
    rel = _as_rotation(q_pred).inv() * _as_rotation(q_true)
    return np.degrees(rel.reduce(right=_group(group)).magnitude())


@lru_cache(maxsize=32)
def _spans(group: str | None) -> np.ndarray:
    g = _group(group).as_quat()
    g = g[np.abs(g[:, 3]) < 1.0 - 1e-12]  # drop the identity
    e_w = np.array([0.0, 0.0, 0.0, 1.0])
    cone = np.vstack([e_w, e_w - g, e_w + g])  # rows a: the domain is {q : a . q >= 0}

    def support(direction: np.ndarray) -> float:
        # max over {|q| <= 1} of direction . q inside the cone is |projection on the cone|
        # (Moreau): direction = P_cone + P_polar, with P_polar = -cone^T lam, lam >= 0.
        lam = nnls(-cone.T, direction)[0]
        return float(np.linalg.norm(direction + cone.T @ lam))

    eye = np.eye(4)
    hi = np.array([support(eye[i]) for i in range(4)])
    lo = np.array([-support(-eye[i]) for i in range(3)] + [_min_w(g)])
    return hi - lo


def _min_w(g: np.ndarray, bound: float = 1e6) -> float:
    """Smallest w in the domain: w = 1 / sqrt(1 + |rho|^2) at the farthest vertex of the
    Rodrigues-space polytope {rho : |rho . g_v + g_w| <= 1} (0 when it is unbounded)."""
    box = np.hstack([np.vstack([np.eye(3), -np.eye(3)]), -bound * np.ones((6, 1))])
    planes = np.vstack([np.hstack([g[:, :3], g[:, 3:] - 1.0]),
                        np.hstack([-g[:, :3], -g[:, 3:] - 1.0]), box])
    rho_max = np.linalg.norm(HalfspaceIntersection(planes, np.zeros(3)).intersections,
                             axis=1).max()
    return 0.0 if rho_max > 0.5 * bound else float(1.0 / np.sqrt(1.0 + rho_max**2))


def fundamental_domain_spans(group: str | None = "I") -> np.ndarray:
    """Exact span (max - min) of x, y, z, w over the fundamental domain {w >= |q . g|}, (4,).

    The normalisation of quaternion errors in Stielow et al. 2020, App. C. The extremes of x, y,
    z are support values of a convex cone on the unit ball (projection by NNLS); w ranges from 1
    (identity) down to its value at the farthest vertex of the Rodrigues polytope. Cached.
    """
    return _spans(group).copy()


def quaternion_multiply_torch(a, b):
    """Hamilton product ``a b`` of scalar-last quaternions (..., 4), the quaternion of scipy's
    ``Rotation(a) * Rotation(b)``."""
    import torch

    av, aw = a[..., :3], a[..., 3:]
    bv, bw = b[..., :3], b[..., 3:]
    vec = aw * bv + bw * av + torch.linalg.cross(av, bv, dim=-1)
    scalar = aw * bw - (av * bv).sum(-1, keepdim=True)
    return torch.cat([vec, scalar], dim=-1)


def align_to_reference_torch(q_target, q_ref, group_quats):
    """For each row, the element of ``{+-(q_target g) : g in group}`` closest to ``q_ref``.

    ``q_target`` and ``q_ref`` are (B, 4) unit quaternions (x, y, z, w), ``group_quats`` (G, 4).
    For unit quaternions ``|a - b|^2 = 2 - 2 a.b``: the closest candidate has the largest
    ``|a.b|`` and the sign of ``a.b``. Used by symmetry-aware losses (the target is replaced by
    its physically equivalent version nearest to the prediction).
    """
    import torch

    group_quats = torch.as_tensor(group_quats, dtype=q_target.dtype, device=q_target.device)
    cand = quaternion_multiply_torch(q_target[:, None, :], group_quats[None, :, :])  # (B, G, 4)
    dots = (cand * q_ref[:, None, :]).sum(-1)  # (B, G)
    best = dots.abs().argmax(dim=1)
    rows = torch.arange(len(q_target), device=q_target.device)
    sign = torch.where(dots[rows, best] < 0, -1.0, 1.0).to(q_target.dtype)
    return cand[rows, best] * sign[:, None]
