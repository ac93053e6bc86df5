"""A trained regression run, ready to turn inputs into physical values with intervals and an
out-of-distribution flag (calibrated as :mod:`.calibration` describes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retroscope.learners.regression.calibration import OOD_FILE, run_network
from retroscope.learners.regression.module import Network
from retroscope.runs import default_device, open_run
from retroscope.train.uncertainty import ConformalCalibrator, FeatureDensity


@dataclass
class Prediction:
    """Network outputs for n inputs, in physical units per target column.

    ``value`` is the decoded answer (e.g. a quaternion normalised and reduced into the
    fundamental domain) and ``low``/``high`` the calibrated interval (``Targets.bounds``:
    value -/+ ``half_width`` for a linear encoding, relative for a logarithmic one).
    ``raw_mean`` is the network's output in encoded units and ``half_encoded`` the interval's
    half-width there, against which it was calibrated (targets aligned by ``Targets.align``).
    """

    columns: tuple[str, ...]
    units: tuple[str, ...]
    value: np.ndarray  # (n, d)
    low: np.ndarray  # (n, d)
    high: np.ndarray  # (n, d)
    half_width: np.ndarray  # (n, d) physical units, (high - low) / 2
    raw_mean: np.ndarray  # (n, d) encoded units
    half_encoded: np.ndarray  # (n, d) encoded units
    ood_score: np.ndarray  # (n,)
    ood_flag: np.ndarray  # (n,) bool
    record: dict  # decoded parameter record (task's own form)

    def covers(self, targets, true_record: dict) -> np.ndarray:
        """(n, d) bool: is the truth (its equivalent closest to the output) inside?"""
        aligned = targets.align_numpy(self.raw_mean, targets.encode(true_record))
        return np.abs(aligned - self.raw_mean) <= self.half_encoded


def out_of_range(space, columns, values) -> list[str]:
    """The columns whose value lies outside the training range of the scalar parameter of the
    same name (the network was never shown such a value: an answer there is an
    extrapolation, not a measurement)."""
    out = []
    for col, value in zip(columns, values):
        if col in space.names and hasattr(space[col], "low"):
            p = space[col]
            tol = 1e-9 * max(1.0, abs(p.high - p.low))
            if not p.low - tol <= value <= p.high + tol:
                out.append(col)
    return out


class Predictor:
    """A trained run, ready to predict: ``Predictor(run_dir).predict(observables)``."""

    def __init__(self, run_dir: Path, device: str | None = None) -> None:
        from safetensors.numpy import load_file as load_numpy

        self.run = open_run(run_dir)
        self.run_dir, self.meta, self.task = self.run.path, self.run.meta, self.run.task
        self.device = device or default_device()
        self.network = Network(self.meta["model"], json.loads(self.meta["model_kwargs"]),
                               int(self.meta["out_dim"]))
        self.network.load_state_dict(self.run.state_dict())
        self.network.eval().to(self.device)
        self.input_shape = self.run.input_shape
        calib = self.run.calibration()
        self.calibrator = ConformalCalibrator.from_dict(calib["conformal"])
        # the predictions are made the way the intervals were calibrated
        self.flips = tuple(tuple(f) for f in calib.get("input_flips", []))
        self.density = FeatureDensity.from_state_arrays(load_numpy(str(self.run_dir / OOD_FILE)))

    def inputs(self, observables) -> np.ndarray:
        """Stack observables into network inputs, checking their shape."""
        return np.stack(self.run.inputs(observables)).astype(np.float32)

    def predict_inputs(self, x: np.ndarray, batch_size: int = 256) -> Prediction:
        mean, sigma, feats = run_network(self.network, x, batch_size, self.device, self.flips)
        return self._prediction(mean, sigma, feats)

    def predict(self, observables, batch_size: int = 256) -> Prediction:
        return self.predict_inputs(self.inputs(observables), batch_size)

    def _prediction(self, mean, sigma, feats) -> Prediction:
        targets = self.task.targets
        low, high = self.calibrator.interval(mean, sigma)
        half_enc = 0.5 * (high - low)
        record = targets.decode(mean)
        value = targets.columns_physical(record)
        lo, hi = targets.bounds(mean, half_enc, value)
        # an interval never reaches beyond what is physically possible (|q| <= 1, r >= 0):
        # cutting it there loses no coverage, since the truth always lies inside
        limits = targets.limits()
        lo, hi = np.clip(lo, *limits.T), np.clip(hi, *limits.T)
        score = self.density.score(feats)
        return Prediction(
            columns=targets.columns, units=targets.units, value=value, low=lo,
            high=hi, half_width=0.5 * (hi - lo), raw_mean=mean, half_encoded=half_enc,
            ood_score=score, ood_flag=score > self.density.threshold, record=record)

    def rows(self, items: list, batch_size: int = 128):
        """One row per experimental input ``items`` = [(label, source, observable, context)]:
        per target column the value, its interval (``_low``, ``_high``) and whether that
        interval is calibrated (``_calibrated``: False on an out-of-distribution input), the
        task's own columns, the targets outside their training range (``out_of_range``, never
        clipped), the OOD score and flag. Returns (rows, failures [(label, reason)]) for
        inputs whose shape the network cannot take."""
        inputs, kept, failures = self.run.accept(items)
        rows = []
        if not inputs:
            return rows, failures
        pred = self.predict_inputs(np.stack(inputs), batch_size=batch_size)
        for i, (label, source, context) in enumerate(kept):
            row = {"input": label, "file": source, **self.task.frame_columns(context)}
            for j, col in enumerate(pred.columns):
                row[col] = float(pred.value[i, j])
                row[f"{col}_low"] = float(pred.low[i, j])
                row[f"{col}_high"] = float(pred.high[i, j])
                row[f"{col}_calibrated"] = not bool(pred.ood_flag[i])
            row.update(self.task.describe_prediction({k: v[i] for k, v in pred.record.items()}))
            row["out_of_range"] = " ".join(out_of_range(self.task.space, pred.columns,
                                                        pred.value[i]))
            row["ood_score"] = float(pred.ood_score[i])
            row["ood"] = bool(pred.ood_flag[i])
            rows.append(row)
        return rows, failures
