"""The run directory: the unit of a trained model.

``retroscope train`` writes everything needed to predict later on another machine into one
directory; this module owns its layout, for every learner::

    config.json          the resolved training configuration (task, learner, settings)
    model.safetensors    weights, with metadata (task, learner, model, input shape, settings,
                         view, code version)
    calibration.json     the learner's calibration (intervals, thresholds, precision)
    checkpoints/         Lightning checkpoints (last.ckpt resumes an interrupted run)
    logs/                CSV logs (MLflow when asked)
    train_summary.json   what training measured

A run never overwrites another without being told to (:func:`prepare_run_dir`), and
:func:`open_run` gives back the task exactly as the run was trained: with its simulation
settings and its reading settings (``view``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retroscope import __version__
from retroscope.core.registry import get_learner, get_task, learner_of

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CALIBRATION = "calibration.json"


class RunError(RuntimeError):
    """A run directory is missing, incomplete, or would be overwritten."""


def prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Make ``out`` ready for a new run (``overwrite`` replaces an old one) or check that it
    holds one to resume."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if resume:
            if not (out / "checkpoints" / "last.ckpt").exists():
                raise RunError(f"{out}: nothing to resume (no checkpoints/last.ckpt)")
            return
        if not overwrite:
            raise RunError(f"{out} already holds a run; use --resume to continue it, "
                           "--overwrite to replace it, or another --out")
        shutil.rmtree(out)
    elif resume:
        raise RunError(f"{out}: nothing to resume")
    out.mkdir(parents=True, exist_ok=True)


def read_config(run_dir: Path) -> dict:
    """The run's ``config.json``."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise RunError(f"{run_dir}: no {CONFIG}; is this a retroscope run?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: corrupt JSON ({exc})") from exc


def run_learner(run_dir: Path):
    """The learner a run was trained with (recorded in its config; runs from before learners
    were recorded use their task's)."""
    config = read_config(run_dir)
    if config.get("learner"):
        return get_learner(config["learner"])
    return learner_of(get_task(config["task"]))


def save_weights(out: Path, state_dict: dict, task, meta: dict) -> Path:
    """Write ``model.safetensors`` with the task's name, its settings and view, the code
    version and ``meta`` (strings) as metadata."""
    from safetensors.torch import save_file

    metadata = {"task": task.name, "task_config": json.dumps(task.config()),
                "view": json.dumps(task.view_config()), "code_version": __version__, **meta}
    state = {k: v.contiguous() for k, v in state_dict.items()}
    path = Path(out) / WEIGHTS
    save_file(state, str(path), metadata=metadata)
    return path


@dataclass
class Run:
    """A finished run directory, opened: its weights' metadata and its task as trained."""

    path: Path
    meta: dict
    task: object

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) of the network's input."""
        return tuple(json.loads(self.meta["input_shape"]))

    def state_dict(self) -> dict:
        from safetensors.torch import load_file

        return load_file(str(self.path / WEIGHTS))

    def calibration(self) -> dict:
        path = self.path / CALIBRATION
        if not path.exists():
            raise RunError(f"{self.path}: no {CALIBRATION}; was the run finished?")
        return json.loads(path.read_text())

    def inputs(self, observables) -> list[np.ndarray]:
        """The network inputs of stored or preprocessed observables, each checked against the
        input shape the run was trained on."""
        xs = []
        for i, obs in enumerate(observables):
            x = self.task.model_input(obs)
            if tuple(x.shape) != self.input_shape:
                raise ValueError(f"input {i}: shape {tuple(x.shape)} after preprocessing, the "
                                 f"network expects {self.input_shape}")
            xs.append(x)
        return xs

    def accept(self, items: list) -> tuple[list[np.ndarray], list[tuple], list[tuple]]:
        """Split experimental ``items`` [(label, source, observable, context)] into the network
        inputs the run can take, the (label, source, context) of each, and failures [(label,
        reason)] for the others (a shape the network was not trained on)."""
        inputs, kept, failures = [], [], []
        for label, source, observable, context in items:
            try:
                inputs.append(self.inputs([observable])[0])
            except ValueError as exc:
                failures.append((label, str(exc)))
                continue
            kept.append((label, source, context))
        return inputs, kept, failures


def open_run(run_dir: Path) -> Run:
    """A finished run: its weights' metadata and its task with the run's simulation settings
    and reading settings; a missing weights file is a :class:`RunError`."""
    from safetensors import safe_open

    run_dir = Path(run_dir)
    weights = run_dir / WEIGHTS
    if not weights.exists():
        raise RunError(f"{run_dir}: no {WEIGHTS}; is this a finished retroscope run?")
    with safe_open(str(weights), framework="pt") as f:
        meta = f.metadata()
    task = get_task(meta["task"])
    task_config = json.loads(meta.get("task_config", "{}"))
    if task_config and task_config != task.config():
        task = task.with_config(**task_config)
    view = json.loads(meta.get("view", "{}"))
    if view:  # how the run read its inputs when it was trained (crop, zoom)
        task = task.with_config(**view)
    return Run(run_dir, meta, task)


def default_device() -> str:
    """CUDA when present, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
