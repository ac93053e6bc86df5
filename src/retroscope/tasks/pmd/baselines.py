"""Classical alternatives to the network (Shvetsov-Shilovski & Lein 2023, Sec. V): direct
comparison of a map with a precalculated set.

:class:`DirectComparison` ("DC+MSE"): the answer for a map is the parameters of the training
map closest to it by the mean-squared difference of the network's input images (log10 of the
map over its maximum, floored at five decades, scaled to [0, 1]). It learns nothing; its
accuracy is set by how densely the training set covers the parameter box, and its cost per
map grows with the set. The SIFT, HOG/SVM and decision-tree alternatives follow in the rest
of issue 18.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


class DirectComparison:
    """Nearest training map by mean-squared difference (see the module docstring)."""

    method = "direct comparison with the training maps by mean-squared difference (DC+MSE)"
    #: the evaluation hands it the training split (``fit``) before ``compare``
    learns_from_training = True

    def __init__(self, task) -> None:
        self.task = task
        self.images: np.ndarray | None = None
        self.params: dict | None = None

    def fit(self, observables, params: dict) -> DirectComparison:
        """Keep the network inputs of the training maps and their parameters."""
        self.images = np.stack([self.task.network_input(o)[0].ravel() for o in observables])
        self.params = {k: np.asarray(v) for k, v in params.items()}
        return self

    def predict(self, observables) -> dict:
        """The parameters of the nearest training map, for each map."""
        if self.images is None:
            raise RuntimeError("DirectComparison needs fit(training maps) first")
        x = np.stack([self.task.network_input(o)[0].ravel() for o in observables])
        # |a - b|^2 = |a|^2 - 2 a.b + |b|^2, all pairs at once
        d2 = ((x ** 2).sum(1)[:, None] - 2 * x @ self.images.T
              + (self.images ** 2).sum(1)[None, :])
        nearest = np.argmin(d2, axis=1)
        return {k: v[nearest] for k, v in self.params.items()}

    def compare(self, observables, truth: dict, pred_record: dict, plot_dir: Path,
                progress: bool = True, network_sims: int | None = None) -> dict:
        """Mean absolute errors of the comparison and of the network on the same maps, and
        the seconds per map of the comparison."""
        t0 = time.perf_counter()
        guess = self.predict(observables)
        seconds = (time.perf_counter() - t0) / max(len(observables), 1)
        out = {"method": self.method, "n_maps": len(observables),
               "training_maps": int(len(self.images)), "seconds_per_map": seconds,
               "network_training_simulations": network_sims}
        for name in self.task.targets.columns:
            true = np.asarray(truth[name], dtype=np.float64)
            out[f"baseline_mae_{name}"] = float(np.mean(np.abs(guess[name] - true)))
            out[f"network_mae_{name}"] = float(np.mean(np.abs(
                np.asarray(pred_record[name], dtype=np.float64) - true)))
        return out
