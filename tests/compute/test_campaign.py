import json

import h5py
import numpy as np
import pytest

from retroscope.compute.campaign import generate, simulate_shard
from retroscope.core.registry import get_learner
from retroscope.data.dataset import ShardDataset
from retroscope.data.shards import DatasetError, Manifest, read_shard


def _arrays(root):
    m = Manifest.load(root)
    return [read_shard(root / s.file) for s in m.shards]


def test_generate_writes_shards_and_manifest(tmp_path, blob_task):
    m = generate(blob_task, tmp_path / "d", 50, shard_size=16, seed=3, progress=False)
    assert m.complete and m.rows_done == 50 and len(m.shards) == 4
    stored = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert stored["task"] == "blob-test" and stored["config_hash"] == m.config_hash
    assert [s["rows"] for s in stored["shards"]] == [16, 16, 16, 2]
    params, data, split = read_shard(tmp_path / "d" / m.shards[0].file)
    assert data["image"].shape == (16, 13, 17)
    assert np.array_equal(split, blob_task.space.split_codes(params))
    assert not list((tmp_path / "d" / "shards").glob(".*tmp*"))


def test_resume_computes_only_missing_shards(tmp_path, blob_task, monkeypatch):
    root = tmp_path / "d"
    generate(blob_task, root, 40, shard_size=10, seed=1, progress=False)
    before = _arrays(root)
    (root / "shards" / "shard-00002.h5").unlink()
    with h5py.File(root / "shards" / "shard-00001.h5", "r+") as f:  # a damaged shard
        f.attrs["rows"] = 3
    calls = []
    import retroscope.compute.campaign as campaign

    original = campaign.simulate_shard
    monkeypatch.setattr(campaign, "simulate_shard",
                        lambda *a: calls.append(a[2]) or original(*a))
    generate(blob_task, root, 40, shard_size=10, seed=1, progress=False)
    assert sorted(calls) == [1, 2]
    after = _arrays(root)
    for (p0, d0, s0), (p1, d1, s1) in zip(before, after):
        assert np.array_equal(d0["image"], d1["image"]) and np.array_equal(s0, s1)


def test_same_seed_same_bytes_any_shard_order(tmp_path, blob_task):
    a = generate(blob_task, tmp_path / "a", 30, shard_size=10, seed=7, progress=False)
    b = generate(blob_task, tmp_path / "b", 30, shard_size=10, seed=7, progress=False)
    for s in a.shards:
        assert (tmp_path / "a" / s.file).exists()
        pa, da, _ = read_shard(tmp_path / "a" / s.file)
        pb, db, _ = read_shard(tmp_path / "b" / s.file)
        assert da["image"].tobytes() == db["image"].tobytes()
    c = generate(blob_task, tmp_path / "c", 30, shard_size=10, seed=8, progress=False)
    _, dc, _ = read_shard(tmp_path / "c" / c.shards[0].file)
    assert dc["image"].tobytes() != read_shard(tmp_path / "a" / a.shards[0].file)[1]["image"].tobytes()


def test_different_settings_are_refused(tmp_path, blob_task):
    root = tmp_path / "d"
    generate(blob_task, root, 20, shard_size=10, seed=1, progress=False)
    with pytest.raises(DatasetError, match="seed: 1 .stored. vs 2"):
        generate(blob_task, root, 20, shard_size=10, seed=2, progress=False)
    with pytest.raises(DatasetError, match="n: 20"):
        generate(blob_task, root, 30, shard_size=10, seed=1, progress=False)
    m = generate(blob_task, root, 30, shard_size=10, seed=2, progress=False, overwrite=True)
    assert m.rows_done == 30


def test_refuses_foreign_directory(tmp_path, blob_task):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "thesis.tex").write_text("precious")
    with pytest.raises(DatasetError, match="not empty"):
        generate(blob_task, tmp_path / "x", 10, progress=False, overwrite=True)
    assert (tmp_path / "x" / "thesis.tex").read_text() == "precious"


def test_dataset_splits_partition_rows(tmp_path, blob_task):
    root = tmp_path / "d"
    generate(blob_task, root, 120, shard_size=32, seed=0, progress=False)
    regression = get_learner("regression")
    sets = {s: ShardDataset(root, blob_task, s, learner=regression)
            for s in ("train", "val", "test")}
    assert sum(len(d) for d in sets.values()) == 120
    x, y = sets["train"][0]
    assert x.shape == (1, 13, 17) and y.shape == (2,)
    assert 0 <= float(y.min()) and float(y.max()) <= 1
    lazy = sets["val"]
    assert lazy._files == {}  # nothing opened until an item is read
    eager = ShardDataset(root, blob_task, "val", in_memory=True, learner=regression)
    assert all(np.array_equal(lazy[i][0], eager[i][0]) for i in range(len(lazy)))
    import pickle

    clone = pickle.loads(pickle.dumps(lazy))
    assert np.array_equal(clone[0][0], lazy[0][0])


def test_incomplete_dataset_is_refused_for_training(tmp_path, blob_task,
                                                   unfinished_campaign):
    root = unfinished_campaign(tmp_path / "d")
    with pytest.raises(DatasetError, match="incomplete"):
        ShardDataset(root, blob_task, "train")


def test_simulate_shard_rejects_nan(tmp_path, blob_task, monkeypatch):
    monkeypatch.setattr(type(blob_task), "simulate",
                        lambda self, p, rng: {"image": np.full((len(p["x0_px"]), 2, 2), np.nan)})
    params = {"x0_px": np.array([5.0]), "sigma_px": np.array([1.0])}
    with pytest.raises(DatasetError, match="NaN"):
        simulate_shard("blob-test", {}, 0, params, 0, str(tmp_path / "s.h5"), "h")
    assert not (tmp_path / "s.h5").exists()
