"""The local Dask cluster that campaigns start by default."""

import os

from retroscope.compute.executors import Dask


def _environment(name):
    return os.environ.get(name)


def test_local_workers_keep_the_adaptive_allocator():
    """Dask's default MALLOC_TRIM_THRESHOLD_ made the TDSE 3.8x slower in a worker."""
    executor = Dask(workers=1)
    try:
        # one job per call: map yields in completion order
        [trim] = executor.map(_environment, [("MALLOC_TRIM_THRESHOLD_",)])
        [omp] = executor.map(_environment, [("OMP_NUM_THREADS",)])
    finally:
        executor.close()
    assert trim is None
    assert omp == "1"
