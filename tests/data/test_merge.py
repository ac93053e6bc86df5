"""Merging campaigns: every row of every part, once, with its split; nothing of a part changes."""

import json

import numpy as np
import pytest

from retroscope.compute.campaign import generate
from retroscope.data.dataset import ShardDataset
from retroscope.data.merge import merge_datasets
from retroscope.data.shards import DatasetError, Manifest


@pytest.fixture()
def parts(tmp_path, blob_task):
    a = tmp_path / "a"
    b = tmp_path / "b"
    generate(blob_task, a, 40, shard_size=16, seed=0, progress=False)
    generate(blob_task, b, 30, shard_size=16, seed=1, progress=False)
    return a, b


def test_merge_holds_every_row_of_every_part_in_its_split(tmp_path, blob_task, parts):
    a, b = parts
    before = [(p / "manifest.json").read_text() for p in parts]
    merged = merge_datasets([a, b], tmp_path / "ab")
    assert merged.n == 70 and merged.sampling == "merged" and len(merged.shards) == 3 + 2
    assert [p["seed"] for p in merged.parts] == [0, 1]
    assert Manifest.load(tmp_path / "ab").config_hash == merged.config_hash
    for split in ("train", "val", "test"):
        rows = []
        for p in parts:
            try:
                rows.append(ShardDataset(p, blob_task, split, in_memory=True)._cache)
            except DatasetError:  # a tiny part may have no rows of a split
                pass
        both = ShardDataset(tmp_path / "ab", blob_task, split, in_memory=True)._cache
        assert np.array_equal(both, np.concatenate(rows))
    assert [(p / "manifest.json").read_text() for p in parts] == before
    assert not (tmp_path / "ab.partial").exists()


def test_simulate_refuses_to_write_into_a_merged_dataset(tmp_path, blob_task, parts):
    merge_datasets(list(parts), tmp_path / "ab")
    with pytest.raises(DatasetError, match="different settings"):
        generate(blob_task, tmp_path / "ab", 70, shard_size=16, seed=0, progress=False)


def test_merge_refuses_what_would_give_a_wrong_dataset(tmp_path, blob_task, parts,
                                                      unfinished_campaign):
    a, b = parts
    with pytest.raises(DatasetError, match="at least two"):
        merge_datasets([a], tmp_path / "x")
    with pytest.raises(DatasetError, match="same campaign"):
        merge_datasets([a, a], tmp_path / "x")
    (tmp_path / "taken").mkdir()
    with pytest.raises(DatasetError, match="already exists"):
        merge_datasets([a, b], tmp_path / "taken")

    other = tmp_path / "other"
    generate(blob_task, other, 20, shard_size=16, seed=2, progress=False)
    m = Manifest.load(other)
    m.config = {"pixel_um": 2.0}
    m.save(other)
    with pytest.raises(DatasetError, match="(?s)other settings.*config.pixel_um"):
        merge_datasets([a, other], tmp_path / "x")

    half = unfinished_campaign(tmp_path / "half", shard_size=16, seed=3, shard=0)
    with pytest.raises(DatasetError, match="incomplete"):
        merge_datasets([a, half], tmp_path / "x")
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.partial").exists()


def test_merge_command_line(tmp_path, parts):
    from typer.testing import CliRunner

    from retroscope.cli import app

    a, b = parts
    result = CliRunner().invoke(app, ["merge", str(a), str(b), "--out", str(tmp_path / "ab")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "ab" / "manifest.json").read_text())["n"] == 70
    result = CliRunner().invoke(app, ["merge", str(a), str(b), "--out", str(tmp_path / "ab")])
    assert result.exit_code == 2 and "already exists" in " ".join(result.output.split())


def test_a_part_made_before_a_setting_existed_merges_with_its_default(tmp_path):
    from retroscope.core.registry import get_task

    small = get_task("crystal").small()
    a, b = tmp_path / "a", tmp_path / "b"
    generate(small, a, 3, shard_size=3, seed=0, progress=False)
    generate(small, b, 3, shard_size=3, seed=1, progress=False)
    old = Manifest.load(a)  # as an older retroscope wrote it: no formation backend yet
    del old.config["formation"]["backend"]
    old.save(a)
    merged = merge_datasets([a, b], tmp_path / "ab")
    assert merged.config == small.config()
    assert merged.parts[0]["config_hash"] == old.config_hash  # the part as it is stored
