"""``retroscope train``: fit a task's network on a simulated dataset and write a run directory.

:func:`train` does what every run needs, whatever its learner: it refuses to overwrite a run
(or resumes one), reads the dataset's manifest and rebuilds the task with the settings the data
were simulated with, applies the reading settings asked for (``view``), and records the
resolved configuration in ``config.json``. Then the task's learner trains, calibrates and
writes the rest of the run directory (:mod:`retroscope.runs` describes it): for a regression
AdamW with a one-cycle schedule and conformal intervals, for a detector SGD with a step
schedule and calibrated per-object intervals, for a classifier a temperature and conformal
sets of classes.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from retroscope.core.registry import learner_of
from retroscope.data.shards import Manifest
from retroscope.io.atomic import write_json_atomic
from retroscope.runs import CONFIG, RunError, prepare_run_dir, run_learner
from retroscope.train.config import PRECISIONS, TrainConfig
from retroscope.train.distributed import process_rank


def train(task, cfg: TrainConfig, out: Path, resume: bool = False, overwrite: bool = False,
          progress: bool = True, callbacks: list | None = None) -> dict:
    """Train, calibrate and save a run; return the summary (also in ``train_summary.json``).

    ``resume=True`` continues an interrupted run from ``checkpoints/last.ckpt`` with the
    configuration stored in the run (the learning-rate schedule is planned for its epochs).
    ``callbacks`` are extra Lightning callbacks.
    """
    out = Path(out)
    if cfg.precision not in PRECISIONS:
        raise RunError(f"precision must be one of {PRECISIONS}, got {cfg.precision!r}")
    if cfg.freeze and not cfg.init_from:
        raise RunError("--freeze keeps blocks as another run trained them: give --init-from")
    rank = process_rank()     # > 0 in the other processes of a DDP run: they write nothing
    if rank == 0:
        prepare_run_dir(out, resume, overwrite)
    if resume:
        cfg = TrainConfig(**json.loads((out / CONFIG).read_text()))
    manifest = Manifest.load(Path(cfg.data))
    cfg.data_hash = manifest.config_hash
    cfg.task_config = manifest.config
    if manifest.config != task.config():
        task = task.with_config(**manifest.config)
    if cfg.view:
        task = task.with_config(**cfg.view)
    cfg.view = task.view_config()
    learner = learner_of(task)
    cfg.learner = learner.name
    if rank == 0:
        write_json_atomic(out / CONFIG, asdict(cfg))
    summary = learner.fit(task, cfg, out, resume=resume, progress=progress and rank == 0,
                          callbacks=callbacks)
    if rank == 0:
        write_json_atomic(out / "train_summary.json", summary)
    return summary


def recalibrate(run_dir: Path, data: Path | None = None) -> dict:
    """Refit a finished run's calibration (weights unchanged) on the validation split of
    ``data`` (default: the run's own dataset)."""
    return run_learner(run_dir).recalibrate(Path(run_dir), data)
