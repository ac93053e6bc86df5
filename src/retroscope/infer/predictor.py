"""Load a run directory and turn inputs into physical values with intervals and an OOD flag.

Uncertainty (stored in ``calibration.json``): the network's heteroscedastic σ per target
column is rescaled by a split-conformal factor fitted on the validation split, so that the
stated interval ``mean ± q σ`` covers the nominal fraction (default 90%) of cases
(Angelopoulos & Bates 2021). Out-of-distribution score (``ood.safetensors``): the Mahalanobis
distance of the network's pooled penultimate features to a Gaussian fitted on training
features (Lee et al. 2018); an input is flagged when its score exceeds the 99th percentile of
the validation scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from retroscope import __version__
from retroscope.core.task import Task, get_task
from retroscope.data.shards import write_json_atomic

WEIGHTS = "model.safetensors"


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


@torch.no_grad()
def run_network(network, inputs, batch_size: int = 256, device: str = "cpu",
                flips: tuple[tuple[int, ...], ...] = ()):
    """(mean, sigma, features) in encoded units for an (n, C, H, W) array or a Dataset.

    With ``flips`` (the task's input symmetries) every input is also run flipped along each
    tuple of dims, and mean, variance and features are averaged over the copies."""
    network = network.to(device).eval()
    means, sigmas, feats = [], [], []
    n = len(inputs)
    views = [()] + [tuple(f) for f in flips]
    for start in range(0, n, batch_size):
        if isinstance(inputs, np.ndarray):
            x = torch.from_numpy(inputs[start:start + batch_size])
        else:
            x = torch.stack([inputs[i][0] for i in range(start, min(n, start + batch_size))])
        x = x.to(device=device, dtype=torch.float32)
        if len(views) > 1:  # all views in one forward pass, then averaged per input
            x = torch.cat([torch.flip(x, dims) if dims else x for dims in views])
        mean, logvar, features = network.forward_with_features(x)
        k = len(views)
        means.append(mean.reshape(k, -1, mean.shape[-1]).mean(0).cpu().numpy())
        var = torch.exp(logvar).reshape(k, -1, logvar.shape[-1]).mean(0)
        sigmas.append(torch.sqrt(var).cpu().numpy())
        feats.append(features.reshape(k, -1, features.shape[-1]).mean(0).cpu().numpy())
    return np.concatenate(means), np.concatenate(sigmas), np.concatenate(feats)


def calibrate_and_save(task: Task, network, cfg, out: Path, train_set, val_set) -> dict:
    """Fit the conformal scale and the OOD model, then write weights, stats and calibration."""
    from safetensors.torch import save_file

    from retroscope.train.uncertainty import ConformalCalibrator, FeatureDensity

    out = Path(out)
    flips = tuple(task.input_flips) if getattr(cfg, "symmetrise", True) else ()
    val_mean, val_sigma, val_feat = run_network(network, val_set, flips=flips)
    idx = np.linspace(0, len(train_set) - 1, min(len(train_set), 4000)).astype(int)
    from torch.utils.data import Subset

    clean_train = _without_observer(train_set)
    _, _, train_feat = run_network(network, Subset(clean_train, idx), flips=flips)
    # residuals against the symmetry-equivalent target the loss used (identity for most tasks)
    val_targets = task.targets.align_numpy(val_mean, val_set.targets)
    calibrator = ConformalCalibrator.fit(val_mean, val_sigma, val_targets,
                                         coverage=cfg.coverage)
    # the 99% level needs >= 99 validation points; smaller sets use their largest score
    ood_level = min(0.99, len(val_feat) / (len(val_feat) + 1.0) - 1e-6)
    density = FeatureDensity.fit(train_feat, val_feat, quantile=ood_level)

    input_shape = list(val_set[0][0].shape)
    meta = {
        "task": task.name,
        "model": cfg.model,
        "model_kwargs": json.dumps(cfg.model_kwargs),
        "out_dim": str(task.targets.dim),
        "input_shape": json.dumps(input_shape),
        "targets": json.dumps(list(task.targets.columns)),
        "units": json.dumps(list(task.targets.units)),
        "task_config": json.dumps(cfg.task_config),
        "view": json.dumps(cfg.view),
        "code_version": __version__,
    }
    state = {k: v.contiguous() for k, v in network.state_dict().items()}
    save_file(state, str(out / WEIGHTS), metadata=meta)
    write_json_atomic(out / "normalization.json", {
        "input_mean": float(network.norm.mean), "input_std": float(network.norm.std),
        "targets": list(task.targets.columns), "units": list(task.targets.units),
        "target_scale": task.targets.scale().tolist(),
        "target_offset": task.targets.offset().tolist(),
    })
    from safetensors.numpy import save_file as save_numpy

    save_numpy({k: np.ascontiguousarray(v) for k, v in density.state_arrays().items()},
               str(out / "ood.safetensors"))
    val_coverage = calibrator.coverage(val_mean, val_sigma, val_targets)
    write_json_atomic(out / "calibration.json", {
        "conformal": calibrator.to_dict(),
        "ood": {"score": "Mahalanobis distance of pooled features (Lee et al. 2018)",
                "threshold": float(density.threshold), "quantile": ood_level},
        "val_coverage": np.asarray(val_coverage).tolist(),
        "input_flips": [list(f) for f in flips],
    })
    return {"val_coverage": float(np.mean(val_coverage))}


def _without_observer(dataset):
    import copy

    clean = copy.copy(dataset)
    clean.observer = None
    return clean


def open_run(run_dir: Path):
    """(weights path, weight metadata, task with the run's simulation settings) of a finished
    run directory, for every learner; a missing weights file is a RunError."""
    from safetensors import safe_open

    weights = Path(run_dir) / WEIGHTS
    if not weights.exists():
        from retroscope.train.fit import RunError

        raise RunError(f"{run_dir}: no {WEIGHTS}; is this a finished retroscope run?")
    with safe_open(str(weights), framework="pt") as f:
        meta = f.metadata()
    task = get_task(meta["task"])
    task_config = json.loads(meta.get("task_config", "{}"))
    if task_config and task_config != task.config():
        task = task.with_config(**task_config)
    view = json.loads(meta.get("view", "{}"))
    if view:  # how the run read its inputs when it was trained (crop, zoom)
        task = task.with_config(**view)
    return weights, meta, task


class Predictor:
    """A trained run, ready to predict: ``Predictor(run_dir).predict(observables)``."""

    def __init__(self, run_dir: Path, device: str | None = None) -> None:
        from safetensors.numpy import load_file as load_numpy
        from safetensors.torch import load_file

        from retroscope.train.module import Network
        from retroscope.train.uncertainty import ConformalCalibrator, FeatureDensity

        self.run_dir = Path(run_dir)
        weights, self.meta, self.task = open_run(self.run_dir)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.network = Network(self.meta["model"], json.loads(self.meta["model_kwargs"]),
                               int(self.meta["out_dim"]))
        self.network.load_state_dict(load_file(str(weights)))
        self.network.eval().to(self.device)
        self.input_shape = tuple(json.loads(self.meta["input_shape"]))
        calib = json.loads((self.run_dir / "calibration.json").read_text())
        self.calibrator = ConformalCalibrator.from_dict(calib["conformal"])
        # the predictions are made the way the intervals were calibrated
        self.flips = tuple(tuple(f) for f in calib.get("input_flips", []))
        arrays = load_numpy(str(self.run_dir / "ood.safetensors"))
        self.density = FeatureDensity.from_state_arrays(arrays)

    def inputs(self, observables) -> np.ndarray:
        """Stack observables into network inputs, checking their shape."""
        xs = []
        for i, obs in enumerate(observables):
            x = self.task.model_input(obs)
            if tuple(x.shape) != self.input_shape:
                raise ValueError(f"input {i}: shape {tuple(x.shape)} after preprocessing, the "
                                 f"network expects {self.input_shape}")
            xs.append(x)
        return np.stack(xs).astype(np.float32)

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
        score = self.density.score(feats)
        return Prediction(
            columns=targets.columns, units=targets.units, value=value, low=lo,
            high=hi, half_width=0.5 * (hi - lo), raw_mean=mean, half_encoded=half_enc,
            ood_score=score,
            ood_flag=score > self.density.threshold, record=record)
