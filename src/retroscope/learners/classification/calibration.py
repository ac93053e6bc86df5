"""Calibration of a classifier after training, and the files it writes.

Probabilities: temperature scaling (Guo et al., "On calibration of modern neural networks",
ICML 2017): every logit is divided by one scalar T, fitted on the validation split by
minimising the negative log-likelihood over ln T (T within [0.05, 20]). The most probable
class does not change; its probability then says how often such an answer is right.

Prediction sets: split conformal prediction (Angelopoulos & Bates 2021, arXiv:2107.07511,
Sec. 1) with the score 1 - p(true class) of the calibrated probabilities (the "LAC" score of
Sadinle, Lei & Wasserman, JASA 114, 223 (2019), which gives the smallest sets on average). q
is the conformal quantile of the validation scores at ``cfg.coverage``; the set of an input
holds every class k with 1 - p_k <= q, and always the most probable class (which only adds
coverage), so it contains the true class with probability at least ``cfg.coverage``.

Out-of-distribution flag: as a regression's, the Mahalanobis distance of the pooled features to
a Gaussian fitted on training features, flagged above the 99th percentile of the validation
scores (:class:`~retroscope.train.uncertainty.FeatureDensity`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.special import log_softmax, softmax

from retroscope.io.atomic import write_json_atomic
from retroscope.runs import CALIBRATION, save_weights
from retroscope.train.network import mean_over_copies, symmetrised_batches
from retroscope.train.trainer import clean_rows
from retroscope.train.uncertainty import FeatureDensity, conformal_quantile, ood_quantile

OOD_FILE = "ood.safetensors"
#: the range a fitted temperature may take
TEMPERATURE_BOUNDS = (0.05, 20.0)


@torch.no_grad()
def run_classifier(network, inputs, batch_size: int = 256, device: str = "cpu",
                   flips: tuple[tuple[int, ...], ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(logits (n, k), features (n, p)) for an (n, C, H, W) array or a Dataset. With
    ``flips`` (the task's input symmetries) every input is also run flipped along each tuple
    of dims, and logits and features are averaged over the copies."""
    network = network.to(device).eval()
    logits, feats = [], []
    for x, k in symmetrised_batches(inputs, batch_size, device, flips):
        out, features = network.forward_with_features(x)
        logits.append(mean_over_copies(out, k).cpu().numpy())
        feats.append(mean_over_copies(features, k).cpu().numpy())
    return (np.concatenate(logits).astype(np.float64),
            np.concatenate(feats).astype(np.float64))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the classes ``labels`` under softmax(logits / T)."""
    logp = log_softmax(np.asarray(logits) / temperature, axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises :func:`nll` on (``logits``, ``labels``)."""
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))),
                             bounds=np.log(TEMPERATURE_BOUNDS), method="bounded")
    return float(np.exp(result.x))


def probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """(n, k) class probabilities softmax(logits / T)."""
    return softmax(np.asarray(logits) / temperature, axis=1)


@dataclass(eq=False)
class ConformalSets:
    """Split-conformal prediction sets with the score 1 - p(true class) (module docstring).

    Build with :meth:`fit` on calibrated probabilities of the validation split."""

    level: float
    quantile: float
    n_calibration: int

    @classmethod
    def fit(cls, probs: np.ndarray, labels: np.ndarray, coverage: float = 0.9) -> ConformalSets:
        scores = 1.0 - probs[np.arange(len(labels)), labels]
        return cls(coverage, float(conformal_quantile(scores, coverage)), len(labels))

    def sets(self, probs: np.ndarray) -> np.ndarray:
        """(n, k) bool: the classes in each input's set (the most probable always)."""
        inside = 1.0 - probs <= self.quantile
        inside[np.arange(len(probs)), np.argmax(probs, axis=1)] = True
        return inside

    def coverage(self, probs: np.ndarray, labels: np.ndarray) -> float:
        """Fraction of inputs whose set holds their class ``labels``."""
        return float(self.sets(probs)[np.arange(len(labels)), labels].mean())

    def to_dict(self) -> dict:
        return {"method": "split-conformal sets, score 1 - p(true class); the most probable "
                          "class always in the set",
                "coverage": float(self.level), "quantile": self.quantile,
                "n_calibration": int(self.n_calibration)}

    @classmethod
    def from_dict(cls, d: dict) -> ConformalSets:
        return cls(float(d["coverage"]), float(d["quantile"]), int(d["n_calibration"]))


def calibrate_and_save(task, network, cfg, out: Path, train_set, val_set) -> dict:
    """Fit the temperature, the conformal sets and the OOD model on the validation split,
    then write the weights, ``calibration.json`` and ``ood.safetensors``; returns what the
    training summary reports of them."""
    from safetensors.numpy import save_file as save_numpy

    out = Path(out)
    targets = task.targets
    flips = tuple(task.input_flips) if cfg.symmetrise else ()
    val_logits, val_feat = run_classifier(network, val_set, flips=flips)
    _, train_feat = run_classifier(network, clean_rows(train_set), flips=flips)
    labels = val_set.targets.numpy()
    temperature = fit_temperature(val_logits, labels)
    probs = probabilities(val_logits, temperature)
    sets = ConformalSets.fit(probs, labels, coverage=cfg.coverage)
    ood_level = ood_quantile(len(val_feat))
    density = FeatureDensity.fit(train_feat, val_feat, quantile=ood_level)

    save_weights(out, network.state_dict(), task, {
        "learner": cfg.learner, "model": cfg.model, "model_kwargs": json.dumps(cfg.model_kwargs),
        "out_dim": str(targets.n_classes), "input_shape": json.dumps(list(val_set[0][0].shape)),
        "targets": json.dumps(list(targets.columns)), "units": json.dumps(list(targets.units)),
        "edges": json.dumps(targets.edges.tolist())})
    save_numpy({k: np.ascontiguousarray(v) for k, v in density.state_arrays().items()},
               str(out / OOD_FILE))
    found = {"temperature": temperature,
             "val_accuracy": float(np.mean(np.argmax(probs, axis=1) == labels)),
             "val_set_coverage": sets.coverage(probs, labels),
             "val_mean_set_size": float(sets.sets(probs).sum(axis=1).mean())}
    write_json_atomic(out / CALIBRATION, {
        "column": targets.column, "edges": targets.edges.tolist(),
        "classes": list(targets.labels),
        "temperature": {"value": temperature, "method": "temperature scaling (Guo et al. "
                        "2017), NLL on the validation split",
                        "val_nll_before": nll(val_logits, labels),
                        "val_nll_after": nll(val_logits, labels, temperature)},
        "conformal": sets.to_dict(),
        "ood": {"score": "Mahalanobis distance of pooled features (Lee et al. 2018)",
                "threshold": float(density.threshold), "quantile": ood_level},
        **{k: v for k, v in found.items() if k != "temperature"},
        "input_flips": [list(f) for f in flips],
    })
    return found
