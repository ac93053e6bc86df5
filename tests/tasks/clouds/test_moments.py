"""Gaussian parameters without fitting (Hofer et al. 2021, Sec. 5): mask and image moments,
histogram background, Eq. (3) and the whole pipeline."""

import numpy as np
import pytest

from retroscope.tasks.clouds.geometry import Gaussian2D, angle_difference, ellipse_mask
from retroscope.tasks.clouds.moments import (
    amplitude_from_power,
    background_histogram_peak,
    box_slices,
    gaussian_from_mask,
    image_moments,
    mask_moments,
)

SHAPE = (90, 110)  # rows, cols: non-square catches x/y mix-ups


@pytest.mark.parametrize("wx, wy, theta", [(10.0, 6.0, 0.3), (6.0, 10.0, 0.3),
                                           (30.0, 12.0, -1.2), (18.0, 11.0, 1.5),
                                           (25.0, 14.0, 0.0)])
def test_mask_moments_recover_the_ellipse(wx, wy, theta):
    x0, y0 = 55.3, 44.8
    est = mask_moments(ellipse_mask(SHAPE, x0, y0, wx, wy, theta))
    major, minor = max(wx, wy), min(wx, wy)
    true_theta = theta if wx >= wy else theta + np.pi / 2  # the canonical swap
    assert abs(est[0] - x0) < 0.1 and abs(est[1] - y0) < 0.1
    assert est[2] == pytest.approx(major, rel=0.025)
    assert est[3] == pytest.approx(minor, rel=0.025)
    assert abs(angle_difference(est[4], true_theta)) < 0.03
    assert -np.pi / 2 <= est[4] < np.pi / 2


def test_mask_moments_use_pixel_centres_and_soft_weights():
    mask = np.zeros((5, 7))
    mask[2, 3] = 1.0
    assert mask_moments(mask)[:2] == (3.5, 2.5)
    mask[2, 4] = 0.6  # weighted: pulled 0.6/1.6 of the way; unweighted: halfway
    assert mask_moments(mask)[0] == pytest.approx(3.5 + 0.6 / 1.6)
    assert mask_moments(mask, weighted=False)[0] == pytest.approx(4.0)
    mask[0, 0] = 0.4  # below threshold: ignored
    assert mask_moments(mask)[0] == pytest.approx(3.5 + 0.6 / 1.6)


def test_mask_moments_of_an_empty_mask_raise():
    with pytest.raises(ValueError, match="mask"):
        mask_moments(np.full((4, 4), 0.3))


def test_image_moments_unbiased_in_a_wide_box_and_biased_low_in_the_tight_roi():
    cloud = Gaussian2D(52.4, 41.7, 11.0, 7.0, 0.0, 2.0, 0.3)
    image = cloud.render(SHAPE)
    wide = [cloud.x0 - 33, cloud.y0 - 33, cloud.x0 + 33, cloud.y0 + 33]
    est = image_moments(image, wide, background=0.3)
    assert est[2] == pytest.approx(11.0, rel=0.02) and est[3] == pytest.approx(7.0, rel=0.02)
    assert est[0] == pytest.approx(52.4, abs=0.05) and est[1] == pytest.approx(41.7, abs=0.05)
    # The paper's ROI at the 1/e^2 radii truncates at 2 sigma: variance x 0.774, w x 0.88.
    tight = image_moments(image, cloud.box(), background=0.3)
    assert tight[2] < 0.9 * 11.0 and tight[3] < 0.9 * 7.0


def test_image_moments_clip_negative_pixels():
    cloud = Gaussian2D(30.5, 20.5, 6.0, 4.0, 0.5, 1.0, 0.0)
    image = cloud.render((40, 60))
    dented = image.copy()
    dented[[6, 6, 34, 34], [11, 48, 11, 48]] = -50.0  # unclipped: a negative variance
    box = [10, 5, 50, 36]
    assert image_moments(dented, box) == pytest.approx(image_moments(image, box), abs=1e-9)
    assert image_moments(image, box)[2] == pytest.approx(6.0, rel=0.01)
    with pytest.raises(ValueError, match="image"):
        image_moments(image, box, background=5.0)


def test_box_slices_select_pixel_centres_and_clip():
    rows, cols = box_slices([1.5, -3.0, 4.6, 2.5], (10, 10))
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 3, 1, 5)
    with pytest.raises(ValueError, match="box"):
        box_slices([20, 20, 30, 30], (10, 10))


def test_amplitude_from_power_recovers_i0():
    cloud = Gaussian2D(50.2, 44.9, 14.0, 9.0, 0.7, 3.0, 0.6)
    image = cloud.render(SHAPE)
    i0 = amplitude_from_power(image, 50.2, 44.9, 14.0, 9.0, 0.7, 0.6)
    assert i0 == pytest.approx(3.0, rel=0.02)


def test_background_peak_on_a_noisy_image():
    rng = np.random.default_rng(2)
    cloud = Gaussian2D(50.0, 40.0, 15.0, 10.0, 0.2, 2.0, 0.35)
    sigma = 0.1
    image = cloud.render(SHAPE) + rng.normal(0.0, sigma, SHAPE)
    image[3, 4] = 1e6  # a hot pixel must not stretch the histogram
    ib = background_histogram_peak(image, cloud.mask(SHAPE))
    assert abs(ib - 0.35) < sigma
    assert abs(background_histogram_peak(image, cloud.mask(SHAPE), bins=40) - 0.35) < sigma
    counts = np.round(rng.poisson(20.0, SHAPE)).astype(float)
    assert abs(background_histogram_peak(counts) - 20.0) <= 1.5  # integer data: whole counts
    with pytest.raises(ValueError, match="bins"):
        background_histogram_peak(image, bins="many")


def test_gaussian_from_mask_pipeline():
    rng = np.random.default_rng(3)
    clouds = [Gaussian2D(35.0, 40.0, 14.0, 9.0, 0.4, 2.0, 0.2),
              Gaussian2D(80.0, 50.0, 8.0, 5.0, -0.9, 1.0, 0.0)]
    image = sum(c.render(SHAPE) for c in clouds) + rng.normal(0.0, 0.03, SHAPE)
    masks = np.stack([c.mask(SHAPE) for c in clouds])
    est = gaussian_from_mask(image, masks[0].astype(float) * 0.9, all_masks=masks)
    assert est.wx == pytest.approx(14.0, rel=0.03) and est.wy == pytest.approx(9.0, rel=0.03)
    assert est.background == pytest.approx(0.2, abs=0.03)
    assert est.amplitude == pytest.approx(2.0, rel=0.05)
    with pytest.raises(ValueError, match="all_masks"):
        gaussian_from_mask(image, masks[0], all_masks=masks[:, :10])


def test_od_weighted_centre_corrects_a_shifted_mask():
    rng = np.random.default_rng(5)
    cloud = Gaussian2D(50.0, 45.0, 12.0, 8.0, 0.3, 1.5, 0.1)
    image = cloud.render(SHAPE) + rng.normal(0.0, 0.02, SHAPE)
    # the network drew the outline 2 px off along x
    shifted = Gaussian2D(52.0, 45.0, 12.0, 8.0, 0.3, 1.5, 0.1).mask(SHAPE).astype(float)
    by_mask = gaussian_from_mask(image, shifted, centre="mask")
    by_od = gaussian_from_mask(image, shifted)
    assert by_mask.x0 == pytest.approx(52.0, abs=0.1)
    # the light inside the outline pulls the centre most of the way back
    assert abs(by_od.x0 - 50.0) < 0.5 * abs(by_mask.x0 - 50.0)
    assert by_od.y0 == pytest.approx(45.0, abs=0.2)
    with pytest.raises(ValueError, match="centre"):
        gaussian_from_mask(image, shifted, centre="peak")
