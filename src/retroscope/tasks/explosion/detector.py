"""The ion detector, drawn online per event (training only): missed ions, momentum
resolution, and the dead time that loses one of two identical ions arriving together.

A transform of the shared framework (seeded per event by the online observer), acting on
one event's tokens (N, 5) = (Z, q, p_x, p_y, p_z): a missed ion keeps its Z (the formula is
known) and loses its charge and momentum, so it becomes a query token whose position is
still a target. Micro-channel plates catch 50-70% of the ions (their open area); the
momentum resolution of a cold target is ~0.05 a.u. against fragment momenta of 50-1000 a.u.;
a multi-hit dead time of 10-15 ns loses the second of two identical ions (same mass and
charge) whose flight times, set by their momentum along the spectrometer axis (z), differ by
less than it, here stated as a difference of p_z (``dead_pz_au``). At least two ions are
always kept (an event needs two to define its frame). The lab orientation of the training
events is already uniform, and the network reads them in their momentum frame, so no
rotation is drawn here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from retroscope.core.observe.transform import Transform, check_range, rand


@dataclass(frozen=True)
class IonDetector(Transform):
    """Per event: an efficiency drawn uniformly in ``efficiency`` and each ion caught with
    it; Gaussian momentum noise of ``resolution_au`` per component plus ``relative``
    times |p|; identical ions closer than ``dead_pz_au`` in p_z: the later-listed one lost."""

    efficiency: tuple[float, float] = (1.0, 1.0)
    resolution_au: float = 0.0
    relative: float = 0.0
    dead_pz_au: float = 0.0
    min_detected: int = 2

    def __post_init__(self) -> None:
        lo, hi = self.efficiency
        check_range(self, "efficiency[0]", lo, 0.0, 1.0)
        check_range(self, "efficiency[1]", hi, lo, 1.0)
        check_range(self, "resolution_au", self.resolution_au, 0.0, 1e3)
        check_range(self, "relative", self.relative, 0.0, 1.0)
        check_range(self, "dead_pz_au", self.dead_pz_au, 0.0, 1e4)

    def __call__(self, x: Tensor, g: torch.Generator) -> Tensor:
        if x.ndim != 2 or x.shape[1] != 5:
            raise ValueError(f"expected one event's tokens (N, 5), got {tuple(x.shape)}")
        y = x.clone()
        real = y[:, 0] > 0
        detected = real & (y[:, 1] > 0)
        n = len(y)
        lo, hi = self.efficiency
        eps = lo + (hi - lo) * float(rand(g, ()))
        caught = rand(g, (n,)).to(x.device) < eps
        if self.dead_pz_au > 0:
            caught &= ~self._dead(y, detected)
        keep = detected & caught
        if int(keep.sum()) < self.min_detected:     # restore ions until the frame exists
            lost = torch.nonzero(detected & ~keep).flatten()
            order = lost[torch.argsort(rand(g, (len(lost),)).to(x.device))]
            keep[order[:self.min_detected - int(keep.sum())]] = True
        p = y[:, 2:5]
        if self.resolution_au > 0 or self.relative > 0:
            noise = torch.randn(p.shape, generator=g, device=g.device).to(x.device, x.dtype)
            width = self.resolution_au + self.relative * p.norm(dim=1, keepdim=True)
            p = p + noise * width
        y[:, 2:5] = torch.where(keep[:, None], p, torch.zeros_like(p))
        y[:, 1] = torch.where(keep, y[:, 1], torch.zeros_like(y[:, 1]))
        return y

    def _dead(self, y: Tensor, detected: Tensor) -> Tensor:
        """Ions lost to the dead time: the later-listed of identical pairs close in p_z."""
        same = ((y[:, None, 0] == y[None, :, 0]) & (y[:, None, 1] == y[None, :, 1])
                & detected[:, None] & detected[None, :])
        close = (y[:, None, 4] - y[None, :, 4]).abs() < self.dead_pz_au
        earlier = torch.ones_like(same).tril(-1)         # j < i
        return (same & close & earlier).any(dim=1)
