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
    from retroscope.core.registry import UnknownNameError, get_task

    try:
        return get_task(name)
    except UnknownNameError as exc:
        _fail(str(exc))


def _with_config(task, config: str | None):
    """The task with the JSON settings of ``--config`` (refused with the setting named)."""
    if not config:
        return task
    try:
        return task.with_config(**_json(config, "--config"))
    except ValueError as exc:
        _fail(str(exc))


def _json(text: str | None, option: str):
    """The JSON value of an option (a clear error instead of a traceback)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{option}: not valid JSON ({exc})")


def _learner_of_run(run: Path):
    from retroscope.runs import RunError, run_learner

    try:
        return run_learner(run)
    except RunError as exc:
        _fail(str(exc))


@app.command()
def tasks() -> None:
    """List the registered tasks."""
    from retroscope.core.registry import list_tasks

    table = Table(title="retroscope tasks")
    for col in ("task", "infers", "paper", "parameters"):
        table.add_column(col)
    for t in list_tasks():
        params = ", ".join(f"{n} {r} {u}".rstrip() for n, u, r in t.space.describe())
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
    cluster: Annotated[Optional[str], typer.Option(
        help="'slurm': submit Dask workers as SLURM jobs (the cluster extra)")] = None,
    cluster_profile: Annotated[Optional[Path], typer.Option(
        help="TOML of the SLURM jobs: cores, memory, walltime, account, partition, jobs, "
             "prologue")] = None,
    dry_run: Annotated[bool, typer.Option(
        help="with --cluster: print the job script and the plan, submit nothing")] = False,
) -> None:
    """Simulate a labelled dataset into write-once HDF5 shards (resumes if interrupted)."""
    from retroscope.compute.campaign import generate, plan
    from retroscope.compute.executors import make_executor
    from retroscope.data.shards import DatasetError

    t = _with_config(_task(task), config)
    cluster_object = None
    if cluster is not None:
        from retroscope.compute.slurm import SlurmProfile, job_script, slurm_cluster

        if cluster != "slurm":
            _fail(f"--cluster {cluster!r}: only 'slurm' is known (or --scheduler ADDRESS)")
        try:
            profile = SlurmProfile.load(cluster_profile)
            if dry_run:
                shards = len(plan(t, n, shard_size, seed, sampling).shards)
                typer.echo(job_script(profile))   # unwrapped: a file to submit
                typer.echo(f"# {n} samples of {task} in {shards} shards to {out}; up to "
                           f"{profile.jobs} jobs of {profile.cores} workers, each retired "
                           f"after {profile.lifetime_minutes:.0f} min")
                return
            cluster_object = slurm_cluster(profile)
        except (ImportError, ValueError) as exc:
            _fail(str(exc))
    elif dry_run:
        _fail("--dry-run needs --cluster slurm")
    executor = make_executor(workers, scheduler, cluster_object)
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
    epochs: Annotated[Optional[int], typer.Option(
        help="maximum epochs (default 20, or the recipe's)")] = None,
    recipe: Annotated[Optional[str], typer.Option(
        help="the task's named training recipe, e.g. a paper's optimiser and schedule "
             "(options given win)")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        help="batch size (default: the task's and its learner's)")] = None,
    lr: Annotated[Optional[float], typer.Option(
        help="(peak) learning rate (default: the task's and its learner's)")] = None,
    momentum: Annotated[Optional[float], typer.Option(
        help="SGD momentum (step-schedule learners)")] = None,
    step_size: Annotated[Optional[int], typer.Option(
        help="epochs per learning-rate step (step-schedule learners)")] = None,
    decay: Annotated[Optional[float], typer.Option(
        help="learning-rate factor per step (step-schedule learners)")] = None,
    max_minutes: Annotated[Optional[float], typer.Option(
        help="stop training after this many minutes (the schedule follows the clock)")] = None,
    augment: Annotated[float, typer.Option(help="fraction of samples given detector imperfections")] = 1.0,
    limit_val: Annotated[Optional[int], typer.Option(help="validate on this many samples")] = None,
    view: Annotated[Optional[str], typer.Option(
        help="JSON of the task's reading settings, e.g. '{\"zoom\": true}'")] = None,
    init_from: Annotated[Optional[Path], typer.Option(
        help="start from this finished run's weights and input normalisation (transfer "
             "learning; intervals are calibrated anew)")] = None,
    freeze: Annotated[int, typer.Option(
        help="with --init-from: keep the network's first K blocks as they were")] = 0,
    workers: Annotated[int, typer.Option(help="DataLoader workers")] = 0,
    precision: Annotated[str, typer.Option(
        help="32-true, or bf16-mixed (bfloat16 autocast: about 2x faster on CPUs with AMX or "
             "AVX512-BF16 and on recent GPUs)")] = "32-true",
    tracking: Annotated[str, typer.Option(help="csv or mlflow")] = "csv",
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI")] = None,
    seed: Annotated[int, typer.Option(help="seed")] = 0,
    devices: Annotated[int, typer.Option(
        help="processes (CPU) or GPUs per node; more than 1 trains with DDP")] = 1,
    num_nodes: Annotated[int, typer.Option(help="nodes (under SLURM's srun)")] = 1,
    strategy: Annotated[str, typer.Option(
        help="Lightning strategy (auto: ddp for several devices)")] = "auto",
    resume: Annotated[bool, typer.Option(help="continue an interrupted run")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an existing run")] = False,
) -> None:
    """Train the task's network on a dataset and write a run directory."""
    from retroscope.data.shards import DatasetError
    from retroscope.runs import RunError
    from retroscope.train.config import train_config
    from retroscope.train.fit import train as fit

    t = _task(task)
    views = _json(view, "--view")
    try:
        # the view may change the network's input (its size, a 1D curve): build the model for it
        t = t.with_config(**(views or {}))
        cfg = train_config(t, data, model=model, recipe=recipe,
                           model_kwargs=_json(model_kwargs, "--model-kwargs"), epochs=epochs,
                           batch_size=batch_size, lr=lr, momentum=momentum,
                           step_size=step_size, decay=decay, max_minutes=max_minutes,
                           augment=augment, num_workers=workers, limit_val=limit_val,
                           view=views, precision=precision, tracking=tracking,
                           tracking_uri=tracking_uri, seed=seed,
                           init_from=None if init_from is None else str(init_from),
                           freeze=freeze, devices=devices, num_nodes=num_nodes,
                           strategy=strategy)
        summary = fit(t, cfg, out, resume=resume, overwrite=overwrite)
    except (RunError, DatasetError, ValueError) as exc:
        _fail(str(exc))
    if "global_rank" not in summary:     # the other processes of a DDP run stay quiet
        console.print_json(json.dumps(summary))


@app.command()
def calibrate(
    run: Annotated[Path, typer.Argument(help="run directory")],
    data: Annotated[Optional[Path], typer.Option(help="dataset (default: the run's own)")] = None,
) -> None:
    """Refit a run's calibration on a validation split, weights unchanged (intervals and
    out-of-distribution threshold; for a detector also the refined detections' intervals,
    shape thresholds and confidences)."""
    from retroscope.data.shards import DatasetError

    learner = _learner_of_run(run)
    try:
        record = learner.recalibrate(run, data)
    except (ValueError, FileNotFoundError, DatasetError) as exc:
        _fail(str(exc))
    console.print_json(json.dumps({k: v for k, v in record.items()
                                   if isinstance(v, (int, float, str))}))


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="run directory")],
    data: Annotated[Path, typer.Option("--data", help="dataset directory")],
    split: Annotated[str, typer.Option(
        help="train, val, test, or all (a separate campaign held out as a whole)")] = "test",
    baseline: Annotated[int, typer.Option(
        help="run the task's classical baseline on N samples (regression runs)")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="where to write (default: the run)")] = None,
    refine: Annotated[Optional[bool], typer.Option(
        "--refine/--no-refine", help="detection runs: redraw the detections from the task's "
        "physics fit seeded by the network; default: where calibrated")] = None,
) -> None:
    """Score a run on a split: metrics.json, plots, and the baseline comparison."""
    from retroscope.evaluate.console import print_metrics
    from retroscope.evaluate.report import evaluate as run_eval

    learner = _learner_of_run(run)
    try:
        metrics = run_eval(run, data, split, out=out, baseline_n=baseline, refine=refine)
    except ValueError as exc:
        _fail(str(exc))
    print_metrics(console, learner, metrics)


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="run directory")],
    files: Annotated[list[Path], typer.Argument(help="PNG, TIFF, NPY, HDF5 or CXI files (a detection task: also folders of shots, BMP, FITS)")],
    out: Annotated[Optional[Path], typer.Option(help="file for every column of the results")] = None,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", help="csv or json (default: from the --out suffix, else csv)")] = None,
    settings: Annotated[Optional[Path], typer.Option(help="TOML/JSON preprocessing settings")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out file")] = False,
    group: Annotated[Optional[str], typer.Option(
        help="combine sequences of images of one object: folder, file or regex:PATTERN "
             "(first capture group of the file name)")] = None,
    refine: Annotated[Optional[bool], typer.Option(
        "--refine/--no-refine", help="detection runs: redraw the detections from the task's "
        "physics fit seeded by the network; default: where calibrated")] = None,
) -> None:
    """Read experimental files and print the headline answers per image, each value with its
    interval and flags (every column goes to --out; with --group also the combined estimate
    per sequence)."""
    from retroscope.evaluate.console import print_failures, rows_table
    from retroscope.infer.batch import (
        FORMATS,
        combine_groups,
        group_key,
        predict_files,
        write_rows,
    )
    from retroscope.runs import open_run

    if out is not None and out.exists() and not overwrite:
        _fail(f"{out} exists; use --overwrite or another --out")
    fmt = fmt or ("json" if out is not None and out.suffix.lower() == ".json" else "csv")
    if fmt not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    learner = _learner_of_run(run)
    if group is not None:
        if not learner.combines_sequences:
            _fail(f"--group: answers of a {learner.name} run cannot be pooled over images")
        try:
            group_key("x/y.png", group)
        except ValueError as exc:
            _fail(str(exc))
    try:
        rows, failures = predict_files(run, files, settings=settings, out=out, fmt=fmt,
                                       refine=refine)
    except ValueError as exc:
        _fail(str(exc))
    if group is not None and rows:
        columns = [c for c in rows[0] if f"{c}_low" in rows[0]]
        combined = combine_groups(rows, columns, group)
        if out is not None:
            write_rows(out.with_name(f"{out.stem}.groups{out.suffix or '.' + fmt}"), combined,
                       [], fmt)
        console.print(rows_table(combined, f"combined per sequence ({group})", skip=()))
    if rows:
        headline = learner.headline(open_run(run).task)
        console.print(rows_table(rows, f"predictions ({run}; all columns: --out)",
                                 columns=headline))
    print_failures(err, failures)
    if failures:
        raise typer.Exit(1)


@app.command()
def explain(
    run: Annotated[Path, typer.Argument(help="run directory (a regression on images)")],
    files: Annotated[list[Path], typer.Argument(help="PNG, TIFF, NPY, HDF5 or CXI files")],
    method: Annotated[str, typer.Option(help="occlusion, gradcam or lime")] = "occlusion",
    target: Annotated[Optional[str], typer.Option(
        help="target column explained (default: the run's first)")] = None,
    out: Annotated[Path, typer.Option(
        help="folder for FILE_METHOD.npy and FILE_METHOD.png")] = Path("explanations"),
    settings: Annotated[Optional[Path], typer.Option(
        help="TOML/JSON preprocessing settings")] = None,
) -> None:
    """Show which pixels a regression run's answer rests on: per input, an attribution map of
    one target column over the network's input (captum's occlusion, Grad-CAM on the last
    convolution, or LIME on superpixels), written as NPY and as a PNG beside the input."""
    from retroscope.evaluate.console import print_failures
    from retroscope.explain import METHODS, explain_files
    from retroscope.runs import RunError

    if method not in METHODS:
        _fail(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    try:
        written, failures = explain_files(run, files, method=method, out=out, target=target,
                                          settings=settings)
    except (RunError, ValueError) as exc:
        _fail(str(exc))
    for npy, png in written:
        console.print(f"{npy}  {png.name}")
    print_failures(err, failures)
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
    storage: Annotated[Optional[str], typer.Option(
        help="SQLAlchemy URL of the study database (sqlite:///studies.db, "
             "postgresql://host/db); default: a journal file in --out")] = None,
) -> None:
    """Bayesian optimisation of training hyperparameters (GP after 5 Sobol trials)."""
    from retroscope.compute.executors import make_executor
    from retroscope.train.config import train_config
    from retroscope.train.tune import tune as run_tune

    t = _task(task)
    base = train_config(t, data.resolve(), model=model,
                        model_kwargs=_json(model_kwargs, "--model-kwargs"), epochs=epochs,
                        batch_size=batch_size, max_minutes=max_minutes,
                        limit_train=limit_train, limit_val=limit_val, seed=seed,
                        patience=max(epochs, 1))
    executor = make_executor(workers, scheduler)
    try:
        result = run_tune(t, base, out, n_trials=trials, parallel=parallel, executor=executor,
                          seed=seed, console=console, storage=storage)
    except ValueError as exc:
        _fail(str(exc))
    finally:
        executor.close()
    console.print(f"best {result['best_value']:.4f} at trial {result['best_trial']}: "
                  f"{result['best_params']}")
    console.print("plots: " + ", ".join(result["plots"]))


@app.command()
def demo(
    task: Annotated[str, typer.Argument(help="task name (see `retroscope tasks`)")],
    out: Annotated[Path, typer.Option(help="demo output folder")] = Path("demo-output"),
    overwrite: Annotated[bool, typer.Option(help="replace an earlier demo output")] = False,
) -> None:
    """Simulate, train briefly, evaluate, predict on written files, and report."""
    from retroscope.demo import run_demo

    run_demo(_task(task), out, overwrite=overwrite, console=console)


def _open_watcher(run: Path, folder: Path, out: Path, settings, settle: float, poll: float,
                  csv: Optional[Path] = None):
    """(store, watcher) of ``run`` on ``folder``, or a clear error."""
    from retroscope.live.store import ResultStore, StoreError
    from retroscope.live.watch import Watcher
    from retroscope.runs import RunError

    _learner_of_run(run)
    if not folder.is_dir():
        _fail(f"{folder}: no such folder")
    import os

    if not os.access(folder, os.R_OK | os.X_OK):
        _fail(f"{folder}: cannot read this folder (permission denied)")
    try:
        store = ResultStore(out, run=str(run.resolve()), folder=str(folder.resolve()))
        watcher = Watcher(run, folder, store, settings=settings, settle_s=settle, poll_s=poll,
                          csv_path=csv)
    except (StoreError, RunError, ValueError) as exc:
        _fail(str(exc))
    return store, watcher


@app.command()
def watch(
    run: Annotated[Path, typer.Argument(help="run directory")],
    folder: Annotated[Path, typer.Argument(help="folder where the files land")],
    out: Annotated[Path, typer.Option(help="SQLite results table (appended)")] = Path(
        "results.sqlite"),
    csv: Annotated[Optional[Path], typer.Option(help="also append the rows to this CSV")] = None,
    settings: Annotated[Optional[Path], typer.Option(help="TOML/JSON preprocessing settings")] = None,
    settle: Annotated[float, typer.Option(help="seconds a file must stay unchanged")] = 0.2,
    poll: Annotated[float, typer.Option(help="seconds between folder scans without inotify")] = 1.0,
    once: Annotated[bool, typer.Option(help="answer the files there now, then stop")] = False,
) -> None:
    """Answer every file that lands in FOLDER (once, even across restarts) into a SQLite
    table; a half-written or corrupt file is retried once, then recorded with its error."""
    import logging
    import threading

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    store, watcher = _open_watcher(run, folder, out, settings, settle, poll, csv)
    if once:
        watcher.drain()
        console.print(f"{watcher.answered} file(s) answered into {out}")
        return
    console.print(f"watching {folder} with {run}; results in {out} (Ctrl-C stops)")
    stop = threading.Event()
    try:
        watcher.run(stop)
    except KeyboardInterrupt:
        stop.set()


@app.command()
def serve(
    run: Annotated[Path, typer.Argument(help="run directory")],
    folder: Annotated[Path, typer.Argument(help="folder where the files land")],
    out: Annotated[Path, typer.Option(help="SQLite results table (appended)")] = Path(
        "results.sqlite"),
    host: Annotated[str, typer.Option(help="address to bind (other than loopback: a token)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8765,
    token: Annotated[Optional[str], typer.Option(
        help="required on every request (generated and printed when binding beyond "
             "loopback without one)")] = None,
    settings: Annotated[Optional[Path], typer.Option(help="TOML/JSON preprocessing settings")] = None,
    settle: Annotated[float, typer.Option(help="seconds a file must stay unchanged")] = 0.2,
    poll: Annotated[float, typer.Option(help="seconds between folder scans without inotify")] = 1.0,
    watch_folder: Annotated[bool, typer.Option(
        "--watch/--no-watch", help="answer new files here (--no-watch: another `retroscope "
        "watch` fills --out)")] = True,
) -> None:
    """A local web page of the answers as files land: the latest input, its answer with the
    interval and the OOD flag, the history with its fitted trend, the last rows."""
    import threading

    try:
        import uvicorn

        from retroscope.live.server import LiveState, make_app, needs_token, new_token
    except ImportError as exc:
        _fail(f"serve needs the live extra: pip install 'retroscope[live]' ({exc})")
    store, watcher = _open_watcher(run, folder, out, settings, settle, poll)
    if needs_token(host) and not token:
        token = new_token()
    learner = watcher.learner
    live = LiveState(store, folder, watcher.task, learner.headline(watcher.task),
                     title=f"{watcher.task.name}: {run.name} on {folder.name}")
    stop = threading.Event()
    if watch_folder:
        threading.Thread(target=watcher.run, args=(stop,), daemon=True).start()
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    console.print(f"serving http://{shown}:{port}/" + (f"?token={token}" if token else ""),
                  soft_wrap=True)
    server = uvicorn.Server(uvicorn.Config(make_app(live, token), host=host, port=port,
                                           log_level="warning"))
    try:
        server.run()
    finally:
        stop.set()


def _add_task_commands() -> None:
    """Task-specific command groups (``retroscope TASK ...``) come from the entry-point group
    ``retroscope.cli``, so this module never imports a task by name."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="retroscope.cli"):
        try:
            app.add_typer(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plugin must not break the other commands
            err.print(f"[yellow]warning:[/] command group {ep.name!r} failed to load: {exc}")


def _readable_help(typer_app: typer.Typer) -> None:
    """Help as people read it: each command's docstring paragraphs as flowing text (the
    rich help keeps a docstring's line breaks, which cut sentences in the middle), and no
    ``<bool>`` type tag after a flag (Typer prints one for every on/off option)."""
    from typer.core import TyperOption

    for info in typer_app.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if doc:
            info.help = "\n\n".join(" ".join(part.split()) for part in doc.strip().split("\n\n"))
    for group in typer_app.registered_groups:
        _readable_help(group.typer_instance)
    if not getattr(TyperOption, "_flag_type_hidden", False):
        shown = TyperOption.display_type_rich

        def display_type_rich(self, ctx):  # a flag takes no value: no type to show
            return None if self.is_flag else shown(self, ctx)

        TyperOption.display_type_rich = display_type_rich
        TyperOption._flag_type_hidden = True


_add_task_commands()
_readable_help(app)

if __name__ == "__main__":
    app()
