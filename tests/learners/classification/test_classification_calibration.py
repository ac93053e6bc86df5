"""Temperature scaling, conformal prediction sets and the calibration error of a classifier,
on synthetic logits whose true probabilities are known; the classifier's optimiser recipes."""

import numpy as np
import pytest
import torch

from retroscope.learners.classification.calibration import (
    ConformalSets,
    fit_temperature,
    nll,
    probabilities,
)
from retroscope.learners.classification.evaluation import (
    confusion_matrix,
    expected_calibration_error,
)
from retroscope.learners.classification.module import Classifier, ClassificationModule


def _sample(rng, n, k=5):
    """Logits z whose softmax is the true class distribution, and classes drawn from it."""
    z = rng.normal(0.0, 1.5, (n, k))
    p = probabilities(z, 1.0)
    labels = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return z, labels


def test_temperature_undoes_overconfidence():
    rng = np.random.default_rng(1)
    z, labels = _sample(rng, 4000)
    overconfident = 3.0 * z  # a network three times too sure of itself
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(3.0, rel=0.15)
    assert nll(overconfident, labels, t) < nll(overconfident, labels)
    before = expected_calibration_error(probabilities(overconfident, 1.0), labels)
    after = expected_calibration_error(probabilities(overconfident, t), labels)
    assert after < 0.03 < before


def test_conformal_sets_cover_new_samples_at_the_nominal_rate():
    rng = np.random.default_rng(2)
    z, labels = _sample(rng, 1000)
    sets = ConformalSets.fit(probabilities(z, 1.0), labels, coverage=0.9)
    z_new, labels_new = _sample(rng, 4000)
    probs = probabilities(z_new, 1.0)
    assert sets.coverage(probs, labels_new) == pytest.approx(0.9, abs=0.025)
    inside = sets.sets(probs)
    assert inside[np.arange(len(probs)), probs.argmax(axis=1)].all()  # never empty
    assert 1.0 < inside.sum(axis=1).mean() < 5.0
    assert ConformalSets.from_dict(sets.to_dict()).quantile == sets.quantile


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    matrix = confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 1]])


def test_the_classifier_trains_with_sgd_and_a_step_schedule():
    network = Classifier("plain_cnn", {"input_size": [8, 8], "width": 4, "n_blocks": 2}, 3)
    assert network(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    module = ClassificationModule(network, lr=1e-3, epochs=4, steps_per_epoch=5,
                                  optimizer="sgd", step_size=2, decay=0.1)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.SGD)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
