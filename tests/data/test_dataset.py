"""The torch Dataset over a campaign's shards (``retroscope.data.dataset.ShardDataset``).

Already in tests/compute/test_campaign.py, not repeated here: the splits' sizes add up to the
campaign (test_dataset_splits_partition_rows, which also compares ``in_memory=True`` with lazy
reading and reads from a pickled copy), resume after a deleted or damaged shard
(test_resume_computes_only_missing_shards) and refusing an incomplete dataset
(test_incomplete_dataset_is_refused_for_training).
"""

import pickle
import re

import numpy as np
import pytest
import torch

from retroscope.compute.campaign import generate
from retroscope.core.observe import OnlineObserver, UniformNoise
from retroscope.core.registry import get_learner
from retroscope.data.dataset import SPLIT_CODES, ShardDataset
from retroscope.data.shards import DatasetError, Manifest, read_shard

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def root(tmp_path_factory, blob_task):
    """A finished campaign of 120 rows in four shards, shared read-only by this module."""
    out = tmp_path_factory.mktemp("dataset") / "d"
    generate(blob_task, out, 120, shard_size=32, seed=0, progress=False)
    return out


def stored_row(root, ds, i):
    """Row ``i`` of ``ds`` as the shard stores it: (params, image)."""
    shard, row = ds.index[i]
    params, data, _ = read_shard(root / ds.manifest.shards[shard].file)
    return {k: v[row] for k, v in params.items()}, data["image"][row]


def batches(ds, **loader):
    return list(torch.utils.data.DataLoader(ds, batch_size=8, **loader))


def test_splits_are_disjoint_and_cover_every_row(root, blob_task):
    """Every stored row is in exactly one split, the one its parameters hash to."""
    every = {(s.index, r) for s in Manifest.load(root).shards for r in range(s.rows)}
    seen = []
    for split in SPLITS:
        ds = ShardDataset(root, blob_task, split)
        seen += ds.index
        assert set(blob_task.space.split_codes(ds.params)) <= set(SPLIT_CODES[split])
    assert len(seen) == len(set(seen)) and set(seen) == every


@pytest.mark.parametrize("learner", [None, "regression"])
def test_items_are_the_stored_input_and_its_encoded_target(root, blob_task, learner):
    """Item i is (network input of stored row i, its regression target ``encode(params)``);
    without a learner given, the task's own (regression for blob-test) is used."""
    ds = ShardDataset(root, blob_task, "val",
                      learner=None if learner is None else get_learner(learner))
    assert torch.allclose(ds.targets, torch.from_numpy(blob_task.targets.encode(ds.params)).float())
    for i in (0, len(ds) - 1):
        x, y = ds[i]
        params, image = stored_row(root, ds, i)
        assert x.shape == (1, 13, 17) and x.dtype == torch.float32
        assert np.array_equal(x.numpy(), blob_task.model_input(image))
        assert all(ds.params[k][i] == v for k, v in params.items())
        want = blob_task.targets.encode({k: np.array([v]) for k, v in params.items()})[0]
        assert torch.allclose(y, torch.from_numpy(want).float())


def test_limit_keeps_the_first_rows(root, blob_task):
    """``limit=n`` is the first n rows of the split, with their parameters and targets."""
    full = ShardDataset(root, blob_task, "train")
    five = ShardDataset(root, blob_task, "train", limit=5)
    assert len(five) == 5 and five.index == full.index[:5]
    assert all(np.array_equal(five.params[k], full.params[k][:5]) for k in full.params)
    for i in range(5):
        assert all(torch.equal(a, b) for a, b in zip(five[i], full[i]))


def test_interrupted_campaign_is_completed_byte_identically(tmp_path, blob_task):
    """A campaign stopped before its last shard (no file, not done in the manifest) is
    finished by the same command; the late shard is byte-identical, the others untouched."""
    root = tmp_path / "d"
    generate(blob_task, root, 40, shard_size=10, seed=1, progress=False)
    files = sorted((root / "shards").iterdir())
    before = {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in files}
    m = Manifest.load(root)
    m.shards[3].done = False
    m.save(root)
    (root / m.shards[3].file).unlink()
    assert generate(blob_task, root, 40, shard_size=10, seed=1, progress=False).complete
    after = {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in files}
    assert [after[f.name][0] for f in files] == [before[f.name][0] for f in files]
    assert [after[f.name] for f in files[:3]] == [before[f.name] for f in files[:3]]
    assert len(ShardDataset(root, blob_task, "train")) > 0


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_unreadable_shard_is_named(tmp_path, blob_task, damage):
    """A shard overwritten with garbage, or gone, is a DatasetError naming its file."""
    root = tmp_path / "d"
    generate(blob_task, root, 30, shard_size=10, seed=2, progress=False)
    path = root / Manifest.load(root).shards[1].file
    if damage == "garbage":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    else:
        path.unlink()
    with pytest.raises(DatasetError, match=re.escape(f"{path}: unreadable shard")):
        ShardDataset(root, blob_task, "train")


def test_shard_damaged_after_opening_the_dataset_is_named(tmp_path, blob_task):
    """A lazily read split whose shard is damaged later (a disk, a copy gone wrong) names the
    shard when a row is read, instead of h5py's bare 'file signature not found'."""
    root = tmp_path / "d"
    generate(blob_task, root, 30, shard_size=10, seed=2, progress=False)
    ds = ShardDataset(root, blob_task, "train")
    shard, _ = ds.index[0]
    path = root / ds.manifest.shards[shard].file
    path.write_bytes(b"not an HDF5 file")
    with pytest.raises(DatasetError, match=re.escape(f"{path}: unreadable shard")):
        ds[0]


def test_pickled_dataset_carries_no_open_file(root, blob_task):
    """HDF5 handles are opened lazily where the rows are read: a dataset pickled after reading
    (as a DataLoader sends it to spawned workers) has none and opens its own; close() drops
    them, and reading reopens."""
    ds = ShardDataset(root, blob_task, "val")
    first = ds[0]
    assert ds._files  # a handle is open in this process
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._files == {} and ds._files
    assert all(torch.equal(a, b) for a, b in zip(clone[0], first))
    ds.close()
    assert ds._files == {}
    assert all(torch.equal(a, b) for a, b in zip(ds[0], first))


def test_spawned_worker_gives_the_same_batches(root, blob_task):
    """A spawned DataLoader worker, opening the shards itself, gives the batches of the main
    process, online imperfections included. (One worker: two take up to 9 s on two busy cores;
    independence of the worker count: tests/core/test_observe.py.)"""
    ds = ShardDataset(root, blob_task, "train", observer=OnlineObserver(UniformNoise(), seed=5))
    ds[0]  # a handle is open when the dataset is sent to the workers
    main = batches(ds, num_workers=0)
    spawned = batches(ds, num_workers=1, multiprocessing_context="spawn")
    assert len(main) == len(spawned)
    for (x0, y0), (x1, y1) in zip(main, spawned):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_observer_changes_values_not_shapes_reproducibly(root, blob_task):
    """The online observer changes an input's values, not its shape or target; the change
    depends only on (seed, epoch, index): the same in a fresh dataset, new with set_epoch."""
    observer = OnlineObserver(UniformNoise(), seed=3)
    plain = ShardDataset(root, blob_task, "val")
    a = ShardDataset(root, blob_task, "val", observer=observer)
    b = ShardDataset(root, blob_task, "val", observer=observer)
    rows = range(3)
    epoch0 = [a[i][0] for i in rows]
    for i in rows:
        x, y = a[i]
        assert x.shape == plain[i][0].shape and not torch.equal(x, plain[i][0])
        assert torch.equal(y, plain[i][1])
        assert torch.equal(x, observer(plain[i][0], index=i, epoch=0))
        assert torch.equal(x, b[i][0])
    a.set_epoch(1)
    b.set_epoch(1)
    assert all(not torch.equal(a[i][0], epoch0[i]) and torch.equal(a[i][0], b[i][0])
               for i in rows)
    a.set_epoch(0)
    assert all(torch.equal(a[i][0], epoch0[i]) for i in rows)
