"""``make demo``: the whole pipeline on one task, small enough for a laptop.

simulate (Dask, in parallel) -> train briefly -> evaluate on the held-out test split ->
write a few test patterns as PNG and CXI files -> predict on those files -> report.
Sizes come from the task's ``demo_settings`` so every task can have its own demo.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from retroscope.core.task import Task


def run_demo(task: Task, out: Path, overwrite: bool = False,
             console: Console | None = None) -> dict:
    from retroscope.cli import print_metrics
    from retroscope.compute.campaign import generate
    from retroscope.compute.executors import make_executor
    from retroscope.data.dataset import ShardDataset
    from retroscope.evaluate.report import evaluate
    from retroscope.infer.batch import predict_files
    from retroscope.infer.readers import write_cxi, write_png
    from retroscope.train.fit import TrainConfig, train

    console = console or Console()
    settings = task.demo_settings()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SystemExit(f"{out} exists; pass --overwrite to replace the demo output")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    timings = {}

    console.rule(f"[bold]1. simulate {settings['n']} {task.name} samples")
    t0 = time.perf_counter()
    executor = make_executor(settings.get("workers", 2))
    try:
        generate(task, out / "data", settings["n"], shard_size=settings.get("shard_size", 128),
                 seed=settings.get("seed", 0), executor=executor)
    finally:
        executor.close()
    timings["simulate_s"] = time.perf_counter() - t0

    console.rule(f"[bold]2. train {task.model.name} for up to {settings['train_minutes']} min")
    t0 = time.perf_counter()
    cfg = TrainConfig(task=task.name, data=str(out / "data"), model=task.model.name,
                      model_kwargs=dict(task.model.kwargs), epochs=settings["epochs"],
                      batch_size=settings.get("batch_size", 64), lr=settings.get("lr", 2e-3),
                      max_minutes=settings["train_minutes"], seed=settings.get("seed", 0))
    summary = train(task, cfg, out / "run")
    timings["train_s"] = time.perf_counter() - t0

    console.rule("[bold]3. evaluate on the held-out test split")
    t0 = time.perf_counter()
    metrics = evaluate(out / "run", out / "data", "test",
                       baseline_n=settings.get("baseline_n", 0),
                       baseline_kwargs=settings.get("baseline_kwargs"))
    timings["evaluate_s"] = time.perf_counter() - t0
    print_metrics(metrics)

    console.rule("[bold]4. predict on pattern files (PNG and CXI)")
    test = ShardDataset(out / "data", task, "test", in_memory=True)
    n_files = settings.get("n_files", 4)
    files_dir = out / "files"
    files_dir.mkdir()
    files, truth = [], []
    frames = []
    for i in range(n_files):
        image01 = task.network_input(test.observable(i))[0]
        path = files_dir / f"pattern_{i}.png"
        write_png(path, image01)
        files.append(path)
        frames.append(image01)
        truth.append(task.describe_truth({k: v[i] for k, v in test.params.items()}))
    cxi = files_dir / "patterns.cxi"
    write_cxi(cxi, np.stack(frames))
    files.append(cxi)
    settings_file = files_dir / "preprocess.json"
    settings_file.write_text(json.dumps(task.demo_preprocess_settings()))
    rows, failures = predict_files(out / "run", files, settings=settings_file,
                                   out=out / "predictions.csv")
    table = Table(title="predictions on files (truth from the simulation)")
    keys = ["input"] + list(task.targets.columns)[-1:] + ["ood"]
    for k in keys + ["truth"]:
        table.add_column(k)
    for j, row in enumerate(rows):
        t = truth[j % n_files]
        table.add_row(*[f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k])
                        for k in keys], ", ".join(f"{k}={v}" for k, v in t.items()))
    console.print(table)
    for label, reason in failures:
        console.print(f"[red]failed:[/] {label}: {reason}")

    report = {"timings": timings, "train": summary, "metrics": metrics,
              "predictions": str(out / "predictions.csv")}
    (out / "demo_report.json").write_text(json.dumps(report, indent=2, default=str))
    console.print(f"plots: {out / 'run' / 'plots'}   report: {out / 'demo_report.json'}")
    console.print("timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    return report
