"""Write-once HDF5 shards and the dataset manifest.

A dataset directory holds ``manifest.json`` and ``shards/shard-NNNNN.h5``. Each shard is written
by exactly one process, to a temporary name first, and moved into place with ``os.replace``
(:func:`retroscope.io.atomic.atomic_write`) only when complete, so a shard file that exists is
always whole (HDF5 has no safe concurrent writers without MPI; SWMR allows one). The manifest records the task, its parameter space and
simulation settings, their hash, the code version, and per shard its seed (a
``numpy.random.SeedSequence`` spawn key) and row count. Only the driver process writes the
manifest, also atomically.

Shard layout::

    /params/<name>   (rows,) or (rows, 4)   the physical parameters of each row
    /data/<key>      (rows, ...)            the simulated clean record (e.g. /data/image)
    /split           (rows,) int8           hash of the parameter row modulo 7 (0 val, 1 test)
    /derived         (rows,) bool, optional rows not simulated directly (e.g. interpolated
                                            between simulated ones): always training rows,
                                            whatever their hash; absent means none
    attrs: index, rows, seed_entropy, seed_spawn_key, config_hash, code_version
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from retroscope import __version__
from retroscope.io.atomic import atomic_write, json_default, write_json_atomic

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def shard_file(index: int) -> str:
    """A shard's path inside its dataset directory."""
    return f"shards/shard-{index:05d}.h5"


class DatasetError(RuntimeError):
    """A dataset directory, manifest or shard is missing, corrupt or inconsistent."""


def config_hash(payload: dict) -> str:
    """SHA-256 of the canonical JSON of ``payload`` (sorted keys, no whitespace)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ShardInfo:
    index: int
    file: str
    rows: int
    seed_spawn_key: list[int]
    done: bool = False

    def to_dict(self) -> dict:
        return {"index": self.index, "file": self.file, "rows": self.rows,
                "seed_spawn_key": self.seed_spawn_key, "done": self.done}


@dataclass
class Manifest:
    """What a dataset directory contains and how it was made."""

    task: str
    space: dict
    config: dict
    sampling: str
    n: int
    shard_size: int
    seed: int
    shards: list[ShardInfo] = field(default_factory=list)
    code_version: str = __version__
    format: int = FORMAT_VERSION
    parts: list[dict] = field(default_factory=list)  # a merged dataset's campaigns (merge.py)
    derived: dict = field(default_factory=dict)  # what derived rows came from (derived.py)

    @property
    def identity(self) -> dict:
        """The settings that determine the data; two runs agree iff these agree."""
        out = {"task": self.task, "space": self.space, "config": self.config,
               "sampling": self.sampling, "n": self.n, "shard_size": self.shard_size,
               "seed": self.seed, "format": self.format}
        if self.parts:
            out["parts"] = self.parts
        if self.derived:
            out["derived"] = self.derived
        return out

    @property
    def config_hash(self) -> str:
        return config_hash(self.identity)

    @property
    def complete(self) -> bool:
        return all(s.done for s in self.shards)

    @property
    def rows_done(self) -> int:
        return sum(s.rows for s in self.shards if s.done)

    def to_dict(self) -> dict:
        return {**self.identity, "config_hash": self.config_hash,
                "code_version": self.code_version, "complete": self.complete,
                "rows_done": self.rows_done, "shards": [s.to_dict() for s in self.shards]}

    @classmethod
    def from_dict(cls, d: dict) -> Manifest:
        try:
            return cls(task=d["task"], space=d["space"], config=d["config"],
                       sampling=d["sampling"], n=int(d["n"]), shard_size=int(d["shard_size"]),
                       seed=int(d["seed"]), shards=[ShardInfo(**s) for s in d["shards"]],
                       code_version=d.get("code_version", "unknown"),
                       format=int(d.get("format", FORMAT_VERSION)),
                       parts=list(d.get("parts", [])), derived=dict(d.get("derived", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"manifest is missing or has a malformed field: {exc}") from exc

    def save(self, root: Path) -> None:
        write_json_atomic(Path(root) / MANIFEST, self.to_dict())

    @classmethod
    def load(cls, root: Path) -> Manifest:
        path = Path(root) / MANIFEST
        if not path.exists():
            raise DatasetError(f"{path}: no manifest; is this a retroscope dataset directory?")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: corrupt JSON ({exc})") from exc
        try:
            manifest = cls.from_dict(d)
        except DatasetError as exc:
            raise DatasetError(f"{path}: {exc}") from exc
        stored = d.get("config_hash")
        if stored and stored != manifest.config_hash:
            raise DatasetError(f"{path}: config_hash does not match the recorded settings")
        return manifest

    def diff(self, other: Manifest) -> list[str]:
        """Human-readable list of the identity fields that differ."""
        a, b = self.identity, other.identity
        out = []
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
                    keys = sorted(set(a[key]) | set(b[key]))
                    sub = [k for k in keys if a[key].get(k) != b[key].get(k)]
                    out += [f"{key}.{k}: {a[key].get(k)!r} (stored) vs {b[key].get(k)!r} (asked)"
                            for k in sub]
                else:
                    out.append(f"{key}: {a.get(key)!r} (stored) vs {b.get(key)!r} (asked)")
        return out


def write_shard(path: Path, params: dict[str, np.ndarray], data: dict[str, np.ndarray],
                split_codes: np.ndarray, attrs: dict, derived: np.ndarray | None = None) -> None:
    """Write one complete shard: temporary file first, then ``os.replace`` into ``path``.

    ``derived`` (one bool per row) marks the rows that were not simulated directly; without
    it the shard has no ``/derived`` and every row counts as simulated."""
    path = Path(path)
    rows = len(split_codes)
    extra = {} if derived is None else {"derived": derived}
    for key, arr in {**params, **data, **extra}.items():
        if len(arr) != rows:
            raise DatasetError(f"{path.name}: field {key!r} has {len(arr)} rows, expected {rows}")

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for key, arr in params.items():
                f.create_dataset(f"params/{key}", data=np.asarray(arr, dtype=np.float64))
            for key, arr in data.items():
                arr = np.ascontiguousarray(arr)
                chunks = (1,) + arr.shape[1:] if arr.ndim > 1 else None
                f.create_dataset(f"data/{key}", data=arr, chunks=chunks)
            f.create_dataset("split", data=np.asarray(split_codes, dtype=np.int8))
            if derived is not None:
                f.create_dataset("derived", data=np.asarray(derived, dtype=bool))
            for key, value in attrs.items():
                f.attrs[key] = value
            f.attrs["rows"] = rows

    atomic_write(path, write)


def shard_is_complete(path: Path, rows: int, config_hash_value: str) -> bool:
    """True if ``path`` is a readable shard with the expected rows and settings hash."""
    try:
        with h5py.File(path, "r") as f:
            return (int(f.attrs["rows"]) == rows and f.attrs["config_hash"] == config_hash_value
                    and "split" in f)
    except (OSError, KeyError):
        return False


def read_split(f: h5py.File) -> tuple[np.ndarray, np.ndarray]:
    """(split codes, derived flags) of an open shard; a shard without ``/derived`` (every
    shard written before derived rows existed) has none."""
    codes = f["split"][()]
    derived = f["derived"][()] if "derived" in f else np.zeros(len(codes), dtype=bool)
    return codes, derived.astype(bool)


def read_shard(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Read a whole shard: (params, data, split_codes)."""
    try:
        with h5py.File(path, "r") as f:
            params = {k: f["params"][k][()] for k in f["params"]}
            data = {k: f["data"][k][()] for k in f["data"]}
            return params, data, f["split"][()]
    except (OSError, KeyError) as exc:
        raise DatasetError(f"{path}: unreadable shard ({exc})") from exc
