"""Template photometry: a faint ring of known shape in white noise."""

import numpy as np
import pytest

from retroscope.tasks.clouds.photometry import template_photometry, template_region


def _ring(shape=(512, 512), centre=(300.0, 280.0), radius=60.0, width=6.0):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    r = np.hypot(cols - centre[0], rows - centre[1])
    return np.exp(-0.5 * ((r - radius) / width) ** 2)


def test_significance_follows_the_white_noise_limit():
    rng = np.random.default_rng(1)
    shape, noise, peak = _ring(), 0.05, 0.01
    region = template_region(shape)
    inside = shape[region].mean()  # mean of the unit ring over the region
    expected = peak * inside / (noise / np.sqrt(region.sum()))
    found = [template_photometry(peak * shape + rng.normal(0, noise, shape.shape), region)
             for _ in range(5)]
    sig = np.array([f["significance"] for f in found])
    excess = np.array([f["excess"] for f in found])
    assert excess.mean() == pytest.approx(peak * inside, rel=0.15)
    assert np.median(sig) == pytest.approx(expected, rel=0.3)
    empty = template_photometry(rng.normal(0, noise, shape.shape), region)
    assert abs(empty["significance"]) < 4 and empty["shifts"] == 56


def test_clear_errors():
    region = template_region(_ring())
    with pytest.raises(ValueError, match="shapes"):
        template_photometry(np.zeros((10, 10)), region)
    with pytest.raises(ValueError, match="empty"):
        template_photometry(np.zeros((512, 512)), np.zeros((512, 512), bool))
    with pytest.raises(ValueError, match="no positive"):
        template_region(np.zeros((8, 8)))
