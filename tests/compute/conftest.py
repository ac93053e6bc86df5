"""A real Dask cluster on localhost for the campaign tests: `dask scheduler` and `dask worker`
processes started as a user would, joined by address."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _local_dask_cluster(folder: Path, workers: int = 1, nanny: bool = True):
    """Yield the address of a scheduler with ``workers`` single-threaded workers (each its
    own process when ``nanny`` is False, so that its pid is the worker's)."""
    dask = Path(sys.executable).with_name("dask")
    if not dask.exists() and shutil.which("dask") is None:
        pytest.skip("the dask command is not installed")
    dask = str(dask if dask.exists() else shutil.which("dask"))
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    quiet = {"cwd": folder, "env": env, "stdout": subprocess.DEVNULL,
             "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], **quiet)]
    worker = [dask, "worker", address, "--nthreads", "1", "--dashboard-address", ":0"]
    if nanny:
        procs.append(subprocess.Popen([*worker, "--nworkers", str(workers)], **quiet))
    else:
        procs += [subprocess.Popen([*worker, "--no-nanny"], **quiet) for _ in range(workers)]
    try:
        from distributed import Client

        deadline = time.time() + 60
        while True:
            try:
                with Client(address, timeout=5, set_as_default=False) as c:
                    if len(c.scheduler_info()["workers"]) == workers:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("dask scheduler and workers did not come up within 60 s")
            time.sleep(0.5)
        yield address
    finally:
        for p in procs[::-1]:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)


@pytest.fixture
def local_dask_cluster():
    """``local_dask_cluster(folder, workers=1, nanny=True)``: a context manager yielding the
    address of a scheduler with that many single-threaded workers."""
    return _local_dask_cluster
