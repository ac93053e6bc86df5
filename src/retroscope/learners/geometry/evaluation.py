"""Scoring a ``geometry`` run on a split: per-coordinate errors in the momentum frame (for
detected and undetected tokens apart), the aligned RMSD per event, interval coverage per
axis, the task's own per-event metrics (e.g. bond lengths), the OOD share and the sampling
time; plots of predicted against true coordinates and of the errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retroscope import plots
from retroscope.data.dataset import ShardDataset
from retroscope.io.atomic import write_json_atomic
from retroscope.learners.geometry.calibration import split_arrays
from retroscope.learners.geometry.predictor import (AXES, Predictor, matched_truth,
                                                    positions_in_frame, real_tokens)
from retroscope.learners.regression.evaluation import summarise


def kabsch(mobile: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The proper rotation R (3, 3) and translation t minimising sum |R x + t - y|^2 over
    the rows x of ``mobile`` and y of ``target`` (N, 3) (Kabsch 1976; a reflection is not
    allowed)."""
    a, b = np.asarray(mobile, float), np.asarray(target, float)
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    u, _, vt = np.linalg.svd((a - ca).T @ (b - cb))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, cb - rot @ ca


def aligned_rmsd(pred: np.ndarray, true: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Per event, the RMSD of the real tokens after the best proper rotation and
    translation (:func:`kabsch`)."""
    out = np.empty(len(pred))
    for i in range(len(pred)):
        a, b = pred[i, real[i]], true[i, real[i]]
        rot, shift = kabsch(a, b)
        out[i] = np.sqrt(((a @ rot.T + shift - b) ** 2).sum(1).mean())
    return out


def evaluate(run_dir: Path, data: Path, split: str = "test", out: Path | None = None,
             limit: int | None = None, baseline_n: int = 0, baseline_kwargs: dict | None = None,
             progress: bool = True) -> dict:
    """Score ``run_dir`` on ``split`` of ``data`` (its first ``limit`` events); with
    ``baseline_n`` the task's classical method (``task.baseline``: an object whose
    ``compare(tokens, params, true positions, network positions in the frame, rotations)``
    scores both) runs on that many events."""
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    from retroscope.data.shards import Manifest

    predictor = Predictor(run_dir)
    task = predictor.task
    # a held-out campaign may have other settings (other molecules): read it with its own
    data_task = task.with_config(**Manifest.load(Path(data)).config)
    dataset = ShardDataset(data, data_task, split, in_memory=True)
    tokens, truth = split_arrays(dataset, limit)
    pred = predictor.predict(tokens)
    real = real_tokens(tokens)
    detected = real & (tokens[..., 1] > 0)
    true_frame = matched_truth(pred["mean"], positions_in_frame(pred["rotation"], truth), tokens)
    err = np.abs(pred["mean"] - true_frame)                             # (n, N, 3)
    inside = (true_frame >= pred["low"]) & (true_frame <= pred["high"])
    unit = task.position_unit
    per_axis = {axis: {"unit": unit, "mae": float(err[..., a][real].mean()),
                       "coverage": float(inside[..., a][real].mean())}
                for a, axis in enumerate(AXES)}
    rmsd = aligned_rmsd(pred["mean"], true_frame, real)
    true_rec = {"tokens": tokens, "position": true_frame}
    pred_rec = {"tokens": tokens, "position": pred["mean"]}
    task_metrics = task.metrics(true_rec, pred_rec)
    metrics = {
        "split": split, "n": len(tokens), "data": str(data), "unit": unit,
        "samples_per_event": predictor.samples_per_event,
        "nominal_coverage": predictor.calibrator.level,
        "coordinate_mae": float(err[real].mean()),
        "coordinate_mae_detected": float(err[detected].mean()) if detected.any() else None,
        "coordinate_mae_undetected": (float(err[real & ~detected].mean())
                                      if (real & ~detected).any() else None),
        "centroid_guess_mae": float(np.abs(true_frame[real]).mean()),
        "aligned_rmsd": summarise(rmsd),
        "axes": per_axis, "coverage_mean": float(inside[real].mean()),
        "task_metrics": {k: summarise(v) for k, v in task_metrics.items() if len(v)},
        "task_summary": task.summary_metrics(true_rec, pred_rec),
        "ood_fraction": float(pred["ood"].mean()),
        # the two reasons apart: a composition no training event had, a far feature vector
        "ood_novel_composition_fraction": float(pred["novel_composition"].mean()),
        "ood_feature_distance_fraction": float(
            (pred["ood_score"] > predictor.density.threshold).mean()),
        "inference_ms_per_sample": pred["ms_per_event"],
    }
    names = [f"{axis} ({'momentum frame'})" for axis in AXES]
    written = [plots.predicted_vs_true(true_frame[real], pred["mean"][real], names,
                                       [unit] * 3, plot_dir / "predicted_vs_true.png",
                                       low=pred["low"][real], high=pred["high"][real]),
               plots.error_histograms({axis: err[..., a][real] + 1e-9
                                       for a, axis in enumerate(AXES)}, plot_dir / "errors.png",
                                      "absolute error of a coordinate (momentum frame)",
                                      unit=unit,
                                      reference={"guessing the centroid": float(
                                          np.median(np.abs(true_frame[real])))})]
    written += task.plots(true_rec, pred_rec, plot_dir, task_metrics)
    baseline = data_task.baseline(**(baseline_kwargs or {})) if baseline_n else None
    if baseline is not None:
        n = min(baseline_n, len(tokens))
        metrics["baseline"] = baseline.compare(
            tokens[:n], {k: v[:n] for k, v in dataset.params.items()}, truth[:n],
            pred["mean"][:n], pred["rotation"][:n], progress=progress)
    metrics["plots"] = [str(p) for p in written]
    write_json_atomic(out / "metrics.json", metrics)
    dataset.close()
    return metrics


def report(metrics: dict) -> list:
    """The metrics as printed."""
    from rich.table import Table

    unit = metrics["unit"]
    table = Table(title=f"{metrics['split']} split, n = {metrics['n']} "
                        f"({metrics['samples_per_event']} samples per input)")
    for col in ("axis", f"MAE ({unit})", f"{100 * metrics['nominal_coverage']:.0f}% coverage"):
        table.add_column(col)
    for axis, s in metrics["axes"].items():
        table.add_row(axis, f"{s['mae']:.4g}", f"{100 * s['coverage']:.1f}%")
    out = [table, f"per-coordinate MAE {metrics['coordinate_mae']:.4g} {unit} "
                  f"(guessing the centroid: {metrics['centroid_guess_mae']:.4g}); aligned "
                  f"RMSD median {metrics['aligned_rmsd']['median']:.4g} {unit}"]
    for key in ("coordinate_mae_detected", "coordinate_mae_undetected"):
        if metrics.get(key) is not None:
            out.append(f"{key.replace('_', ' ')}: {metrics[key]:.4g} {unit}")
    if metrics["task_metrics"]:
        tm = Table(title="the task's metrics")
        for col in ("metric", "median", "p90", "mean"):
            tm.add_column(col)
        for name, s in metrics["task_metrics"].items():
            tm.add_row(name, f"{s['median']:.4g}", f"{s['p90']:.4g}", f"{s['mean']:.4g}")
        out.append(tm)
    for name, value in metrics.get("task_summary", {}).items():
        out.append(f"{name}: {value:.4g}" if isinstance(value, float) else f"{name}: {value}")
    base = metrics.get("baseline") or {}
    figures = {k: v for k, v in base.items() if isinstance(v, float)}
    if figures:
        out.append(f"classical method ({base['method']}), the same {base['n_events']} "
                   "inputs: " + "   ".join(f"{k} {v:.4g}" for k, v in figures.items()))
    reasons = ""
    if "ood_novel_composition_fraction" in metrics:
        reasons = (f" (novel composition {100 * metrics['ood_novel_composition_fraction']:.1f}%,"
                   f" far features {100 * metrics['ood_feature_distance_fraction']:.1f}%)")
    out.append(f"OOD-flagged: {100 * metrics['ood_fraction']:.1f}%{reasons}   "
               f"inference: {metrics['inference_ms_per_sample']:.2f} ms/input")
    return out


def demo_table(task, rows: list[dict], truth: list[dict]):
    """The predicted tokens of the demo's files next to the truth they were written from."""
    from rich.table import Table

    unit = task.position_unit
    table = Table(title="predictions on files (truth from the simulation, momentum frame)")
    for col in ("input", "name", "detected", *(f"{a} ({unit})" for a in AXES), "truth", "ood"):
        table.add_column(col)
    for row in rows:
        t = next((t for t in truth if t.get("input") == row["input"]), {})
        true = t.get("positions", {}).get(row["token"])
        table.add_row(Path(row["input"]).name, row["name"], str(row["detected"]),
                      *(f"{row[f'{a}_{unit}']:.2f}" for a in AXES),
                      "-" if true is None else ", ".join(f"{v:.2f}" for v in true),
                      str(row["ood"]))
    return table
