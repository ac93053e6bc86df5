"""The task base classes: everything specific to one measurement, behind one interface.

A task bundles its parameter space, its simulator, the online imperfections of its detector,
how its targets are encoded for a network, how an experimental file becomes network input, its
metrics, plots and classical baseline, and its demo. The rest of retroscope (CLI, storage,
campaigns, training, prediction, evaluation) calls only the hooks declared here, each with a
documented default, and finds tasks only through the registry (:mod:`retroscope.core.registry`,
entry-point group ``retroscope.tasks``).

How a task's network is trained and read is its *learner* (:mod:`retroscope.core.learner`):
``learner = "regression"`` (targets with calibrated intervals), ``"detection"`` (objects with
classes, boxes and masks, :class:`DetectionTask`), or any learner registered by name. Shared code
asks the learner; it never compares the name.

Settings: ``settings`` (a frozen dataclass, hashed into a dataset's manifest: what the stored
data depend on) and ``view`` (a frozen dataclass of reading settings: how a stored or
experimental observable becomes the network's input). ``with_config`` validates overrides
against both (:mod:`retroscope.core.config`) and rebuilds the task with ``from_settings``, the
way a worker process rebuilds a task from a manifest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from retroscope.core.params import ParameterSpace, Record
from retroscope.core.targets import Targets


@dataclass(frozen=True)
class ModelSpec:
    """The default network of a task: a registered model name and its settings."""

    name: str
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of ``retroscope demo TASK``, small enough for a laptop.

    ``n`` samples are simulated with ``workers`` Dask workers in shards of ``shard_size``;
    training runs for at most ``epochs`` and ``train_minutes``; ``train`` holds further
    training settings (``TrainConfig`` fields such as ``batch_size``, ``lr``, ``limit_val``);
    ``n_files`` test samples are written as files and predicted; the classical baseline runs
    on ``baseline_n`` test samples with ``baseline_kwargs`` (0: none). ``full_scale`` says
    in one sentence what the full-scale run of the README reaches, so that a demo's
    figures are read as what a few minutes give, not as the method's accuracy. ``task_config``:
    settings the demo's task takes over the registered one's (``with_config``), e.g. a
    cheaper numerical preset and a narrower parameter box."""

    n: int
    epochs: int
    train_minutes: float
    workers: int = 2
    shard_size: int = 128
    seed: int = 0
    train: dict = field(default_factory=dict)
    n_files: int = 4
    baseline_n: int = 0
    baseline_kwargs: dict = field(default_factory=dict)
    full_scale: str = ""
    task_config: dict = field(default_factory=dict)
    #: an attribution method of :mod:`retroscope.explain` run on the first file ("": none)
    explain: str = ""


@dataclass(frozen=True)
class InputSpec:
    """What a task reads from an experimental file: 2-D frames at least ``min_px`` pixels
    on each side, with a height/width ratio inside ``aspect``; ``stacks``: whether a file may
    hold several frames (a 3-D array, a multi-page TIFF, a CXI stack), each read as one
    input. A file outside this is refused as a whole, with its shape and what was expected,
    never resampled into an answer.

    ``scale_setting``: the preprocessing setting that says how a file's values are scaled
    (e.g. linear counts or a logarithm), with its ``scale_choices``; an image of 8-bit (or
    fewer) integers that states no scale, neither in the settings nor in its own metadata,
    is refused with the setting to give: such files are mostly displays, and guessing their
    scale gives confident wrong answers."""

    min_px: int = 8
    aspect: tuple[float, float] = (0.1, 10.0)
    stacks: bool = True
    scale_setting: str | None = None
    scale_choices: tuple[str, ...] = ()

    def scale_problem(self, bits: int | None, settings: dict | None) -> str | None:
        """Why a file of ``bits``-bit integers read with ``settings`` is ambiguous, or None."""
        if self.scale_setting is None or bits is None or bits > 8 \
                or self.scale_setting in (settings or {}):
            return None
        return (f"an {bits}-bit image that does not say how its values are scaled; give the "
                f"setting {self.scale_setting} = {' | '.join(self.scale_choices)} "
                f"(--settings FILE)")

    def problem(self, shapes: list[tuple[int, ...]]) -> str | None:
        """Why frames of these shapes (one file's) are refused, or None."""
        if len(shapes) > 1 and not self.stacks:
            return f"a stack of {len(shapes)} frames; this task reads one 2-D image per file"
        for rows, cols in set(shapes):
            if min(rows, cols) < self.min_px:
                return (f"frames of {rows} x {cols} px; this task needs at least "
                        f"{self.min_px} px on each side")
            if not self.aspect[0] <= rows / cols <= self.aspect[1]:
                return (f"frames of {rows} x {cols} px (height/width {rows / cols:.2g}); "
                        f"this task reads {self.aspect[0]:g} to {self.aspect[1]:g}")
        return None


class Task(ABC):
    """Base class of every task. Subclasses set the attributes and implement ``simulate``."""

    name: str
    title: str
    paper: str
    infers: str
    space: ParameterSpace
    #: the encoding of the regression targets (None for a learner without targets)
    targets: Targets | None = None
    model: ModelSpec
    #: the stored array the network reads
    observable: str = "image"
    #: further stored arrays that hold a sample's labels (e.g. a table of objects); the
    #: dataset reads them with the parameters for the learner's training targets
    label_keys: tuple[str, ...] = ()
    #: how the network is trained and read: a learner registered by name, or a Learner object
    learner: Any = "regression"
    #: flips of the network input (tuples of tensor dims) that map a valid observation onto
    #: another with the same targets (a mirror symmetry of the physics); predictions average
    #: over them (test-time symmetrisation), calibration included
    input_flips: tuple[tuple[int, ...], ...] = ()
    #: what the network's input images show, with their unit (colour bars of example plots)
    input_label: str = "network input (dimensionless)"
    #: prediction columns a person reads first (demo tables); empty: the learner's choice
    headline_columns: tuple[str, ...] = ()
    #: the live page's history: (answer column, trend fitted over time, e.g.
    #: "exponential_decay"; see ``retroscope.live.trend``), or None: the first headline column
    #: without a fit
    live_trend: tuple[str, str | None] | None = None
    #: what ``reference_prediction`` answers, for reports
    reference_name: str = "the training mean"
    #: what an experimental file must hold to be read (shape, stacks)
    accepts: InputSpec = InputSpec()
    #: simulation settings (frozen dataclass, hashed into the manifest) or None
    settings: Any = None
    #: reading settings (frozen dataclass, recorded in a run, not in the data) or None
    view: Any = None

    # -- settings -------------------------------------------------------------------------
    def config(self) -> dict:
        """Simulation settings that change the stored data (hashed into the manifest)."""
        from retroscope.core.config import settings_dict

        return {} if self.settings is None else settings_dict(self.settings)

    def view_config(self) -> dict:
        """Reading settings that shape the network's input but not the stored data (e.g. a
        crop): recorded in a run when it is trained (``retroscope train --view JSON``) and
        given back to ``with_config`` when the run is opened, so a run always reads its
        inputs the way it was trained."""
        from retroscope.core.config import settings_dict

        return {} if self.view is None else settings_dict(self.view)

    def with_config(self, **overrides: Any) -> Task:
        """A copy of the task with some settings changed (simulation or reading settings;
        nested ones by their own name when unambiguous). Unknown names and wrong types are
        refused with the setting named."""
        from retroscope.core.config import apply_overrides

        if not overrides:
            return self
        settings, view = apply_overrides(self.settings, self.view, overrides, owner=self.name)
        return self.from_settings(settings, view)

    def from_settings(self, settings: Any, view: Any) -> Task:
        """The task built from its settings and view dataclasses (see ``with_config``)."""
        raise NotImplementedError(f"task {self.name} has no configurable settings")

    # -- simulation and the network's input ---------------------------------------------
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
        """Online imperfections applied in the DataLoader (a ``Transform`` of
        :mod:`retroscope.core.observe`), between ``network_input`` and ``network_view``;
        None: none."""
        return None

    # -- training -------------------------------------------------------------------------
    def training_defaults(self) -> dict:
        """``TrainConfig`` fields this task trains with unless told otherwise (e.g.
        ``{"batch_size": 4, "lr": 5e-3}``), over the learner's defaults. Empty by default."""
        return {}

    def recipes(self) -> dict[str, dict]:
        """Named training recipes (``train --recipe NAME``): ``TrainConfig`` fields that
        reproduce e.g. a paper's optimiser, batch and schedule, applied over
        ``training_defaults`` and under what the user sets. Empty by default."""
        return {}

    def tuning_space(self) -> tuple | None:
        """The hyperparameters ``retroscope tune`` searches (``Hyperparameter`` objects of
        :mod:`retroscope.train.tune`), e.g. a paper's table; None: the learner's default."""
        return None

    # -- experimental files ---------------------------------------------------------------
    def preprocess(self, image: np.ndarray, settings: dict | None = None) -> np.ndarray:
        """Turn an experimental 2D array into the form of a stored observable (H, W)."""
        return np.asarray(image, dtype=np.float32)

    def check_settings(self, settings: dict, source: str = "settings") -> dict:
        """Validate preprocessing settings once, before any file is read (a bad key is
        reported with the settings file's name rather than once per image)."""
        return settings

    def read_experimental(self, paths, settings: dict | None = None):
        """Experimental inputs: ([(label, source file, observable, context)], failures
        [(label, reason)]). The default reads every frame of every file that ``accepts``
        allows as one observable; a task whose measurement spans several files (e.g.
        absorption triplets) overrides it. A file that records its own preprocessing settings
        (what retroscope writes: see :mod:`retroscope.io.readers`) is read with them, under
        any the user gave."""
        from retroscope.io.readers import ReadError, read_file

        items, failures = [], []
        for path in paths:
            try:
                file = read_file(path)
                own = settings
                if file.settings:
                    own = self.check_settings({**file.settings, **(settings or {})},
                                              source=f"{path} (its recorded settings)")
            except (ReadError, ValueError) as exc:
                failures.append((str(path), str(exc)))
                continue
            accepts = self.accepts_for(own)
            problem = (accepts.problem([image.shape for _, image in file.frames])
                       or accepts.scale_problem(file.bits, own))
            if problem is not None:
                failures.append((str(path), problem))
                continue
            for label, image in file.frames:
                try:
                    items.append((label, str(path), self.preprocess(image, own), {}))
                except ValueError as exc:
                    failures.append((label, str(exc)))
        return items, failures

    def accepts_for(self, settings: dict | None) -> InputSpec:
        """What a file read with ``settings`` must hold: ``accepts`` unless a setting changes
        the geometry (e.g. one that states the file's axes or extent)."""
        return self.accepts

    def frame_columns(self, context: dict) -> dict:
        """Columns every result row of one experimental input carries (``context`` from
        :meth:`read_experimental`), e.g. the camera region it was read from. None by
        default."""
        return {}

    # -- evaluation -----------------------------------------------------------------------
    def metrics(self, true: Record, pred: Record) -> dict[str, np.ndarray]:
        """Per-sample error arrays keyed by metric name (summaries are taken by evaluate)."""
        return {}

    def summary_metrics(self, true: Record, pred: Record) -> dict:
        """Whole-set figures of merit that are not a summary of one per-sample array
        (an RMS percentage, per-bin statistics); JSON-able."""
        return {}

    def plots(self, true: Record, pred: Record, out_dir, metrics: dict,
              reference: dict | None = None) -> list:
        """Task-specific evaluation plots (``metrics`` from :meth:`metrics`; ``reference``:
        the same metrics of :meth:`reference_prediction` on the same samples, for a line
        where guessing lies); returns paths."""
        return []

    def reference_prediction(self, train: Record, n: int) -> Record:
        """The trivial answer a network must beat, for ``n`` samples, knowing only the
        training split's parameters ``train``: by default the mean of the encoded training
        targets, decoded (for a log-encoded count, the geometric mean). A task with a more
        natural guess (the identity rotation) overrides it."""
        mean = self.targets.encode(train).mean(axis=0)
        return self.targets.decode(np.repeat(mean[None], n, axis=0))

    def baseline(self, **kwargs):
        """The classical method the network is compared with (an object with ``compare``),
        or None."""
        return None

    # -- describing answers ---------------------------------------------------------------
    def describe_prediction(self, row: dict) -> dict:
        """Extra human-readable columns for one decoded prediction (e.g. a rotation angle)."""
        return {}

    def describe_truth(self, row: dict) -> dict:
        """Short human-readable summary of one true parameter row (demo tables)."""
        return {k: np.round(np.asarray(v), 3).tolist() for k, v in row.items()}

    # -- demo -----------------------------------------------------------------------------
    def demo_settings(self) -> DemoSettings:
        """Sizes for ``retroscope demo``."""
        raise NotImplementedError(f"task {self.name} has no demo")

    def demo_preprocess_settings(self) -> dict:
        """Preprocessing settings matching the files the demo writes."""
        return {}

    def live_groups(self, names: list[str], settings: dict | None = None):
        """Group the settled files of a watched folder (``retroscope watch``) into
        measurements: (groups of names, each read together by ``read_experimental``;
        names still waiting for the rest of their measurement). Default: each file alone."""
        return [[name] for name in names], []

    def demo_files(self, test, files_dir: Path, n: int) -> tuple[list[Path], list[dict]]:
        """Write ``n`` samples of the test split (``test``, a ShardDataset) as the files a lab
        would have, for ``retroscope demo`` to predict on; returns (paths, truth per sample).
        Default: each observable as a PNG, and all of them in one CXI file, each recording
        ``demo_preprocess_settings`` (how its values are to be read)."""
        from retroscope.io.readers import write_cxi, write_png

        settings = self.demo_preprocess_settings()
        files, truth, frames = [], [], []
        for i in range(n):
            # a PNG holds [0, 1]: what lies outside (noise below zero) is clipped
            image01 = np.clip(self.network_input(test.observable(i))[0], 0.0, 1.0)
            path = Path(files_dir) / f"pattern_{i}.png"
            write_png(path, image01, settings)
            files.append(path)
            frames.append(image01)
            truth.append(self.describe_truth({k: v[i] for k, v in test.params.items()}))
        cxi = Path(files_dir) / "patterns.cxi"
        write_cxi(cxi, np.stack(frames), settings=settings)
        return files + [cxi], truth


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
    #: class names; label k (1-based, 0 is the background) is ``classes[k - 1]``
    classes: tuple[str, ...]
    #: whether :meth:`refine` changes detections (a model fit seeded by the network)
    refines: bool = False

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

    def refine(self, image: np.ndarray, detection: dict, score_threshold: float) -> dict:
        """A physics-model refinement of one input's detections (same keys; the task may add
        its own, which :meth:`describe_objects` reads). The default changes nothing."""
        return detection

    def interval_scales(self, obj: dict) -> dict[str, float]:
        """Per parameter that gets a calibrated interval, the scale its error is measured in
        for this object (e.g. the cloud's radius for a centre coordinate)."""
        return {}

    def interval_unit(self, name: str) -> str:
        """The unit the calibrated half-width of parameter ``name`` is stated in."""
        return ""

    def parameter_error(self, name: str, predicted: float, true: float) -> float:
        """Signed error of one parameter (an angle task overrides it for periodicity)."""
        return float(predicted) - float(true)

    def to_frame(self, obj: dict, context: dict) -> dict:
        """A described object in the experimental frame's units (``context`` from
        :meth:`read_experimental`), without its mask."""
        return {k: v for k, v in obj.items() if k != "mask"}

    def evaluate_objects(self, images, labels, objects, matches, plot_dir,
                         refined=None) -> dict:
        """The task's own comparison of matched objects on an evaluation split (e.g. fitted
        parameters against a conventional method), JSON-able, with its plots written to
        ``plot_dir``; ``refined`` = (objects, matches) of refined detections where the
        predictor refines. Empty by default."""
        return {}


class GeometryTask(Task):
    """A task whose input is a set of tokens (one row per detected particle, padded) and
    whose answer is one 3D position per token, drawn from a generative model (the
    ``geometry`` learner): the stored observable holds the tokens (n, N, C) with a zero
    first column for padding, and the label array ``positions_label`` their true positions
    (n, N, 3) in the frame of the token's vectors. Its ``baseline()`` (if any) returns an
    object whose ``compare(tokens, params, true positions, network positions in the
    canonical frame, rotations into it)`` scores the classical method against the network
    on the same inputs; ``metrics(true, pred)`` receives records {"tokens", "position"}."""

    learner = "geometry"
    #: the stored label array of the true positions
    positions_label: str = "position"
    #: the unit of the positions
    position_unit: str = ""

    def network_input(self, observable: np.ndarray) -> np.ndarray:
        """The tokens as they are, float32 (N, C)."""
        return np.asarray(observable, dtype=np.float32)

    def token_names(self, tokens: np.ndarray) -> list[str]:
        """A name per real token of one input (N, C), for result rows (e.g. an element)."""
        return [str(int(t[0])) for t in tokens if t[0] > 0]

    def write_geometry(self, path: Path, names: list[str], positions: np.ndarray,
                       comment: str = "") -> Path | None:
        """Write one predicted geometry as the task's file format (e.g. XYZ); None: none."""
        return None
