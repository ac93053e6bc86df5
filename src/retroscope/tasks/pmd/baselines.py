"""Classical alternatives to the network (Shvetsov-Shilovski & Lein 2023, Sec. V), all on the
network's input image of a map (256 x 128, log10 of the map over its maximum, floored at five
decades, scaled to [0, 1]; :meth:`PmdTask.network_input`).

- :class:`DirectComparison` (DC+MSE): the parameters of the training map closest by the
  mean-squared difference of the images.
- :class:`SiftComparison` (DC+SIFT): the parameters of the training map with the most matching
  SIFT descriptors.
- :class:`HogSvm` (SVM+HOG) and :class:`HogTree` (DT+HOG): support-vector regression and a
  regression tree on histograms of oriented gradients.
- :class:`SiftSvm` (SVM+SIFT): support-vector regression on the SIFT descriptors.

The features are those of :mod:`.features`. All share one interface (``fit(maps, params)``,
``predict(maps)``, ``compare``), so a study can loop over :data:`ALTERNATIVES`. The direct
comparisons learn nothing: their accuracy is set by how densely the training set covers the
parameter box, and their cost per map grows with the set. The regressors answer only the
task's target columns (R and I).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from retroscope.tasks.pmd.features import dense_sift, hog_features


class Alternative:
    """What the alternatives share: the training parameters, the images of the maps, the
    check that ``fit`` came first, and the comparison with the network. A subclass
    implements ``_fit(images)`` and ``_predict(images) -> dict``."""

    method = ""
    #: the evaluation hands it the training split (``fit``) before ``compare``
    learns_from_training = True

    def __init__(self, task) -> None:
        self.task = task
        self.params: dict | None = None

    def _images(self, observables) -> np.ndarray:
        return np.stack([self.task.network_input(o)[0] for o in observables])

    def fit(self, observables, params: dict) -> Alternative:
        """Learn from (or keep) the training maps and their parameters."""
        self.params = {k: np.asarray(v) for k, v in params.items()}
        self._fit(self._images(observables))
        return self

    def predict(self, observables) -> dict:
        """The parameters found for each map."""
        if self.params is None:
            raise RuntimeError(f"{type(self).__name__} needs fit(training maps) first")
        return self._predict(self._images(observables))

    def compare(self, observables, truth: dict, pred_record: dict, plot_dir: Path,
                progress: bool = True, network_sims: int | None = None) -> dict:
        """Mean absolute errors of the method and of the network on the same maps, and the
        seconds per map of the method."""
        t0 = time.perf_counter()
        guess = self.predict(observables)
        seconds = (time.perf_counter() - t0) / max(len(observables), 1)
        out = {"method": self.method, "n_maps": len(observables),
               "training_maps": len(next(iter(self.params.values()))),
               "seconds_per_map": seconds, "network_training_simulations": network_sims}
        for name in self.task.targets.columns:
            true = np.asarray(truth[name], dtype=np.float64)
            out[f"baseline_mae_{name}"] = float(np.mean(np.abs(guess[name] - true)))
            out[f"network_mae_{name}"] = float(np.mean(np.abs(
                np.asarray(pred_record[name], dtype=np.float64) - true)))
        return out


class DirectComparison(Alternative):
    """Sec. V (after Ref. [17]): the parameters of the training map nearest by the
    mean-squared difference of the images."""

    method = "direct comparison with the training maps by mean-squared difference (DC+MSE)"

    def __init__(self, task) -> None:
        super().__init__(task)
        self.images: np.ndarray | None = None

    def _fit(self, images: np.ndarray) -> None:
        self.images = images.reshape(len(images), -1)

    def _predict(self, images: np.ndarray) -> dict:
        x = images.reshape(len(images), -1)
        # |a - b|^2 = |a|^2 - 2 a.b + |b|^2, all pairs at once
        d2 = ((x ** 2).sum(1)[:, None] - 2 * x @ self.images.T
              + (self.images ** 2).sum(1)[None, :])
        nearest = np.argmin(d2, axis=1)
        return {k: v[nearest] for k, v in self.params.items()}


class SiftComparison(Alternative):
    """Sec. V: the parameters of the training map with the most SIFT matches. As in the
    paper, each descriptor of the map is matched to its nearest descriptor of a training map
    (Euclidean distance, over all keypoints, not only the one at the same place) and counts as
    a match when that distance is below ``threshold`` (OpenCV's descriptors have a norm of
    about 512; the default 100 is about a fifth of it). The descriptors are dense
    (:func:`.features.dense_sift`). Ties in the count go to the smaller summed distance."""

    method = "direct comparison with the training maps by SIFT matches (DC+SIFT)"

    def __init__(self, task, threshold: float = 100.0) -> None:
        super().__init__(task)
        self.threshold = threshold
        self.descriptors: np.ndarray | None = None

    def _fit(self, images: np.ndarray) -> None:
        self.descriptors = dense_sift(images)

    def _predict(self, images: np.ndarray) -> dict:
        n_train, n_points, dim = self.descriptors.shape
        train = self.descriptors.reshape(-1, dim)
        train_sq = (train ** 2).sum(1)
        best = []
        for a in dense_sift(images):
            d2 = (a ** 2).sum(1)[:, None] - 2 * a @ train.T + train_sq[None, :]
            nearest = np.sqrt(np.clip(d2, 0, None)).reshape(n_points, n_train, n_points)
            nearest = nearest.min(axis=2)  # per descriptor of the map, per training map
            matches = (nearest < self.threshold).sum(axis=0)
            best.append(np.lexsort((nearest.sum(axis=0), -matches))[0])
        return {k: v[np.asarray(best)] for k, v in self.params.items()}


class FeatureRegression(Alternative):
    """A scikit-learn regressor from image features to the task's target columns, each
    standardised with the training split's mean and spread. A subclass gives
    ``features(images)`` and ``estimator()``."""

    def _fit(self, images: np.ndarray) -> None:
        y = np.stack([self.params[c] for c in self.task.targets.columns], axis=1)
        self.y_mean, self.y_std = y.mean(0), np.where(y.std(0) > 0, y.std(0), 1.0)
        x, model = self.features(images), self.estimator()
        with one_blas_thread():
            self.model = model.fit(x, (y - self.y_mean) / self.y_std)

    def _predict(self, images: np.ndarray) -> dict:
        x = self.features(images)
        with one_blas_thread():
            y = self.model.predict(x) * self.y_std + self.y_mean
        return {c: y[:, i] for i, c in enumerate(self.task.targets.columns)}


def one_blas_thread():
    """A context with one BLAS thread. scikit-learn's libsvm computes each kernel value as a
    BLAS dot product of two feature rows (scikit-learn PR #16530); OpenBLAS splits every such
    call over its threads, which made the SVR fits on SIFT features 25 times slower on a busy
    2-core machine. Only libraries already loaded are limited: build the estimator first."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def support_vector_regression():
    """One RBF-kernel SVR per target on standardised features; C chosen in {1, 10, 100} by
    3-fold cross-validation on the training split (epsilon 0.05 of a target's spread)."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    svr = make_pipeline(StandardScaler(), SVR(kernel="rbf", gamma="scale", epsilon=0.05))
    return MultiOutputRegressor(GridSearchCV(svr, {"svr__C": [1.0, 10.0, 100.0]}, cv=3,
                                             scoring="neg_mean_absolute_error"))


class HogSvm(FeatureRegression):
    """Sec. V: support-vector regression on the HOG of the image (cells of 16 x 32 pixels,
    :func:`.features.hog_features`; the SVR of :func:`support_vector_regression`)."""

    method = "support-vector regression on HOG features (SVM+HOG)"
    features = staticmethod(hog_features)
    estimator = staticmethod(support_vector_regression)


class HogTree(FeatureRegression):
    """Sec. V: one regression tree for both targets (scikit-learn's CART, grown until the
    leaves are pure, ``random_state`` 0) on the same HOG features as :class:`HogSvm`."""

    method = "decision-tree regression on HOG features (DT+HOG)"
    features = staticmethod(hog_features)

    @staticmethod
    def estimator():
        from sklearn.tree import DecisionTreeRegressor

        return DecisionTreeRegressor(random_state=0)


class SiftSvm(FeatureRegression):
    """Sec. V: support-vector regression on the SIFT descriptors of the image, concatenated
    in grid order (128 keypoints x 128 values; the SVR of :func:`support_vector_regression`).
    The paper's detected keypoints (15-20 on some maps) made this its worst method; the dense
    grid gives every map a full, aligned feature vector."""

    method = "support-vector regression on SIFT descriptors (SVM+SIFT)"
    estimator = staticmethod(support_vector_regression)

    @staticmethod
    def features(images: np.ndarray) -> np.ndarray:
        return dense_sift(images).reshape(len(images), -1)


#: the alternatives of Sec. V by short name, for studies that compare them all
ALTERNATIVES = {"dc_mse": DirectComparison, "dc_sift": SiftComparison, "svm_hog": HogSvm,
                "dt_hog": HogTree, "svm_sift": SiftSvm}
