"""Simulation campaigns on one and two local workers: throughput, storage and cost, as JSON.

    python benchmarks/scaling.py [--tasks crystal,pmd] [--seconds 30] [--seed 0] [--out FILE]

For every registered task (or those of ``--tasks``), with its default simulation settings as
``retroscope simulate TASK`` uses them (``--config TASK=JSON`` to change them):

* calibration: one warm-up shard (imports, JIT compilation, caches), then growing one-shard
  campaigns until one lasts a tenth of ``--seconds``; their seconds per sample fix the size
  of the measured campaign, about ``--seconds`` of work on one core, cut into at least four
  shards per worker (at most 256 samples a shard, the CLI's default);
* throughput: that campaign with ``retroscope.compute.campaign.generate`` in this process
  (1 worker) and on a Dask LocalCluster of 2 single-threaded worker processes, each into a
  fresh temporary directory deleted afterwards. The clock runs around ``generate`` only; the
  cluster's start-up and a warm-up campaign of one-sample shards on its workers are timed
  and reported apart;
* parallel efficiency = samples/s on 2 workers / (2 x samples/s on 1 worker). On a machine
  with 2 cores, expect it below 1: the two workers share the memory bandwidth and caches,
  Dask adds its per-shard overhead (serialising parameters, the scheduler's round trips),
  and the scheduler and this client process (which also rewrites the manifest after every
  shard) run on the same two cores. Anything else running on the machine lowers it further
  (the load averages before and after each task are recorded);
* storage: bytes of the shard files per sample;
* cost of a 10^6-sample campaign: core-hours (10^6 x seconds per sample on one core), wall
  hours on the 2 local workers at the measured throughput, and gigabytes on disk.

Every simulation runs on one thread (OMP, MKL, OpenBLAS and numba threads are set to 1 before
anything is imported, and Dask's workers inherit that). The cost table goes to stderr, the
JSON to stdout, and with ``--out`` also to that file (written atomically after every task).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS")
WORKERS = 2
MIN_SHARDS_PER_WORKER = 4
MAX_SHARD_SIZE = 256  # `retroscope simulate --shard-size` default
CAMPAIGN_SAMPLES = 10**6


def machine_info() -> dict:
    import dask
    import numpy
    import torch

    from retroscope import __version__

    return {"platform": platform.platform(), "processor": platform.machine(),
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "threads_per_worker": 1, "numpy": numpy.__version__, "torch": torch.__version__,
            "dask": dask.__version__, "retroscope": __version__}


def load_tasks(names: list[str] | None, configs: dict[str, dict]) -> list:
    """The registered tasks (all, or ``names``), each with its ``--config`` overrides."""
    from retroscope.core.registry import get_task, list_tasks

    tasks = list_tasks() if names is None else [get_task(n) for n in names]
    return [t.with_config(**configs[t.name]) if t.name in configs else t for t in tasks]


def shard_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in (out / "shards").rglob("*") if p.is_file())


def timed_campaign(task, n: int, shard_size: int, seed: int, executor,
                   scratch: Path | None) -> dict:
    """Wall seconds of ``generate`` into a fresh temporary directory (deleted afterwards),
    the bytes of its shards and its manifest's settings."""
    from retroscope.compute.campaign import generate

    with tempfile.TemporaryDirectory(prefix="retroscope-scaling-", dir=scratch) as tmp:
        out = Path(tmp) / "campaign"
        t0 = time.perf_counter()
        manifest = generate(task, out, n, shard_size=shard_size, seed=seed,
                            executor=executor, progress=False)
        seconds = time.perf_counter() - t0
        return {"n": n, "shard_size": shard_size, "shards": len(manifest.shards),
                "seconds": seconds, "samples_per_s": n / seconds,
                "shard_bytes": shard_bytes(out), "config": manifest.config}


def seconds_per_sample(task, seed: int, target_s: float, scratch: Path | None) -> float:
    """Single-worker seconds per sample from one-shard campaigns, grown until one lasts
    ``target_s`` (after a one-sample warm-up that pays the one-off costs)."""
    from retroscope.compute.executors import InProcess

    timed_campaign(task, 1, 1, seed, InProcess(), scratch)
    n = 1
    while True:
        seconds = timed_campaign(task, n, n, seed, InProcess(), scratch)["seconds"]
        if seconds >= target_s:
            return seconds / n
        n = min(100 * n, max(2 * n, math.ceil(1.2 * n * target_s / max(seconds, 1e-3))))


def campaign_size(seconds_per_sample_s: float, target_s: float) -> tuple[int, int]:
    """(samples, shard size) of about ``target_s`` single-worker seconds, in a multiple of
    ``WORKERS`` shards and at least ``MIN_SHARDS_PER_WORKER`` shards per worker."""
    samples = target_s / seconds_per_sample_s
    min_shards = WORKERS * MIN_SHARDS_PER_WORKER
    shard_size = int(min(MAX_SHARD_SIZE, max(1, samples // min_shards)))
    shards = max(min_shards, round(samples / shard_size))
    shards = WORKERS * math.ceil(shards / WORKERS)
    return shards * shard_size, shard_size


def measure_task(task, target_s: float, seed: int, scratch: Path | None) -> dict:
    from retroscope.compute.executors import InProcess, make_executor

    load_before = os.getloadavg()
    calibration_s = seconds_per_sample(task, seed, max(0.5, target_s / 10), scratch)
    n, shard_size = campaign_size(calibration_s, target_s)
    one = timed_campaign(task, n, shard_size, seed, InProcess(), scratch)

    t0 = time.perf_counter()
    executor = make_executor(WORKERS)
    startup_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        timed_campaign(task, 2 * WORKERS, 1, seed, executor, scratch)  # imports, JIT
        warmup_s = time.perf_counter() - t0
        two = timed_campaign(task, n, shard_size, seed, executor, scratch)
    finally:
        executor.close()

    efficiency = two["samples_per_s"] / (WORKERS * one["samples_per_s"])
    bytes_per_sample = one["shard_bytes"] / n
    s_per_sample = one["seconds"] / n
    config = one.pop("config")
    two.pop("config")
    return {
        "config": config, "calibration_seconds_per_sample": calibration_s,
        "workers_1": one, "workers_2": two | {"cluster_startup_s": startup_s,
                                              "warmup_s": warmup_s},
        "parallel_efficiency": efficiency, "seconds_per_sample_one_core": s_per_sample,
        "bytes_per_sample": bytes_per_sample,
        "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
        "cost_1e6_samples": {
            "core_hours": CAMPAIGN_SAMPLES * s_per_sample / 3600,
            "wall_hours_2_workers": CAMPAIGN_SAMPLES / two["samples_per_s"] / 3600,
            "storage_gb": CAMPAIGN_SAMPLES * bytes_per_sample / 1e9},
    }


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="simulation cost of a 10^6-sample campaign (w: workers)")
    for col in ("task", "samples/s 1 w", "samples/s 2 w", "efficiency", "kB/sample",
                "core-hours", "wall-hours 2 w", "GB"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for name, r in results.items():
        if "error" in r:
            table.add_row(name, f"[red]{r['error']}[/]", *[""] * 6)
            continue
        cost = r["cost_1e6_samples"]
        table.add_row(name, f"{r['workers_1']['samples_per_s']:.3g}",
                      f"{r['workers_2']['samples_per_s']:.3g}",
                      f"{r['parallel_efficiency']:.2f}", f"{r['bytes_per_sample'] / 1e3:.3g}",
                      f"{cost['core_hours']:.3g}", f"{cost['wall_hours_2_workers']:.3g}",
                      f"{cost['storage_gb']:.3g}")
    console = Console(stderr=True)
    console.width = max(console.width, 110)  # not squeezed to 80 columns when piped
    console.print(table)


def parse_configs(items: list[str]) -> dict[str, dict]:
    """``TASK=JSON`` options as {task: settings}."""
    configs = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--config {item!r}: expected TASK=JSON")
        configs[name] = json.loads(text)
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=None,
                        help="comma-separated task names (default: every registered task)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="target single-worker seconds of each measured campaign")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", action="append", default=[], metavar="TASK=JSON",
                        help="simulation settings of one task (repeatable)")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="where the temporary campaigns go (default: the system's temp)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    for name in THREAD_VARIABLES:  # before numpy, torch and numba are imported
        os.environ[name] = "1"

    from retroscope.core.registry import UnknownNameError
    from retroscope.io.atomic import json_default, write_json_atomic

    names = args.tasks.split(",") if args.tasks else None
    try:
        tasks = load_tasks(names, parse_configs(args.config))
    except (UnknownNameError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    result = {"machine": machine_info(),
              "settings": {"seconds_target": args.seconds, "seed": args.seed,
                           "workers": [1, WORKERS], "sampling": "uniform",
                           "min_shards_per_worker": MIN_SHARDS_PER_WORKER},
              "tasks": {}}
    for task in tasks:
        print(f"{task.name}: measuring ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            result["tasks"][task.name] = measure_task(task, args.seconds, args.seed,
                                                      args.scratch)
        except Exception as exc:  # one broken plugin must not lose the others' numbers
            result["tasks"][task.name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"{task.name}: done in {time.perf_counter() - t0:.0f} s", file=sys.stderr,
              flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(args.out, result)
    print_table(result["tasks"])
    print(json.dumps(result, indent=2, default=json_default))


if __name__ == "__main__":
    main()
