"""Derived rows (not simulated directly, e.g. interpolated): stored with ``/derived`` in their
shard, always in the training split whatever their hash, never in validation or test, also
after a merge with simulated campaigns (``retroscope.data.shards``, ``.dataset``,
``.derived``). Shards written before the flag existed read as all simulated."""

import json
import os

import h5py
import numpy as np
import pytest

from retroscope.compute.campaign import generate
from retroscope.core.params import ParameterError
from retroscope.data.dataset import SPLIT_CODES, ShardDataset, in_split
from retroscope.data.derived import write_derived_dataset
from retroscope.data.merge import merge_datasets
from retroscope.data.shards import DatasetError, Manifest, read_shard, read_split, write_shard

ROWS = 30


def derived_rows(task, rows=ROWS, seed=0):
    """``rows`` random parameter rows of the toy task (some hash to validation and test) and
    their images."""
    params = task.space.sample_uniform(rows, np.random.default_rng(seed))
    codes = task.space.split_codes(params)
    assert {0, 1} <= set(codes), "the test needs rows that would hash to validation and test"
    return params, task.simulate(params, np.random.default_rng(seed))


def test_in_split_sends_every_derived_row_to_training():
    codes = np.tile(np.arange(7), 2)
    derived = np.repeat([False, True], 7)
    assert in_split(codes, derived, "train").tolist() == [c >= 2 for c in range(7)] + [True] * 7
    for split, (code,) in (("val", SPLIT_CODES["val"]), ("test", SPLIT_CODES["test"])):
        assert np.flatnonzero(in_split(codes, derived, split)).tolist() == [code]


def test_the_flag_is_stored_and_absent_means_simulated(tmp_path):
    params = {"x0_px": np.arange(3.0), "sigma_px": np.ones(3)}
    data = {"image": np.zeros((3, 2, 2), np.float32)}
    write_shard(tmp_path / "old.h5", params, data, np.arange(3), {"index": 0})
    write_shard(tmp_path / "new.h5", params, data, np.arange(3), {"index": 0},
                derived=np.array([True, False, True]))
    with h5py.File(tmp_path / "old.h5") as f:
        assert "derived" not in f and not read_split(f)[1].any()
    with h5py.File(tmp_path / "new.h5") as f:
        codes, derived = read_split(f)
    assert codes.tolist() == [0, 1, 2] and derived.tolist() == [True, False, True]
    with pytest.raises(DatasetError, match="field 'derived' has 2 rows, expected 3"):
        write_shard(tmp_path / "bad.h5", params, data, np.arange(3), {},
                    derived=np.ones(2, bool))


def test_a_derived_dataset_is_all_training_data(tmp_path, blob_task):
    params, data = derived_rows(blob_task)
    out = tmp_path / "derived"
    manifest = write_derived_dataset(out, blob_task, params, data, source="toy", shard_size=8)
    assert sorted(os.listdir(tmp_path)) == ["derived"]  # no partial directory left
    assert manifest.sampling == "derived" and manifest.n == ROWS and len(manifest.shards) == 4
    stored = json.loads((out / "manifest.json").read_text())
    assert stored["derived"]["source"] == "toy" and len(stored["derived"]["params_sha256"]) == 64
    assert Manifest.load(out).config_hash == manifest.config_hash
    train = ShardDataset(out, blob_task, "train", in_memory=True)
    np.testing.assert_array_equal(train.params["x0_px"], params["x0_px"])
    np.testing.assert_array_equal(train._cache, data["image"])
    _, _, codes = read_shard(out / manifest.shards[0].file)  # the hash is stored as usual
    np.testing.assert_array_equal(codes, blob_task.space.split_codes(params)[:8])
    for split in ("val", "test"):
        with pytest.raises(DatasetError, match="split is empty"):
            ShardDataset(out, blob_task, split)


def test_derived_rows_stay_training_rows_after_a_merge(tmp_path, blob_task):
    """Merged with a simulated campaign, validation and test are the campaign's own; the
    training split is the campaign's plus every derived row."""
    generate(blob_task, tmp_path / "sim", 40, shard_size=16, seed=0, progress=False)
    params, data = derived_rows(blob_task)
    write_derived_dataset(tmp_path / "derived", blob_task, params, data, source="toy")
    merge_datasets([tmp_path / "sim", tmp_path / "derived"], tmp_path / "both")
    for split in ("val", "test"):
        alone = ShardDataset(tmp_path / "sim", blob_task, split, in_memory=True)
        merged = ShardDataset(tmp_path / "both", blob_task, split, in_memory=True)
        np.testing.assert_array_equal(merged._cache, alone._cache)
    alone = ShardDataset(tmp_path / "sim", blob_task, "train", in_memory=True)
    merged = ShardDataset(tmp_path / "both", blob_task, "train", in_memory=True)
    np.testing.assert_array_equal(merged._cache, np.concatenate([alone._cache, data["image"]]))


def test_derived_datasets_are_written_once_and_checked(tmp_path, blob_task):
    params, data = derived_rows(blob_task)
    out = tmp_path / "derived"
    write_derived_dataset(out, blob_task, params, data, source="toy")
    before = (out / "manifest.json").read_text()
    with pytest.raises(DatasetError, match="already exists"):
        write_derived_dataset(out, blob_task, params, data, source="toy")
    assert (out / "manifest.json").read_text() == before
    bad = {**params, "x0_px": params["x0_px"] + 100}
    with pytest.raises(ParameterError, match="x0_px"):
        write_derived_dataset(tmp_path / "x", blob_task, bad, data, source="toy")
    nan = {"image": np.where(np.arange(ROWS)[:, None, None] == 3, np.nan, data["image"])}
    with pytest.raises(DatasetError, match="'image' holds NaN"):
        write_derived_dataset(tmp_path / "y", blob_task, params, nan, source="toy")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_manifests_without_derived_rows_keep_their_hash(tmp_path, blob_task):
    """Old manifests have no ``derived`` entry; their identity and hash are unchanged."""
    manifest = generate(blob_task, tmp_path / "sim", 10, shard_size=10, seed=0, progress=False)
    assert "derived" not in manifest.identity
    assert "derived" not in json.loads((tmp_path / "sim" / "manifest.json").read_text())
