"""The Learner protocol: how one kind of network is trained, calibrated, read and scored.

A task says *what* is measured; its learner says *how a network learns it*. Everything that
depends on the kind of network, and nothing else, is a learner's:

=================  =========================================================================
data               ``targets``: the per-row training targets a dataset hands the network
                   (encoded parameters for a regression, boxes/masks for a detector)
training           ``defaults`` (its recipe's ``TrainConfig`` fields), ``fit`` (build the
                   LightningModule, train with the shared trainer factory, calibrate, write
                   the run directory), ``recalibrate``
tuning             ``tuning_space`` (the task's, else the learner's), ``objective``
prediction         ``predictor`` (a loaded run), ``predict_rows`` (one CSV row per answer),
                   ``headline`` (the columns a person reads first), ``combines_sequences``
                   (whether rows of one object's images can be pooled), ``write_extras``
                   (files beside the table, e.g. a structure per input)
evaluation         ``evaluate`` (metrics.json and plots), ``report`` (how the metrics are
                   printed), ``demo_table`` (how predictions are shown next to the truth)
=================  =========================================================================

Learners are registered by name through the entry-point group ``retroscope.learners``
(:mod:`retroscope.core.registry`); a task declares ``learner = "regression"`` or holds a
Learner object. retroscope ships ``regression``, ``detection`` and ``classification``
(:mod:`retroscope.learners`); a generative model is one more package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class Learner(ABC):
    """Base class of learners; subclasses set ``name`` and implement the abstract methods."""

    name: str
    #: ``TrainConfig`` fields of this learner's training recipe (under the task's own)
    defaults: dict = {}
    #: what ``objective`` returns, for reports (larger is better)
    objective_name: str = ""
    #: whether rows predicted from several images of one object may be pooled (``--group``)
    combines_sequences: bool = False

    # -- data -----------------------------------------------------------------------------
    @abstractmethod
    def targets(self, task, params: dict, labels: dict) -> Sequence:
        """Per-row training targets of a dataset split, indexable by row: from the rows'
        parameters ``params`` and stored label arrays ``labels`` (``task.label_keys``)."""

    def collate(self):
        """The DataLoader's collate function (None: torch's default stacking)."""
        return None

    # -- training -------------------------------------------------------------------------
    @abstractmethod
    def fit(self, task, cfg, out: Path, resume: bool = False, progress: bool = True,
            callbacks: list | None = None) -> dict:
        """Train on ``cfg.data``, calibrate on its validation split and write the run
        directory ``out`` (prepared by the caller); return the training summary."""

    @abstractmethod
    def recalibrate(self, run_dir: Path, data: Path | None = None) -> dict:
        """Refit the calibration of a finished run (weights unchanged) on the validation
        split of ``data`` (default: the run's own dataset); return what was written."""

    def tuning_space(self, task) -> tuple:
        """The hyperparameters ``retroscope tune`` searches: the task's, else the learner's
        default space."""
        return task.tuning_space() or self.default_space()

    def default_space(self) -> tuple:
        """The learner's own tuning space (``Hyperparameter`` objects)."""
        return ()

    @abstractmethod
    def objective(self, summary: dict) -> float:
        """The score of a finished trial's training summary, larger is better; raises
        ``RuntimeError`` when the summary has none."""

    # -- prediction -----------------------------------------------------------------------
    @abstractmethod
    def predictor(self, run_dir: Path, device: str | None = None, **options: Any):
        """A finished run loaded for prediction: an object with ``task``, ``inputs``
        (observables to checked network inputs) and ``predict``. ``options`` are the learner's
        own (e.g. ``refine``); unknown ones are refused."""

    def headline(self, task) -> list[str]:
        """The columns of a prediction row a person reads first (the console's view; the
        CSV and JSON keep every column): the task's ``headline_columns`` by default."""
        return list(task.headline_columns)

    @abstractmethod
    def predict_rows(self, predictor, items: list) -> tuple[list[dict], list[tuple[str, str]]]:
        """Rows of answers for experimental inputs ``items`` = [(label, source file,
        observable, context)], and failures [(label, reason)] for inputs the network cannot
        take."""

    def write_extras(self, predictor, rows: list[dict], out: Path) -> list[Path]:
        """Files beside the result table ``out`` that this kind of answer has (e.g. one
        structure file per input); returns their paths. None by default."""
        return []

    # -- evaluation -----------------------------------------------------------------------
    @abstractmethod
    def evaluate(self, run_dir: Path, data: Path, split: str = "test", out: Path | None = None,
                 **options: Any) -> dict:
        """Score a run on a split of a dataset; write ``metrics.json`` and ``plots/`` into
        ``out`` (default: the run) and return the metrics. ``options`` are the learner's own
        (e.g. ``baseline_n``, ``refine``); unknown ones are refused."""

    @abstractmethod
    def report(self, metrics: dict) -> list:
        """What ``retroscope evaluate`` and the demo print of ``metrics``: rich renderables
        (tables, strings), in order."""

    @abstractmethod
    def demo_table(self, task, rows: list[dict], truth: list[dict]):
        """A rich table of the demo's predictions on written files next to their truth."""

    # -- helpers --------------------------------------------------------------------------
    def refuse_options(self, what: str, options: dict) -> None:
        """Raise ``ValueError`` for options this learner does not have (None means unset)."""
        given = sorted(k for k, v in options.items() if v not in (None, 0, False))
        if given:
            raise ValueError(f"{what} of a {self.name} run takes no {', '.join(given)}")

    def __repr__(self) -> str:
        return f"<learner {self.name}>"
