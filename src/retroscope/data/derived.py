"""Datasets of derived rows: records that were not simulated directly (for instance
interpolated between simulated ones), stored like a campaign and marked as such.

Every row of such a dataset carries ``/derived = True`` in its shard, so a
:class:`~retroscope.data.dataset.ShardDataset` puts it in the training split whatever its hash:
validation and test only ever hold simulated rows, also after a merge with the campaigns the
rows were derived from (``data/merge.py`` keeps each shard as it is). The manifest's
``derived`` entry (in its identity, so in its hash) records what the rows came from and a
digest of their parameters; ``sampling`` is ``"derived"``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from retroscope import __version__
from retroscope.core.task import Task
from retroscope.data.shards import DatasetError, Manifest, ShardInfo, shard_file, write_shard

DERIVED = "derived"


def write_derived_dataset(out: Path, task: Task, params: dict[str, np.ndarray],
                          data: dict[str, np.ndarray], source: str,
                          shard_size: int = 100) -> Manifest:
    """Write the rows ``params`` (validated against ``task.space``) and ``data`` (the task's
    record arrays, one row each) as the new dataset directory ``out``, every row marked
    derived; ``source`` says what they were derived from and how (recorded in the manifest).

    Write-once: an existing ``out`` is refused, shards go through the atomic shard writer,
    and the directory is assembled under ``out.partial`` and renamed into place only when
    whole. Non-finite values are refused, naming the array."""
    out = Path(out)
    if out.exists():
        raise DatasetError(f"{out} already exists; derived rows go to a new directory")
    if shard_size <= 0:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    n = task.space.validate(params)
    for key, arr in data.items():
        if np.issubdtype(np.asarray(arr).dtype, np.floating) and not np.all(np.isfinite(arr)):
            raise DatasetError(f"{out}: derived {key!r} holds NaN or infinite values")
    digest = hashlib.sha256()
    for name in task.space.names:
        digest.update(np.ascontiguousarray(params[name], dtype=np.float64).tobytes())
    starts = range(0, n, shard_size)
    manifest = Manifest(task=task.name, space=task.space.to_dict(), config=task.config(),
                        sampling=DERIVED, n=n, shard_size=shard_size, seed=-1,
                        shards=[ShardInfo(index=i, file=shard_file(i),
                                          rows=min(shard_size, n - start), seed_spawn_key=[],
                                          done=True)
                                for i, start in enumerate(starts)],
                        derived={"source": source, "params_sha256": digest.hexdigest()})
    partial = out.with_name(out.name + ".partial")
    if partial.exists():  # left by an interrupted write of this directory
        shutil.rmtree(partial)
    (partial / "shards").mkdir(parents=True)
    codes = task.space.split_codes(params)
    for info, start in zip(manifest.shards, starts):
        rows = slice(start, start + info.rows)
        write_shard(partial / info.file, {k: params[k][rows] for k in task.space.names},
                    {k: np.asarray(v)[rows] for k, v in data.items()}, codes[rows],
                    {"index": info.index, "config_hash": manifest.config_hash,
                     "code_version": __version__, "task": task.name, "derived_from": source},
                    derived=np.ones(info.rows, dtype=bool))
    manifest.save(partial)
    os.replace(partial, out)
    return manifest
