"""Scoring a detection run: COCO box and mask mAP (0.50:0.95, AP50, AP75, per class) on a
split, the inference time per frame, the coverage of the calibrated per-object intervals, and
the task's own comparison of the matched objects (``DetectionTask.evaluate_objects``, e.g.
fitted parameters against a conventional method). Writes ``metrics.json`` and plots (example
detections, the task's) into the run directory or ``out``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from retroscope.data.dataset import ShardDataset
from retroscope.io.atomic import write_json_atomic
from retroscope.learners.detection.calibration import match
from retroscope.learners.detection.coco import detection_map
from retroscope.learners.detection.module import run_detector
from retroscope.learners.detection.predictor import DetectionPredictor


def _as_torch(dets, targets, mask_threshold: float = 0.5):
    import torch

    preds = [{"boxes": torch.as_tensor(d["boxes"]), "scores": torch.as_tensor(d["scores"]),
              "labels": torch.as_tensor(d["labels"]),
              "masks": torch.as_tensor(d["masks"] >= mask_threshold)} for d in dets]
    truth = [{"boxes": t["boxes"], "labels": t["labels"], "masks": t["masks"].bool()}
             for t in targets]
    return preds, truth


def interval_coverage(task, objects, truths, matches) -> dict:
    """Fraction of matched objects whose true parameter lies inside the stated interval."""
    inside: dict[str, list[bool]] = {}
    for objs, truth, pairs in zip(objects, truths, matches):
        for p, q, _ in pairs:
            obj, true = objs[p], truth[q]
            for name in task.interval_scales(obj):
                if f"{name}_low" not in obj or name not in true:
                    continue
                err = task.parameter_error(name, true[name], obj[name])
                half = obj[f"{name}_high"] - obj[name]
                if not (np.isfinite(err) and np.isfinite(half)):
                    continue  # undefined for this pair (a ring's width) or uncalibrated
                inside.setdefault(name, []).append(abs(err) <= half)
    return {name: float(np.mean(v)) for name, v in inside.items()}


def example_plot(images, objects, truths, path: Path, n: int = 8,
                 image_label: str = "network input") -> Path:
    """The first ``n`` frames on one colour scale (a colour bar labelled ``image_label``),
    with the true masks (white) and the detected ones (cyan), each detection numbered and
    listed with its class and score in the panel's corner (repeats of another detection,
    ``duplicate_of``, dashed and unlisted), and a key to the outlines."""
    from matplotlib.lines import Line2D

    from retroscope.plots import figure, save

    n = min(n, len(images))
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = figure(rows, cols, (3.0, 3.0))
    frames = [np.asarray(image)[0] for image in images[:n]]
    vmin = float(min(np.percentile(f, 1) for f in frames))
    vmax = float(max(np.percentile(f, 99.9) for f in frames))
    shown = None
    for ax, frame, objs, truth in zip(axes, frames, objects, truths):
        shown = ax.imshow(frame, cmap="magma", vmin=vmin, vmax=vmax)
        for t in truth:
            ax.contour(t["mask"], [0.5], colors="w", linewidths=0.6)
        lines = []
        for k, o in enumerate(objs):
            repeat = o.get("duplicate_of", -1) >= 0
            ax.contour(o["mask"], [0.5], colors="c", linewidths=0.8,
                       linestyles="--" if repeat else "-")
            if repeat:
                continue
            x1, y1 = o["box"][0], o["box"][1]
            ax.text(x1, y1 - 1, str(k + 1), color="c", fontsize=7, fontweight="bold")
            lines.append(f"{k + 1} {o['class']} {o['score']:.2f}")
        if lines:
            ax.text(0.98, 0.02, "\n".join(lines), color="c", fontsize=6, ha="right",
                    va="bottom", transform=ax.transAxes,
                    bbox={"facecolor": "k", "alpha": 0.5, "lw": 0})
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[n:]:
        ax.set_axis_off()
    fig.colorbar(shown, ax=list(axes[:n]), shrink=0.6).set_label(image_label)
    fig.legend(handles=[Line2D([], [], color="w", lw=1.0), Line2D([], [], color="c", lw=1.0),
                        Line2D([], [], color="c", lw=1.0, ls="--")],
               labels=["true mask", "detected mask (number: class, score)",
                       "detection repeating another"],
               loc="outside lower center", ncols=3, fontsize=8, facecolor="0.3",
               labelcolor="w")
    return save(fig, path)


def match_all(objects, truths, shape) -> list:
    """Per frame, the one-to-one matching of described objects to true ones (mask IoU)."""
    out = []
    for objs, truth in zip(objects, truths):
        pm = np.stack([o["mask"] for o in objs]) if objs else np.zeros((0,) + shape)
        tm = np.stack([t["mask"] for t in truth]) if truth else np.zeros((0,) + shape)
        out.append(match(pm, tm))
    return out


def evaluate_detection(run_dir: Path, data: Path, split: str = "test",
                       out: Path | None = None, batch_size: int = 8,
                       refine: bool | None = None) -> dict:
    """COCO mAP of the network's detections and, for a task that refines them (a physics fit
    seeded by the network), of the refined ones; per-object recall, interval coverage and the
    task's comparison for the predictor's mode (``refine``: None = refined where calibrated)."""
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    predictor = DetectionPredictor(run_dir, refine=refine)
    task = predictor.task
    dataset = ShardDataset(data, task, split, in_memory=True)
    images = [dataset[i][0].numpy() for i in range(len(dataset))]
    targets = [dataset[i][1] for i in range(len(dataset))]
    t0 = time.perf_counter()
    dets = run_detector(predictor.model, images, batch_size, predictor.device)
    seconds = time.perf_counter() - t0
    coco = detection_map(*_as_torch(dets, targets), task.classes)
    labels = [dataset.labels_row(i) for i in range(len(dataset))]
    truths = [task.true_objects(lab, img) for lab, img in zip(labels, images)]
    shape = images[0].shape[1:]
    extra = {}
    if task.refines:
        t0 = time.perf_counter()
        refined = [task.refine(x, d, predictor.score_threshold) for x, d in zip(images, dets)]
        extra["refine_ms_per_frame"] = 1e3 * (time.perf_counter() - t0) / len(dataset)
        extra["coco_refined"] = detection_map(*_as_torch(refined, targets), task.classes)
    mask_objects = predictor.describe(images, dets, refine=False)
    mask_matches = match_all(mask_objects, truths, shape)
    if predictor.refine:
        objects = predictor.describe(images, refined, already_refined=True)
        matches = match_all(objects, truths, shape)
    else:
        objects, matches = mask_objects, mask_matches
    n_true = sum(len(t) for t in truths)
    n_found = sum(len(o) for o in objects)
    n_matched = sum(len(m) for m in matches)
    metrics = {
        "split": split, "n": len(dataset), "data": str(data), "coco": coco,
        "score_threshold": predictor.score_threshold, "refined": predictor.refine,
        "objects": {"true": n_true, "detected": n_found, "matched_iou50": n_matched,
                    "recall": n_matched / n_true if n_true else None,
                    "precision": n_matched / n_found if n_found else None},
        "interval_coverage": interval_coverage(task, objects, truths, matches),
        "nominal_coverage": predictor.calibration["coverage"],
        "inference_ms_per_frame": 1e3 * seconds / len(dataset), **extra,
    }
    if predictor.refine:  # the masks' own intervals, for comparison
        metrics["interval_coverage_masks"] = interval_coverage(task, mask_objects, truths,
                                                               mask_matches)
    metrics["task"] = task.evaluate_objects(
        images, labels, mask_objects, mask_matches, plot_dir,
        refined=(objects, matches) if predictor.refine else None)
    metrics["plots"] = [str(example_plot(images, objects, truths, plot_dir / "detections.png",
                                         image_label=task.input_label))]
    write_json_atomic(out / "metrics.json", metrics)
    dataset.close()
    return metrics


def report(metrics: dict) -> list:
    """The metrics as printed: COCO mAP per class of the network's (and the refined)
    detections, the refinement's cost, objects found, inference time, interval coverage."""
    from rich.table import Table

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
    out = [table]
    if "refine_ms_per_frame" in metrics:
        out.append(f"refinement (the task's fit): {metrics['refine_ms_per_frame']:.1f} ms/frame;"
                   f" objects below from {'refined' if metrics['refined'] else 'network'} "
                   "detections")
    objects = metrics["objects"]
    out.append(f"objects: {objects['matched_iou50']}/{objects['true']} found (IoU >= 0.5), "
               f"{objects['detected']} reported   inference: "
               f"{metrics['inference_ms_per_frame']:.1f} ms/frame")
    coverage = metrics.get("interval_coverage", {})
    if coverage:
        out.append("interval coverage: " + "   ".join(f"{k} {100 * v:.0f}%"
                                                     for k, v in coverage.items()))
    return out


def demo_table(task, rows: list[dict], truth: list[dict]):
    """One row per object found in each written shot, narrow enough for 80 columns: the
    class with its score, the calibrated confidence, the task's headline columns in one
    cell, what the object is flagged for (repeating another row, unlike the training
    shapes), and the shot's true objects on its first row."""
    from rich.table import Table

    by_input = {str(t.get("input")): t.get("objects", "") for t in truth}
    headline = list(task.headline_columns)
    table = Table(title="objects found in the written shots (truth from the simulation)")
    for k in ("shot", "found (score)", "confidence", ", ".join(headline) or "-", "flags",
              "truth"):
        table.add_column(k)
    for row in rows:
        name = Path(str(row["input"])).name
        if not row.get("n_objects"):
            table.add_row(name, "nothing", "", "", "", by_input.get(name, ""))
            continue
        repeats = row.get("duplicate_of", -1)
        flags = [f"repeats {repeats}" if repeats >= 0 else "",
                 "unlike training" if row.get("unlike_training") else ""]
        table.add_row(name, f"{row['class']} ({row['score']:.2f})",
                      f"{row.get('confidence', float('nan')):.2f}",
                      ", ".join(f"{row.get(k, float('nan')):.3g}" for k in headline),
                      "; ".join(f for f in flags if f),
                      by_input.get(name, "") if row.get("object", 0) == 0 else "")
    return table