"""Calibration of a ``geometry`` run after training, and the files it writes (see
:mod:`.predictor` for what they hold). Both are fitted on inputs as the run's detector
imperfections (``task.observe``) leave them, since those are what it was trained to read."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from retroscope.io.atomic import write_json_atomic
from retroscope.learners.geometry.predictor import (OOD_FILE, composition, positions_in_frame,
                                                    real_tokens, sample_events)
from retroscope.runs import CALIBRATION, save_weights
from retroscope.train.uncertainty import ConformalCalibrator, FeatureDensity, ood_quantile

#: validation events the intervals are calibrated on (at most)
MAX_CALIBRATION_EVENTS = 2000


def split_arrays(dataset, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(tokens (n, N, C), true positions (n, N, 3)) of the first ``n`` rows of a split, as
    the network reads them (with the split's online observation, if any)."""
    idx = range(len(dataset) if n is None else min(n, len(dataset)))
    items = [dataset[i] for i in idx]
    return (np.stack([x.numpy() for x, _ in items]),
            np.stack([np.asarray(y) for _, y in items]))


def observed(task, tokens: np.ndarray, seed: int) -> np.ndarray:
    """``tokens`` as the run's detector sees them (``task.observe(train=True)``, e.g. with
    missed ions), drawn once with ``seed``; unchanged for a perfect detector. Intervals and
    the OOD model are then fitted to the inputs the network was trained for."""
    import torch

    from retroscope.core.observe import OnlineObserver

    transform = task.observe(train=True)
    if transform is None:
        return tokens
    observer = OnlineObserver(transform, seed=seed)
    return np.stack([observer(torch.from_numpy(t), index=i).numpy()
                     for i, t in enumerate(tokens)])


def calibrate_and_save(task, network, cfg, out: Path, train_set, val_set,
                       samples_per_event: int) -> dict:
    """Fit the conformal scale per axis on the validation split's real tokens and the OOD
    model on pooled features, then write weights, calibration and the OOD model."""
    from safetensors.numpy import save_file as save_numpy

    from retroscope.train.trainer import clean_rows

    out = Path(out)
    tokens, truth = split_arrays(val_set, MAX_CALIBRATION_EVENTS)
    tokens = observed(task, tokens, cfg.seed)
    s = sample_events(network, tokens, samples_per_event, seed=cfg.seed)
    real = real_tokens(tokens)
    true_frame = positions_in_frame(s.rotation, truth)
    std = np.maximum(s.std[real], 1e-6)   # a regressor (no spread): intervals of one width
    calibrator = ConformalCalibrator.fit(s.mean[real], std, true_frame[real],
                                         coverage=cfg.coverage)
    train_tokens = observed(task, np.stack([x.numpy() for x, _ in clean_rows(train_set)]),
                            cfg.seed + 1)
    train_feat = sample_free_features(network, train_tokens)
    seen = sorted({composition(train_set.observable(i)) for i in range(len(train_set))})
    level = ood_quantile(len(s.features))
    density = FeatureDensity.fit(train_feat, s.features, quantile=level)

    save_weights(out, network.state_dict(), task, {
        "learner": cfg.learner, "model": cfg.model, "model_kwargs": json.dumps(cfg.model_kwargs),
        "input_shape": json.dumps(list(tokens.shape[1:])),
        "position_scale": json.dumps(network.position_scale.tolist()),
        "objective": network.objective,
        "edm": json.dumps(dataclasses.asdict(network.edm))})
    save_numpy({k: np.ascontiguousarray(v) for k, v in density.state_arrays().items()},
               str(out / OOD_FILE))
    coverage = calibrator.coverage(s.mean[real], std, true_frame[real])
    mae = np.abs(s.mean[real] - true_frame[real]).mean()
    write_json_atomic(out / CALIBRATION, {
        "conformal": calibrator.to_dict(), "samples_per_event": samples_per_event,
        "n_events": len(tokens),
        "compositions": seen,
        "ood": {"score": "Mahalanobis distance of pooled encoder features (Lee et al. 2018)",
                "threshold": float(density.threshold), "quantile": level},
        "val_coverage": np.asarray(coverage).tolist(), "val_mae": float(mae)})
    return {"val_coverage": float(np.mean(coverage)), "val_mae": float(mae)}


def sample_free_features(network, tokens: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Pooled encoder features (n, d) of ``tokens``, without sampling."""
    import torch

    network = network.eval()
    with torch.no_grad():
        return np.concatenate([network.embed(torch.as_tensor(tokens[i:i + batch_size])).numpy()
                               for i in range(0, len(tokens), batch_size)])
