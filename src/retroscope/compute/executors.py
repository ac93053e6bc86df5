"""Where shard jobs run: in this process, on a Dask LocalCluster, or on an existing scheduler.

An executor takes a function and a list of argument tuples and yields each job's result as it
finishes (in completion order), so the caller can record progress after every shard and an
interruption loses at most the shards still running.

- :class:`InProcess` runs jobs one after the other (debugging, tiny sets, tests).
- :class:`ProcessPool` uses local processes without Dask.
- :class:`Dask` starts a ``distributed.LocalCluster`` with ``workers`` single-threaded worker
  processes (the embedded default), joins an existing scheduler given by ``address``
  (a real cluster started with ``dask scheduler`` / ``dask worker tcp://host:8786``), or
  drives a cluster object such as :func:`retroscope.compute.slurm.slurm_cluster`'s. Workers
  must have retroscope installed. Dask's nanny sets ``OMP_NUM_THREADS=1`` in each worker.

A worker that dies mid-shard (killed, out of memory, retired at its walltime) loses nothing:
the scheduler runs its shard again on another worker (up to Dask's
``distributed.scheduler.allowed-failures`` deaths per shard), and the shard file it was
writing never appears under its final name.

Dask's nanny also sets ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers by default, which
turns off glibc's adaptive mmap threshold: every array above 128 KiB is then mapped and
unmapped afresh, and the small batched FFTs of a TDSE ran 3.8x slower in a worker than in a
plain process (measured: 41 s against 10 s for ten demo-preset momentum maps). The local
cluster here unsets it; on a real cluster, start the workers with it unset too
(``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: null``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any


def _results_as_completed(futures: list, as_completed: Callable) -> Iterator[Any]:
    """Yield results in completion order; cancel what is left if the caller stops early."""
    try:
        for future in as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


class InProcess:
    name = "in-process"

    def map(self, fn: Callable, jobs: Sequence[tuple]) -> Iterator[Any]:
        for job in jobs:
            yield fn(*job)

    def close(self) -> None:
        pass


class ProcessPool:
    """A spawn-context ``concurrent.futures`` process pool: parallel runs on one machine where
    Dask is not installed (e.g. a lent GPU node). Same interface as :class:`Dask`."""

    def __init__(self, workers: int) -> None:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        self.name = f"process pool ({workers} workers)"
        self._pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))

    def map(self, fn: Callable, jobs: Sequence[tuple]) -> Iterator[Any]:
        from concurrent.futures import as_completed

        yield from _results_as_completed(
            [self._pool.submit(fn, *job) for job in jobs], as_completed)

    def close(self) -> None:
        self._pool.shutdown()


class Dask:
    """Run jobs on Dask: a new LocalCluster of ``workers`` processes, or ``address``."""

    def __init__(self, workers: int = 2, address: str | None = None, cluster=None) -> None:
        import dask
        from distributed import Client, LocalCluster

        self._cluster = None
        if cluster is not None:
            self._cluster = cluster
            self.client = Client(cluster)
            self.name = f"dask {type(cluster).__name__}"
        elif address:
            self.client = Client(address)
            self.name = f"dask scheduler {address}"
        else:
            # see the module docstring: keep glibc's adaptive allocator in the workers
            with dask.config.set({"distributed.nanny.pre-spawn-environ."
                                  "MALLOC_TRIM_THRESHOLD_": None}):
                self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                             processes=True, dashboard_address=":0")
            self.client = Client(self._cluster)
            self.name = f"dask LocalCluster ({workers} workers)"

    def map(self, fn: Callable, jobs: Sequence[tuple]) -> Iterator[Any]:
        from distributed import as_completed

        yield from _results_as_completed(
            [self.client.submit(fn, *job, pure=False) for job in jobs], as_completed)

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(workers: int = 1, scheduler: str | None = None, cluster=None):
    """In-process for one worker, a LocalCluster for several, the scheduler or cluster
    object when given."""
    if cluster is not None:
        return Dask(cluster=cluster)
    if scheduler:
        return Dask(address=scheduler)
    if workers > 1:
        return Dask(workers=workers)
    return InProcess()
