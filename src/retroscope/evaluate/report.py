"""``retroscope evaluate``: score a run on a split of a dataset.

The run's learner measures what its kind of network can be held to (a regression: errors and
interval coverage per target, the task's metrics, the classical baseline; a detector: COCO mAP,
object recall, per-object interval coverage, the task's own comparison) and writes
``metrics.json`` and ``plots/`` into the run directory or ``out``.
"""

from __future__ import annotations

from pathlib import Path

from retroscope.runs import run_learner


def evaluate(run_dir: Path, data: Path, split: str = "test", out: Path | None = None,
             **options) -> dict:
    """The metrics of run ``run_dir`` on ``split`` of ``data``; ``options`` are the learner's
    own (``baseline_n`` and ``baseline_kwargs`` for a regression, ``refine`` for a detector;
    others are refused)."""
    return run_learner(run_dir).evaluate(Path(run_dir), Path(data), split, out=out, **options)
