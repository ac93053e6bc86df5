"""2D Gaussian fits of atom clouds and the paper's ROI labelling recipe.

Hofer et al., Mach. Learn.: Sci. Technol. 2, 045008 (2021):

- Eq. (1) is fitted by bounded least squares (scipy's trust-region-reflective method with the
  analytic Jacobian) to the pixels whose centre lies in a region-of-interest box.
- Sec. 2: the hand-drawn ROIs were "expanded by a factor of two - excepting where the expanded
  ROIs would overlap", the clouds fitted, the ROIs redrawn at the fitted 1/e^2 radii along the
  image axes and the whole done a second time (:func:`label_clouds`).
- Sec. 5: the parameters from a segmentation mask can seed the fit, which the paper found 30 %
  faster than a fit without seed parameters (:func:`seeded_fit`).

Coordinates and boxes follow :mod:`retroscope.tasks.clouds.geometry`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from retroscope.tasks.clouds.geometry import Gaussian2D, canonical, pixel_centres, rotated
from retroscope.tasks.clouds.moments import box_slices

__all__ = ["FitResult", "expand_box", "fit_gaussian_2d", "label_clouds", "seeded_fit"]

MAX_NFEV = 500
MIN_WIDTH = 0.5  # px: narrower than a pixel is not resolvable
CENTRE_MARGIN = 0.25  # the centre may leave the ROI by this fraction of its size


@dataclass(frozen=True)
class FitResult:
    """Outcome of one fit: canonical parameters (wx >= wy, theta in [-pi/2, pi/2)), scipy's
    convergence flag, number of model evaluations, final cost (half the weighted sum of
    squared residuals), wall time of the least-squares call in seconds and scipy's message."""

    params: Gaussian2D
    success: bool
    nfev: int
    cost: float
    seconds: float
    message: str


def _residuals_and_jacobian(x, y, data, sqrt_w):
    """Weighted residual function of Eq. (1) over pixels (x, y) and its analytic Jacobian.

    With E = -2 (x'^2/wx^2 + y'^2/wy^2), g = e^E, model = Ib + I0 g:
    dE/dx0 = 4 (x' cos/wx^2 - y' sin/wy^2), dE/dy0 = 4 (x' sin/wx^2 + y' cos/wy^2),
    dE/dwx = 4 x'^2/wx^3, dE/dwy = 4 y'^2/wy^3, dE/dtheta = -4 x' y' (1/wx^2 - 1/wy^2).
    """

    def parts(p):
        x0, y0, wx, wy, theta = p[:5]
        xr, yr = rotated(x, y, x0, y0, theta)
        return xr, yr, np.exp(-2.0 * ((xr / wx) ** 2 + (yr / wy) ** 2))

    def fun(p):
        g = parts(p)[2]
        return sqrt_w * (p[6] + p[5] * g - data)

    def jac(p):
        x0, y0, wx, wy, theta, amplitude, _ = p
        xr, yr, g = parts(p)
        c, s = np.cos(theta), np.sin(theta)
        ax, ay = xr / wx**2, yr / wy**2
        dE = np.stack([4 * (ax * c - ay * s), 4 * (ax * s + ay * c), 4 * xr * ax / wx,
                       4 * yr * ay / wy, -4 * xr * yr * (1 / wx**2 - 1 / wy**2)], axis=1)
        columns = [amplitude * g[:, None] * dE, g[:, None], np.ones((g.size, 1))]
        return sqrt_w[:, None] * np.concatenate(columns, axis=1)

    return fun, jac


def _roi_pixels(image, roi, weights):
    """Pixel centres, values and sqrt(weights) inside ``roi`` (whole image if None), and the
    ROI box clipped to the image."""
    rows, cols = image.shape
    box = np.array([0.0, 0.0, cols, rows]) if roi is None else np.asarray(roi, float)
    si, sj = box_slices(box, image.shape)
    y, x = pixel_centres(image.shape)
    y, x = np.broadcast_arrays(y[si, :], x[:, sj])
    if weights is None:
        sqrt_w = np.ones(x.size)
    else:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != image.shape or not np.all(weights >= 0):
            raise ValueError(f"weights: expected non-negative values of shape {image.shape}, "
                             f"got shape {weights.shape}")
        sqrt_w = np.sqrt(weights[si, sj]).ravel()
    clipped = np.array([sj.start, si.start, sj.stop, si.stop], dtype=np.float64)
    return x.ravel(), y.ravel(), image[si, sj].ravel(), sqrt_w, clipped


def fit_gaussian_2d(image, roi=None, seed: Gaussian2D | None = None, max_nfev: int = MAX_NFEV,
                    weights=None) -> FitResult:
    """Fit Eq. (1) to the pixels of ``image`` whose centre lies in the xyxy box ``roi``
    (clipped to the image; the whole image if None).

    Start: ``seed`` (widths and angle canonicalised) if given; otherwise the generic start of
    a lab script - centre at the ROI centre, widths a quarter of the ROI's width and height,
    theta = 0, amplitude = max - median and background = median of the ROI pixels.
    Bounds: widths in [0.5 px, 2 x the larger ROI side], centre in the ROI widened by a
    quarter of its size on each side; theta, amplitude and background are free. The amplitude
    may be negative: clouds in optical depth or fluorescence are positive, but a dip (raw
    transmission) or an empty ROI then fits to a clear negative or zero I0 instead of sticking
    to a bound. ``weights`` (e.g. 1/variance, shape of the image) weight the squared residuals.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image: expected a 2D (rows, cols) array, got shape {image.shape}")
    x, y, data, sqrt_w, box = _roi_pixels(image, roi, weights)
    if data.size < 7:
        raise ValueError(f"roi: {data.size} pixels cannot constrain 7 parameters")
    width, height = box[2] - box[0], box[3] - box[1]
    margin = CENTRE_MARGIN * np.array([width, height])
    w_max = 2.0 * max(width, height)
    lower = [box[0] - margin[0], box[1] - margin[1], MIN_WIDTH, MIN_WIDTH, -np.inf, -np.inf,
             -np.inf]
    upper = [box[2] + margin[0], box[3] + margin[1], w_max, w_max, np.inf, np.inf, np.inf]
    if seed is None:
        median = float(np.median(data))
        start = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, width / 4, height / 4, 0.0,
                 float(data.max()) - median, median]
    else:
        wx, wy, theta = canonical(seed.wx, seed.wy, seed.theta)
        start = [seed.x0, seed.y0, float(wx), float(wy), float(theta), seed.amplitude,
                 seed.background]
    start = np.clip(np.asarray(start, dtype=np.float64), lower, upper)
    fun, jac = _residuals_and_jacobian(x, y, data, sqrt_w)
    t0 = time.perf_counter()
    result = least_squares(fun, start, jac=jac, bounds=(lower, upper), method="trf",
                           max_nfev=max_nfev)
    seconds = time.perf_counter() - t0
    x0, y0, wx, wy, theta, amplitude, background = result.x
    wx, wy, theta = canonical(wx, wy, theta)
    params = Gaussian2D(float(x0), float(y0), float(wx), float(wy), float(theta),
                        float(amplitude), float(background))
    return FitResult(params, bool(result.success), int(result.nfev), float(result.cost),
                     seconds, str(result.message))


def _overlap(a, b) -> bool:
    """Whether two xyxy boxes share a region of positive area."""
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def expand_box(box, factor: float, shape: tuple[int, int], others: Sequence = ()) -> np.ndarray:
    """``box`` (xyxy) scaled by ``factor`` about its centre and clipped to an image of
    ``shape`` (rows, cols). If the expanded box would overlap any box in ``others``, the
    unexpanded (clipped) box is returned instead (Sec. 2)."""
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or np.any(box[2:] <= box[:2]):
        raise ValueError(f"box: expected finite (x_min, y_min, x_max, y_max) with max > min, "
                         f"got {box.tolist()}")
    if not factor > 0:
        raise ValueError(f"factor: expected a positive expansion factor, got {factor}")
    centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2
    expanded = np.concatenate([centre - factor * half, centre + factor * half])
    if any(_overlap(expanded, np.asarray(other, dtype=np.float64)) for other in others):
        expanded = box
    rows, cols = shape
    return np.clip(expanded, 0.0, [cols, rows, cols, rows])


def seeded_fit(image, seed: Gaussian2D, expand: float = 2.0, *, others: Sequence = (),
               max_nfev: int = MAX_NFEV, weights=None) -> FitResult:
    """Fit started from ``seed`` (e.g. the mask moments of Sec. 5) in the seed's 1/e^2 box
    expanded ``expand`` times about its centre (unexpanded where it would overlap a box in
    ``others``)."""
    image = np.asarray(image, dtype=np.float64)
    roi = expand_box(seed.box(), expand, image.shape, others)
    return fit_gaussian_2d(image, roi, seed, max_nfev=max_nfev, weights=weights)


def label_clouds(image, rois: Sequence, iterations: int = 2, expand: float = 2.0,
                 max_nfev: int = MAX_NFEV) -> list[Gaussian2D]:
    """The paper's labelling recipe (Sec. 2): fit each cloud in its rough ROI expanded
    ``expand`` times (unexpanded where the expanded ROIs of two clouds would overlap), redraw
    each ROI at the fitted 1/e^2 radii along the image axes (geometry.box_xyxy) and repeat,
    ``iterations`` fits per cloud in all. The first fit uses the generic start of
    :func:`fit_gaussian_2d`, later ones start from the previous fit. Returns the last fits."""
    image = np.asarray(image, dtype=np.float64)
    if iterations < 1:
        raise ValueError(f"iterations: expected at least 1, got {iterations}")
    boxes = [np.asarray(roi, dtype=np.float64) for roi in rois]
    fits: list[Gaussian2D | None] = [None] * len(boxes)
    for _ in range(iterations):
        grown = [expand_box(box, expand, image.shape) for box in boxes]
        for i, box in enumerate(boxes):
            others = grown[:i] + grown[i + 1:]
            roi = expand_box(box, expand, image.shape, others)
            fits[i] = fit_gaussian_2d(image, roi, fits[i], max_nfev=max_nfev).params
        boxes = [fit.box() for fit in fits]
    return fits
