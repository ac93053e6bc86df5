"""Scoring a regression run on a split of a dataset, with plots and the task's baseline.

Writes ``metrics.json`` (and plots under ``plots/``) into the run directory or ``out``: per
target column the RMSE and the measured coverage of the calibrated intervals; the task's own
per-sample metrics summarised by median, 90th percentile and mean; the fraction flagged as out
of distribution; and, when asked, the task's classical baseline on a few samples.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from retroscope import plots
from retroscope.data.dataset import ShardDataset
from retroscope.io.atomic import write_json_atomic
from retroscope.learners.regression.predictor import Predictor


def summarise(values: np.ndarray) -> dict:
    """Median, 5th/90th/95th percentile, mean, maximum and count of a per-sample metric."""
    v = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(v)), "p05": float(np.percentile(v, 5)),
            "p90": float(np.percentile(v, 90)), "p95": float(np.percentile(v, 95)),
            "mean": float(np.mean(v)), "max": float(np.max(v)), "n": int(v.size)}


def evaluate(run_dir: Path, data: Path, split: str = "test", out: Path | None = None,
             baseline_n: int = 0, baseline_kwargs: dict | None = None,
             progress: bool = True) -> dict:
    """Score the run ``run_dir`` on ``split`` of ``data``; with ``baseline_n`` the task's
    classical method runs on that many samples and is compared (``baseline_kwargs`` its
    settings)."""
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    predictor = Predictor(run_dir)
    task = predictor.task
    dataset = ShardDataset(data, task, split, in_memory=True)
    x = np.stack([dataset[i][0].numpy() for i in range(len(dataset))])
    t0 = time.perf_counter()
    pred = predictor.predict_inputs(x)
    seconds = time.perf_counter() - t0

    targets = task.targets
    true_cols = targets.columns_physical(dataset.params)
    inside = pred.covers(targets, dataset.params)
    per_target = {
        name: {"unit": unit,
               "rmse": float(np.sqrt(np.mean((pred.value[:, j] - true_cols[:, j]) ** 2))),
               "coverage": float(inside[:, j].mean())}
        for j, (name, unit) in enumerate(zip(targets.columns, targets.units))
    }
    task_metrics = task.metrics(dataset.params, pred.record)
    guess_metrics = guessing(task, data, dataset)
    metrics = {
        "reference": {"what": task.reference_name,
                      "task_metrics": {k: summarise(v) for k, v in guess_metrics[0].items()},
                      "task_summary": guess_metrics[1]},
        "split": split, "n": len(dataset), "data": str(data),
        "nominal_coverage": predictor.calibrator.level,
        "coverage_mean": float(inside.mean()),
        "targets": per_target,
        "task_metrics": {k: summarise(v) for k, v in task_metrics.items()},
        "task_summary": task.summary_metrics(dataset.params, pred.record),
        "ood_fraction": float(pred.ood_flag.mean()),
        "inference_ms_per_sample": 1e3 * seconds / len(dataset),
    }
    written = [
        plots.predicted_vs_true(true_cols, pred.value, list(targets.columns),
                                list(targets.units), plot_dir / "predicted_vs_true.png",
                                low=pred.low, high=pred.high,
                                coverage=inside.mean(axis=0).tolist(),
                                limits=targets.limits()),
    ]
    written += task.plots(dataset.params, pred.record, plot_dir, task_metrics,
                          reference=guess_metrics[0])
    if baseline_n > 0:
        metrics["baseline"] = run_baseline(task, dataset, pred, baseline_n, plot_dir,
                                           baseline_kwargs or {}, progress,
                                           network_sims=_training_simulations(run_dir))
    metrics["plots"] = [str(p) for p in written]
    write_json_atomic(out / "metrics.json", metrics)
    dataset.close()
    return metrics


def guessing(task, data: Path, dataset: ShardDataset) -> tuple[dict, dict]:
    """The task's per-sample metrics and whole-set figures of its trivial answer
    (``Task.reference_prediction`` from the training split's parameters) on the same
    samples: what the network is worth."""
    train = ShardDataset(data, task, "train")
    guess = task.reference_prediction(train.params, len(dataset))
    train.close()
    return task.metrics(dataset.params, guess), task.summary_metrics(dataset.params, guess)


def _training_simulations(run_dir: Path) -> int | None:
    """Simulations the network cost: its training set (and validation set) size."""
    path = Path(run_dir) / "train_summary.json"
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    return int(summary.get("n_train", 0) + summary.get("n_val", 0))


def run_baseline(task, dataset, pred, n: int, plot_dir: Path, kwargs: dict,
                 progress: bool, network_sims: int | None = None) -> dict:
    """Run the task's classical method on the first ``n`` samples and compare. A method that
    learns from the training split (``learns_from_training``: a direct comparison, an SVM)
    is given that split first (``fit(observables, params)``)."""
    baseline = task.baseline(**kwargs)
    if baseline is None:
        return {"available": False}
    if getattr(baseline, "learns_from_training", False):
        train = ShardDataset(dataset.root, task, "train", in_memory=True)
        baseline.fit([train.observable(i) for i in range(len(train))], train.params)
        train.close()
    idx = np.arange(min(n, len(dataset)))
    observables = [dataset.observable(int(i)) for i in idx]
    truth = {k: v[idx] for k, v in dataset.params.items()}
    return baseline.compare(observables, truth, {k: v[idx] for k, v in pred.record.items()},
                            plot_dir=plot_dir, progress=progress, network_sims=network_sims)


def report(metrics: dict) -> list:
    """The metrics as printed: the task's per-sample metrics, the calibrated intervals per
    target, the task's whole-set figures, the OOD fraction and the inference time."""
    from rich.table import Table

    table = Table(title=f"{metrics['split']} split, n = {metrics['n']}")
    reference = metrics.get("reference", {}).get("task_metrics", {})
    for col in ("metric", "median", "p90", "mean", "reference median"):
        table.add_column(col)
    for name, s in metrics["task_metrics"].items():
        ref = reference.get(name, {}).get("median")
        table.add_row(name, f"{s['median']:.4g}", f"{s['p90']:.4g}", f"{s['mean']:.4g}",
                      "-" if ref is None else f"{ref:.4g}")
    cov = Table(title=f"calibrated {100 * metrics['nominal_coverage']:.0f}% intervals")
    for col in ("target", "unit", "rmse", "coverage"):
        cov.add_column(col)
    for name, s in metrics["targets"].items():
        cov.add_row(name, s["unit"], f"{s['rmse']:.4g}", f"{100 * s['coverage']:.1f}%")
    out = [table, cov]
    if reference:
        out.append(f"reference: {metrics['reference']['what']}, on the same samples")
    guessed = metrics.get("reference", {}).get("task_summary", {})
    for name, summary in metrics.get("task_summary", {}).items():
        figures = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
        out.append(f"{name}: " + "   ".join(f"{k} {v:.4g}" for k, v in figures.items()))
        ref = {k: v for k, v in guessed.get(name, {}).items() if isinstance(v, (int, float))}
        if ref:
            out.append(f"{name}, reference: " + "   ".join(f"{k} {v:.4g}"
                                                         for k, v in ref.items()))
    base = metrics.get("baseline") or {}
    figures = {k: v for k, v in base.items() if isinstance(v, float)
               and k.startswith(("baseline_", "network_", "final_"))}
    if figures:
        n = base.get("n_maps", base.get("n_images", base.get("n_patterns", "?")))
        out.append(f"classical method ({base.get('method', '?')}), the same {n} test samples: "
                   + "   ".join(f"{k} {v:.4g}" for k, v in figures.items()))
    out.append(f"OOD-flagged: {100 * metrics['ood_fraction']:.1f}%   "
               f"inference: {metrics['inference_ms_per_sample']:.2f} ms/sample")
    return out


def demo_table(task, rows: list[dict], truth: list[dict]):
    """One row per predicted file: the task's headline columns (default: the last target),
    the OOD flag and the truth the file was written from (files cycle through ``truth``)."""
    from rich.table import Table

    headline = list(task.headline_columns or task.targets.columns[-1:])
    keys = ["input"] + headline + ["ood"]
    table = Table(title="predictions on files (truth from the simulation)")
    for k in keys + ["truth"]:
        table.add_column(k)
    for j, row in enumerate(rows):
        t = truth[j % len(truth)]
        table.add_row(*[f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k])
                        for k in keys], ", ".join(f"{k}={v}" for k, v in t.items()))
    return table
