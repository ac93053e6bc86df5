"""Uncertainty of a network's prediction: a heteroscedastic loss, conformal intervals and an
out-of-distribution score.

- :func:`gaussian_nll`: the negative log-likelihood of a Gaussian whose mean and log-variance
  the network predicts (Nix & Weigend, ICNN 1994; Kendall & Gal, NeurIPS 2017), for models
  built with ``head="heteroscedastic"``.
- :class:`ConformalCalibrator`: split-conformal calibration of the predicted sigmas on the
  validation split (Angelopoulos & Bates, "A gentle introduction to conformal prediction and
  distribution-free uncertainty quantification", arXiv:2107.07511, Sec. 2.3 on normalised
  residual scores), so that the interval mu +- q sigma covers the truth with the requested
  probability whatever the scale of sigma.
- :class:`FeatureDensity`: the Mahalanobis distance of penultimate-layer features from a
  Gaussian fitted to the training set (Lee et al., "A simple unified framework for detecting
  out-of-distribution samples and adversarial attacks", NeurIPS 2018), with Ledoit-Wolf
  shrinkage of the covariance (Ledoit & Wolf, J. Multivar. Anal. 88, 365 (2004)).

The calibrators work on numpy arrays in the network's target encoding; both serialise to
JSON-compatible dicts for the run directory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.linalg import cho_factor, solve_triangular


def gaussian_nll(
    mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Gaussian negative log-likelihood per element,
    ``0.5 * (logvar + (target - mean)**2 * exp(-logvar))``, without the constant
    ``0.5 * log(2 pi)``.

    Parametrising by the log-variance keeps the variance positive without clamping (Kendall &
    Gal 2017, Eq. 8; Nix & Weigend 1994). Equal to ``torch.nn.functional.gaussian_nll_loss``
    with ``var = exp(logvar)`` and ``eps = 0``. ``reduction``: ``"mean"``, ``"sum"`` or
    ``"none"``.
    """
    if not mean.shape == logvar.shape == target.shape:
        raise ValueError(
            "mean, logvar and target must have the same shape, got "
            f"{tuple(mean.shape)}, {tuple(logvar.shape)}, {tuple(target.shape)}"
        )
    nll = 0.5 * (logvar + (target - mean) ** 2 * torch.exp(-logvar))
    if reduction == "mean":
        return nll.mean()
    if reduction == "sum":
        return nll.sum()
    if reduction == "none":
        return nll
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def conformal_quantile(scores: np.ndarray, level: float) -> np.ndarray:
    """The finite-sample conformal quantile of ``scores`` (n,) or (n, d) along axis 0: the
    ``ceil((n + 1) * level)``-th smallest score (Angelopoulos & Bates 2021, Eq. 1).

    For exchangeable data, a new score is at most this value with probability >= ``level``.
    Raises ``ValueError`` if ``n`` is too small for ``level`` (the quantile would be infinite).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = scores.shape[0]
    k = math.ceil((n + 1) * level - 1e-9)  # tolerance: (99 + 1) * 0.9 is 90.00000000000001
    if k > n:
        raise ValueError(
            f"{n} calibration points are too few for level {level}: need at least "
            f"{math.ceil(level / (1.0 - level) - 1e-9)}"
        )
    return np.sort(scores, axis=0)[k - 1]


def _columns(name: str, a: np.ndarray) -> np.ndarray:
    """``a`` as a finite float64 (n, d) array; a 1-D array is one column."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (n, d), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains {np.count_nonzero(~np.isfinite(a))} non-finite values")
    return a


def _mean_sigma(mean: np.ndarray, sigma: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    mean = _columns("mean", mean)
    if sigma is None:
        return mean, np.ones_like(mean)
    sigma = _columns("sigma", sigma)
    if sigma.shape != mean.shape:
        raise ValueError(f"sigma has shape {sigma.shape}, mean has shape {mean.shape}")
    if np.any(sigma <= 0):
        raise ValueError(f"sigma must be positive; {np.count_nonzero(sigma <= 0)} values are not")
    return mean, sigma


@dataclass(eq=False)
class ConformalCalibrator:
    """Split-conformal intervals from normalised residual scores (Angelopoulos & Bates 2021).

    On a calibration set (the validation split, never seen by the optimiser) the score of each
    sample and output column is ``s = |y - mu| / sigma``; ``quantile[j]`` is the conformal
    quantile of column ``j`` (:func:`conformal_quantile` at ``level``, the requested coverage).
    The interval ``mu +- quantile * sigma`` then covers a new exchangeable sample with
    probability at least ``level`` per column, whether or not ``sigma`` was well scaled.
    ``sigma=None`` means 1, i.e. plain absolute residuals, for networks without a variance head.

    Build with :meth:`fit`.
    """

    level: float
    quantile: np.ndarray
    n_calibration: int

    @classmethod
    def fit(
        cls,
        mean: np.ndarray,
        sigma: np.ndarray | None,
        target: np.ndarray,
        coverage: float = 0.9,
    ) -> ConformalCalibrator:
        """Calibrate on predictions ``mean``, ``sigma`` and truths ``target``, each (n,) or
        (n, d)."""
        mean, sigma = _mean_sigma(mean, sigma)
        target = _columns("target", target)
        if target.shape != mean.shape:
            raise ValueError(f"target has shape {target.shape}, mean has shape {mean.shape}")
        scores = np.abs(target - mean) / sigma
        return cls(coverage, conformal_quantile(scores, coverage), mean.shape[0])

    def interval(
        self, mean: np.ndarray, sigma: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high) = mu -+ quantile * sigma``, shaped like ``mean``."""
        shape = np.shape(mean)
        mean, sigma = _mean_sigma(mean, sigma)
        if mean.shape[1] != self.quantile.shape[0]:
            raise ValueError(
                f"calibrated for {self.quantile.shape[0]} columns, got {mean.shape[1]}"
            )
        half = self.quantile * sigma
        return (mean - half).reshape(shape), (mean + half).reshape(shape)

    def coverage(
        self, mean: np.ndarray, sigma: np.ndarray | None, target: np.ndarray
    ) -> np.ndarray:
        """Measured fraction of ``target`` inside the interval, per column, shape (d,)."""
        low, high = self.interval(_columns("mean", mean), sigma)
        target = _columns("target", target)
        if target.shape != low.shape:
            raise ValueError(f"target has shape {target.shape}, mean has shape {low.shape}")
        return np.mean((target >= low) & (target <= high), axis=0)

    def to_dict(self) -> dict:
        """JSON-serialisable form, read back by :meth:`from_dict`."""
        return {
            "method": "split-conformal, score |y - mu| / sigma",
            "coverage": float(self.level),
            "quantile": [float(q) for q in self.quantile],
            "n_calibration": int(self.n_calibration),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ConformalCalibrator:
        """Inverse of :meth:`to_dict`."""
        return cls(
            float(d["coverage"]),
            np.asarray(d["quantile"], dtype=np.float64),
            int(d["n_calibration"]),
        )


def ledoit_wolf_covariance(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, shrunk covariance and shrinkage intensity of ``features`` (n, p).

    The covariance is ``(1 - delta) S + delta * mu * I`` with ``S`` the maximum-likelihood
    covariance, ``mu = tr(S) / p`` and the closed-form optimal ``delta`` in [0, 1] of Ledoit &
    Wolf (2004), Lemma 3.2 / Theorem 3.3 (the same estimator as scikit-learn's
    ``LedoitWolf``). It is positive definite even for n < p.
    """
    x = _columns("features", features)
    n, p = x.shape
    if n < 2:
        raise ValueError(f"need at least 2 feature vectors, got {n}")
    mean = x.mean(axis=0)
    x = x - mean
    s = x.T @ x / n
    mu = np.trace(s) / p
    d2 = np.sum((s - mu * np.eye(p)) ** 2) / p
    # (1/n^2) sum_k ||x_k x_k^T - S||_F^2 / p, using sum_k x_k x_k^T = n S
    b2 = (np.sum(np.sum(x**2, axis=1) ** 2) / n - np.sum(s**2)) / (n * p)
    shrinkage = 1.0 if d2 == 0 else min(b2, d2) / d2
    return mean, (1.0 - shrinkage) * s + shrinkage * mu * np.eye(p), float(shrinkage)


def ood_quantile(n_val: int, level: float = 0.99) -> float:
    """The level of an OOD threshold fitted on ``n_val`` validation scores: ``level``, or
    just under ``n / (n + 1)`` for a set too small for it (its largest score then)."""
    return min(level, n_val / (n_val + 1.0) - 1e-6)


@dataclass(eq=False)
class FeatureDensity:
    """Out-of-distribution score from the Gaussian density of penultimate features
    (Lee et al. 2018, with a single class for regression).

    ``score(f) = sqrt((f - mean)^T covariance^-1 (f - mean))`` is the Mahalanobis distance of a
    feature vector ``f`` (``model.embed(x)``) from the training features, whose mean and
    Ledoit-Wolf-shrunk covariance (:func:`ledoit_wolf_covariance`) are fitted on the training
    split. ``threshold`` is the conformal quantile (:func:`conformal_quantile`) at level
    ``quantile`` (default 0.99) of the scores of the validation split, so an in-distribution
    sample is flagged with probability at most ``1 - quantile``; :meth:`is_outlier` is
    ``score > threshold``.

    Build with :meth:`fit`.
    """

    mean: np.ndarray
    covariance: np.ndarray
    shrinkage: float
    threshold: float
    quantile: float
    _cholesky: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64)
        self.covariance = np.asarray(self.covariance, dtype=np.float64)
        p = self.mean.shape[0]
        if self.mean.shape != (p,) or self.covariance.shape != (p, p):
            raise ValueError(
                f"mean must be (p,) and covariance (p, p), got {self.mean.shape}, "
                f"{self.covariance.shape}"
            )
        self._cholesky = np.tril(cho_factor(self.covariance, lower=True)[0])

    @classmethod
    def fit(
        cls, train_features: np.ndarray, val_features: np.ndarray, quantile: float = 0.99
    ) -> FeatureDensity:
        """Fit the Gaussian on ``train_features`` (n, p) and the threshold on
        ``val_features`` (m, p)."""
        mean, covariance, shrinkage = ledoit_wolf_covariance(train_features)
        density = cls(mean, covariance, shrinkage, np.inf, quantile)
        density.threshold = float(conformal_quantile(density.score(val_features), quantile))
        return density

    def score(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance (n,) of ``features`` (n, p) from the training features."""
        x = _columns("features", features)
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"fitted on {self.mean.shape[0]} features, got {x.shape[1]}")
        z = solve_triangular(self._cholesky, (x - self.mean).T, lower=True)
        return np.sqrt(np.sum(z**2, axis=0))

    def is_outlier(self, features: np.ndarray) -> np.ndarray:
        """Boolean (n,): ``score(features) > threshold``."""
        return self.score(features) > self.threshold

    def state_arrays(self) -> dict[str, np.ndarray]:
        """All fitted values as numpy arrays (for ``safetensors.numpy.save_file``)."""
        return {
            "mean": self.mean,
            "covariance": self.covariance,
            "shrinkage": np.array([self.shrinkage]),
            "threshold": np.array([self.threshold]),
            "quantile": np.array([self.quantile]),
        }

    @classmethod
    def from_state_arrays(cls, arrays: dict[str, np.ndarray]) -> FeatureDensity:
        """Inverse of :meth:`state_arrays`."""
        return cls(
            arrays["mean"],
            arrays["covariance"],
            float(arrays["shrinkage"][0]),
            float(arrays["threshold"][0]),
            float(arrays["quantile"][0]),
        )

    def to_dict(self) -> dict:
        """JSON-serialisable form (arrays as nested lists), read back by :meth:`from_dict`."""
        return {
            "method": "Mahalanobis distance, Ledoit-Wolf covariance",
            "mean": self.mean.tolist(),
            "covariance": self.covariance.tolist(),
            "shrinkage": self.shrinkage,
            "threshold": self.threshold,
            "quantile": self.quantile,
        }

    @classmethod
    def from_dict(cls, d: dict) -> FeatureDensity:
        """Inverse of :meth:`to_dict`."""
        return cls(d["mean"], d["covariance"], d["shrinkage"], d["threshold"], d["quantile"])
