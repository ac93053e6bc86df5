"""A real distributed cluster: `dask scheduler` and `dask worker` processes, joined by address."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from retroscope.compute.campaign import generate
from retroscope.compute.executors import make_executor
from retroscope.core.registry import get_task
from retroscope.data.shards import Manifest, read_shard


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def scheduler(tmp_path):
    dask = Path(sys.executable).with_name("dask")
    if not dask.exists() and shutil.which("dask") is None:
        pytest.skip("the dask command is not installed")
    dask = str(dask if dask.exists() else shutil.which("dask"))
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                   "--dashboard-address", ":0"], cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        from distributed import Client

        deadline = time.time() + 60
        while True:
            try:
                with Client(address, timeout=5) as c:
                    if c.scheduler_info()["workers"]:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("dask scheduler/worker did not come up within 60 s")
            time.sleep(0.5)
        yield address
    finally:
        for p in procs[::-1]:
            p.terminate()
            p.wait(timeout=30)


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
