"""A real distributed cluster: `dask scheduler` and `dask worker` processes, joined by address."""

import numpy as np
import pytest

from retroscope.compute.campaign import generate
from retroscope.compute.executors import make_executor
from retroscope.core.registry import get_task
from retroscope.data.shards import Manifest, read_shard


@pytest.fixture
def scheduler(tmp_path, local_dask_cluster):
    with local_dask_cluster(tmp_path, workers=1) as address:
        yield address


def test_campaign_on_an_existing_scheduler(tmp_path, scheduler):
    task = get_task("diffraction").small()
    executor = make_executor(scheduler=scheduler)
    try:
        m = generate(task, tmp_path / "remote", 6, shard_size=3, seed=4, executor=executor,
                     progress=False)
    finally:
        executor.close()
    local = generate(task, tmp_path / "local", 6, shard_size=3, seed=4, progress=False)
    assert m.complete and m.config_hash == local.config_hash
    for s in m.shards:
        a = read_shard(tmp_path / "remote" / s.file)[1]["image"]
        b = read_shard(tmp_path / "local" / s.file)[1]["image"]
        assert np.array_equal(a, b)
    assert Manifest.load(tmp_path / "remote").rows_done == 6
