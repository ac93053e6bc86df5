"""Campaigns on a SLURM cluster: a ``dask_jobqueue.SLURMCluster`` from a profile.

Each SLURM job runs one Dask worker process per core, one thread each (the simulators are
written for one core per worker). Jobs are requested adaptively, up to ``jobs`` at a time.
A worker is retired ``retire_before_minutes`` before its job's walltime (Dask's ``--lifetime``,
staggered so that the workers of one campaign do not all leave at once), its running shard
is handed to another worker, and the adaptive cluster submits a new job in its place: the
recipe of dask-jobqueue's "how to handle job queueing system walltime killing workers". A
shard a worker was writing when it left is never seen under its final name (see
:mod:`retroscope.compute.campaign`).

Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_`` in the workers it starts, which slows the small
FFTs of the TDSE 3.8x (:mod:`.executors`). Dask reads that setting from its configuration
files, not from an environment variable (those are lower-cased), so the job script writes
a configuration file that unsets it (:data:`DASK_CONFIG_LINES`) and points ``DASK_CONFIG``
at it, beside one thread per library.

A profile is a TOML file of :class:`SlurmProfile`'s fields, e.g.::

    cores = 32
    memory = "64GB"
    walltime = "04:00:00"
    account = "amo-beamtime"
    partition = "cpu"
    jobs = 8
    prologue = ["module load python/3.11", "source /home/me/retroscope/.venv/bin/activate"]

Requires the ``cluster`` extra (``pip install 'retroscope[cluster]'``).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

#: environment of every job: one thread per library in each single-threaded worker
THREAD_ENVIRONMENT = ("export OMP_NUM_THREADS=1", "export MKL_NUM_THREADS=1",
                      "export OPENBLAS_NUM_THREADS=1", "export NUMBA_NUM_THREADS=1")
#: a Dask configuration file for the job that keeps glibc's adaptive allocator in the workers
DASK_CONFIG_LINES = (
    'export DASK_CONFIG="${TMPDIR:-/tmp}/retroscope-dask-${SLURM_JOB_ID:-$$}"',
    'mkdir -p "$DASK_CONFIG"',
    "printf 'distributed:\\n  nanny:\\n    pre-spawn-environ:\\n"
    "      MALLOC_TRIM_THRESHOLD_: null\\n' > \"$DASK_CONFIG/retroscope.yaml\"",
)


def walltime_minutes(walltime: str) -> float:
    """Minutes of a SLURM time string: ``MM``, ``HH:MM:SS``, ``D-HH:MM:SS`` or ``D-HH``."""
    days, _, rest = walltime.rpartition("-") if "-" in walltime else ("0", "", walltime)
    parts = [float(p) for p in rest.split(":")]
    if "-" in walltime:   # D-HH, D-HH:MM, D-HH:MM:SS
        hours, minutes, seconds = (parts + [0.0, 0.0])[:3]
    elif len(parts) == 1:
        hours, minutes, seconds = 0.0, parts[0], 0.0
    elif len(parts) == 2:
        hours, minutes, seconds = 0.0, parts[0], parts[1]
    else:
        hours, minutes, seconds = parts[:3]
    return float(days or 0) * 1440 + hours * 60 + minutes + seconds / 60


@dataclass(frozen=True)
class SlurmProfile:
    """One kind of SLURM job that runs campaign workers."""

    cores: int = 8                         # worker processes per job (one thread each)
    memory: str = "16GB"                   # per job
    walltime: str = "02:00:00"
    account: str | None = None             # sbatch -A
    partition: str | None = None           # sbatch -p
    jobs: int = 4                          # at most this many jobs at a time (adaptive)
    retire_before_minutes: float = 10.0    # worker lifetime = walltime minus this
    stagger_minutes: float = 4.0           # lifetimes spread by up to this
    job_name: str = "retroscope"
    local_directory: str | None = None     # worker scratch (e.g. "$TMPDIR")
    log_directory: str | None = None       # where SLURM writes the jobs' output
    python: str | None = None              # the interpreter with retroscope installed
    prologue: tuple[str, ...] = ()         # shell lines before the worker starts
    extra_directives: tuple[str, ...] = field(default_factory=tuple)   # more #SBATCH lines

    def __post_init__(self) -> None:
        if self.cores < 1 or self.jobs < 1:
            raise ValueError(f"cores and jobs must be >= 1, got {self.cores}, {self.jobs}")
        if self.lifetime_minutes <= self.stagger_minutes:
            raise ValueError(
                f"walltime {self.walltime} leaves a worker lifetime of "
                f"{self.lifetime_minutes:.0f} min after retire_before_minutes "
                f"{self.retire_before_minutes:g}: it must exceed stagger_minutes "
                f"{self.stagger_minutes:g}")

    @property
    def lifetime_minutes(self) -> float:
        return walltime_minutes(self.walltime) - self.retire_before_minutes

    @classmethod
    def load(cls, path: Path | None, **overrides) -> SlurmProfile:
        """The profile in TOML file ``path`` (None: the defaults), with ``overrides``."""
        values = {}
        if path is not None:
            try:
                values = tomllib.loads(Path(path).read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ValueError(f"SLURM profile {path}: {exc}") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"SLURM profile {path}: unknown fields {unknown}; "
                             f"known: {sorted(names)}")
        for key in ("prologue", "extra_directives"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def cluster_kwargs(self) -> dict:
        """Keyword arguments of ``dask_jobqueue.SLURMCluster``."""
        kwargs = {
            "cores": self.cores, "processes": self.cores, "memory": self.memory,
            "walltime": self.walltime, "account": self.account, "queue": self.partition,
            "job_name": self.job_name,
            "worker_extra_args": ["--lifetime", f"{self.lifetime_minutes:.0f}m",
                                  "--lifetime-stagger", f"{self.stagger_minutes:.0f}m"],
            "job_script_prologue": [*THREAD_ENVIRONMENT, *DASK_CONFIG_LINES, *self.prologue],
            "job_extra_directives": list(self.extra_directives),
        }
        for key in ("local_directory", "log_directory", "python"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        return kwargs


def _cluster_class():
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as exc:  # the optional extra
        raise ImportError("--cluster slurm needs dask-jobqueue: pip install "
                          "'retroscope[cluster]'") from exc
    return SLURMCluster


def job_script(profile: SlurmProfile) -> str:
    """The batch script each worker job is submitted with (nothing is submitted)."""
    cluster = _cluster_class()(**profile.cluster_kwargs())
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def slurm_cluster(profile: SlurmProfile):
    """A SLURMCluster that keeps between one and ``profile.jobs`` jobs running, replacing
    the ones whose workers retire before their walltime."""
    cluster = _cluster_class()(**profile.cluster_kwargs())
    cluster.adapt(minimum_jobs=1, maximum_jobs=profile.jobs)
    return cluster
