"""Fits of an answer's history, as a task asks for them (``Task.live_trend``).

``exponential_decay``: N(t) = N0 exp(-k t), a pseudo-first-order loss, e.g. of trapped
reactant ions under a steady flow of a reaction partner (reaction kinetics). Fitted by weighted least squares (scipy ``curve_fit``) with each point's
standard deviation taken from its 90% interval, sigma = (high - low) / (2 x 1.645); the rate
constant's uncertainty is the square root of its variance, scaled by the reduced chi-square
when that exceeds one (scatter beyond the stated intervals widens it, never narrows it).
Times are seconds since the first point.
"""

from __future__ import annotations

import numpy as np

Z90 = 1.6448536269514722   # the 95% quantile of the normal: a 90% interval is +-Z90 sigma


def exponential_decay(t_s, value, low=None, high=None) -> dict | None:
    """Fit N0 exp(-k t) to (t_s, value); None with fewer than 3 points or no fit.
    Returns n0, rate_per_s, rate_err_per_s, half_life_s and the curve's (t, N) for a plot."""
    from scipy.optimize import curve_fit

    t = np.asarray(t_s, float)
    y = np.asarray(value, float)
    if len(t) < 3 or np.ptp(t) <= 0:
        return None
    t = t - t.min()
    sigma = None
    if low is not None and high is not None:
        sigma = np.maximum((np.asarray(high, float) - np.asarray(low, float)) / (2 * Z90),
                           1e-6 * max(np.abs(y).max(), 1.0))

    def model(tt, n0, k):
        return n0 * np.exp(-k * tt)

    k0 = max(np.log(max(y[0], 1e-9) / max(y[-1], 1e-9)) / np.ptp(t), 1e-9)
    try:
        (n0, k), cov = curve_fit(model, t, y, p0=(max(y[0], 1e-9), k0), sigma=sigma,
                                 absolute_sigma=sigma is not None, maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    residual = (y - model(t, n0, k)) / (sigma if sigma is not None else 1.0)
    dof = max(len(t) - 2, 1)
    chi2 = float(residual @ residual / dof)
    k_err = float(np.sqrt(cov[1, 1] * max(chi2, 1.0))) if np.isfinite(cov[1, 1]) else None
    curve_t = np.linspace(0.0, t.max(), 100)
    return {"model": "N0 exp(-k t)", "n0": float(n0), "rate_per_s": float(k),
            "rate_err_per_s": k_err, "half_life_s": float(np.log(2) / k) if k > 0 else None,
            "reduced_chi2": chi2, "n_points": int(len(t)),
            "curve_t_s": curve_t.tolist(), "curve": model(curve_t, n0, k).tolist()}


TRENDS = {"exponential_decay": exponential_decay}


def fit_trend(name: str, t_s, value, low=None, high=None) -> dict | None:
    if name not in TRENDS:
        raise ValueError(f"unknown trend {name!r}; known: {sorted(TRENDS)}")
    return TRENDS[name](t_s, value, low, high)
