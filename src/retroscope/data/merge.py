"""Merge simulation campaigns into one dataset directory.

Campaigns of one task and one set of simulation settings, run with different seeds (on
different machines, or one after another to grow a training set), are combined into a new
directory whose manifest lists every shard of every part. Shard files are write-once, so they
are hard-linked rather than copied where the file system allows (copied otherwise): merging a
million-sample campaign costs no disk space and no time. The parts are left untouched.

The merged manifest records the parts (path, config hash, n, seed, sampling) in its identity,
so a run trained on it names exactly which campaigns it saw; its ``sampling`` is ``"merged"``
and ``retroscope simulate`` refuses to write into it. The split of each row stays the hash of
its parameters modulo 7, so validation and test rows of the parts stay validation and test
rows of the merge.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from retroscope.data.shards import DatasetError, Manifest, ShardInfo, shard_file

MERGED = "merged"


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not supported
        shutil.copy2(src, dst)


def _full_config(task_name: str, config: dict) -> dict:
    """``config`` with every setting the task now has, defaults filled in."""
    from retroscope.core.registry import get_task

    task = get_task(task_name)
    if config == task.config():
        return config
    try:
        return task.with_config(**config).config()
    except (ValueError, TypeError, NotImplementedError):  # settings this task does not know
        return config


def merge_datasets(parts: list[Path], out: Path) -> Manifest:
    """Combine the complete campaigns ``parts`` into the new dataset directory ``out``.

    Raises :class:`DatasetError` if fewer than two parts are given, a part is incomplete or
    unreadable, the parts differ in task or simulation settings, a campaign is given twice, or
    ``out`` already exists. The directory is assembled under ``out.partial`` and renamed into
    place only when whole, so an interrupted merge leaves no half dataset behind (a rerun starts
    the partial one afresh).
    """
    parts = [Path(p) for p in parts]
    out = Path(out)
    if len(parts) < 2:
        raise DatasetError("merge needs at least two datasets")
    if out.exists():
        raise DatasetError(f"{out} already exists; choose a new directory for the merge")
    manifests = []
    for path in parts:
        m = Manifest.load(path)
        if not m.complete:
            raise DatasetError(f"{path}: incomplete ({m.rows_done}/{m.n} rows); finish it with "
                               "the same `retroscope simulate` command before merging")
        manifests.append(m)
    hashes = [m.config_hash for m in manifests]  # as stored in each part's manifest
    for m in manifests:  # settings added to the task since a part was made take defaults
        m.config = _full_config(m.task, m.config)
    first = manifests[0]
    for path, m in zip(parts[1:], manifests[1:]):
        if (m.task, m.space, m.config) != (first.task, first.space, first.config):
            diffs = "\n  ".join(d for d in first.diff(m)
                                if d.split(":")[0].split(".")[0] in ("task", "space", "config"))
            raise DatasetError(f"{path} was simulated with other settings than {parts[0]}:"
                               f"\n  {diffs}")
    for i, h in enumerate(hashes):
        if h in hashes[:i]:
            raise DatasetError(f"{parts[i]} is the same campaign as {parts[hashes.index(h)]} "
                               "(same settings, n and seed): its rows would be counted twice")

    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    (partial / "shards").mkdir(parents=True)
    shards, records = [], []
    for path, m, h in zip(parts, manifests, hashes):
        records.append({"path": str(path.resolve()), "config_hash": h, "n": m.n,
                        "seed": m.seed, "sampling": m.sampling})
        for info in m.shards:
            new = ShardInfo(index=len(shards), file=shard_file(len(shards)), rows=info.rows,
                            seed_spawn_key=list(info.seed_spawn_key), done=True)
            src = path / info.file
            if not src.is_file():
                shutil.rmtree(partial)
                raise DatasetError(f"{src}: shard listed in the manifest is missing")
            _link_or_copy(src, partial / new.file)
            shards.append(new)
    merged = Manifest(task=first.task, space=first.space, config=first.config,
                      sampling=MERGED, n=sum(m.n for m in manifests),
                      shard_size=max(m.shard_size for m in manifests), seed=-1,
                      shards=shards, parts=records)
    merged.save(partial)
    os.replace(partial, out)
    return merged
