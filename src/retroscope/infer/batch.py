"""Prediction on experimental files: read, preprocess, infer in batches, write a CSV.

The task reads and preprocesses the files (``Task.read_experimental``); the run's learner
answers (``Learner.predict_rows``). A file that cannot be read or preprocessed is reported by
name with the reason and skipped; every other file is still processed. The CSV is written to a
temporary name and moved into place, so a failed run never leaves a half-written result.
Images of one object (a sequence) can be combined (:func:`combine_groups`).
"""

from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path

import numpy as np

from retroscope.io.atomic import atomic_write, write_json_atomic
from retroscope.runs import run_learner


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
                  out: Path | None = None, fmt: str = "csv", **options):
    """Answers for every experimental input in ``files``, from the run's learner: one row per
    input (a regression) or per object found (a detector), written to the CSV ``out`` when
    given (``fmt`` "csv" or "json"). ``settings``: the task's preprocessing settings
    (TOML/JSON); ``options``: the learner's own (e.g. ``refine``). Returns (rows, failures
    [(label, reason)])."""
    learner = run_learner(run)
    predictor = learner.predictor(run, **options)
    task = predictor.task
    cfg = load_settings(settings)
    if cfg is not None:  # refused here, once, rather than once per file
        task.check_settings(dict(cfg), source=str(settings))
    items, failures = task.read_experimental(files, cfg)
    rows, refused = learner.predict_rows(predictor, items)
    failures = failures + refused
    if out is not None:
        write_rows(Path(out), rows, failures, fmt)
        learner.write_extras(predictor, rows, Path(out))
    return rows, failures


FORMATS = ("csv", "json")


def write_rows(path: Path, rows: list[dict], failures: list[tuple[str, str]],
               fmt: str = "csv") -> None:
    """The rows and failures as CSV (:func:`write_csv`) or as JSON (``{"rows": [...],
    "failures": [{"input", "error"}]}``), written atomically."""
    if fmt == "csv":
        return write_csv(path, rows, failures)
    if fmt != "json":
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    write_json_atomic(path, {"rows": rows, "failures": [{"input": label, "error": reason}
                                                        for label, reason in failures]})


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
    """Per sequence of images of one object (e.g. one ion string imaged every 2 s): the number
    of images, and per column the mean, the scatter (standard deviation), the standard error of
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
    """Rows (columns in order of first appearance) and one row per failure with its reason in
    ``error``, written atomically."""
    fields = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    fields = fields or ["input"]
    if "error" not in fields:
        fields.append("error")

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, restval="")
            writer.writeheader()
            for row in rows:
                writer.writerow(row)
            for label, reason in failures:
                writer.writerow({"input": label, "error": reason})

    atomic_write(path, write)
