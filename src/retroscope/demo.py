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
                      max_minutes=settings["train_minutes"], seed=settings.get("seed", 0),
                      **settings.get("train_kwargs", {}))
    summary = train(task, cfg, out / "run")
    timings["train_s"] = time.perf_counter() - t0

    console.rule("[bold]3. evaluate on the held-out test split")
    t0 = time.perf_counter()
    if getattr(task, "learner", "regression") == "detection":
        from retroscope.cli import print_detection_metrics
        from retroscope.evaluate.detection import evaluate_detection

        metrics = evaluate_detection(out / "run", out / "data", "test")
        print_detection_metrics(metrics)
    else:
        metrics = evaluate(out / "run", out / "data", "test",
                           baseline_n=settings.get("baseline_n", 0),
                           baseline_kwargs=settings.get("baseline_kwargs"))
        print_metrics(metrics)
    timings["evaluate_s"] = time.perf_counter() - t0

    console.rule("[bold]4. predict on files written from the test split")
    test = ShardDataset(out / "data", task, "test", in_memory=True)
    files_dir = out / "files"
    files_dir.mkdir()
    files, truth = task.demo_files(test, files_dir, settings.get("n_files", 4))
    settings_file = files_dir / "preprocess.json"
    settings_file.write_text(json.dumps(task.demo_preprocess_settings()))
    if getattr(task, "learner", "regression") == "detection":
        rows, failures = _predict_shots(task, out, files, truth, settings_file, console)
    else:
        rows, failures = _predict_patterns(task, out, files, truth, settings_file, console)
    for label, reason in failures:
        console.print(f"[red]failed:[/] {label}: {reason}")

    report = {"timings": timings, "train": summary, "metrics": metrics,
              "predictions": str(out / "predictions.csv")}
    (out / "demo_report.json").write_text(json.dumps(report, indent=2, default=str))
    console.print(f"plots: {out / 'run' / 'plots'}   report: {out / 'demo_report.json'}")
    console.print("timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    return report


def _predict_patterns(task, out, files, truth, settings_file, console):
    """One row per pattern: the last target, the OOD flag and the truth."""
    from retroscope.infer.batch import predict_files

    rows, failures = predict_files(out / "run", files, settings=settings_file,
                                   out=out / "predictions.csv")
    table = Table(title="predictions on files (truth from the simulation)")
    keys = ["input"] + list(task.targets.columns)[-1:] + ["ood"]
    for k in keys + ["truth"]:
        table.add_column(k)
    for j, row in enumerate(rows):
        t = truth[j % len(truth)]
        table.add_row(*[f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k])
                        for k in keys], ", ".join(f"{k}={v}" for k, v in t.items()))
    console.print(table)
    return rows, failures


def _predict_shots(task, out, files, truth, settings_file, console):
    """One row per object found in each shot, next to the shot's true objects."""
    from retroscope.infer.batch import predict_detection_files

    folders = sorted({str(Path(f).parent) for f in files})
    rows, failures = predict_detection_files(out / "run", [Path(f) for f in folders],
                                             settings=settings_file,
                                             out=out / "predictions.csv")
    by_input = {str(t.get("input")): t.get("objects", "") for t in truth}
    table = Table(title="objects found in the written shots (truth from the simulation)")
    for k in ("input", "class", "score", "confidence", "repeats", "x0", "y0", "integrated OD",
              "unlike", "truth"):
        table.add_column(k)
    for row in rows:
        name = Path(str(row["input"])).name
        if not row.get("n_objects"):
            table.add_row(name, "-", "", "", "", "", "", "", "", by_input.get(name, ""))
            continue
        repeats = row.get("duplicate_of", -1)
        table.add_row(name, str(row["class"]), f"{row['score']:.2f}",
                      f"{row.get('confidence', float('nan')):.2f}",
                      f"row {repeats}" if repeats >= 0 else "", f"{row['x0']:.1f}",
                      f"{row['y0']:.1f}", f"{row.get('integrated_od', float('nan')):.3g}",
                      str(row.get("unlike_training", "")),
                      by_input.get(name, "") if row.get("object", 0) == 0 else "")
    console.print(table)
    return rows, failures
