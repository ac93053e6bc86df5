"""The exponential-decay fit recovers a known rate constant and an honest uncertainty."""

import numpy as np
import pytest

from retroscope.live.trend import Z90, fit_trend


def test_exponential_decay_recovers_the_rate_within_its_uncertainty():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 600, 40)                       # s
    k_true, n0, sigma = 2.0e-3, 300.0, 6.0            # 1/s, ions, ions
    y = n0 * np.exp(-k_true * t) + rng.normal(scale=sigma, size=t.size)
    fit = fit_trend("exponential_decay", t, y, y - Z90 * sigma, y + Z90 * sigma)
    assert abs(fit["rate_per_s"] - k_true) < 3 * fit["rate_err_per_s"]
    assert fit["rate_err_per_s"] < 0.1 * k_true       # 40 points pin it to a few percent
    assert fit["half_life_s"] == pytest.approx(np.log(2) / fit["rate_per_s"])
    assert 0.5 < fit["reduced_chi2"] < 2.0            # the intervals describe the scatter


def test_too_few_points_give_no_fit_and_unknown_trends_are_refused():
    assert fit_trend("exponential_decay", [0, 1], [10, 9]) is None
    with pytest.raises(ValueError, match="unknown trend"):
        fit_trend("sine", [0, 1, 2], [1, 2, 3])
