"""Scoring a classifier run on a split of a dataset, with its confusion-matrix plot.

Writes ``metrics.json`` (and ``plots/confusion_matrix.png``) into the run directory or
``out``: the accuracy, overall and per true class, beside the reference answer (the most
frequent class of the training split); the confusion matrix (rows: true class, columns:
predicted class); the measured coverage and mean size of the conformal sets; the expected
calibration error of the most probable class's probability with and without the temperature;
the fraction flagged as out of distribution and the inference time.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from retroscope import plots
from retroscope.data.dataset import ShardDataset
from retroscope.io.atomic import write_json_atomic
from retroscope.learners.classification.calibration import probabilities
from retroscope.learners.classification.predictor import Predictor


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the most probable class (Guo et al. 2017, Eq. 3): over ``n_bins`` equal bins of
    its probability, the mean |accuracy - probability|, weighted by the bins' sizes."""
    confidence = probs.max(axis=1)
    correct = np.argmax(probs, axis=1) == labels
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    return float(sum(abs(correct[bins == b].mean() - confidence[bins == b].mean())
                     * np.mean(bins == b) for b in np.unique(bins)))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: row = true class, column = predicted class."""
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def evaluate(run_dir: Path, data: Path, split: str = "test", out: Path | None = None) -> dict:
    """Score the run ``run_dir`` on ``split`` of ``data`` (module docstring)."""
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir
    predictor = Predictor(run_dir)
    task, targets = predictor.task, predictor.targets
    dataset = ShardDataset(data, task, split, in_memory=True)
    x = np.stack([dataset[i][0].numpy() for i in range(len(dataset))])
    t0 = time.perf_counter()
    pred = predictor.predict_inputs(x)
    seconds = time.perf_counter() - t0

    labels = dataset.targets.numpy()
    k = targets.n_classes
    matrix = confusion_matrix(labels, pred.index, k)
    per_class = matrix.sum(axis=1)
    train = ShardDataset(data, task, "train")
    common = int(np.bincount(train.targets.numpy(), minlength=k).argmax())
    train.close()
    inside = pred.sets[np.arange(len(labels)), labels]
    metrics = {
        "split": split, "n": len(dataset), "data": str(data),
        "column": targets.column, "unit": targets.units[0], "edges": targets.edges.tolist(),
        "classes": list(targets.labels),
        "accuracy": float(np.mean(pred.index == labels)),
        "per_class_n": per_class.tolist(),
        "per_class_accuracy": [float(matrix[j, j] / per_class[j]) if per_class[j] else None
                               for j in range(k)],
        "confusion_matrix": matrix.tolist(),
        "reference": {"what": "the most frequent class of the training split",
                      "class": targets.labels[common],
                      "accuracy": float(np.mean(labels == common))},
        "nominal_coverage": predictor.conformal.level,
        "set_coverage": float(inside.mean()),
        "mean_set_size": float(pred.sets.sum(axis=1).mean()),
        "temperature": predictor.temperature,
        "expected_calibration_error": expected_calibration_error(pred.probs, labels),
        "expected_calibration_error_uncalibrated":
            expected_calibration_error(probabilities(pred.logits, 1.0), labels),
        "ood_fraction": float(pred.ood_flag.mean()),
        "inference_ms_per_sample": 1e3 * seconds / len(dataset),
    }
    metrics["plots"] = [str(confusion_plot(matrix, targets.edges, targets.column,
                                           targets.units[0], out / "plots" /
                                           "confusion_matrix.png",
                                           title=f"{split} split, n = {len(dataset)}"))]
    write_json_atomic(out / "metrics.json", metrics)
    dataset.close()
    return metrics


def confusion_plot(matrix: np.ndarray, edges: np.ndarray, name: str, unit: str,
                   path: Path, title: str = "") -> Path:
    """The confusion matrix of classes that are bins (``edges``) of the parameter ``name``:
    colour = fraction of each true class predicted as each class, with the counts written
    in the cells."""
    matrix = np.asarray(matrix)
    k = len(matrix)
    fraction = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, (ax,) = plots.figure(panel_size_in=(4.6, 4.0))
    shown = ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if fraction[i, j] > 0.5 else "black")
    ticks = [f"{lo:g}–{hi:g}" for lo, hi in zip(edges[:-1], edges[1:])]
    ax.set_xticks(range(k), ticks, rotation=45, ha="right", rotation_mode="anchor",
                  fontsize=7)
    ax.set_yticks(range(k), ticks, fontsize=7)
    unit = plots.unit_label(unit)
    ax.set_xlabel(f"predicted class of {name} ({unit})")
    ax.set_ylabel(f"true class of {name} ({unit})")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(shown, ax=ax, shrink=0.8).set_label("fraction of the true class", fontsize=8)
    return plots.save(fig, path)


def report(metrics: dict) -> list:
    """The metrics as printed: accuracy per class, the confusion matrix, the overall accuracy
    beside the reference, the conformal sets, the calibration, the OOD fraction and the
    inference time."""
    from rich.table import Table

    classes = metrics["classes"]
    table = Table(title=f"{metrics['split']} split, n = {metrics['n']}")
    for col in ("class", "n", "accuracy"):
        table.add_column(col)
    for label, n, acc in zip(classes, metrics["per_class_n"], metrics["per_class_accuracy"]):
        table.add_row(label, str(n), "-" if acc is None else f"{100 * acc:.1f}%")
    confusion = Table(title="confusion matrix (rows: true class, columns: predicted class)")
    confusion.add_column("true class")
    for j in range(len(classes)):
        confusion.add_column(str(j))
    for j, (label, row) in enumerate(zip(classes, metrics["confusion_matrix"])):
        confusion.add_row(f"{j}: {label}", *map(str, row))
    ref = metrics["reference"]
    return [
        table, confusion,
        f"accuracy {100 * metrics['accuracy']:.1f}%   reference ({ref['what']}, "
        f"{ref['class']}): {100 * ref['accuracy']:.1f}%",
        f"conformal sets at {100 * metrics['nominal_coverage']:.0f}%: coverage "
        f"{100 * metrics['set_coverage']:.1f}%, mean size {metrics['mean_set_size']:.2f} "
        f"classes",
        f"temperature {metrics['temperature']:.3g}: expected calibration error "
        f"{metrics['expected_calibration_error']:.3f} (uncalibrated "
        f"{metrics['expected_calibration_error_uncalibrated']:.3f})",
        f"OOD-flagged: {100 * metrics['ood_fraction']:.1f}%   "
        f"inference: {metrics['inference_ms_per_sample']:.2f} ms/sample",
    ]


def demo_table(task, rows: list[dict], truth: list[dict]):
    """One row per predicted file: the class, its probability, the conformal set, the OOD
    flag and the truth the file was written from (files cycle through ``truth``)."""
    from rich.table import Table

    keys = ["input", "class_label", "probability", "set", "ood"]
    table = Table(title="predictions on files (truth from the simulation)")
    for key in keys + ["truth"]:
        table.add_column(key)
    for j, row in enumerate(rows):
        t = truth[j % len(truth)]
        table.add_row(*[f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k])
                        for k in keys], ", ".join(f"{k}={v}" for k, v in t.items()))
    return table
