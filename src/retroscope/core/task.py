"""The Task protocol and the task registry.

A task bundles everything specific to one measurement: its parameter space, its simulator, the
online imperfections of its detector, how its targets are encoded for a network, how an
experimental file becomes network input, its metrics and its classical baseline. The rest of
retroscope (CLI, storage, campaigns, training, prediction, evaluation) knows tasks only through
this registry and never imports a task by name.

Tasks shipped with retroscope register themselves on import of ``retroscope.tasks``; a lab can
add its own from a separate package through the entry-point group ``retroscope.tasks``::

    [project.entry-points."retroscope.tasks"]
    mytask = "mylab.mytask:TASK"
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable

import numpy as np

from retroscope.core.params import ParameterSpace, Record

ENTRY_POINT_GROUP = "retroscope.tasks"


@dataclass(frozen=True)
class ModelSpec:
    """The default network of a task: a registered model name and its settings."""

    name: str
    kwargs: dict = field(default_factory=dict)


class Targets(ABC):
    """How physical parameters become network outputs and back.

    ``encode`` maps a parameter record to an (n, d) float array in the network's scale;
    ``decode`` maps network outputs back into a record in physical units. ``columns`` and
    ``units`` name the d output columns; ``scale`` gives, per column, the physical size of one
    encoded unit, so that an interval half-width in encoded units becomes physical by
    multiplication.
    """

    columns: tuple[str, ...]
    units: tuple[str, ...]

    @property
    def dim(self) -> int:
        return len(self.columns)

    @abstractmethod
    def encode(self, record: Record) -> np.ndarray: ...

    @abstractmethod
    def decode(self, y: np.ndarray) -> Record: ...

    @abstractmethod
    def scale(self) -> np.ndarray: ...

    def columns_physical(self, record: Record) -> np.ndarray:
        """The (n, d) physical values of the output columns of a record."""
        return self.encode(record) * self.scale() + self.offset()

    def offset(self) -> np.ndarray:
        return np.zeros(self.dim)

    def bounds(self, raw_mean: np.ndarray, half_encoded: np.ndarray,
               value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Physical (low, high) of the interval raw_mean -/+ half_encoded (encoded units)
        around the decoded ``value``: value -/+ half_encoded * |scale| for a linear encoding."""
        half = np.asarray(half_encoded) * np.abs(self.scale())
        return value - half, value + half

    def align(self, pred, target):
        """Return ``target`` replaced by its physically equivalent version closest to ``pred``.

        Both are torch tensors (batch, d) in encoded units. The default is the identity; tasks
        with symmetric targets (orientations under a point group) override it so that the loss
        does not punish a prediction that differs from the truth by a symmetry.
        """
        return target

    def align_numpy(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        """:meth:`align` for numpy arrays (calibration and evaluation)."""
        import torch

        return self.align(torch.as_tensor(np.asarray(pred, dtype=np.float64)),
                          torch.as_tensor(np.asarray(target, dtype=np.float64))).numpy()


class LinearTargets(Targets):
    """Scalar parameters of a space, each mapped from its bounds onto [0, 1]: linearly, or
    logarithmically for the columns named in ``log`` (a positive quantity whose error grows
    with its size, such as a count: the loss then weighs relative errors, and the calibrated
    interval is relative, asymmetric in physical units). ``scale``/``offset`` describe the
    encoding in the encoded variable (ln of the value for log columns)."""

    def __init__(self, space: ParameterSpace, columns: tuple[str, ...] | None = None,
                 log: tuple[str, ...] = ()) -> None:
        self.space = space
        self.columns = tuple(columns or space.names)
        self.units = tuple(space[n].unit for n in self.columns)
        unknown = set(log) - set(self.columns)
        if unknown:
            raise ValueError(f"log-encoded columns {sorted(unknown)} are not targets")
        self.log = np.array([n in log for n in self.columns])
        low = np.array([space[n].low for n in self.columns], dtype=np.float64)
        high = np.array([space[n].high for n in self.columns], dtype=np.float64)
        if np.any(self.log & (low <= 0)):
            raise ValueError("log-encoded targets need a positive lower bound")
        with np.errstate(divide="ignore"):
            low = np.where(self.log, np.log(np.where(self.log, low, 1.0)), low)
            high = np.where(self.log, np.log(np.where(self.log, high, 1.0)), high)
        self._low = low
        span = high - low
        self._span = np.where(span > 0, span, 1.0)

    def scale(self) -> np.ndarray:
        return self._span.copy()

    def offset(self) -> np.ndarray:
        return self._low.copy()

    def _physical(self, z: np.ndarray) -> np.ndarray:
        return np.where(self.log, np.exp(np.where(self.log, z, 0.0)), z)

    def encode(self, record: Record) -> np.ndarray:
        cols = np.stack([np.asarray(record[n], dtype=np.float64) for n in self.columns], 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            cols = np.where(self.log, np.log(np.where(self.log, cols, 1.0)), cols)
        return (cols - self._low) / self._span

    def decode(self, y: np.ndarray) -> Record:
        phys = self._physical(np.asarray(y, dtype=np.float64) * self._span + self._low)
        return {n: phys[:, j] for j, n in enumerate(self.columns)}

    def columns_physical(self, record: Record) -> np.ndarray:
        return np.stack([np.asarray(record[n], dtype=np.float64) for n in self.columns], 1)

    def bounds(self, raw_mean, half_encoded, value):
        low = self._physical((np.asarray(raw_mean) - half_encoded) * self._span + self._low)
        high = self._physical((np.asarray(raw_mean) + half_encoded) * self._span + self._low)
        return low, high


class Task(ABC):
    """Base class of every task. Subclasses set the attributes and implement ``simulate``."""

    name: str
    title: str
    paper: str
    infers: str
    space: ParameterSpace
    targets: Targets
    model: ModelSpec
    observable: str = "image"
    #: how the network is trained and read: "regression" (targets, heteroscedastic head,
    #: conformal intervals; :mod:`retroscope.train.module`) or "detection" (objects with
    #: classes, boxes and masks; :class:`DetectionTask`, :mod:`retroscope.train.detection`)
    learner: str = "regression"
    #: flips of the network input (tuples of tensor dims) that map a valid observation onto
    #: another with the same targets (a mirror symmetry of the physics); predictions average
    #: over them (test-time symmetrisation), calibration included
    input_flips: tuple[tuple[int, ...], ...] = ()

    def config(self) -> dict:
        """Simulation settings that change the stored data (hashed into the manifest)."""
        return {}

    def with_config(self, **overrides: Any) -> Task:
        """A copy of the task with some simulation settings changed."""
        raise NotImplementedError(f"task {self.name} has no configurable simulation settings")

    def view_config(self) -> dict:
        """Reading settings that shape the network's input but not the stored data (e.g. a
        crop): recorded in a run when it is trained (``retroscope train --view JSON``) and
        given back to ``with_config`` when the run is opened, so a run always reads its
        inputs the way it was trained. Empty by default."""
        return {}

    @abstractmethod
    def simulate(self, params: Record, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Simulate a batch: ``params`` holds n rows; every returned array has leading dim n.

        The record must contain ``self.observable``. Must be deterministic given ``rng``.
        """

    def network_input(self, observable: np.ndarray) -> np.ndarray:
        """Map one stored observable (as simulated, or as ``preprocess`` returns it) to the
        network's input (C, H, W) float32. Shared by training and prediction."""
        x = np.asarray(observable, dtype=np.float32)
        return x[None] if x.ndim == 2 else x

    def network_view(self, x: np.ndarray) -> np.ndarray:
        """The last, deterministic step to what the network sees (C, H, W) -> (C, H', W'),
        computed from the input itself: applied after the online observation in training
        (so it sees the camera's noise, as on real data) and right after ``network_input``
        everywhere else. An automatic crop to the object lives here. Identity by default."""
        return x

    def model_input(self, observable: np.ndarray) -> np.ndarray:
        """What the network sees for one stored or preprocessed observable, without online
        observation: ``network_view(network_input(observable))``."""
        return self.network_view(self.network_input(observable))

    def observe(self, train: bool) -> Callable | None:
        """Online imperfections applied in the DataLoader (``retroscope.core.observe``),
        between ``network_input`` and ``network_view``."""
        return None

    def preprocess(self, image: np.ndarray, settings: dict | None = None) -> np.ndarray:
        """Turn an experimental 2D array into the form of a stored observable (H, W)."""
        return np.asarray(image, dtype=np.float32)

    def check_settings(self, settings: dict, source: str = "settings") -> dict:
        """Validate preprocessing settings once, before any file is read (a bad key is
        reported with the settings file's name rather than once per image)."""
        return settings

    def read_experimental(self, paths, settings: dict | None = None):
        """Experimental inputs: ([(label, source file, observable, context)], failures
        [(label, reason)]). The default reads every frame of every file as one observable;
        a task whose measurement spans several files (e.g. absorption triplets) overrides it."""
        from retroscope.infer.readers import ReadError, read_images

        items, failures = [], []
        for path in paths:
            try:
                frames = read_images(path)
            except ReadError as exc:
                failures.append((str(path), str(exc)))
                continue
            for label, image in frames:
                try:
                    items.append((label, str(path), self.preprocess(image, settings), {}))
                except ValueError as exc:
                    failures.append((label, str(exc)))
        return items, failures

    def to_frame(self, obj: dict, context: dict) -> dict:
        """A described object in the experimental frame's units (``context`` from
        :meth:`read_experimental`), without its mask (detection tasks)."""
        return {k: v for k, v in obj.items() if k != "mask"}

    def metrics(self, true: Record, pred: Record) -> dict[str, np.ndarray]:
        """Per-sample error arrays keyed by metric name (summaries are taken by evaluate)."""
        return {}

    def summary_metrics(self, true: Record, pred: Record) -> dict:
        """Whole-set figures of merit that are not a summary of one per-sample array
        (an RMS percentage, per-bin statistics); JSON-able."""
        return {}

    def describe_prediction(self, row: dict) -> dict:
        """Extra human-readable columns for one decoded prediction (e.g. a rotation angle)."""
        return {}

    def describe_truth(self, row: dict) -> dict:
        """Short human-readable summary of one true parameter row (demo tables)."""
        return {k: np.round(np.asarray(v), 3).tolist() for k, v in row.items()}

    def demo_settings(self) -> dict:
        """Sizes for ``retroscope demo``: n, epochs, train_minutes, baseline_n, ..."""
        raise NotImplementedError(f"task {self.name} has no demo")

    def demo_preprocess_settings(self) -> dict:
        """Preprocessing settings matching the files the demo writes."""
        return {}

    def demo_files(self, test, files_dir: Path, n: int) -> tuple[list[Path], list[dict]]:
        """Write ``n`` samples of the test split (``test``, a ShardDataset) as the files a lab
        would have, for ``retroscope demo`` to predict on; returns (paths, truth per sample).
        Default: each observable as a PNG, and all of them in one CXI file."""
        from retroscope.infer.readers import write_cxi, write_png

        files, truth, frames = [], [], []
        for i in range(n):
            # a PNG holds [0, 1]: what lies outside (noise below zero) is clipped
            image01 = np.clip(self.network_input(test.observable(i))[0], 0.0, 1.0)
            path = Path(files_dir) / f"pattern_{i}.png"
            write_png(path, image01)
            files.append(path)
            frames.append(image01)
            truth.append(self.describe_truth({k: v[i] for k, v in test.params.items()}))
        cxi = Path(files_dir) / "patterns.cxi"
        write_cxi(cxi, np.stack(frames))
        return files + [cxi], truth

    def baseline(self, **kwargs):
        """The classical method the network is compared with (an object with ``compare``),
        or None."""
        return None

    def plots(self, true: Record, pred: Record, out_dir, metrics: dict) -> list:
        """Task-specific evaluation plots (``metrics`` from :meth:`metrics`); returns paths."""
        return []


class DetectionTask(Task):
    """A task whose network finds objects: per object a class, a score, a box and a mask
    (instance segmentation, e.g. Mask R-CNN), from which the task derives physical parameters.

    The stored record holds, besides the observable, the arrays named in ``label_keys`` (the
    true objects, padded to a fixed count); :meth:`detection_target` turns one row of them
    into the training target, :meth:`true_objects` into the truth that evaluation and interval
    calibration compare with, and :meth:`describe_objects` turns a network detection into the
    physical answer. There is no ``targets`` encoding: the network's output is a list.
    """

    learner = "detection"
    targets = None
    #: class names; label k (1-based, 0 is the background) is ``classes[k - 1]``
    classes: tuple[str, ...]
    #: stored data arrays that describe the true objects of a sample
    label_keys: tuple[str, ...]

    @abstractmethod
    def detection_target(self, labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One sample's training target: boxes (n, 4) xyxy float32, labels (n,) int64 and
        masks (n, H, W) uint8, from its stored label arrays."""

    @abstractmethod
    def true_objects(self, labels: dict[str, np.ndarray], image: np.ndarray) -> list[dict]:
        """The true objects of a sample: dicts with "class", "mask" (H, W) bool and the
        same physical parameters as :meth:`describe_objects` gives."""

    @abstractmethod
    def describe_objects(self, image: np.ndarray, detection: dict) -> list[dict]:
        """Physical parameters of each detected object of one network input: ``detection``
        holds numpy boxes, scores, labels and soft masks (n, H, W). Every dict has "class",
        "score", "box" and "shape_score" (larger = less like the training objects)."""

    #: whether :meth:`refine` changes detections (a model fit seeded by the network)
    refines: bool = False

    def refine(self, image: np.ndarray, detection: dict, score_threshold: float) -> dict:
        """A physics-model refinement of one input's detections (same keys; the task may add
        its own, which :meth:`describe_objects` reads). The default changes nothing."""
        return detection

    def interval_scales(self, obj: dict) -> dict[str, float]:
        """Per parameter that gets a calibrated interval, the scale its error is measured in
        for this object (e.g. the cloud's radius for a centre coordinate)."""
        return {}

    def interval_unit(self, name: str) -> str:
        return ""

    def parameter_error(self, name: str, predicted: float, true: float) -> float:
        """Signed error of one parameter (an angle task overrides it for periodicity)."""
        return float(predicted) - float(true)


_REGISTRY: dict[str, Task] = {}
_LOADED = False


class UnknownTaskError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def register_task(task: Task) -> Task:
    """Add a task to the registry (a task registered twice under one name is an error)."""
    if task.name in _REGISTRY and _REGISTRY[task.name] is not task:
        raise ValueError(f"a different task is already registered as {task.name!r}")
    _REGISTRY[task.name] = task
    return task


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    importlib.import_module("retroscope.tasks")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        try:
            task = ep.load()
            register_task(task() if isinstance(task, type) else task)
        except Exception as exc:  # a broken plugin must not break the other tasks
            warnings.warn(f"task entry point {ep.name!r} ({ep.value}) failed to load: {exc}",
                          stacklevel=2)


def get_task(name: str) -> Task:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownTaskError(
            f"unknown task {name!r}; registered tasks: {', '.join(sorted(_REGISTRY)) or 'none'}"
        ) from None


def list_tasks() -> list[Task]:
    _load()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
