"""``make demo``: the whole pipeline on one task, small enough for a laptop.

simulate (Dask, in parallel) -> train briefly -> evaluate on the held-out test split ->
write a few test samples as the files a lab would have -> predict on those files -> report.
Sizes come from the task's ``demo_settings``; what is printed comes from its learner.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from rich.console import Console

from retroscope.compute.campaign import generate
from retroscope.compute.executors import make_executor
from retroscope.core.registry import learner_of
from retroscope.data.dataset import ShardDataset
from retroscope.evaluate.console import print_failures, print_metrics
from retroscope.evaluate.report import evaluate
from retroscope.infer.batch import predict_files
from retroscope.train.config import train_config
from retroscope.train.fit import train


def run_demo(task, out: Path, overwrite: bool = False, console: Console | None = None) -> dict:
    """Run the demo of ``task`` into ``out`` and return its report (also written as
    ``demo_report.json``)."""
    console = console or Console()
    settings = task.demo_settings()
    task = task.with_config(**settings.task_config)
    learner = learner_of(task)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SystemExit(f"{out} exists; pass --overwrite to replace the demo output")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    timings = {}

    console.rule(f"[bold]1. simulate {settings.n} {task.name} samples")
    t0 = time.perf_counter()
    executor = make_executor(settings.workers)
    try:
        generate(task, out / "data", settings.n, shard_size=settings.shard_size,
                 seed=settings.seed, executor=executor)
    finally:
        executor.close()
    timings["simulate_s"] = time.perf_counter() - t0

    console.rule(f"[bold]2. train {task.model.name} for up to {settings.train_minutes} min")
    t0 = time.perf_counter()
    cfg = train_config(task, out / "data", epochs=settings.epochs,
                       max_minutes=settings.train_minutes, seed=settings.seed, **settings.train)
    summary = train(task, cfg, out / "run")
    timings["train_s"] = time.perf_counter() - t0

    console.rule("[bold]3. evaluate on the held-out test split")
    t0 = time.perf_counter()
    options = {"baseline_n": settings.baseline_n,
               "baseline_kwargs": settings.baseline_kwargs} if settings.baseline_n else {}
    metrics = evaluate(out / "run", out / "data", "test", **options)
    print_metrics(console, learner, metrics)
    timings["evaluate_s"] = time.perf_counter() - t0

    console.rule("[bold]4. predict on files written from the test split")
    test = ShardDataset(out / "data", task, "test", in_memory=True)
    files_dir = out / "files"
    files_dir.mkdir()
    files, truth = task.demo_files(test, files_dir, settings.n_files)
    test.close()
    # no settings given: the files say how they are scaled (see Task.demo_files)
    rows, failures = predict_files(out / "run", files, out=out / "predictions.csv")
    console.print(learner.demo_table(task, rows, truth))
    print_failures(console, failures)

    if settings.explain:
        from retroscope.explain import explain_files

        t0 = time.perf_counter()
        written, _ = explain_files(out / "run", files[:1], method=settings.explain,
                                   out=out / "explanations")
        timings["explain_s"] = time.perf_counter() - t0
        for npy, png in written:
            console.print(f"{settings.explain} attribution of {files[0].name}: {png} ({npy.name})")

    report = {"timings": timings, "train": summary, "metrics": metrics,
              "full_scale": settings.full_scale,
              "predictions": str(out / "predictions.csv")}
    (out / "demo_report.json").write_text(json.dumps(report, indent=2, default=str))
    if settings.full_scale:
        console.print(f"[bold]at full scale:[/] {settings.full_scale}")
    console.print(f"plots: {out / 'run' / 'plots'}   report: {out / 'demo_report.json'}")
    console.print("timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    return report
