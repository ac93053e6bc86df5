"""Attribution maps of a run: which output of which network is explained.

A regression run's network answers a mean per target column (and, with a heteroscedastic
head, a log-variance: the network returns ``(mean, log_variance)``). :class:`TargetOutput`
keeps one column of the mean, the scalar per image that captum's methods explain
(:mod:`retroscope.explain.methods`). The network comes from the run's learner
(``Learner.predictor``), as ``retroscope predict`` loads it; a run whose predictor holds no
``network`` module or whose task has no regression targets cannot be explained this way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from retroscope.explain.methods import attribute_model
from retroscope.runs import Run, open_run, run_learner


class TargetOutput(nn.Module):
    """Column ``column`` of a regression network's mean output, ``(N,)``, in eval mode."""

    def __init__(self, network: nn.Module, column: int) -> None:
        super().__init__()
        self.network = network
        self.column = column
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x)
        mean = out[0] if isinstance(out, (tuple, list)) else out
        return mean[:, self.column]


def target_column(columns: tuple[str, ...], target: int | str | None) -> int:
    """The index of ``target`` (a column name or an index; None: the first column)."""
    if target is None:
        return 0
    if isinstance(target, str):
        if target not in columns:
            raise ValueError(f"unknown target {target!r}; the run's targets: "
                             f"{', '.join(columns)}")
        return columns.index(target)
    if not 0 <= target < len(columns):
        raise ValueError(f"target index {target} outside 0..{len(columns) - 1} "
                         f"({', '.join(columns)})")
    return int(target)


def target_network(run: Run, target: int | str | None = None,
                   device: str | None = None) -> tuple[TargetOutput, str]:
    """The run's network reduced to the mean of one target column, and that column's name."""
    learner = run_learner(run.path)
    network = getattr(learner.predictor(run.path, device=device), "network", None)
    targets = run.task.targets
    if not isinstance(network, nn.Module) or targets is None:
        raise ValueError(f"{run.path}: a {learner.name} run has no regression network to "
                         "explain")
    column = target_column(tuple(targets.columns), target)
    return TargetOutput(network, column), targets.columns[column]


def attribute(run: Run | Path | str, inputs: np.ndarray, method: str = "occlusion",
              target: int | str | None = None, device: str | None = None,
              **options) -> np.ndarray:
    """Attribution maps ``(N, H, W)`` float32 of ``target`` (a column name or index; default:
    the first target column) on network ``inputs`` ``(N, C, H, W)`` (as ``Run.inputs`` makes
    them) by ``method``: "occlusion", "gradcam" or "lime" (see
    :mod:`retroscope.explain.methods`, whose keyword arguments ``options`` are), on the
    network's encoded output (as the targets encode it, before decoding to physical units)."""
    run = run if isinstance(run, Run) else open_run(Path(run))
    inputs = np.asarray(inputs, dtype=np.float32)
    if inputs.shape[1:] != run.input_shape:
        raise ValueError(f"inputs of shape {inputs.shape}; the network expects "
                         f"(N, {', '.join(map(str, run.input_shape))})")
    model, _ = target_network(run, target, device)
    return attribute_model(model, inputs, method, **options)
