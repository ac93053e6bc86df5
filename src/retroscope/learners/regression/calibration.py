"""Calibration of a regression network after training, and the files it writes.

Uncertainty (``calibration.json``): the network's heteroscedastic σ per target column is
rescaled by a split-conformal factor fitted on the validation split, so that the stated
interval ``mean ± q σ`` covers the nominal fraction (default 90%) of cases (Angelopoulos &
Bates 2021). Out-of-distribution score (``ood.safetensors``): the Mahalanobis distance of the
network's pooled penultimate features to a Gaussian fitted on training features (Lee et al.
2018); an input is flagged when its score exceeds the 99th percentile of the validation scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from retroscope.io.atomic import write_json_atomic
from retroscope.runs import CALIBRATION, save_weights
from retroscope.train.network import mean_over_copies, symmetrised_batches
from retroscope.train.trainer import clean_rows
from retroscope.train.uncertainty import ConformalCalibrator, FeatureDensity, ood_quantile

OOD_FILE = "ood.safetensors"


@torch.no_grad()
def run_network(network, inputs, batch_size: int = 256, device: str = "cpu",
                flips: tuple[tuple[int, ...], ...] = ()):
    """(mean, sigma, features) in encoded units for an (n, C, H, W) array or a Dataset.

    With ``flips`` (the task's input symmetries) every input is also run flipped along each
    tuple of dims, and mean, variance and features are averaged over the copies."""
    network = network.to(device).eval()
    means, sigmas, feats = [], [], []
    for x, k in symmetrised_batches(inputs, batch_size, device, flips):
        mean, logvar, features = network.forward_with_features(x)
        means.append(mean_over_copies(mean, k).cpu().numpy())
        sigmas.append(torch.sqrt(mean_over_copies(torch.exp(logvar), k)).cpu().numpy())
        feats.append(mean_over_copies(features, k).cpu().numpy())
    return np.concatenate(means), np.concatenate(sigmas), np.concatenate(feats)


def calibrate_and_save(task, network, cfg, out: Path, train_set, val_set) -> dict:
    """Fit the conformal scale and the OOD model, then write weights, stats and calibration."""
    from safetensors.numpy import save_file as save_numpy

    out = Path(out)
    flips = tuple(task.input_flips) if cfg.symmetrise else ()
    val_mean, val_sigma, val_feat = run_network(network, val_set, flips=flips)
    _, _, train_feat = run_network(network, clean_rows(train_set), flips=flips)
    # residuals against the symmetry-equivalent target the loss used (identity for most tasks)
    val_targets = task.targets.align_numpy(val_mean, val_set.targets.numpy())
    calibrator = ConformalCalibrator.fit(val_mean, val_sigma, val_targets,
                                         coverage=cfg.coverage)
    ood_level = ood_quantile(len(val_feat))
    density = FeatureDensity.fit(train_feat, val_feat, quantile=ood_level)

    save_weights(out, network.state_dict(), task, {
        "learner": cfg.learner, "model": cfg.model, "model_kwargs": json.dumps(cfg.model_kwargs),
        "out_dim": str(task.targets.dim), "input_shape": json.dumps(list(val_set[0][0].shape)),
        "targets": json.dumps(list(task.targets.columns)),
        "units": json.dumps(list(task.targets.units))})
    write_json_atomic(out / "normalization.json", {
        "input_mean": float(network.norm.mean), "input_std": float(network.norm.std),
        "targets": list(task.targets.columns), "units": list(task.targets.units),
        "target_scale": task.targets.scale().tolist(),
        "target_offset": task.targets.offset().tolist(),
    })
    save_numpy({k: np.ascontiguousarray(v) for k, v in density.state_arrays().items()},
               str(out / OOD_FILE))
    val_coverage = calibrator.coverage(val_mean, val_sigma, val_targets)
    write_json_atomic(out / CALIBRATION, {
        "conformal": calibrator.to_dict(),
        "ood": {"score": "Mahalanobis distance of pooled features (Lee et al. 2018)",
                "threshold": float(density.threshold), "quantile": ood_level},
        "val_coverage": np.asarray(val_coverage).tolist(),
        "input_flips": [list(f) for f in flips],
    })
    return {"val_coverage": float(np.mean(val_coverage))}
