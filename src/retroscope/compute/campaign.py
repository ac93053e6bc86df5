"""Simulation campaigns: sample parameters, simulate them in shards, store them resumably.

``generate`` is idempotent. It writes (or checks) the manifest first, then computes only the
shards whose files are missing or incomplete. Every shard draws its random numbers from its
own ``SeedSequence(seed, spawn_key=(1, index))`` and the parameters of all rows come from
``SeedSequence(seed, spawn_key=(0,))``, so the same seed gives byte-identical arrays whatever
the number of workers and whatever the order in which shards finish. Asking for different
settings in a directory that already holds a dataset is refused with the list of differences.

Workers write shards (each to a temporary name in ``shards/``, renamed into place when
complete: :func:`retroscope.io.atomic.atomic_write`); only the client writes the manifest.
A worker killed mid-shard leaves at most a ``.shard-*.tmp`` file, which the campaign deletes
when it starts and when it ends; the shard itself is simulated again. On a file system
without an atomic rename (some object stores, old NFS clients) a reader could see a shard
half-written; ``shard_is_complete`` (row count, settings hash, split present) then finds
it incomplete on the next run and it is simulated again, but write the shards to a POSIX
file system (Lustre, GPFS, NFSv4) to be safe.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from retroscope.core.registry import get_task
from retroscope.core.task import Task
from retroscope.data.shards import (
    MANIFEST,
    DatasetError,
    Manifest,
    ShardInfo,
    shard_file,
    shard_is_complete,
    write_shard,
)

def sample_parameters(task: Task, n: int, sampling: str, seed: int) -> dict[str, np.ndarray]:
    """All parameter rows of a campaign, drawn from ``SeedSequence(seed, spawn_key=(0,))``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    record = task.space.sample(n, sampling, rng)
    task.space.validate(record)
    return record


def simulate_shard(task_name: str, task_config: dict, index: int, params: dict, seed: int,
                   path: str, chash: str) -> tuple[int, int]:
    """Worker job: simulate one shard and write it. Returns (index, rows)."""
    task = get_task(task_name)
    if task_config != task.config():
        task = task.with_config(**task_config)
    rows = len(next(iter(params.values())))
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, index)))
    data = task.simulate(params, rng)
    for key, arr in data.items():
        if len(arr) != rows:
            raise DatasetError(f"task {task_name}: simulate returned {len(arr)} rows of {key!r}, "
                               f"expected {rows}")
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
            raise DatasetError(f"task {task_name}: simulate returned NaN/inf in {key!r} "
                               f"(shard {index})")
    split = task.space.split_codes(params)
    attrs = {"index": index, "seed_entropy": seed, "seed_spawn_key": [1, index],
             "config_hash": chash, "code_version": _version(), "task": task_name}
    write_shard(Path(path), params, data, split, attrs)
    return index, rows


def _version() -> str:
    from retroscope import __version__

    return __version__


def plan(task: Task, n: int, shard_size: int, seed: int, sampling: str) -> Manifest:
    """The manifest a campaign with these settings will have (nothing is written)."""
    if n <= 0 and sampling != "grid":
        raise ValueError(f"n must be positive, got {n}")
    if shard_size <= 0:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    if sampling == "grid":
        n = len(next(iter(task.space.grid().values())))
    shards = [ShardInfo(index=i, file=shard_file(i), rows=min(shard_size, n - i * shard_size),
                        seed_spawn_key=[1, i])
              for i in range(-(-n // shard_size))]
    return Manifest(task=task.name, space=task.space.to_dict(), config=task.config(),
                    sampling=sampling, n=n, shard_size=shard_size, seed=seed, shards=shards)


def generate(task: Task, out: Path, n: int, shard_size: int = 256, seed: int = 0,
             sampling: str = "uniform", executor=None, overwrite: bool = False,
             progress: bool = True) -> Manifest:
    """Simulate ``n`` samples of ``task`` into ``out``; resume if ``out`` holds a partial run."""
    from retroscope.compute.executors import InProcess

    out = Path(out)
    wanted = plan(task, n, shard_size, seed, sampling)
    if (out / MANIFEST).exists():
        stored = Manifest.load(out)
        if stored.config_hash != wanted.config_hash:
            if not overwrite:
                diffs = "\n  ".join(stored.diff(wanted))
                raise DatasetError(
                    f"{out} already holds a dataset made with different settings:\n  {diffs}\n"
                    "Use another --out, the same settings to resume, or --overwrite to replace it."
                )
            _remove_dataset(out)
        elif overwrite:
            _remove_dataset(out)
    elif out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out} exists, is not empty and has no {MANIFEST}; refusing to "
                           "write into it (choose another --out)")

    manifest = wanted
    (out / "shards").mkdir(parents=True, exist_ok=True)
    remove_temporaries(out)
    chash = manifest.config_hash
    for info in manifest.shards:
        info.done = shard_is_complete(out / info.file, info.rows, chash)
    manifest.save(out)

    todo = [s for s in manifest.shards if not s.done]
    if not todo:
        return manifest
    params = sample_parameters(task, manifest.n, sampling, seed)
    jobs = [(task.name, task.config(), s.index,
             {k: v[s.index * shard_size: s.index * shard_size + s.rows] for k, v in params.items()},
             seed, str(out / s.file), chash) for s in todo]
    executor = executor or InProcess()
    by_index = {s.index: s for s in manifest.shards}
    with _progress(progress) as bar:
        tid = bar.add_task(f"simulating {task.name} ({executor.name})", total=manifest.n,
                           completed=manifest.rows_done)
        for index, rows in executor.map(simulate_shard, jobs):
            by_index[index].done = True
            manifest.save(out)
            bar.advance(tid, rows)
    remove_temporaries(out)
    return manifest


def remove_temporaries(out: Path) -> list[Path]:
    """Delete the temporary files that workers killed mid-shard left in ``out/shards``
    (never a finished shard). Call it only when no worker is writing there."""
    stale = sorted((Path(out) / "shards").glob(".shard-*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _remove_dataset(out: Path) -> None:
    """Delete the shards and manifest of a dataset (and nothing else in ``out``)."""
    shutil.rmtree(out / "shards", ignore_errors=True)
    (out / MANIFEST).unlink(missing_ok=True)


def _progress(enabled: bool):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled)
