"""Heteroscedastic loss, split-conformal calibration and the Mahalanobis OOD score."""

import json

import numpy as np
import pytest
import torch

from retroscope.train.uncertainty import (
    ConformalCalibrator,
    FeatureDensity,
    conformal_quantile,
    gaussian_nll,
    ledoit_wolf_covariance,
)


def test_gaussian_nll_matches_torch_and_is_minimal_at_true_variance():
    g = torch.Generator().manual_seed(0)
    mean, target = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g)
    logvar = torch.randn(64, 3, generator=g)
    ref = torch.nn.functional.gaussian_nll_loss(mean, target, logvar.exp(), eps=0.0)
    torch.testing.assert_close(gaussian_nll(mean, logvar, target), ref)
    # for residual r the NLL over log-variance is minimal at logvar = log r^2
    r = torch.tensor([0.5])
    grid = torch.linspace(-4, 2, 601)
    nll = gaussian_nll(torch.zeros(601), grid, r.expand(601), reduction="none")
    assert abs(grid[nll.argmin()] - torch.log(r**2)) < 0.02


def heteroscedastic(rng, n):
    """Truth y = f(x) + sigma(x) * eps for two outputs with different noise scales."""
    x = rng.uniform(0, 1, size=(n, 2))
    sigma = np.stack([0.05 + 0.5 * x[:, 0], 0.2 + 0.1 * np.sin(6 * x[:, 1])], axis=1)
    mean = np.stack([np.sin(3 * x[:, 0]), x[:, 1] ** 2], axis=1)
    return mean, sigma, mean + sigma * rng.standard_normal((n, 2))


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_conformal_intervals_cover_90_percent_on_fresh_data(scale):
    rng = np.random.default_rng(1)
    mean, sigma, y = heteroscedastic(rng, 2000)
    cal = ConformalCalibrator.fit(mean, scale * sigma, y, coverage=0.9)
    mean_t, sigma_t, y_t = heteroscedastic(rng, 20000)
    covered = cal.coverage(mean_t, scale * sigma_t, y_t)
    assert covered.shape == (2,)
    assert np.all((covered > 0.87) & (covered < 0.93))
    # the calibrated quantile undoes the mis-scaling: 1.645 / scale for Gaussian noise
    np.testing.assert_allclose(cal.quantile, 1.645 / scale, rtol=0.06)
    naive = np.mean(np.abs(y_t - mean_t) <= 1.645 * scale * sigma_t, axis=0)
    if scale != 1.0:
        assert np.all(naive < 0.5)


def test_conformal_quantile_rank_interval_shape_and_roundtrip():
    scores = np.arange(1.0, 20.0)  # n = 19: ceil(20 * 0.9) = 18th smallest
    assert conformal_quantile(scores, 0.9) == 18.0
    with pytest.raises(ValueError, match="too few"):
        conformal_quantile(np.arange(5.0), 0.9)
    cal = ConformalCalibrator.fit(np.zeros(19), None, scores, coverage=0.9)
    low, high = cal.interval(np.ones(4))
    assert low.shape == (4,) and np.all(low == -17.0) and np.all(high == 19.0)
    again = ConformalCalibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(again.quantile, cal.quantile)
    assert again.level == 0.9 and again.n_calibration == 19
    with pytest.raises(ValueError, match="sigma must be positive"):
        cal.interval(np.ones(2), np.array([1.0, 0.0]))


def test_ledoit_wolf_shrinkage_limits():
    rng = np.random.default_rng(2)
    # isotropic truth: the target mu*I is right, so the shrinkage is large
    assert ledoit_wolf_covariance(rng.standard_normal((200, 20)))[2] > 0.5
    # strongly anisotropic truth with many samples: almost no shrinkage
    x = rng.standard_normal((5000, 5)) * np.array([10.0, 3.0, 1.0, 0.3, 0.1])
    assert ledoit_wolf_covariance(x)[2] < 0.05
    # fewer samples than features: still positive definite
    cov = ledoit_wolf_covariance(rng.standard_normal((10, 30)))[1]
    assert np.linalg.eigvalsh(cov).min() > 0


def test_feature_density_flags_shifted_points():
    rng = np.random.default_rng(3)
    p = 16
    mix = rng.normal(size=(p, p)) / np.sqrt(p)
    draw = lambda n: rng.standard_normal((n, p)) @ mix.T + 2.0  # noqa: E731
    density = FeatureDensity.fit(draw(2000), draw(2000), quantile=0.99)
    inliers = draw(5000)
    assert 0.003 < density.is_outlier(inliers).mean() < 0.025
    std = inliers.std(axis=0)
    signs = rng.choice([-1.0, 1.0], size=(5000, p))
    assert density.is_outlier(inliers + 5.0 * std * signs).mean() > 0.95
    # the score is the Mahalanobis distance under the fitted covariance
    d = inliers[:3] - density.mean
    expected = np.sqrt(np.einsum("ni,ij,nj->n", d, np.linalg.inv(density.covariance), d))
    np.testing.assert_allclose(density.score(inliers[:3]), expected, rtol=1e-10)


def test_feature_density_serialisation():
    rng = np.random.default_rng(4)
    density = FeatureDensity.fit(rng.standard_normal((300, 4)), rng.standard_normal((300, 4)))
    x = rng.standard_normal((10, 4))
    from_json = FeatureDensity.from_dict(json.loads(json.dumps(density.to_dict())))
    from_arrays = FeatureDensity.from_state_arrays(density.state_arrays())
    for other in (from_json, from_arrays):
        np.testing.assert_allclose(other.score(x), density.score(x))
        assert other.threshold == density.threshold and other.quantile == 0.99
    with pytest.raises(ValueError, match="fitted on 4 features"):
        density.score(np.zeros((2, 5)))
