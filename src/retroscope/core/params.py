"""Parameter spaces: named physical parameters with units and bounds.

A :class:`ParameterSpace` samples parameter *records* (a dict of column arrays, one row per
sample) on a grid, uniformly at random, or from a scrambled Sobol sequence, validates records
coming from users, and assigns each record to the train/validation/test split by hashing it.

The split follows Allsopp et al., J. Chem. Phys. 163, 044201 (2025), Sec. II B: the hash of a
parameter record modulo 7 decides its split (0 -> validation, 1 -> test, anything else ->
train), so membership never depends on the order in which samples were generated.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Split = Literal["train", "val", "test", "all"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


class ParameterError(ValueError):
    """A parameter record is missing a field, has the wrong shape, or is out of bounds."""


@dataclass(frozen=True)
class Scalar:
    """A real (or integer) parameter on a closed interval ``[low, high]`` in ``unit``.

    ``step`` is the grid spacing used by :meth:`ParameterSpace.grid` (both ends included).
    """

    name: str
    unit: str
    low: float
    high: float
    step: float | None = None
    integer: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high)) or self.high < self.low:
            raise ParameterError(f"{self.name}: bounds [{self.low}, {self.high}] are not valid")
        if self.step is not None and self.step <= 0:
            raise ParameterError(f"{self.name}: step must be positive, got {self.step}")

    width = 1

    @property
    def span(self) -> float:
        return self.high - self.low

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Map uniform numbers in [0, 1) onto the interval (rounded for integer parameters)."""
        u = np.asarray(u, dtype=np.float64)
        if self.integer:
            return np.clip(np.floor(self.low + u * (self.span + 1)), self.low, self.high)
        return self.low + u * self.span

    def grid_values(self) -> np.ndarray:
        if self.step is None:
            raise ParameterError(f"{self.name}: no grid step defined")
        n = int(math.floor(self.span / self.step + 1e-9)) + 1
        return self.low + self.step * np.arange(n)

    def check(self, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 1:
            raise ParameterError(f"{self.name}: expected shape (n,), got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ParameterError(f"{self.name}: contains NaN or infinite values")
        tol = 1e-9 * max(1.0, abs(self.span))
        bad = (v < self.low - tol) | (v > self.high + tol)
        if np.any(bad):
            raise ParameterError(
                f"{self.name} [{self.unit}]: {int(bad.sum())} value(s) outside "
                f"[{self.low}, {self.high}], e.g. {v[bad][0]:g}"
            )

    def to_dict(self) -> dict:
        return {"type": "scalar", "name": self.name, "unit": self.unit, "low": self.low,
                "high": self.high, "step": self.step, "integer": self.integer, "doc": self.doc}


@dataclass(frozen=True)
class Orientation:
    """A 3D orientation stored as a unit quaternion (x, y, z, w; scipy's scalar-last order).

    Orientations are sampled uniformly (Haar measure) and reduced into the fundamental domain
    of the point group ``group`` (a scipy ``Rotation.create_group`` name such as ``"I"`` for
    the icosahedral group), with the canonical sign w >= 0. ``group=None`` keeps the full
    rotation group.
    """

    name: str
    group: str | None = None
    unit: str = "quaternion"
    doc: str = ""

    width = 4

    def _group(self):
        from scipy.spatial.transform import Rotation

        return None if self.group is None else Rotation.create_group(self.group)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Map uniform numbers (n, 3) to uniformly distributed quaternions (Shoemake 1992)."""
        from scipy.spatial.transform import Rotation

        u = np.atleast_2d(np.asarray(u, dtype=np.float64))
        u1, u2, u3 = u[:, 0], 2 * np.pi * u[:, 1], 2 * np.pi * u[:, 2]
        a, b = np.sqrt(1 - u1), np.sqrt(u1)
        quat = np.stack([a * np.sin(u2), a * np.cos(u2), b * np.sin(u3), b * np.cos(u3)], -1)
        rot = Rotation.from_quat(quat)
        group = self._group()
        if group is not None:
            rot = rot.reduce(right=group)
        return rot.as_quat(canonical=True)

    def check(self, values: np.ndarray) -> None:
        q = np.asarray(values, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != 4:
            raise ParameterError(f"{self.name}: expected quaternions of shape (n, 4), got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ParameterError(f"{self.name}: contains NaN or infinite values")
        norm = np.linalg.norm(q, axis=1)
        if np.any(np.abs(norm - 1) > 1e-6):
            raise ParameterError(f"{self.name}: quaternions are not unit length (|q| = {norm.min():.3g}..)")

    def to_dict(self) -> dict:
        return {"type": "orientation", "name": self.name, "group": self.group, "unit": self.unit,
                "doc": self.doc}


@dataclass(frozen=True)
class Choice:
    """A categorical parameter (e.g. a cluster shape); stored as the index into ``options``."""

    name: str
    options: tuple[str, ...]
    unit: str = "class"
    doc: str = ""

    width = 1

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        return np.minimum(np.floor(np.asarray(u) * len(self.options)), len(self.options) - 1)

    def grid_values(self) -> np.ndarray:
        return np.arange(len(self.options), dtype=np.float64)

    def check(self, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 1:
            raise ParameterError(f"{self.name}: expected shape (n,), got {v.shape}")
        if not np.all((v >= 0) & (v < len(self.options)) & (v == np.floor(v))):
            raise ParameterError(f"{self.name}: values must be indices into {self.options}")

    def to_dict(self) -> dict:
        return {"type": "choice", "name": self.name, "options": list(self.options),
                "unit": self.unit, "doc": self.doc}


Parameter = Scalar | Orientation | Choice


def _parameter_from_dict(d: dict) -> Parameter:
    d = dict(d)
    kind = d.pop("type")
    if kind == "scalar":
        return Scalar(**d)
    if kind == "orientation":
        return Orientation(**d)
    if kind == "choice":
        d["options"] = tuple(d["options"])
        return Choice(**d)
    raise ParameterError(f"unknown parameter type {kind!r}")


Record = dict[str, np.ndarray]


@dataclass(frozen=True)
class ParameterSpace:
    """An ordered collection of named parameters.

    Records are dicts ``{name: array}``; scalars have shape (n,), orientations (n, 4).
    ``split_by``: the parameters the split hash reads (empty: all of them); hashing only a
    categorical one (e.g. which molecule) holds whole categories out for validation and test.
    """

    parameters: tuple[Parameter, ...]
    fixed: dict = field(default_factory=dict)
    split_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ParameterError(f"duplicate parameter names in {names}")
        unknown = [s for s in self.split_by if s not in names]
        if unknown:
            raise ParameterError(f"split_by names {unknown}, not parameters of {names}")

    # -- introspection -------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def __getitem__(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def dimension(self) -> int:
        """Number of uniform random numbers needed per sample (3 per orientation)."""
        return sum(3 if isinstance(p, Orientation) else 1 for p in self.parameters)

    # -- sampling ------------------------------------------------------------------------
    def _from_unit(self, u: np.ndarray) -> Record:
        out: Record = {}
        col = 0
        for p in self.parameters:
            k = 3 if isinstance(p, Orientation) else 1
            chunk = u[:, col : col + k]
            out[p.name] = p.from_unit(chunk if k == 3 else chunk[:, 0])
            col += k
        return out

    def sample_uniform(self, n: int, rng: np.random.Generator) -> Record:
        """``n`` independent uniform samples (orientations: Haar-uniform in the domain)."""
        return self._from_unit(rng.random((n, self.dimension)))

    def sample_sobol(self, n: int, seed: int = 0) -> Record:
        """``n`` points of a scrambled Sobol sequence (low discrepancy over the box)."""
        from scipy.stats import qmc

        sampler = qmc.Sobol(d=self.dimension, scramble=True, rng=np.random.default_rng(seed))
        m = max(0, math.ceil(math.log2(max(n, 1))))
        u = sampler.random_base2(m)[:n]
        return self._from_unit(u)

    def grid(self) -> Record:
        """The full Cartesian grid over all parameters with a ``step`` (or all options)."""
        axes = []
        for p in self.parameters:
            if isinstance(p, Orientation):
                raise ParameterError(f"{p.name}: orientations have no grid; sample them instead")
            axes.append(p.grid_values())
        mesh = np.meshgrid(*axes, indexing="ij")
        return {p.name: m.ravel() for p, m in zip(self.parameters, mesh)}

    def sample(self, n: int, method: str, rng: np.random.Generator) -> Record:
        if method == "uniform":
            return self.sample_uniform(n, rng)
        if method == "sobol":
            return self.sample_sobol(n, seed=int(rng.integers(2**31)))
        if method == "grid":
            record = self.grid()
            if n and n < len(next(iter(record.values()))):
                raise ParameterError(f"grid has more points than n={n}")
            return record
        raise ParameterError(f"unknown sampling method {method!r} (uniform, sobol, grid)")

    # -- validation ----------------------------------------------------------------------
    def validate(self, record: Record) -> int:
        """Check every field of ``record``; return the number of rows. Raises ParameterError."""
        missing = [name for name in self.names if name not in record]
        if missing:
            raise ParameterError(f"missing parameter(s) {missing}; expected {self.names}")
        lengths = set()
        for p in self.parameters:
            p.check(record[p.name])
            lengths.add(len(record[p.name]))
        if len(lengths) != 1:
            raise ParameterError(f"parameter columns have different lengths {sorted(lengths)}")
        return lengths.pop()

    # -- splits --------------------------------------------------------------------------
    def split_codes(self, record: Record) -> np.ndarray:
        """Hash of each row modulo 7 (0 -> val, 1 -> test, 2..6 -> train).

        The row (its ``split_by`` columns, else all) is rendered with 12 significant digits
        per value, so the hash is stable under float round-trips through storage but
        distinguishes any two distinct grid points.
        """
        n = self.validate(record)
        codes = np.empty(n, dtype=np.int64)
        names = list(self.split_by) or self.names
        cols = [np.atleast_2d(np.asarray(record[name], dtype=np.float64).reshape(n, -1))
                for name in names]
        for i in range(n):
            text = ";".join(
                f"{name}=" + ",".join(f"{v:.12g}" for v in col[i])
                for name, col in zip(names, cols)
            )
            digest = hashlib.sha256(text.encode()).digest()
            codes[i] = int.from_bytes(digest[:8], "little") % 7
        return codes

    def splits(self, record: Record) -> np.ndarray:
        """The split name of each row: an array of 'train', 'val', 'test'."""
        codes = self.split_codes(record)
        return np.where(codes == 0, "val", np.where(codes == 1, "test", "train"))

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = {"parameters": [p.to_dict() for p in self.parameters], "fixed": self.fixed}
        if self.split_by:  # absent when all columns are hashed (manifests before it)
            out["split_by"] = list(self.split_by)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> ParameterSpace:
        return cls(tuple(_parameter_from_dict(p) for p in d["parameters"]),
                   dict(d.get("fixed", {})), tuple(d.get("split_by", ())))

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, unit, range) rows for tables."""
        rows = []
        for p in self.parameters:
            if isinstance(p, Scalar):
                rows.append((p.name, p.unit, f"[{p.low:g}, {p.high:g}]"))
            elif isinstance(p, Orientation):
                rows.append((p.name, p.unit, f"fundamental domain of {p.group or 'SO(3)'}"))
            else:
                rows.append((p.name, p.unit, "|".join(p.options)))
        return rows
