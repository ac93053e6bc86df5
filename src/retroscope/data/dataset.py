"""A torch Dataset over the shards of one split.

HDF5 handles cannot be pickled and a handle shared across ``fork`` gives corrupt reads, so the
dataset only reads the small split arrays while indexing (and closes the files again) and opens
each shard lazily, inside whichever DataLoader worker first needs it.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from retroscope.core.params import Split
from retroscope.core.registry import learner_of
from retroscope.core.task import Task
from retroscope.data.shards import DatasetError, Manifest, read_split

SPLIT_CODES = {"val": (0,), "test": (1,), "train": (2, 3, 4, 5, 6),
               "all": (0, 1, 2, 3, 4, 5, 6)}


def in_split(codes: np.ndarray, derived: np.ndarray, split: Split) -> np.ndarray:
    """Which rows belong to ``split``: those whose hash code is the split's, except that a
    derived row (not simulated directly, e.g. interpolated between simulated rows) is always
    a training row, whatever its hash, so validation and test hold simulated rows only.
    ``"all"``: every simulated row (a separate campaign held out as a whole)."""
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_CODES)}, got {split!r}")
    chosen = np.isin(codes, SPLIT_CODES[split])
    if split == "all":
        return chosen & ~derived
    return chosen | derived if split == "train" else chosen & ~derived


class ShardDataset(Dataset):
    """Rows of one split of a dataset directory: ``(input (C, H, W), target)`` tensors.

    The target of a row is what the learner trains on (``learner.targets(task, params,
    labels)``, made once for the split: encoded parameters for a regression, boxes and masks
    for a detector); the learner is the task's unless another is given. ``params`` holds every
    row's physical parameters and ``labels`` the task's stored label arrays
    (``task.label_keys``).

    ``observer`` (an ``OnlineObserver``) applies the online imperfections with a generator
    seeded by (seed, epoch, row index); call :meth:`set_epoch` to draw new ones each epoch.
    It changes the input's values only, never its geometry, so the labels stay true.
    ``in_memory`` reads the whole split once (fast for small sets on a laptop).
    """

    def __init__(self, root: Path, task: Task, split: Split = "train", observer=None,
                 in_memory: bool = False, limit: int | None = None, learner=None) -> None:
        self.root = Path(root)
        self.task = task
        self.observer = observer
        self.epoch = 0
        self.manifest = Manifest.load(self.root)
        if self.manifest.task != task.name:
            raise DatasetError(f"{self.root}: holds task {self.manifest.task!r}, not {task.name!r}")
        if not self.manifest.complete:
            done = self.manifest.rows_done
            raise DatasetError(f"{self.root}: incomplete ({done}/{self.manifest.n} rows); "
                               "re-run the same `retroscope simulate` command to finish it")
        index = []
        for info in self.manifest.shards:
            path = self.root / info.file
            try:
                with h5py.File(path, "r") as f:
                    rows = np.flatnonzero(in_split(*read_split(f), split))
            except (OSError, KeyError) as exc:
                raise DatasetError(f"{path}: unreadable shard ({exc})") from exc
            index += [(info.index, int(r)) for r in rows]
        if limit is not None:
            index = index[:limit]
        if not index:
            raise DatasetError(f"{self.root}: the {split!r} split is empty")
        self.index = index
        self._files: dict[int, h5py.File] = {}
        self._cache = None
        self.params = self._read_params()
        self.labels = {key: self._read_data(key) for key in task.label_keys}
        learner = learner_of(task) if learner is None else learner
        self.targets = learner.targets(task, self.params, self.labels)
        if in_memory:
            self._cache = self._read_all()

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _file(self, shard: int) -> h5py.File:
        f = self._files.get(shard)
        if f is None:
            path = self.root / self.manifest.shards[shard].file
            try:
                f = h5py.File(path, "r")
            except OSError as exc:
                raise DatasetError(f"{path}: unreadable shard ({exc})") from exc
            self._files[shard] = f
        return f

    def _by_shard(self):
        groups: dict[int, list[int]] = {}
        for pos, (shard, row) in enumerate(self.index):
            groups.setdefault(shard, []).append(pos)
        return groups

    def _read_params(self) -> dict[str, np.ndarray]:
        return {name: self._read_column("params", name, np.float64)
                for name in self.task.space.names}

    def labels_row(self, i: int) -> dict[str, np.ndarray]:
        return {key: values[i] for key, values in self.labels.items()}

    def _read_all(self) -> np.ndarray:
        return self._read_data(self.task.observable)

    def _read_data(self, key: str) -> np.ndarray:
        return self._read_column("data", key)

    def _read_column(self, group: str, key: str, dtype=None) -> np.ndarray:
        """``/group/key`` of every row of the split, in row order; a shard that cannot be read
        or lacks the array is named in the error."""
        out = None
        for shard, positions in self._by_shard().items():
            rows = [self.index[p][1] for p in positions]
            path = self.root / self.manifest.shards[shard].file
            try:
                with h5py.File(path, "r") as f:
                    if key not in f.get(group, {}):
                        raise DatasetError(f"{path}: no /{group}/{key} (the task needs it)")
                    values = f[group][key][()][rows]
            except OSError as exc:
                raise DatasetError(f"{path}: unreadable shard ({exc})") from exc
            if out is None:
                out = np.empty((len(self.index),) + values.shape[1:],
                               dtype=dtype or values.dtype)
            out[positions] = values
        return out

    def observable(self, i: int) -> np.ndarray:
        if self._cache is not None:
            return self._cache[i]
        shard, row = self.index[i]
        return self._file(shard)["data"][self.task.observable][row]

    def __getitem__(self, i: int):
        x = torch.from_numpy(self.task.network_input(self.observable(i)))
        if self.observer is not None:
            x = self.observer(x, index=i, epoch=self.epoch)
        x = torch.as_tensor(self.task.network_view(x.numpy()))
        return x, self.targets[i]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
