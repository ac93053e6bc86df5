"""A trained classifier run, ready to sort inputs into classes with calibrated probabilities,
a conformal set of classes and an out-of-distribution flag (:mod:`.calibration`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retroscope.learners.classification.calibration import (
    OOD_FILE,
    ConformalSets,
    probabilities,
    run_classifier,
)
from retroscope.learners.classification.module import Classifier
from retroscope.runs import RunError, default_device, open_run
from retroscope.train.uncertainty import FeatureDensity


@dataclass
class Prediction:
    """Answers for n inputs over k classes."""

    logits: np.ndarray  # (n, k) the network's output
    probs: np.ndarray  # (n, k) calibrated probabilities
    sets: np.ndarray  # (n, k) bool, the conformal set of each input
    ood_score: np.ndarray  # (n,)
    ood_flag: np.ndarray  # (n,) bool

    @property
    def index(self) -> np.ndarray:
        """(n,) the most probable class of each input."""
        return np.argmax(self.probs, axis=1)


class Predictor:
    """A trained run, ready to predict: ``Predictor(run_dir).predict(observables)``."""

    def __init__(self, run_dir: Path, device: str | None = None) -> None:
        from safetensors.numpy import load_file as load_numpy

        self.run = open_run(run_dir)
        self.run_dir, self.meta, self.task = self.run.path, self.run.meta, self.run.task
        self.targets = self.task.targets
        edges = json.loads(self.meta["edges"])
        if not np.array_equal(edges, self.targets.edges):
            raise RunError(f"{self.run_dir}: trained on the classes {edges} of "
                           f"{self.targets.column}, but the task now has "
                           f"{self.targets.edges.tolist()}")
        self.device = device or default_device()
        self.network = Classifier(self.meta["model"], json.loads(self.meta["model_kwargs"]),
                                  int(self.meta["out_dim"]))
        self.network.load_state_dict(self.run.state_dict())
        self.network.eval().to(self.device)
        self.input_shape = self.run.input_shape
        calib = self.run.calibration()
        self.temperature = float(calib["temperature"]["value"])
        self.conformal = ConformalSets.from_dict(calib["conformal"])
        # the predictions are made the way the sets were calibrated
        self.flips = tuple(tuple(f) for f in calib.get("input_flips", []))
        self.density = FeatureDensity.from_state_arrays(load_numpy(str(self.run_dir / OOD_FILE)))

    def inputs(self, observables) -> np.ndarray:
        """Stack observables into network inputs, checking their shape."""
        return np.stack(self.run.inputs(observables)).astype(np.float32)

    def predict_inputs(self, x: np.ndarray, batch_size: int = 256) -> Prediction:
        logits, feats = run_classifier(self.network, x, batch_size, self.device, self.flips)
        probs = probabilities(logits, self.temperature)
        score = self.density.score(feats)
        return Prediction(logits=logits, probs=probs, sets=self.conformal.sets(probs),
                          ood_score=score, ood_flag=score > self.density.threshold)

    def predict(self, observables, batch_size: int = 256) -> Prediction:
        return self.predict_inputs(self.inputs(observables), batch_size)

    def rows(self, items: list, batch_size: int = 128):
        """One row per experimental input ``items`` = [(label, source, observable, context)]:
        the task's own columns, the most probable class (``class_index``, ``class_label``)
        and its calibrated ``probability``, the conformal ``set`` (class labels joined by
        " | ") and its size, the OOD score and flag, and every class's probability ``p_K``.
        Returns (rows, failures [(label, reason)]) for inputs whose shape the network cannot
        take."""
        inputs, kept, failures = self.run.accept(items)
        rows = []
        if not inputs:
            return rows, failures
        pred = self.predict_inputs(np.stack(inputs), batch_size=batch_size)
        labels = self.targets.labels
        for i, (label, source, context) in enumerate(kept):
            k = int(pred.index[i])
            row = {"input": label, "file": source, **self.task.frame_columns(context),
                   "class_index": k, "class_label": labels[k],
                   "probability": float(pred.probs[i, k]),
                   "set": " | ".join(labels[j] for j in np.flatnonzero(pred.sets[i])),
                   "set_size": int(pred.sets[i].sum()),
                   "ood_score": float(pred.ood_score[i]), "ood": bool(pred.ood_flag[i])}
            row.update({f"p_{j}": float(p) for j, p in enumerate(pred.probs[i])})
            rows.append(row)
        return rows, failures
