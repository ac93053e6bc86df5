"""How physical parameters become network outputs and back.

A regression network predicts numbers in its own scale; a :class:`Targets` object maps a task's
parameter record (physical units) onto those numbers (``encode``), back (``decode``), and says
how an interval in the network's scale becomes a physical one (``scale``, ``bounds``).
:class:`LinearTargets` maps each scalar parameter from its bounds onto [0, 1], linearly or through
the logarithm; a task with symmetric targets (orientations under a point group) writes its own
and overrides ``align``. :class:`BinnedTargets` are the classes of a classifier: the bins of
one scalar parameter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from retroscope.core.params import ParameterSpace, Record


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

    def limits(self) -> np.ndarray:
        """(d, 2) physical bounds of each column (a quaternion component lies in [-1, 1], a
        radius is not negative): intervals are cut to them and plots stay inside them.
        Unbounded (-inf, inf) by default."""
        return np.tile([-np.inf, np.inf], (self.dim, 1))

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
    encoding in the encoded variable (ln of the value for log columns). Columns named in
    ``nonnegative`` (a distance, an intensity) have 0 as their physical lower limit, where
    intervals are cut."""

    def __init__(self, space: ParameterSpace, columns: tuple[str, ...] | None = None,
                 log: tuple[str, ...] = (), nonnegative: tuple[str, ...] = ()) -> None:
        self.space = space
        self.columns = tuple(columns or space.names)
        unknown = set(nonnegative) - set(self.columns)
        if unknown:
            raise ValueError(f"non-negative columns {sorted(unknown)} are not targets")
        self.nonnegative = np.array([n in nonnegative or n in log for n in self.columns])
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

    def limits(self) -> np.ndarray:
        """(d, 2): 0 below for non-negative (and log-encoded) columns, else unbounded."""
        low = np.where(self.nonnegative, 0.0, -np.inf)
        return np.stack([low, np.full(self.dim, np.inf)], axis=1)

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


class BinnedTargets(Targets):
    """Classes that are bins of one scalar parameter ``column`` of ``space``: with ``edges``
    e_0 < e_1 < ... < e_n, class k holds e_k <= value < e_(k+1), the last one closed at the top
    (e_(n-1) <= value <= e_n). A value outside [e_0, e_n] has no class and is refused.

    ``encode`` gives each row's class index (int64, shape (n,)); ``decode`` gives the centre
    of the most probable class; the network has one output (a logit) per class, so ``dim`` is
    the number of classes; ``columns`` and ``units`` name the one parameter.
    """

    def __init__(self, space: ParameterSpace, column: str, edges) -> None:
        if column not in space.names or not hasattr(space[column], "low"):
            raise ValueError(f"binned targets need a scalar parameter of the space "
                             f"{list(space.names)}, got {column!r}")
        edges = np.asarray(edges, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 3 or not np.all(np.isfinite(edges)) \
                or np.any(np.diff(edges) <= 0):
            raise ValueError(f"{column}: edges must be at least 3 finite, increasing values "
                             f"(2 classes or more), got {edges.tolist()}")
        self.space = space
        self.column = column
        self.edges = edges
        self.columns = (column,)
        self.units = (space[column].unit,)

    @property
    def n_classes(self) -> int:
        return len(self.edges) - 1

    @property
    def dim(self) -> int:
        return self.n_classes

    @property
    def labels(self) -> tuple[str, ...]:
        """Each class as a reader writes it, e.g. ``"1 <= r < 2 (bohr)"``."""
        unit = f" ({self.units[0]})" if self.units[0] not in ("", "1") else ""
        last = self.n_classes - 1
        return tuple(f"{lo:g} <= {self.column} {'<=' if k == last else '<'} {hi:g}{unit}"
                     for k, (lo, hi) in enumerate(zip(self.edges[:-1], self.edges[1:])))

    def centres(self) -> np.ndarray:
        """(n_classes,) the middle of each class, in the column's unit."""
        return 0.5 * (self.edges[:-1] + self.edges[1:])

    def scale(self) -> np.ndarray:
        """(n_classes,) the width of each class, in the column's unit."""
        return np.diff(self.edges)

    def encode(self, record: Record) -> np.ndarray:
        """(n,) int64 class index of every row; a value outside the edges is a ValueError."""
        v = np.asarray(record[self.column], dtype=np.float64).reshape(-1)
        bad = ~((v >= self.edges[0]) & (v <= self.edges[-1]))
        if np.any(bad):
            raise ValueError(f"{self.column}: {int(bad.sum())} value(s) outside the classes' "
                             f"range [{self.edges[0]:g}, {self.edges[-1]:g}] {self.units[0]}, "
                             f"e.g. {v[bad][0]:g}")
        index = np.searchsorted(self.edges, v, side="right") - 1
        return np.minimum(index, self.n_classes - 1).astype(np.int64)

    def decode(self, y: np.ndarray) -> Record:
        """The centre of each row's class: ``y`` holds class indices (n,) or class scores
        (n, n_classes) (logits or probabilities, the largest taken)."""
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == self.n_classes:
            index = np.argmax(y, axis=1)
        elif y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
            index = y
        else:
            raise ValueError(f"decode takes (n,) class indices or (n, {self.n_classes}) class "
                             f"scores, got {y.dtype} {y.shape}")
        return {self.column: self.centres()[index]}

    def columns_physical(self, record: Record) -> np.ndarray:
        return np.asarray(record[self.column], dtype=np.float64).reshape(-1, 1)

    def limits(self) -> np.ndarray:
        """(1, 2): the range the classes cover."""
        return np.array([[self.edges[0], self.edges[-1]]])
