"""Campaigns that survive: a Dask worker killed mid-campaign (SIGKILL, by its pid) and the
client killed mid-campaign. Both end with arrays byte-identical to an uninterrupted
in-process run of the same seed, and no partial shard left behind."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from retroscope.compute.campaign import generate
from retroscope.compute.executors import make_executor
from retroscope.core.registry import get_task
from retroscope.data.shards import Manifest, read_shard


N, SHARD = 8, 1      # crystal (small): ~1 s per shard


def _same_arrays(a: Path, b: Path, manifest: Manifest) -> None:
    for s in manifest.shards:
        pa, da, sa = read_shard(a / s.file)
        pb, db, sb = read_shard(b / s.file)
        assert np.array_equal(sa, sb)
        for key in da:
            assert np.array_equal(da[key], db[key]), (s.file, key)
        for key in pa:
            assert np.array_equal(pa[key], pb[key]), (s.file, key)


def _no_temporaries(out: Path) -> None:
    assert not list((out / "shards").glob(".*tmp")), list((out / "shards").iterdir())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    manifest = generate(get_task("crystal").small(), out, N, shard_size=SHARD, seed=5,
                        progress=False)
    return out, manifest


@pytest.fixture
def cluster(tmp_path, local_dask_cluster):
    """`dask scheduler` and two `dask worker --no-nanny` processes (so that each worker's
    pid is its own process)."""
    with local_dask_cluster(tmp_path, workers=2, nanny=False) as address:
        yield address


def test_campaign_completes_when_a_worker_is_killed(tmp_path, cluster, reference):
    from distributed import Client

    ref_dir, ref_manifest = reference
    out = tmp_path / "data"
    executor = make_executor(scheduler=cluster)
    killed = {}

    with Client(cluster, timeout=10, set_as_default=False) as c:
        pids = c.run(os.getpid)                    # worker address -> its process id

    def kill_a_busy_worker() -> None:
        with Client(cluster, timeout=10, set_as_default=False) as c:
            deadline = time.time() + 60
            while time.time() < deadline:
                done = (out / "manifest.json").exists() and Manifest.load(out).rows_done
                busy = [w for w, keys in c.processing().items() if keys]
                if done and busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.update(pid=pids[busy[0]], rows_done=done)
                    return
                time.sleep(0.05)

    thread = threading.Thread(target=kill_a_busy_worker)
    thread.start()
    try:
        manifest = generate(get_task("crystal").small(), out, N, shard_size=SHARD, seed=5,
                            executor=executor, progress=False)
    finally:
        thread.join()
        executor.close()
    assert killed and killed["rows_done"] < N, "the worker was not killed mid-campaign"
    assert manifest.complete and Manifest.load(out).rows_done == N
    _same_arrays(out, ref_dir, ref_manifest)
    _no_temporaries(out)


CLIENT = """
import sys
from pathlib import Path
from retroscope.compute.campaign import generate
from retroscope.core.registry import get_task
generate(get_task("crystal").small(), Path(sys.argv[1]), {n}, shard_size={shard}, seed=5,
         progress=False)
"""


def test_rerun_after_the_client_is_killed_computes_only_the_missing_shards(tmp_path):
    # more shards than the worker test: the client must still be running when it is killed
    n = 4 * N
    ref_dir = tmp_path / "reference"
    ref_manifest = generate(get_task("crystal").small(), ref_dir, n, shard_size=SHARD,
                            seed=5, progress=False)
    out = tmp_path / "data"
    command = [sys.executable, "-c", CLIENT.format(n=n, shard=SHARD), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (out / "manifest.json").exists() and Manifest.load(out).rows_done >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # finished shards are there under their names (a shard being written, at most as a
    # temporary); the manifest may lag the files by the one shard it had not yet recorded
    shards = Manifest.load(out).shards
    done = {s.file: (out / s.file).stat().st_mtime_ns for s in shards
            if (out / s.file).exists()}
    assert 2 <= len(done) < n, "the client was not killed mid-campaign"

    subprocess.run(command, env=env, check=True, timeout=300)
    after = Manifest.load(out)
    assert after.complete
    recomputed = [s.file for s in after.shards
                  if s.file in done and (out / s.file).stat().st_mtime_ns != done[s.file]]
    assert recomputed == []
    _same_arrays(out, ref_dir, ref_manifest)
    _no_temporaries(out)
    assert json.loads((out / "manifest.json").read_text())["n"] == n
