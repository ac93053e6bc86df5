"""The ``retroscope`` command line. Every command is a thin call into the library.

Heavy modules (torch, dask, lightning) are imported inside the commands so that
``retroscope --help`` answers at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Simulate, train and invert single-shot AMO/X-ray measurements.")
console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _task(name: str):
    from retroscope.core.task import UnknownTaskError, get_task

    try:
        return get_task(name)
    except UnknownTaskError as exc:
        _fail(str(exc))


@app.command()
def tasks() -> None:
    """List the registered tasks."""
    from retroscope.core.task import list_tasks

    table = Table(title="retroscope tasks")
    for col in ("task", "infers", "paper", "parameters"):
        table.add_column(col)
    for t in list_tasks():
        params = ", ".join(f"{n} {r}" for n, _, r in t.space.describe())
        table.add_row(t.name, t.infers, t.paper, params)
    console.print(table)


@app.command()
def simulate(
    task: Annotated[str, typer.Argument(help="task name (see `retroscope tasks`)")],
    n: Annotated[int, typer.Option("--n", help="number of samples")] = 1000,
    out: Annotated[Path, typer.Option("--out", help="dataset directory")] = Path("data-out"),
    shard_size: Annotated[int, typer.Option(help="rows per HDF5 shard")] = 256,
    workers: Annotated[int, typer.Option(help="Dask LocalCluster workers (1: in-process)")] = 2,
    scheduler: Annotated[Optional[str], typer.Option(help="existing Dask scheduler address")] = None,
    seed: Annotated[int, typer.Option(help="campaign seed")] = 0,
    sampling: Annotated[str, typer.Option(help="uniform, sobol or grid")] = "uniform",
    config: Annotated[Optional[str], typer.Option(help="JSON of task simulation settings")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace a dataset made with other settings")] = False,
) -> None:
    """Simulate a labelled dataset into write-once HDF5 shards (resumes if interrupted)."""
    from retroscope.compute.campaign import generate
    from retroscope.compute.executors import make_executor
    from retroscope.data.shards import DatasetError

    t = _task(task)
    if config:
        t = t.with_config(**json.loads(config))
    executor = make_executor(workers, scheduler)
    try:
        manifest = generate(t, out, n, shard_size=shard_size, seed=seed, sampling=sampling,
                            executor=executor, overwrite=overwrite)
    except (DatasetError, ValueError) as exc:
        _fail(str(exc))
    finally:
        executor.close()
    console.print(f"{manifest.rows_done} samples of [bold]{task}[/] in {out} "
                  f"({len(manifest.shards)} shards, config {manifest.config_hash[:12]})")


@app.command()
def merge(
    parts: Annotated[list[Path], typer.Argument(help="complete dataset directories to combine")],
    out: Annotated[Path, typer.Option("--out", help="new dataset directory")],
) -> None:
    """Combine campaigns of one task and one set of settings (different seeds) into one
    dataset; shards are hard-linked, the parts are left as they are."""
    from retroscope.data.merge import merge_datasets
    from retroscope.data.shards import DatasetError

    try:
        manifest = merge_datasets(parts, out)
    except DatasetError as exc:
        _fail(str(exc))
    console.print(f"{manifest.n} samples of [bold]{manifest.task}[/] from {len(parts)} "
                  f"campaigns in {out} ({len(manifest.shards)} shards, "
                  f"config {manifest.config_hash[:12]})")


@app.command()
def train(
    task: Annotated[str, typer.Argument(help="task name")],
    data: Annotated[Path, typer.Option("--data", help="dataset directory")],
    out: Annotated[Path, typer.Option("--out", help="run directory")],
    model: Annotated[Optional[str], typer.Option(help="registered model name")] = None,
    model_kwargs: Annotated[Optional[str], typer.Option(help="JSON of model settings")] = None,
    epochs: Annotated[int, typer.Option(help="maximum epochs")] = 20,
    batch_size: Annotated[Optional[int], typer.Option(help="batch size (default: the task's)")] = None,
    lr: Annotated[Optional[float], typer.Option(help="(peak) learning rate (default: the task's)")] = None,
    momentum: Annotated[float, typer.Option(help="SGD momentum (detection tasks)")] = 0.9,
    step_size: Annotated[int, typer.Option(help="epochs per learning-rate step (detection)")] = 5,
    decay: Annotated[float, typer.Option(help="learning-rate factor per step (detection)")] = 0.1,
    max_minutes: Annotated[Optional[float], typer.Option(help="stop training after this")] = None,
    augment: Annotated[float, typer.Option(help="fraction of samples given detector imperfections")] = 1.0,
    limit_val: Annotated[Optional[int], typer.Option(help="validate on this many samples")] = None,
    view: Annotated[Optional[str], typer.Option(
        help="JSON of the task's reading settings, e.g. crystal '{\"zoom\": false}'")] = None,
    workers: Annotated[int, typer.Option(help="DataLoader workers")] = 0,
    precision: Annotated[str, typer.Option(
        help="32-true, or bf16-mixed (bfloat16 autocast: about 2x faster on CPUs with AMX or "
             "AVX512-BF16 and on recent GPUs)")] = "32-true",
    tracking: Annotated[str, typer.Option(help="csv or mlflow")] = "csv",
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI")] = None,
    seed: Annotated[int, typer.Option(help="seed")] = 0,
    resume: Annotated[bool, typer.Option(help="continue an interrupted run")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an existing run")] = False,
) -> None:
    """Train the task's network on a dataset and write a run directory."""
    from retroscope.data.shards import DatasetError
    from retroscope.train.fit import RunError, TrainConfig
    from retroscope.train.fit import train as fit

    t = _task(task)
    kwargs = dict(t.model.kwargs) if model is None else {}
    kwargs.update(json.loads(model_kwargs) if model_kwargs else {})
    cfg = TrainConfig(task=task, data=str(data), model=model or t.model.name,
                      model_kwargs=kwargs, epochs=epochs,
                      batch_size=batch_size or getattr(t, "batch_size", 64),
                      lr=lr or getattr(t, "learning_rate", 2e-3), momentum=momentum,
                      step_size=step_size, decay=decay, max_minutes=max_minutes,
                      augment=augment, num_workers=workers, limit_val=limit_val,
                      view=json.loads(view) if view else {}, precision=precision,
                      tracking=tracking, tracking_uri=tracking_uri, seed=seed)
    try:
        summary = fit(t, cfg, out, resume=resume, overwrite=overwrite)
    except (RunError, DatasetError) as exc:
        _fail(str(exc))
    console.print_json(json.dumps(summary))


@app.command()
def calibrate(
    run: Annotated[Path, typer.Argument(help="run directory")],
    data: Annotated[Optional[Path], typer.Option(help="dataset (default: the run's own)")] = None,
) -> None:
    """Refit a run's interval calibration and OOD threshold (detection runs: the per-object
    intervals and shape thresholds, also for refined detections) on a validation split."""
    if _run_learner(run) == "detection":
        from retroscope.infer.detection import recalibrate_detection

        try:
            record = recalibrate_detection(run, data)
        except (ValueError, FileNotFoundError) as exc:
            _fail(str(exc))
        console.print_json(json.dumps({k: v for k, v in record.items()
                                       if k in ("matched_objects", "true_objects", "n_val")}))
        return
    from retroscope.train.fit import recalibrate

    console.print_json(json.dumps(recalibrate(run, data)))


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="run directory")],
    data: Annotated[Path, typer.Option("--data", help="dataset directory")],
    split: Annotated[str, typer.Option(help="train, val or test")] = "test",
    baseline: Annotated[int, typer.Option(help="run the classical baseline on N samples")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="where to write (default: the run)")] = None,
    refine: Annotated[Optional[bool], typer.Option(
        "--refine/--no-refine", help="detection runs: redraw the detections from the task's "
        "model fit (clouds: joint 2D fit seeded by the masks); default: where calibrated")] = None,
) -> None:
    """Score a run on a split: metrics.json, plots, and the baseline comparison."""
    from retroscope.evaluate.report import evaluate as run_eval

    if _run_learner(run) == "detection":
        from retroscope.evaluate.detection import evaluate_detection

        try:
            metrics = evaluate_detection(run, data, split, out=out, refine=refine)
        except ValueError as exc:
            _fail(str(exc))
        print_detection_metrics(metrics)
        return
    metrics = run_eval(run, data, split, out=out, baseline_n=baseline)
    print_metrics(metrics)


def _print_rows(rows: list[dict], title: str, skip=("file",)) -> None:
    if not rows:
        return
    columns = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in skip
               and not k.endswith(("_low", "_high"))]
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[f"{row[c]:.4g}" if isinstance(row.get(c), float) else str(row.get(c, ""))
                        for c in columns])
    console.print(table)


def _run_learner(run: Path) -> str:
    """"detection" or "regression", from the run's stored task (without loading weights)."""
    from retroscope.core.task import get_task

    config = run / "config.json"
    if not config.exists():
        _fail(f"{run}: no config.json; is this a retroscope run?")
    return getattr(get_task(json.loads(config.read_text())["task"]), "learner", "regression")


def print_detection_metrics(metrics: dict) -> None:
    sets = [("network", metrics["coco"])]
    if metrics.get("coco_refined"):
        sets.append(("refined", metrics["coco_refined"]))
    table = Table(title=f"{metrics['split']} split, n = {metrics['n']} frames: COCO mAP")
    table.add_column("class")
    for name, _ in sets:
        table.add_column(f"box mAP ({name})")
        table.add_column(f"mask mAP ({name})")

    def cells(key):
        return ["-" if coco.get(f"{kind}_{key}") is None else f"{coco[f'{kind}_{key}']:.3f}"
                for _, coco in sets for kind in ("box", "mask")]

    table.add_row("all", *cells("map"))
    for key in sets[0][1]:
        if key.startswith("box_map_") and not key[8:].isdigit():
            table.add_row(key[8:], *cells(key[4:]))
    console.print(table)
    if "refine_ms_per_frame" in metrics:
        console.print(f"refinement (joint fit): {metrics['refine_ms_per_frame']:.1f} ms/frame; "
                      f"objects below from {'refined' if metrics['refined'] else 'network'} "
                      f"detections")
    objects = metrics["objects"]
    console.print(f"objects: {objects['matched_iou50']}/{objects['true']} found (IoU >= 0.5), "
                  f"{objects['detected']} reported   inference: "
                  f"{metrics['inference_ms_per_frame']:.1f} ms/frame")
    coverage = metrics.get("interval_coverage", {})
    if coverage:
        console.print("interval coverage: " + "   ".join(f"{k} {100 * v:.0f}%"
                                                       for k, v in coverage.items()))


def print_metrics(metrics: dict) -> None:
    table = Table(title=f"{metrics['split']} split, n = {metrics['n']}")
    for col in ("metric", "median", "p90", "mean"):
        table.add_column(col)
    for name, s in metrics["task_metrics"].items():
        table.add_row(name, f"{s['median']:.4g}", f"{s['p90']:.4g}", f"{s['mean']:.4g}")
    console.print(table)
    cov = Table(title=f"calibrated {100 * metrics['nominal_coverage']:.0f}% intervals")
    for col in ("target", "unit", "rmse", "coverage"):
        cov.add_column(col)
    for name, s in metrics["targets"].items():
        cov.add_row(name, s["unit"], f"{s['rmse']:.4g}", f"{100 * s['coverage']:.1f}%")
    console.print(cov)
    for name, summary in metrics.get("task_summary", {}).items():
        figures = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
        console.print(f"{name}: " + "   ".join(f"{k} {v:.4g}" for k, v in figures.items()))
    console.print(f"OOD-flagged: {100 * metrics['ood_fraction']:.1f}%   "
                  f"inference: {metrics['inference_ms_per_sample']:.2f} ms/sample")


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="run directory")],
    files: Annotated[list[Path], typer.Argument(help="PNG, TIFF, NPY, HDF5 or CXI files")],
    out: Annotated[Optional[Path], typer.Option(help="CSV file for the results")] = None,
    settings: Annotated[Optional[Path], typer.Option(help="TOML/JSON preprocessing settings")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out file")] = False,
    group: Annotated[Optional[str], typer.Option(
        help="combine sequences of images of one object: folder, file or regex:PATTERN "
             "(first capture group of the file name)")] = None,
    refine: Annotated[Optional[bool], typer.Option(
        "--refine/--no-refine", help="detection runs: redraw the detections from the task's "
        "model fit (clouds: joint 2D fit seeded by the masks); default: where calibrated")] = None,
) -> None:
    """Read experimental files and print value, interval and OOD flag per image (and the
    combined estimate per sequence with --group)."""
    from retroscope.infer.batch import combine_groups, group_key, predict_files, write_csv

    if out is not None and out.exists() and not overwrite:
        _fail(f"{out} exists; use --overwrite or another --out")
    if group is not None:
        try:
            group_key("x/y.png", group)
        except ValueError as exc:
            _fail(str(exc))
    if _run_learner(run) == "detection":
        from retroscope.infer.batch import predict_detection_files

        try:
            rows, failures = predict_detection_files(run, files, settings=settings, out=out,
                                                     refine=refine)
        except ValueError as exc:
            _fail(str(exc))
        _print_rows(rows, f"objects ({run})")
        for label, reason in failures:
            err.print(f"[red]failed:[/] {label}: {reason}")
        if failures:
            raise typer.Exit(1)
        return
    rows, failures = predict_files(run, files, settings=settings, out=out)
    if group is not None and rows:
        columns = [c for c in rows[0] if f"{c}_low" in rows[0]]
        combined = combine_groups(rows, columns, group)
        if out is not None:
            write_csv(out.with_name(out.stem + ".groups.csv"), combined, [])
        gtable = Table(title=f"combined per sequence ({group})")
        for col in combined[0]:
            gtable.add_column(col)
        for row in combined:
            gtable.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v)
                             for v in row.values()])
        console.print(gtable)
    table = Table(title=f"predictions ({run})")
    if rows:
        for col in rows[0]:
            table.add_column(col)
        for row in rows:
            table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()])
        console.print(table)
    for label, reason in failures:
        err.print(f"[red]failed:[/] {label}: {reason}")
    if failures:
        raise typer.Exit(1)


@app.command()
def tune(
    task: Annotated[str, typer.Argument(help="task name")],
    data: Annotated[Path, typer.Option("--data", help="dataset directory")],
    out: Annotated[Path, typer.Option("--out", help="study directory (resumes if it exists)")],
    trials: Annotated[int, typer.Option(help="completed trials to reach")] = 12,
    parallel: Annotated[int, typer.Option(help="trials at a time")] = 1,
    workers: Annotated[int, typer.Option(help="Dask LocalCluster workers (1: in-process)")] = 1,
    scheduler: Annotated[Optional[str], typer.Option(help="existing Dask scheduler address")] = None,
    epochs: Annotated[int, typer.Option(help="epochs per trial")] = 3,
    max_minutes: Annotated[Optional[float], typer.Option(help="training minutes per trial")] = None,
    limit_train: Annotated[Optional[int], typer.Option(help="training samples per trial")] = None,
    limit_val: Annotated[Optional[int], typer.Option(help="validation samples per trial")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="batch size (default: the task's)")] = None,
    model: Annotated[Optional[str], typer.Option(help="registered model name")] = None,
    model_kwargs: Annotated[Optional[str], typer.Option(help="JSON of model settings")] = None,
    seed: Annotated[int, typer.Option(help="seed of the sampler and the trials")] = 0,
) -> None:
    """Bayesian optimisation of training hyperparameters (GP after 5 Sobol trials)."""
    from retroscope.compute.executors import make_executor
    from retroscope.train.fit import TrainConfig
    from retroscope.train.tune import tune as run_tune

    t = _task(task)
    kwargs = dict(t.model.kwargs) if model is None else {}
    kwargs.update(json.loads(model_kwargs) if model_kwargs else {})
    base = TrainConfig(task=task, data=str(data.resolve()), model=model or t.model.name,
                       model_kwargs=kwargs, epochs=epochs,
                       batch_size=batch_size or getattr(t, "batch_size", 64),
                       lr=getattr(t, "learning_rate", 2e-3),
                       max_minutes=max_minutes, limit_train=limit_train, limit_val=limit_val,
                       seed=seed, patience=max(epochs, 1))
    executor = make_executor(workers, scheduler)
    try:
        result = run_tune(t, base, out, n_trials=trials, parallel=parallel, executor=executor,
                          seed=seed, console=console)
    except ValueError as exc:
        _fail(str(exc))
    finally:
        executor.close()
    console.print(f"best {result['best_value']:.4f} at trial {result['best_trial']}: "
                  f"{result['best_params']}")
    console.print("plots: " + ", ".join(result["plots"]))


@app.command()
def demo(
    task: Annotated[str, typer.Argument(help="task name")] = "diffraction",
    out: Annotated[Path, typer.Option(help="demo output folder")] = Path("demo-output"),
    overwrite: Annotated[bool, typer.Option(help="replace an earlier demo output")] = False,
) -> None:
    """Simulate, train briefly, evaluate, predict on written files, and report."""
    from retroscope.demo import run_demo

    run_demo(_task(task), out, overwrite=overwrite, console=console)


def _add_task_commands() -> None:
    """Task-specific command groups (e.g. ``retroscope clouds label``) come from the
    entry-point group ``retroscope.cli``, so this module never imports a task by name."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="retroscope.cli"):
        try:
            app.add_typer(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plugin must not break the other commands
            err.print(f"[yellow]warning:[/] command group {ep.name!r} failed to load: {exc}")


_add_task_commands()

if __name__ == "__main__":
    app()
