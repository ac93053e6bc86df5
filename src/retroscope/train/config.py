"""``TrainConfig``: everything that defines a training run, and how a task's default is made.

A run's configuration is resolved once, in :func:`train_config`, from five layers (later ones
win): the fields' defaults here, the learner's recipe (``Learner.defaults``: e.g. SGD with a
step schedule and batch 4 for a detector), the task's own (``Task.training_defaults``), a
named recipe of the task when one is asked for (``Task.recipes()``, e.g. a paper's optimiser
and schedule) and what the user asked for (CLI options, the demo's sizes, a tuning trial's
values). The result is stored as the run's ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from retroscope import __version__
from retroscope.core.registry import learner_of

#: Lightning precisions a run may ask for (bfloat16 needs no loss scaling)
PRECISIONS = ("32-true", "bf16-mixed")
#: optimisers a regression or a classifier may ask for: AdamW with a one-cycle schedule (the
#: default), or SGD with momentum and a step schedule (``lr`` times ``decay`` every
#: ``step_size`` epochs)
OPTIMIZERS = ("adamw", "sgd")


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored as config.json)."""

    task: str
    data: str
    model: str
    model_kwargs: dict = field(default_factory=dict)
    learner: str = ""  # the learner's registered name (set when training starts)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # adamw (one-cycle) or sgd (step schedule)
    momentum: float = 0.9  # SGD (step-schedule recipes)
    step_size: int = 5  # epochs between learning-rate decays (step-schedule recipes)
    decay: float = 0.1  # factor of each decay (step-schedule recipes)
    patience: int = 8
    augment: float = 1.0  # probability that a training sample passes the task's imperfections
    seed: int = 0
    num_workers: int = 0
    in_memory: bool = True
    max_minutes: float | None = None
    coverage: float = 0.9
    symmetrise: bool = True  # average predictions over the task's input_flips
    precision: str = "32-true"  # Lightning precision; "bf16-mixed": autocast in bfloat16
    devices: int = 1  # processes (CPU) or GPUs per node; > 1 trains with DDP
    num_nodes: int = 1  # nodes (under SLURM's srun)
    strategy: str = "auto"  # Lightning strategy; "auto" is ddp for several devices
    tracking: str = "csv"
    tracking_uri: str | None = None
    init_from: str | None = None  # a finished run whose weights this one starts from
    freeze: int = 0  # leading blocks of the network kept as init_from trained them
    limit_train: int | None = None
    limit_val: int | None = None
    recipe: str = ""  # the task's named recipe this run started from ("" for none)
    task_config: dict = field(default_factory=dict)
    view: dict = field(default_factory=dict)  # the task's reading settings (view_config)
    data_hash: str = ""
    code_version: str = __version__


def train_config(task, data, model: str | None = None, model_kwargs: dict | None = None,
                 recipe: str | None = None, **overrides) -> TrainConfig:
    """The ``TrainConfig`` of ``task`` on ``data``: field defaults, then the learner's recipe,
    then the task's ``training_defaults``, then the task's recipe named ``recipe`` (if any),
    then ``overrides`` (None values are ignored, so a CLI option left unset keeps the
    default). ``model`` replaces the task's network (its settings then come from
    ``model_kwargs`` alone; otherwise ``model_kwargs`` update the task's)."""
    learner = learner_of(task)
    names = {f.name for f in fields(TrainConfig)}
    recipes = task.recipes()
    if recipe and recipe not in recipes:
        raise ValueError(f"task {task.name} has no recipe {recipe!r}; known: "
                         f"{sorted(recipes) or 'none'}")
    values = {**learner.defaults, **task.training_defaults(),
              **(recipes[recipe] if recipe else {}),
              **{k: v for k, v in overrides.items() if v is not None}}
    if recipe:
        values["recipe"] = recipe
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown training settings {unknown}; known: {sorted(names)}")
    if values.get("optimizer", "adamw") not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {values['optimizer']!r}")
    kwargs = {} if model is not None else dict(task.model.kwargs)
    kwargs.update(model_kwargs or {})
    return TrainConfig(task=task.name, data=str(data), model=model or task.model.name,
                       model_kwargs=kwargs, learner=learner.name, **values)
