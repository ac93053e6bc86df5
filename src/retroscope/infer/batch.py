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
    from retroscope.infer.readers import ReadError, read_images

    predictor = Predictor(run)
    task = predictor.task
    cfg = load_settings(settings)
    labels, inputs, failures = [], [], []
    for path in files:
        try:
            frames = read_images(path)
        except ReadError as exc:
            failures.append((str(path), str(exc)))
            continue
        for label, image in frames:
            try:
                obs = task.preprocess(image, cfg)
                inputs.append(predictor.inputs([obs])[0])
                labels.append(label)
            except ValueError as exc:
                failures.append((label, str(exc)))
    rows = []
    if inputs:
        pred = predictor.predict_inputs(np.stack(inputs), batch_size=batch_size)
        for i, label in enumerate(labels):
            row = {"input": label}
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


def write_csv(path: Path, rows: list[dict], failures: list[tuple[str, str]]) -> None:
    fields = list(rows[0]) if rows else ["input"]
    fields = fields + ["error"]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "error": ""})
        for label, reason in failures:
            writer.writerow({"input": label, "error": reason})
    os.replace(tmp, path)
