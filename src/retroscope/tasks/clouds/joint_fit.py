"""Joint 2D fit of all the clouds of a shot: the model of the shot, its analytic Jacobian, the
bounded least squares and the labels the fitted clouds redraw.

Hofer et al., Mach. Learn.: Sci. Technol. 2, 045008 (2021), Sec. 5, fit Eq. (1) to one cloud
at a time; where clouds overlap, that fit lands between them (measured: :mod:`.refine`). Here
every cloud the network found is fitted at once, the model of the shot being

    OD(x, y) = Ib + sum_k I0_k exp(-2 [x_k'^2 / wx_k^2 + y_k'^2 / wy_k^2])
                  + sum_BEC I_tf max(0, 1 - x'^2/rx^2 - y'^2/ry^2)^(3/2)

(Eq. 1 per thermal cloud, a shared background Ib; a BEC is a thermal Gaussian plus a
Thomas-Fermi condensate with the same centre and angle, :mod:`.profiles`) + the rings and
crescents of the "other" class (:func:`.profiles.ring_column`, nine parameters each, started
from an algebraic circle fit of the mask, :func:`ring_seed`), on the pixels of the union of
the clouds' enlarged boxes (the far wings sampled sparsely, :func:`_problem`). Bounded least
squares (scipy's trust-region-reflective method), with the analytic Jacobian, started from
the mask moments (:func:`.moments.gaussian_from_mask`).

The fitted 1/e^2 ellipse redraws the cloud's box and mask exactly as the paper drew its labels
from fits (Sec. 2); for a BEC the ellipse takes on each axis the larger of the thermal 1/e^2
radius and the Thomas-Fermi radius (:meth:`.profiles.Cloud.label_ellipse`); a ring's mask is
where its fitted OD is at least e^-2 of its peak, as its label is drawn (:class:`CloudFit`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import least_squares
from threadpoolctl import threadpool_limits

from retroscope.tasks.clouds.fitting import expand_box
from retroscope.tasks.clouds.geometry import (
    Gaussian2D,
    box_xyxy,
    canonical,
    ellipse_mask,
    pixel_centres,
    rotated,
)
from retroscope.tasks.clouds.moments import box_slices
from retroscope.tasks.clouds.profiles import (
    LABEL_LEVEL,
    integrated_od,
    ring_column,
    thomas_fermi_column,
)

__all__ = ["CloudFit", "RingSeed", "bic", "joint_fit", "ring_seed"]

MIN_WIDTH = 0.5  # px
MAX_CRESCENT = 10.0  # azimuthal decay of a crescent; the simulated ones have 0.3-3
MAX_NFEV = 40  # measured: 30 -> 200 evaluations move the mAP by 0.003 and cost 3x
#: the Thomas-Fermi radii and peak of a BEC seed, as fractions of the mask's radii and OD
BEC_SEED = {"tf_radius": 0.6, "tf_share": 0.6}
#: a fitted thermal part below this fraction of a BEC's peak OD does not set its label (the
#: simulated BECs have at least 1/7 of their peak in the thermal part)
THERMAL_VISIBLE = 0.05
#: the fit takes every FAR_STRIDE-th pixel (both axes) of the wings far from the clouds
FAR_STRIDE = 2


@dataclass(frozen=True)
class CloudFit:
    """One cloud of a joint fit: its class, its fitted parameters as the fit orders them
    (thermal: x0, y0, wx, wy, theta, I0; BEC: those and rx, ry, I_tf, the Thomas-Fermi radii
    along the same axes; ring: the nine of :func:`_ring`) and the shared background Ib."""

    kind: str
    params: tuple[float, ...]
    background: float

    @property
    def gaussian(self) -> Gaussian2D | None:
        """The thermal part, canonical (wx >= wy), on the background; None for a ring."""
        if self.kind == "other":
            return None
        x0, y0, wx, wy, theta, amplitude = self.params[:6]
        return Gaussian2D(x0, y0, *(float(v) for v in canonical(wx, wy, theta)), amplitude,
                          self.background)

    def _tf(self) -> tuple[float, float, float] | None:
        if self.kind != "BEC":
            return None
        rx, ry, amplitude = self.params[6:9]
        wx, wy = self.params[2:4]
        return (ry, rx, amplitude) if wy > wx else (rx, ry, amplitude)  # canonical axes

    @property
    def tf_rx(self) -> float | None:
        """Thomas-Fermi radius along the canonical Gaussian's wx axis (BEC), px."""
        return None if self._tf() is None else self._tf()[0]

    @property
    def tf_ry(self) -> float | None:
        return None if self._tf() is None else self._tf()[1]

    @property
    def tf_amplitude(self) -> float | None:
        return None if self._tf() is None else self._tf()[2]

    @property
    def label(self) -> tuple[float, float, float, float, float] | None:
        """The label ellipse (x0, y0, wx, wy, theta), canonical; for a BEC the larger of the
        thermal 1/e^2 and the Thomas-Fermi radius per axis (the thermal radii only where the
        thermal part is visible, :data:`THERMAL_VISIBLE`); None for a ring."""
        g = self.gaussian
        if g is None:
            return None
        if self.kind != "BEC":
            return (g.x0, g.y0, g.wx, g.wy, g.theta)
        thermal = g.amplitude > THERMAL_VISIBLE * self.peak
        lx = max(self.tf_rx, g.wx if thermal else 0.0)
        ly = max(self.tf_ry, g.wy if thermal else 0.0)
        return (g.x0, g.y0, *(float(v) for v in canonical(lx, ly, g.theta)))

    @property
    def peak(self) -> float:
        """Peak OD above the background: thermal + condensate, or the ring's I0."""
        return float(self.params[5]) + (self.tf_amplitude or 0.0)

    @property
    def integrated_od(self) -> float:
        """Integral of the fitted thermal profile, px^2: (pi/2) wx wy I0 (+ (2 pi/5) rx ry
        I_tf for a BEC); NaN for a ring (no closed form; sum the OD over its mask)."""
        if self.kind == "other":
            return float("nan")
        g = self.gaussian
        return integrated_od(g.wx, g.wy, g.amplitude, self.tf_rx or 0.0, self.tf_ry or 0.0,
                             self.tf_amplitude or 0.0)

    def _profile(self, shape) -> np.ndarray:
        y, x = pixel_centres(shape)
        if self.kind == "other":
            return _ring(x, y, np.array(self.params, dtype=np.float64))
        g = self.gaussian
        out = g.render(shape) - g.background
        if self.kind == "BEC":
            out = out + thomas_fermi_column(x, y, g.x0, g.y0, self.tf_rx, self.tf_ry, g.theta,
                                            self.tf_amplitude)
        return out

    def render(self, shape: tuple[int, int]) -> np.ndarray:
        """The fitted profile of this cloud on the shared background."""
        return self._profile(shape) + self.background

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The label: inside the 1/e^2 ellipse, or for a ring where its fitted OD is at least
        e^-2 of its peak (as :meth:`.profiles.Cloud.mask` draws the truth)."""
        if self.kind == "other":
            return self._profile(shape) >= LABEL_LEVEL * self.params[5]
        return ellipse_mask(shape, *self.label)

    def box(self, shape: tuple[int, int]) -> np.ndarray:
        rows, cols = shape
        if self.kind == "other":
            mask = self.mask(shape)
            if not mask.any():
                return np.array([0.0, 0.0, 0.0, 0.0])
            i, j = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
            return np.array([j[0], i[0], j[-1] + 1, i[-1] + 1], dtype=np.float64)
        return np.clip(box_xyxy(*self.label), 0.0, [cols, rows, cols, rows])


@dataclass(frozen=True)
class RingSeed:
    """Start of a ring's fit: the parameters of :func:`.profiles.ring_column` and a
    background."""

    x0: float
    y0: float
    wx: float
    wy: float
    theta: float
    amplitude: float
    width: float
    crescent: float
    crescent_angle: float
    background: float = 0.0

    def box(self) -> np.ndarray:
        return box_xyxy(self.x0, self.y0, self.wx + self.width, self.wy + self.width,
                        self.theta)


def ring_seed(image, mask, background: float) -> RingSeed:
    """A ring's start from its mask: centre and radius from the OD-weighted algebraic circle
    fit of the mask's pixels (Kasa 1976: x^2 + y^2 + D x + E y + F = 0 in least squares, which
    also places an arc), the half-thickness from the mask's area over its length (area =
    2 w x the arc's length), a crescent towards the OD-weighted mean direction where the mask
    covers less than 90% of the azimuths."""
    y, x = pixel_centres(image.shape)
    y, x = np.broadcast_arrays(y, x)
    inside = np.asarray(mask, dtype=bool)
    xs, ys = x[inside], y[inside]
    w = np.clip(image[inside] - background, 0.0, None) + 1e-6
    a = np.stack([xs, ys, np.ones_like(xs)], 1) * np.sqrt(w)[:, None]
    d, e, f = np.linalg.lstsq(a, -(xs**2 + ys**2) * np.sqrt(w), rcond=None)[0]
    x0, y0 = -d / 2, -e / 2
    radius = float(np.sqrt(max(x0**2 + y0**2 - f, 1.0)))
    phi = np.arctan2(ys - y0, xs - x0)
    covered = len(np.unique(np.floor((phi + np.pi) / (2 * np.pi) * 36))) / 36
    width = max(inside.sum() / (4 * np.pi * radius * covered), MIN_WIDTH)
    angle = float(np.arctan2((w * np.sin(phi)).sum(), (w * np.cos(phi)).sum()))
    amplitude = float(np.percentile(image[inside] - background, 95))
    return RingSeed(float(x0), float(y0), radius, radius, 0.0, max(amplitude, 1e-3),
                    float(width), 0.0 if covered > 0.9 else 1.0, angle, background)


def _n_params(kind: str) -> int:
    return 9 if kind in ("BEC", "other") else 6


def _ring(x, y, q, jacobian: bool = False):
    """Ring column (:func:`.profiles.ring_column`, the simulator's) for parameters
    q = (x0, y0, wx, wy, theta, I0, w, c, phi_c), and with ``jacobian`` (f, derivatives).

    f = I0 G Z with u = x'/wx, v = y'/wy, rho = |(u, v)|, d = (rho - 1) sqrt(wx wy),
    G = exp(-2 d^2 / w^2), phi = atan2(v, u), Z = exp(-c (1 - cos(phi - phi_c))); so
    d ln f = -4 d/w^2 dd - c sin(phi - phi_c) dphi for the geometric parameters, with
    dd = sqrt(wx wy) drho + (rho - 1) d sqrt(wx wy), drho = (u du + v dv)/rho and
    dphi = (u dv - v du)/rho^2.
    """
    if not jacobian:
        return ring_column(x, y, *q)
    x0, y0, wx, wy, theta, amp, width, crescent, angle = q
    c, s = np.cos(theta), np.sin(theta)
    xr, yr = rotated(x, y, x0, y0, theta)
    u, v = xr / wx, yr / wy
    rho = np.maximum(np.hypot(u, v), 1e-9)
    root = np.sqrt(wx * wy)
    d = (rho - 1.0) * root
    delta = np.arctan2(v, u) - angle
    shape = np.exp(-2.0 * d**2 / width**2 - crescent * (1.0 - np.cos(delta)))
    f = amp * shape
    # (du, dv) for x0, y0, wx, wy, theta, and d sqrt(wx wy) for wx, wy
    du = {"x0": -c / wx, "y0": -s / wx, "wx": -u / wx, "wy": 0.0, "theta": yr / wx}
    dv = {"x0": s / wy, "y0": -c / wy, "wx": 0.0, "wy": -v / wy, "theta": -xr / wy}
    droot = {"x0": 0.0, "y0": 0.0, "wx": root / (2 * wx), "wy": root / (2 * wy), "theta": 0.0}
    radial, azimuthal = -4.0 * d / width**2, -crescent * np.sin(delta)
    columns = []
    for name in ("x0", "y0", "wx", "wy", "theta"):
        drho = (u * du[name] + v * dv[name]) / rho
        dphi = (u * dv[name] - v * du[name]) / rho**2
        dd = root * drho + (rho - 1.0) * droot[name]
        columns.append(f * (radial * dd + azimuthal * dphi))
    columns += [shape, f * 4.0 * d**2 / width**3, -f * (1.0 - np.cos(delta)),
                f * crescent * np.sin(delta)]
    return f, np.stack(columns, axis=1)


def _model_and_jacobian(x, y, kinds):
    """Residual-model function of the joint fit and its Jacobian over pixels (x, y).

    Parameters: ``p[0]`` = Ib, then per cloud (x0, y0, wx, wy, theta, I0) and for a BEC also
    (rx, ry, I_tf); a ring ("other") has the nine parameters of :func:`_ring`. Thermal part:
    g = exp(E), E = -2 (x'^2/wx^2 + y'^2/wy^2); condensate:
    t = u^(3/2), u = max(0, 1 - x'^2/rx^2 - y'^2/ry^2), dt/dq = (3/2) u^(1/2) du/dq.
    """
    offsets = np.cumsum([1] + [_n_params(k) for k in kinds])[:-1]

    def evaluate(p, jacobian: bool):
        model = np.full(x.shape, p[0])
        jac = np.zeros((x.size, p.size)) if jacobian else None
        if jacobian:
            jac[:, 0] = 1.0
        for kind, o in zip(kinds, offsets):
            if kind == "other":
                if jacobian:
                    f, jac[:, o:o + 9] = _ring(x, y, p[o:o + 9], True)
                else:
                    f = _ring(x, y, p[o:o + 9])
                model += f
                continue
            x0, y0, wx, wy, theta, amp = p[o:o + 6]
            c, s = np.cos(theta), np.sin(theta)
            xr, yr = rotated(x, y, x0, y0, theta)
            ax, ay = xr / wx**2, yr / wy**2
            g = np.exp(-2.0 * (xr * ax + yr * ay))
            model += amp * g
            if jacobian:
                ag = amp * g
                jac[:, o] = ag * 4 * (ax * c - ay * s)
                jac[:, o + 1] = ag * 4 * (ax * s + ay * c)
                jac[:, o + 2] = ag * 4 * xr * ax / wx
                jac[:, o + 3] = ag * 4 * yr * ay / wy
                jac[:, o + 4] = ag * -4 * xr * yr * (1 / wx**2 - 1 / wy**2)
                jac[:, o + 5] = g
            if kind != "BEC":
                continue
            rx, ry, amp_tf = p[o + 6:o + 9]
            bx, by = xr / rx**2, yr / ry**2
            u = np.maximum(0.0, 1.0 - xr * bx - yr * by)
            root = np.sqrt(u)
            model += amp_tf * u * root
            if jacobian:
                d = 1.5 * amp_tf * root  # dt/du times I_tf
                jac[:, o] += d * 2 * (bx * c - by * s)
                jac[:, o + 1] += d * 2 * (bx * s + by * c)
                jac[:, o + 4] += d * -2 * xr * yr * (1 / rx**2 - 1 / ry**2)
                jac[:, o + 6] = d * 2 * xr * bx / rx
                jac[:, o + 7] = d * 2 * yr * by / ry
                jac[:, o + 8] = u * root
        return model, jac

    return evaluate, offsets


@dataclass
class _Problem:
    """A joint fit's pixels (``region`` of the frame), bounds and start, one block of
    parameters per cloud after the shared background ``p[0]``; ``offset`` (on the region's
    pixels) is the light of clouds held fixed, subtracted from the data."""

    kinds: list[str]
    region: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    start: np.ndarray
    offset: np.ndarray | float = 0.0

    def blocks(self) -> list[slice]:
        offsets = np.cumsum([1] + [_n_params(k) for k in self.kinds])
        return [slice(int(a), int(b)) for a, b in zip(offsets[:-1], offsets[1:])]

    def without(self, j: int, p: np.ndarray) -> _Problem:
        """The same pixels and bounds without cloud ``j``, started at ``p`` minus its block."""
        drop = self.blocks()[j]
        keep = np.r_[0:drop.start, drop.stop:p.size]
        return replace(self, kinds=self.kinds[:j] + self.kinds[j + 1:], lower=self.lower[keep],
                       upper=self.upper[keep], start=p[keep])

    def local(self, p: np.ndarray, fits, free: list[int], shape) -> _Problem:
        """The clouds ``free`` alone (and the background), started at ``p``, on the pixels of
        their boxes doubled; the other clouds' fitted light is held fixed."""
        region = np.zeros(shape, dtype=bool)
        for k in free:  # the ellipse's box: a ring fitted to nothing has an empty mask
            try:
                si, sj = box_slices(expand_box(box_xyxy(*_ellipse(fits[k])), 2.0, shape), shape)
            except ValueError:  # an ellipse outside the frame adds no pixels
                continue
            region[si, sj] = True
        region &= self.region
        fixed = sum((fits[k]._profile(shape) for k in range(len(fits)) if k not in free),
                    np.zeros(shape))
        blocks = self.blocks()
        keep = np.r_[0, np.concatenate([np.arange(blocks[k].start, blocks[k].stop)
                                        for k in free])]
        return _Problem([self.kinds[k] for k in free], region, self.lower[keep],
                        self.upper[keep], p[keep], fixed[region])


def _problem(image_shape, seeds, kinds) -> _Problem:
    """Pixels, bounds and start of the joint fit of ``seeds`` (see :func:`joint_fit`).

    The pixels: every pixel within 1.5 1/e^2 radii of a thermal cloud (where it has more than
    1% of its peak) or inside a ring's box, and every :data:`FAR_STRIDE`-th pixel along both
    axes out to the doubled boxes, which hold only background and the last wings."""
    region = np.zeros(image_shape, dtype=bool)
    near = np.zeros(image_shape, dtype=bool)
    lower, upper, start = [-np.inf], [np.inf], [seeds[0].background]
    for seed, kind in zip(seeds, kinds):
        if kind == "other":
            roi = expand_box(seed.box(), 1.5, image_shape)
            si, sj = box_slices(roi, image_shape)
            region[si, sj] = True
            si, sj = box_slices(expand_box(seed.box(), 1.0, image_shape), image_shape)
            near[si, sj] = True
            size = max(roi[2] - roi[0], roi[3] - roi[1], 2.0)
            lower += [roi[0], roi[1], 1.0, 1.0, -np.inf, 0.0, MIN_WIDTH, 0.0, -np.inf]
            upper += [roi[2], roi[3], size, size, np.inf, np.inf, size / 2, MAX_CRESCENT,
                      np.inf]
            start += [seed.x0, seed.y0, seed.wx, seed.wy, seed.theta,
                      max(seed.amplitude, 1e-3), seed.width, seed.crescent,
                      seed.crescent_angle]
            continue
        wx, wy, theta = (max(float(v), MIN_WIDTH) if k < 2 else float(v)
                         for k, v in enumerate(canonical(seed.wx, seed.wy, seed.theta)))
        box = box_xyxy(seed.x0, seed.y0, wx, wy, theta)
        roi = expand_box(box, 2.0, image_shape)
        si, sj = box_slices(roi, image_shape)
        region[si, sj] = True
        si, sj = box_slices(expand_box(box, 1.5, image_shape), image_shape)
        near[si, sj] = True
        size = max(roi[2] - roi[0], roi[3] - roi[1], 2.0)
        amp = max(float(seed.amplitude), 1e-3)
        lower += [roi[0], roi[1], MIN_WIDTH, MIN_WIDTH, -np.inf, 0.0]
        upper += [roi[2], roi[3], 2 * size, 2 * size, np.inf, np.inf]
        if kind == "BEC":
            share, frac = BEC_SEED["tf_share"], BEC_SEED["tf_radius"]
            start += [seed.x0, seed.y0, wx, wy, theta, (1 - share) * amp,
                      frac * wx, frac * wy, share * amp]
            lower += [MIN_WIDTH, MIN_WIDTH, 0.0]
            upper += [2 * size, 2 * size, np.inf]
        else:
            start += [seed.x0, seed.y0, wx, wy, theta, amp]
    grid = np.zeros(image_shape, dtype=bool)
    grid[::FAR_STRIDE, ::FAR_STRIDE] = True
    region &= near | grid
    lower, upper = np.asarray(lower), np.asarray(upper)
    start = np.clip(np.asarray(start, dtype=np.float64), lower + 1e-9, upper - 1e-9)
    return _Problem(list(kinds), region, lower, upper, start)


def _solve(image, problem: _Problem, max_nfev: int):
    """Bounded least squares of ``problem`` on ``image``: (list of :class:`CloudFit`,
    scipy's result)."""
    y, x = pixel_centres(image.shape)
    y, x = np.broadcast_arrays(y, x)
    region = problem.region
    x, y, data = x[region], y[region], image[region] - problem.offset
    evaluate, _ = _model_and_jacobian(x, y, problem.kinds)
    # one BLAS thread: the trust-region SVDs are of (pixels x parameters) matrices far too
    # small to share, and threads spinning against a busy core (a training run, the other
    # frames of a batch) made them 10-30x slower here (measured)
    with threadpool_limits(limits=1, user_api="blas"):
        result = least_squares(lambda p: evaluate(p, False)[0] - data,
                               problem.start, jac=lambda p: evaluate(p, True)[1],
                               bounds=(problem.lower, problem.upper), method="trf",
                               max_nfev=max_nfev)
    p = result.x
    fits = [CloudFit(kind, tuple(float(v) for v in p[block]), float(p[0]))
            for kind, block in zip(problem.kinds, problem.blocks())]
    return fits, result


def bic(result, n_pixels: int) -> float:
    """Bayesian information criterion of a least-squares fit with unknown Gaussian noise:
    n ln(RSS / n) + k ln n (Schwarz 1978), k the number of fitted parameters."""
    rss = max(float(np.sum(result.fun**2)), 1e-300)
    return n_pixels * np.log(rss / n_pixels) + result.x.size * np.log(n_pixels)


def joint_fit(image, seeds, kinds, max_nfev: int = MAX_NFEV):
    """Fit all clouds of ``image`` (rows, cols OD) at once.

    ``seeds``: one :class:`Gaussian2D` per thermal cloud (centre, 1/e^2 radii, angle, peak;
    the first seed's background starts Ib) or :class:`RingSeed` per ring; ``kinds``: "MOT",
    "ODT", "BEC" or "other" per cloud. Returns (list of :class:`CloudFit`, scipy's
    result) or (None, None) when the fit region has too few pixels.
    """
    image = np.asarray(image, dtype=np.float64)
    problem = _problem(image.shape, seeds, kinds)
    if problem.region.sum() < 2 * problem.start.size:
        return None, None
    return _solve(image, problem, max_nfev)


def _ellipse(fit: CloudFit) -> tuple[float, float, float, float, float]:
    if fit.kind == "other":
        x0, y0, wx, wy, theta, _, width = fit.params[:7]
        return (x0, y0, wx + width, wy + width, theta)
    return fit.label
