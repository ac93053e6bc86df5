"""Targets of the diffraction task: orientation quaternion + circumradius, and their errors.

Encoding (Stielow et al. 2020, Sec. 3 and App. C): the network predicts five numbers, the four
quaternion components (x, y, z, w; scipy's scalar-last order) of the orientation reduced into
the fundamental domain of the icosahedral group, and the circumradius. Each is scaled by its
range: the span of the fundamental domain along that quaternion component, and the radius
interval. The training loss is then the paper's error measure, squared.

Errors (App. C): per parameter the absolute error divided by the same range; per pattern the
mean and the maximum of the five relative errors. Beyond the paper: the symmetry-aware
geodesic orientation error in degrees and the radius error in nm.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from retroscope.core.params import Orientation, ParameterSpace, Scalar
from retroscope.core.targets import Targets
from retroscope.tasks.diffraction import symmetry

QUAT_COLUMNS = ("q_x", "q_y", "q_z", "q_w")


class OrientationRadiusTargets(Targets):
    """(q_x, q_y, q_z, q_w, radius_nm) scaled to the ranges of the fundamental domain."""

    def __init__(self, space: ParameterSpace, orientation: str = "orientation",
                 radius: str = "radius_nm") -> None:
        self.space = space
        self.orientation = orientation
        self.radius = radius
        o = space[orientation]
        r = space[radius]
        assert isinstance(o, Orientation) and isinstance(r, Scalar)
        self.group = o.group
        self.radius_low, self.radius_high = r.low, r.high
        self.columns = QUAT_COLUMNS + (radius,)
        self.units = ("1", "1", "1", "1", r.unit)

    @cached_property
    def _domain(self) -> tuple[np.ndarray, np.ndarray]:
        # The domain holds the inverse of each of its rotations (same angle), so x, y, z are
        # symmetric about 0; w runs from cos(max angle / 2) up to 1 (the identity).
        span = np.asarray(symmetry.fundamental_domain_spans(self.group), dtype=np.float64)
        lo = np.array([-span[0] / 2, -span[1] / 2, -span[2] / 2, 1.0 - span[3]])
        hi = np.array([span[0] / 2, span[1] / 2, span[2] / 2, 1.0])
        return lo, hi

    def offset(self) -> np.ndarray:
        lo, _ = self._domain
        return np.append(lo, self.radius_low)

    def limits(self) -> np.ndarray:
        """Unit-quaternion components lie in [-1, 1]; a radius is not negative."""
        return np.array([[-1.0, 1.0]] * 4 + [[0.0, np.inf]])

    def scale(self) -> np.ndarray:
        lo, hi = self._domain
        return np.append(hi - lo, self.radius_high - self.radius_low)

    def encode(self, record) -> np.ndarray:
        q = symmetry.reduce_to_fundamental(np.asarray(record[self.orientation]), self.group)
        phys = np.column_stack([q, np.asarray(record[self.radius], dtype=np.float64)])
        return (phys - self.offset()) / self.scale()

    def decode(self, y: np.ndarray) -> dict[str, np.ndarray]:
        phys = np.asarray(y, dtype=np.float64) * self.scale() + self.offset()
        q = phys[:, :4]
        norm = np.linalg.norm(q, axis=1, keepdims=True)
        q = np.where(norm > 1e-9, q / np.maximum(norm, 1e-12), np.array([0, 0, 0, 1.0]))
        return {self.orientation: symmetry.reduce_to_fundamental(q, self.group),
                self.radius: phys[:, 4]}

    @cached_property
    def _group_quats(self) -> torch.Tensor:
        return torch.as_tensor(symmetry.group(self.group).as_quat(), dtype=torch.float32)

    def align(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Replace each target orientation by the symmetry-equivalent that minimises the loss.

        The candidates are ``+-(q g)`` for the 60 group elements ``g`` (all describe the same
        cluster); the one whose *encoded* quaternion is closest to the prediction is kept, so
        the loss is the minimum of the squared error over the symmetry. Near a face of the
        fundamental domain this is the equivalent just across it; far from the domain (early
        in training) the in-domain target wins, because the w axis is scaled by its small
        range. The radius is untouched.
        """
        scale = torch.as_tensor(self.scale()[:4], dtype=target.dtype, device=target.device)
        offset = torch.as_tensor(self.offset()[:4], dtype=target.dtype, device=target.device)
        q_t = target[:, :4] * scale + offset
        group = self._group_quats.to(target)
        cand = symmetry.quaternion_multiply_torch(q_t[:, None, :], group[None, :, :])
        cand = torch.cat([cand, -cand], dim=1)  # (B, 2G, 4)
        enc = (cand - offset) / scale
        dist = ((enc - pred[:, None, :4]) ** 2).sum(-1)
        best = dist.argmin(dim=1)
        chosen = enc[torch.arange(len(enc), device=enc.device), best]
        return torch.cat([chosen, target[:, 4:]], dim=1)


def diffraction_errors(targets: OrientationRadiusTargets, true, pred) -> dict[str, np.ndarray]:
    """Per-pattern errors of App. C (in %) plus geodesic orientation and radius errors."""
    t = targets.encode(true)
    p = targets.encode(pred)
    rel = np.abs(p - t) * 100.0
    o = targets.orientation
    out = {f"rel_error_{c}_percent": rel[:, j] for j, c in enumerate(targets.columns)}
    out["mean_rel_error_percent"] = rel.mean(axis=1)
    out["max_rel_error_percent"] = rel.max(axis=1)
    out["orientation_error_deg"] = symmetry.misorientation_deg(pred[o], true[o], targets.group)
    out["radius_error_nm"] = np.abs(pred[targets.radius] - true[targets.radius])
    return out
