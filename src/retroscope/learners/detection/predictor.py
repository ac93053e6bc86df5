"""A trained detection run, ready to find objects: per input a list of objects with a class, a
score, a calibrated confidence, a box, a mask and physical parameters with intervals (calibrated
as :mod:`.calibration` describes), refined by the task's physics fit where it has one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from retroscope.learners.detection.calibration import (
    ALL,
    confidence,
    keep_scored,
    mark_duplicates,
)
from retroscope.learners.detection.module import run_detector
from retroscope.models import build_model
from retroscope.runs import default_device, open_run


class DetectionPredictor:
    """A trained detection run: ``DetectionPredictor(run).predict(images)`` gives, per image, a
    list of objects (class, score, box, mask, parameters with intervals, shape flag).
    ``refine``: True to redraw the detections with the task's fit, False for the network's
    own, None (default) for refined where the task refines and the run is calibrated for it."""

    def __init__(self, run_dir: Path, device: str | None = None,
                 refine: bool | None = None) -> None:
        self.run = open_run(run_dir)
        self.run_dir, self.meta, self.task = self.run.path, self.run.meta, self.run.task
        self.device = device or default_device()
        self.model = build_model(self.meta["model"], **json.loads(self.meta["model_kwargs"]))
        self.model.load_state_dict(self.run.state_dict())
        self.model.eval().to(self.device)
        self.input_shape = self.run.input_shape
        self.calibration = self.run.calibration()
        self.score_threshold = float(self.calibration["score_threshold"])
        calibrated = "refined" in self.calibration
        if refine is None:  # refined where the task refines and the run is calibrated for it
            refine = self.task.refines and calibrated
        if refine and not self.task.refines:
            raise ValueError(f"task {self.task.name!r} has no refinement of its detections")
        if refine and not calibrated:
            raise ValueError(f"{self.run_dir}: calibration.json has no intervals for refined "
                             f"detections; run 'retroscope calibrate {self.run_dir}' first")
        self.refine = bool(refine)

    def inputs(self, observables) -> list[np.ndarray]:
        """Network inputs of observables, each checked against the run's input shape."""
        return self.run.inputs(observables)

    def predict_inputs(self, xs: list[np.ndarray], batch_size: int = 8) -> list[list[dict]]:
        return self.describe(xs, run_detector(self.model, xs, batch_size, self.device))

    def describe(self, xs: list[np.ndarray], dets: list[dict], refine: bool | None = None,
                 already_refined: bool = False) -> list[list[dict]]:
        """Objects above the score threshold with parameters, intervals and shape flag;
        ``refine`` overrides the predictor's choice for this call; ``already_refined``: the
        detections come from the task's ``refine`` (which gives the same fits for all
        detections as for those above the threshold), so only their intervals are added."""
        refine = True if already_refined else (self.refine if refine is None else bool(refine))
        if refine and "refined" not in self.calibration:
            raise ValueError(f"{self.run_dir}: not calibrated for refined detections")
        calibration = self.calibration["refined"] if refine else self.calibration
        halves = calibration["conformal_half_width"]
        limits = calibration["shape_score_threshold"]
        results = []
        for x, det in zip(xs, dets):
            det = keep_scored(det, self.score_threshold)
            if refine and not already_refined:
                det = self.task.refine(x, det, self.score_threshold)
            objects = mark_duplicates(self.task.describe_objects(x, det))
            precision = calibration.get("precision", {})
            for obj in objects:
                obj["confidence"] = confidence(obj, refine, precision)
                half = {**halves.get(ALL, {}), **halves.get(obj["class"], {})}
                for name, scale in self.task.interval_scales(obj).items():
                    # no matched validation object, no calibrated interval: NaN, not a guess
                    width = half.get(name, float("nan")) * scale
                    obj[f"{name}_low"] = obj[name] - width
                    obj[f"{name}_high"] = obj[name] + width
                limit = limits.get(obj["class"], limits.get(ALL, float("inf")))
                obj["unlike_training"] = bool(obj["shape_score"] > limit)
            results.append(objects)
        return results

    def predict(self, observables, batch_size: int = 8) -> list[list[dict]]:
        return self.predict_inputs(self.inputs(observables), batch_size)

    def rows(self, items: list, batch_size: int = 8):
        """One row per object found in each experimental input ``items`` = [(label, source,
        observable, context)]: class, score, calibrated confidence, which row it repeats, box,
        parameters with intervals, shape flag, whether the task's fit refined it, all in the
        experimental frame's units (``task.to_frame``); n_objects counts the objects that
        repeat none; an input where nothing was found gets one row with n_objects = 0.
        Returns (rows, failures [(label, reason)]) for inputs the network cannot take."""
        xs, kept, failures = self.run.accept(items)
        objects = self.predict_inputs(xs, batch_size=batch_size) if xs else []
        rows = []
        for (label, source, context), objs in zip(kept, objects):
            if not objs:
                rows.append({"input": label, "file": source, "n_objects": 0,
                             **self.task.frame_columns(context)})
            distinct = sum(obj.get("duplicate_of", -1) < 0 for obj in objs)
            for k, obj in enumerate(objs):
                rows.append({"input": label, "file": source, "n_objects": distinct, "object": k,
                             **_flat(self.task.to_frame(obj, context))})
        return rows, failures


def _flat(framed: dict) -> dict:
    """An object's entries as CSV columns: class, score, confidence and duplicate_of first,
    the box as box_x1 ... box_y2, numpy floats as floats."""
    first = [key for key in ("class", "score", "confidence", "duplicate_of") if key in framed]
    row = {}
    for key, value in {**{key: framed[key] for key in first}, **framed}.items():
        if key == "box":
            row.update({f"box_{c}": float(v) for c, v in zip(("x1", "y1", "x2", "y2"), value)})
        else:
            row[key] = float(value) if isinstance(value, (float, np.floating)) else value
    return row
