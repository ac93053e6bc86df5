"""Write-once HDF5 shards and the dataset manifest (``retroscope.data.shards``).

A shard file that exists is whole: it is written under a temporary name and moved into place
only when complete, and a failed write leaves nothing behind. A manifest that was tampered
with or damaged is refused, naming its file. Campaign-level behaviour (resume, refusing other
settings) is in tests/compute/test_campaign.py and tests/data/test_dataset.py.
"""

import json
import os
import re

import h5py
import numpy as np
import pytest

from retroscope.data.shards import (
    MANIFEST,
    DatasetError,
    Manifest,
    ShardInfo,
    config_hash,
    read_shard,
    shard_is_complete,
    write_shard,
)

ROWS = 5
HASH = "c0ffee"


def fields(rows=ROWS):
    """(params, data, split codes) of a small shard: two parameters and a (rows, 3, 4) image."""
    rng = np.random.default_rng(0)
    params = {"x0_px": rng.uniform(3, 13, rows), "sigma_px": rng.uniform(1, 3, rows)}
    data = {"image": rng.random((rows, 3, 4)).astype(np.float32)}
    return params, data, np.arange(rows) % 7


def write(path, rows=ROWS, chash=HASH, **changes):
    params, data, split = fields(rows)
    data.update(changes)
    write_shard(path, params, data, split, {"index": 0, "config_hash": chash})


def manifest():
    shards = [ShardInfo(index=i, file=f"shards/shard-{i:05d}.h5", rows=10 - 6 * i,
                        seed_spawn_key=[1, i], done=i == 0) for i in range(2)]
    return Manifest(task="blob-test", space={"x0_px": [3.0, 13.0]}, config={"pixel_um": 1.0},
                    sampling="uniform", n=14, shard_size=10, seed=3, shards=shards)


# --- shards -----------------------------------------------------------------------------------


def test_shard_appears_whole_under_its_name(tmp_path, monkeypatch):
    """The shard is complete in a temporary file of the same folder, then moved with
    os.replace; no temporary file is left; what is read back is what was written."""
    real_replace, moves = os.replace, []

    def replace(src, dst):
        moves.append((src, dst))
        assert shard_is_complete(src, ROWS, HASH) and not os.path.exists(dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "shard-00000.h5"
    write(path)
    [(src, dst)] = moves
    assert dst == path and src.parent == path.parent and src != path
    assert os.listdir(tmp_path) == [path.name]
    params, data, split = read_shard(path)
    want_params, want_data, want_split = fields()
    assert all(np.array_equal(params[k], want_params[k]) for k in want_params)
    assert data["image"].tobytes() == want_data["image"].tobytes()
    assert np.array_equal(split, want_split) and split.dtype == np.int8


def test_rows_of_wrong_length_are_refused_before_writing(tmp_path, monkeypatch):
    """A field with another number of rows than the split codes is an error naming the field,
    raised before any file is opened."""
    monkeypatch.setattr(h5py, "File", lambda *a, **k: pytest.fail("a file was opened"))
    with pytest.raises(DatasetError, match="shard.h5: field 'image' has 4 rows, expected 5"):
        write(tmp_path / "shard.h5", image=np.zeros((4, 3, 4), np.float32))
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_nothing_and_keeps_an_old_shard(tmp_path):
    """h5py failing half-way (an array HDF5 cannot store) leaves no shard and no temporary
    file; a shard already in place is untouched."""
    bad = np.array([object()] * ROWS, dtype=object)
    with pytest.raises(TypeError):
        write(tmp_path / "new.h5", image=bad)
    assert os.listdir(tmp_path) == []
    write(tmp_path / "old.h5")
    before = (tmp_path / "old.h5").read_bytes()
    with pytest.raises(TypeError):
        write(tmp_path / "old.h5", image=bad)
    assert os.listdir(tmp_path) == ["old.h5"]
    assert (tmp_path / "old.h5").read_bytes() == before


def test_same_content_same_bytes(tmp_path):
    """A shard's bytes depend on its content only (no timestamps), so a recomputed shard is
    byte-identical."""
    write(tmp_path / "a.h5")
    write(tmp_path / "b.h5")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_shard_is_complete_only_for_a_whole_shard_of_this_campaign(tmp_path):
    """Complete: readable, the expected rows, this campaign's settings hash. A truncated or
    garbage file, another campaign's shard, another row count or no file is not."""
    path = tmp_path / "s.h5"
    write(path)
    assert shard_is_complete(path, ROWS, HASH)
    assert not shard_is_complete(path, ROWS, "another-hash")
    assert not shard_is_complete(path, ROWS + 1, HASH)
    assert not shard_is_complete(tmp_path / "missing.h5", ROWS, HASH)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert not shard_is_complete(truncated, ROWS, HASH)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an HDF5 file" * 64)
    assert not shard_is_complete(garbage, ROWS, HASH)


def test_read_shard_names_a_corrupt_file(tmp_path):
    """A garbage file, a truncated shard or an HDF5 file without the shard layout is a
    DatasetError naming the file."""
    write(tmp_path / "whole.h5")
    (tmp_path / "garbage.h5").write_bytes(b"\x89HDF garbage" * 100)
    (tmp_path / "truncated.h5").write_bytes((tmp_path / "whole.h5").read_bytes()[:2000])
    with h5py.File(tmp_path / "empty.h5", "w"):
        pass
    for name in ("garbage.h5", "truncated.h5", "empty.h5", "missing.h5"):
        with pytest.raises(DatasetError, match=re.escape(f"{tmp_path / name}: unreadable shard")):
            read_shard(tmp_path / name)


# --- manifest ---------------------------------------------------------------------------------


def test_manifest_round_trip(tmp_path):
    """Saved and loaded, a manifest is the same: settings, shards and their progress."""
    m = manifest()
    m.save(tmp_path)
    loaded = Manifest.load(tmp_path)
    assert loaded == m and loaded.config_hash == m.config_hash
    assert not loaded.complete and loaded.rows_done == 10
    stored = json.loads((tmp_path / MANIFEST).read_text())
    assert stored["config_hash"] == m.config_hash and stored["complete"] is False
    assert os.listdir(tmp_path) == [MANIFEST]  # no temporary file left


@pytest.mark.parametrize("tamper", ["config_hash", "setting"])
def test_tampered_manifest_is_refused(tmp_path, tamper):
    """Settings that do not match the recorded hash (or a hash that does not match the
    settings) are refused, naming the manifest."""
    manifest().save(tmp_path)
    path = tmp_path / MANIFEST
    d = json.loads(path.read_text())
    if tamper == "config_hash":
        d["config_hash"] = "0" * 64
    else:
        d["seed"] = 4
    path.write_text(json.dumps(d))
    with pytest.raises(DatasetError, match=re.escape(f"{path}: config_hash does not match")):
        Manifest.load(tmp_path)


def test_corrupt_or_missing_manifest_is_refused(tmp_path):
    """A manifest cut short, or none at all, is a DatasetError naming the file."""
    path = tmp_path / MANIFEST
    with pytest.raises(DatasetError, match=re.escape(f"{path}: no manifest")):
        Manifest.load(tmp_path)
    manifest().save(tmp_path)
    path.write_text(path.read_text()[:40])
    with pytest.raises(DatasetError, match=re.escape(f"{path}: corrupt JSON")):
        Manifest.load(tmp_path)


def test_manifest_missing_a_field_is_refused(tmp_path):
    """A manifest without one of its fields is refused, naming the field."""
    manifest().save(tmp_path)
    path = tmp_path / MANIFEST
    d = json.loads(path.read_text())
    del d["seed"]
    path.write_text(json.dumps(d))
    with pytest.raises(DatasetError, match="missing or has a malformed field: 'seed'"):
        Manifest.load(tmp_path)


def test_manifest_missing_a_field_names_the_file(tmp_path):
    """Like every other refusal of a manifest, a missing field names the manifest's path (a
    merge loads several)."""
    manifest().save(tmp_path)
    path = tmp_path / MANIFEST
    d = json.loads(path.read_text())
    del d["shards"]
    path.write_text(json.dumps(d))
    with pytest.raises(DatasetError) as err:
        Manifest.load(tmp_path)
    assert str(path) in str(err.value)


def test_diff_lists_the_differing_fields():
    """diff names each identity field that differs, nested config keys one by one, with the
    stored and the asked value; equal manifests have none."""
    a, b = manifest(), manifest()
    assert a.diff(b) == []
    b.seed, b.config = 4, {"pixel_um": 2.0, "extra": True}
    b.shards[1].done = True  # progress is not identity
    assert a.diff(b) == ["config.extra: None (stored) vs True (asked)",
                         "config.pixel_um: 1.0 (stored) vs 2.0 (asked)",
                         "seed: 3 (stored) vs 4 (asked)"]
    b = manifest()
    b.parts = [{"seed": 0}]
    assert a.diff(b) == ["parts: None (stored) vs [{'seed': 0}] (asked)"]


def test_config_hash_is_canonical():
    """The hash depends on the content only: not on key order (also nested) nor on numpy
    scalars standing for numbers; any changed value changes it."""
    a = {"task": "blob-test", "config": {"pixel_um": 1.5, "n_xy": 32}, "seed": 3}
    b = {"seed": 3, "config": {"n_xy": 32, "pixel_um": 1.5}, "task": "blob-test"}
    c = {"seed": np.int64(3), "config": {"n_xy": np.int32(32), "pixel_um": np.float64(1.5)},
         "task": "blob-test"}
    assert config_hash(a) == config_hash(b) == config_hash(c)
    assert len(config_hash(a)) == 64
    assert config_hash({**a, "seed": 4}) != config_hash(a)
    assert config_hash({**a, "config": {"pixel_um": 1.5, "n_xy": 33}}) != config_hash(a)
