"""2D Gaussian fits and the ROI labelling recipe (Hofer et al. 2021, Secs. 2 and 5)."""

import numpy as np
import pytest

from retroscope.tasks.clouds import fitting
from retroscope.tasks.clouds.fitting import expand_box, fit_gaussian_2d, label_clouds, seeded_fit
from retroscope.tasks.clouds.geometry import Gaussian2D, angle_difference

SHAPE = (64, 80)
CLOUD = Gaussian2D(46.3, 28.6, 9.0, 5.5, 0.5, 2.0, 0.3)


def noisy(clouds, seed, sigma=0.05, shape=SHAPE):
    image = sum(c.render(shape) for c in clouds) - clouds[0].background * (len(clouds) - 1)
    return image + np.random.default_rng(seed).normal(0.0, sigma, shape)


def assert_close(est: Gaussian2D, true: Gaussian2D, rel=0.03, centre=0.15, angle=0.03):
    assert abs(est.x0 - true.x0) < centre and abs(est.y0 - true.y0) < centre
    assert est.wx == pytest.approx(true.wx, rel=rel) and est.wy == pytest.approx(true.wy, rel=rel)
    assert abs(angle_difference(est.theta, true.theta)) < angle
    assert est.amplitude == pytest.approx(true.amplitude, rel=rel)
    assert est.background == pytest.approx(true.background, abs=0.02)


def test_analytic_jacobian_matches_finite_differences():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 30, 50), rng.uniform(0, 20, 50)
    fun, jac = fitting._residuals_and_jacobian(x, y, rng.normal(size=50), rng.uniform(0.5, 2, 50))
    p = np.array([14.0, 9.0, 6.0, 3.5, 0.7, 1.5, 0.2])
    eps = 1e-6
    numeric = np.stack([(fun(p + eps * e) - fun(p - eps * e)) / (2 * eps) for e in np.eye(7)], 1)
    np.testing.assert_allclose(jac(p), numeric, atol=1e-7)


def test_unseeded_and_seeded_fits_recover_the_cloud():
    image = noisy([CLOUD], seed=1)
    unseeded = fit_gaussian_2d(image)
    seed = Gaussian2D(47.0, 28.0, 5.0, 9.7, 0.5 + np.pi / 2 + 0.08, 1.8, 0.25)  # wy > wx: swap
    seeded = seeded_fit(image, seed)
    for result in (unseeded, seeded):
        assert result.success and result.seconds > 0 and result.cost > 0
        assert_close(result.params, CLOUD)
        assert result.params.wx >= result.params.wy
        assert -np.pi / 2 <= result.params.theta < np.pi / 2
    assert seeded.nfev < unseeded.nfev


def test_roi_and_weights_restrict_the_fit_to_one_cloud():
    other = Gaussian2D(15.0, 40.0, 6.0, 6.0, 0.0, 3.0, 0.3)
    image = noisy([CLOUD, other], seed=2)
    result = fit_gaussian_2d(image, roi=CLOUD.box() + [-9, -9, 9, 9])
    assert_close(result.params, CLOUD)
    weights = np.ones(SHAPE)
    weights[:, :30] = 0.0  # hide the other cloud
    assert_close(fit_gaussian_2d(image, weights=weights).params, CLOUD)
    with pytest.raises(ValueError, match="weights"):
        fit_gaussian_2d(image, weights=weights[:, :10])
    with pytest.raises(ValueError, match="box"):
        fit_gaussian_2d(image, roi=[100, 100, 120, 120])


def test_expand_box_scales_clips_and_falls_back_on_overlap():
    np.testing.assert_allclose(expand_box([10, 20, 30, 30], 2.0, (100, 100)), [0, 15, 40, 35])
    np.testing.assert_allclose(expand_box([60, 20, 70, 40], 3.0, (50, 100)), [50, 0, 80, 50])
    others = [[38, 20, 50, 30]]  # overlaps the expanded box only
    np.testing.assert_allclose(expand_box([10, 20, 30, 30], 2.0, (100, 100), others),
                               [10, 20, 30, 30])
    with pytest.raises(ValueError, match="box"):
        expand_box([10, 20, 5, 30], 2.0, (100, 100))


def test_label_clouds_converges_from_rough_rois():
    image = noisy([CLOUD], seed=3)
    hx, hy = (CLOUD.box()[2:] - CLOUD.box()[:2]) / 2
    rough = [CLOUD.x0 - 0.6 * hx + 4, CLOUD.y0 - 0.7 * hy - 2, CLOUD.x0 + 0.6 * hx + 4,
             CLOUD.y0 + 0.7 * hy - 2]  # shifted and too small
    (fit,) = label_clouds(image, [rough])
    assert_close(fit, CLOUD)


def test_label_clouds_with_two_nearby_clouds_falls_back_to_unexpanded_rois(monkeypatch):
    left = Gaussian2D(24.0, 32.0, 7.0, 5.0, 0.3, 2.0, 0.3)
    right = Gaussian2D(52.0, 30.0, 8.0, 6.0, -0.6, 1.5, 0.3)
    image = noisy([left, right], seed=4, sigma=0.03)
    rois, calls = [left.box() + [1, -1, 2, 0], right.box() + [-1, 1, -2, 0]], []

    def recording_fit(image, roi=None, seed=None, **kwargs):
        calls.append(np.asarray(roi))
        return fit_gaussian_2d(image, roi, seed, **kwargs)

    monkeypatch.setattr(fitting, "fit_gaussian_2d", recording_fit)
    fits = label_clouds(image, rois, iterations=2)
    np.testing.assert_allclose(calls[0], np.clip(rois[0], 0, None))  # expansion fell back
    np.testing.assert_allclose(calls[1], rois[1])
    for fit, true in zip(fits, (left, right)):
        assert_close(fit, true, rel=0.04, centre=0.2, angle=0.05)
    with pytest.raises(ValueError, match="iterations"):
        label_clouds(image, rois, iterations=0)
