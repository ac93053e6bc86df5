"""Prediction on experimental files: read, preprocess, infer in batches, write a CSV.

A file that cannot be read or preprocessed is reported by name with the reason and skipped;
every other file is still processed. The CSV is written to a temporary name and moved into
place, so a failed run never leaves a half-written result.
"""

from __future__ import annotations

import csv
import json
import os
import tomllib
from pathlib import Path

import numpy as np


def load_settings(path: Path | None) -> dict | None:
    """Per-lab preprocessing settings from a TOML or JSON file."""
    if path is None:
        return None
    path = Path(path)
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(path.read_text())
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read preprocessing settings ({exc})") from exc


def predict_files(run: Path, files: list[Path], settings: Path | None = None,
                  out: Path | None = None, batch_size: int = 128):
    """Predict every frame of every file. Returns (rows, failures[(label, reason)])."""
    from retroscope.infer.predictor import Predictor

    predictor = Predictor(run)
    task = predictor.task
    cfg = load_settings(settings)
    if cfg is not None:
        cfg = task.check_settings(cfg, source=str(settings))
    items, failures = task.read_experimental(files, cfg)
    labels, paths, inputs = [], [], []
    for label, source, obs, _ in items:
        try:
            inputs.append(predictor.inputs([obs])[0])
            labels.append(label)
            paths.append(source)
        except ValueError as exc:
            failures.append((label, str(exc)))
    rows = []
    if inputs:
        pred = predictor.predict_inputs(np.stack(inputs), batch_size=batch_size)
        for i, label in enumerate(labels):
            row = {"input": label, "file": paths[i]}
            for j, (col, unit) in enumerate(zip(pred.columns, pred.units)):
                row[f"{col}"] = float(pred.value[i, j])
                row[f"{col}_low"] = float(pred.low[i, j])
                row[f"{col}_high"] = float(pred.high[i, j])
            row.update(task.describe_prediction({k: v[i] for k, v in pred.record.items()}))
            row["ood_score"] = float(pred.ood_score[i])
            row["ood"] = bool(pred.ood_flag[i])
            rows.append(row)
    if out is not None:
        write_csv(Path(out), rows, failures)
    return rows, failures


def predict_detection_files(run: Path, files: list[Path], settings: Path | None = None,
                            out: Path | None = None, batch_size: int = 8,
                            refine: bool | None = None):
    """Objects in every experimental input of a detection run: one row per object (class,
    score, calibrated confidence, which row it repeats, box, parameters with intervals,
    shape flag, whether the task's fit refined it; n_objects counts the objects that repeat
    none) or one row with n_objects = 0 for an input where nothing was found. ``refine``:
    see :class:`~retroscope.infer.detection.DetectionPredictor`. Returns (rows, failures)."""
    from retroscope.infer.detection import DetectionPredictor

    predictor = DetectionPredictor(run, refine=refine)
    task = predictor.task
    cfg = load_settings(settings)
    if cfg is not None:
        cfg = task.check_settings(cfg, source=str(settings))
    items, failures = task.read_experimental(files, cfg)
    rows = []
    xs, kept = [], []
    for label, source, observable, context in items:
        try:
            xs.append(predictor.inputs([observable])[0])
            kept.append((label, source, context))
        except ValueError as exc:
            failures.append((label, str(exc)))
    objects = predictor.predict_inputs(xs, batch_size=batch_size) if xs else []
    for (label, source, context), objs in zip(kept, objects):
        if not objs:
            rows.append({"input": label, "file": source, "n_objects": 0})
        distinct = sum(obj.get("duplicate_of", -1) < 0 for obj in objs)
        for k, obj in enumerate(objs):
            row = {"input": label, "file": source, "n_objects": distinct, "object": k}
            framed = task.to_frame(obj, context)
            first = [key for key in ("class", "score", "confidence", "duplicate_of")
                     if key in framed]
            for key, value in {**{key: framed[key] for key in first}, **framed}.items():
                if key == "box":
                    row.update({f"box_{c}": float(v) for c, v in zip("x1 y1 x2 y2".split(),
                                                                       value)})
                else:
                    row[key] = float(value) if isinstance(value, (float, np.floating)) else value
            rows.append(row)
    if out is not None:
        fields = []
        for row in rows:
            fields += [k for k in row if k not in fields]
        write_csv(Path(out), [{k: row.get(k, "") for k in fields} for row in rows], failures)
    return rows, failures


def group_key(path: str, group: str) -> str:
    """The sequence a prediction belongs to: ``folder`` (the file's parent folder), ``file``
    (all frames of one file), or ``regex:PATTERN`` (the first capture group, else the whole
    match, of PATTERN searched in the file name)."""
    import re

    path = Path(path.split("::")[0])
    if group == "folder":
        return str(path.parent)
    if group == "file":
        return str(path)
    if group.startswith("regex:"):
        m = re.search(group[len("regex:"):], path.name)
        if m is None:
            return path.name
        return m.group(1) if m.groups() else m.group(0)
    raise ValueError(f"group must be 'folder', 'file' or 'regex:PATTERN', got {group!r}")


def combine_groups(rows: list[dict], columns: list[str], group: str) -> list[dict]:
    """Per sequence of images of one object (e.g. one crystal imaged every 2 s): the number of
    images, and per column the mean, the scatter (standard deviation), the standard error of
    the mean, and a combined interval = mean +- the mean per-image half-width. The per-image
    half-width is *not* divided by sqrt(n): errors of images of the same object are
    correlated (same structure, same systematic mismatch), so averaging does not remove them
    (Allsopp et al. 2025, Sec. III C: ten images took the error from ~10% to ~6%, not 3%)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(group_key(row.get("file", row["input"]), group), []).append(row)
    out = []
    for key, members in groups.items():
        entry: dict = {"group": key, "n_images": len(members)}
        for col in columns:
            v = np.array([m[col] for m in members], dtype=np.float64)
            half = np.mean([(m[f"{col}_high"] - m[f"{col}_low"]) / 2 for m in members])
            sd = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
            entry[col] = float(v.mean())
            entry[f"{col}_std"] = sd
            entry[f"{col}_sem"] = sd / np.sqrt(len(v)) if len(v) > 1 else float("nan")
            entry[f"{col}_low"] = float(v.mean() - half)
            entry[f"{col}_high"] = float(v.mean() + half)
        entry["ood_images"] = int(sum(bool(m.get("ood")) for m in members))
        out.append(entry)
    return out


def write_csv(path: Path, rows: list[dict], failures: list[tuple[str, str]]) -> None:
    fields = list(rows[0]) if rows else ["input"]
    fields = fields + (["error"] if failures or not rows or "error" not in fields else [])
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "error": ""})
        for label, reason in failures:
            writer.writerow({"input": label, "error": reason})
    os.replace(tmp, path)
