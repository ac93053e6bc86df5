"""The online observer: a transform applied to a sample with a generator of its own.

:class:`OnlineObserver` seeds one generator per (seed, epoch, sample index), so the
imperfections drawn in DataLoader workers are reproducible and do not depend on the number of
workers or the order in which samples are loaded.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from retroscope.core.observe.transform import Transform

@dataclass(frozen=True)
class OnlineObserver:
    """Apply ``transform`` to sample ``index`` of ``epoch`` with its own seeded generator.

    The generator is seeded from ``numpy.random.SeedSequence([seed, epoch, index])``, so the
    imperfections of a sample depend only on (seed, epoch, index): reproducible, different
    every epoch, and independent of DataLoader worker count and order. Picklable, so it can
    travel to spawned workers.
    """

    transform: Transform
    seed: int

    def __post_init__(self) -> None:
        if not isinstance(self.transform, Transform):
            raise TypeError(f"OnlineObserver: {self.transform!r} is not a Transform")
        if operator.index(self.seed) < 0:
            raise ValueError(f"OnlineObserver.seed must be >= 0, got {self.seed}")

    def generator(self, index: int, epoch: int = 0) -> torch.Generator:
        """The CPU generator of sample ``index`` in ``epoch``."""
        if operator.index(index) < 0 or operator.index(epoch) < 0:
            raise ValueError(f"index and epoch must be >= 0, got index={index}, epoch={epoch}")
        state = np.random.SeedSequence([self.seed, epoch, index]).generate_state(1, np.uint64)
        return torch.Generator().manual_seed(int(state[0]))

    def __call__(self, x: Tensor, index: int, epoch: int = 0) -> Tensor:
        return self.transform(x, self.generator(index, epoch))
