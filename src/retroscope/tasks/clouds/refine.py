"""Joint 2D fit of all the clouds of a shot, seeded by the network's masks.

Hofer et al., Mach. Learn.: Sci. Technol. 2, 045008 (2021), Sec. 5, seed a 2D fit of Eq. (1)
with the parameters read from a Mask R-CNN mask, one cloud at a time. Where clouds overlap (a
MOT on an ODT, two ODTs crossing) a one-cloud fit in the ROI x 2 sees the neighbour's light and
lands between the two: on the simulated test split two thirds of the MOT/ODT clouds have
another cloud inside their doubled ROI, and a fit started at the *true* parameters keeps a
mask IoU above 0.75 for only 51% (MOT) and 68% (ODT) of those, against 100% of the isolated
ones (median IoU 0.99; measured with ``fit_gaussian_2d``). Here every cloud the network found
is fitted at once, the model of the shot being

    OD(x, y) = Ib + sum_k I0_k exp(-2 [x_k'^2 / wx_k^2 + y_k'^2 / wy_k^2])
                  + sum_BEC I_tf max(0, 1 - x'^2/rx^2 - y'^2/ry^2)^(3/2)

(Eq. 1 per thermal cloud, a shared background Ib; a BEC is a thermal Gaussian plus a
Thomas-Fermi condensate with the same centre and angle, :mod:`.profiles`), on the pixels of the
union of the clouds' doubled boxes, with the pixels of "other" objects (rings, which have no
Gaussian model) left out. Bounded least squares (scipy's trust-region-reflective method) with
the analytic Jacobian, started from the mask moments (:func:`.moments.gaussian_from_mask`).

The fitted 1/e^2 ellipse redraws the cloud's box and mask exactly as the paper drew its labels
from fits (Sec. 2); for a BEC the ellipse takes on each axis the larger of the thermal 1/e^2
radius and the Thomas-Fermi radius (:meth:`.profiles.Cloud.label_ellipse`). A fitted cloud
whose ellipse overlaps the network's own mask by less than ``accept_iou`` is not trusted (the
fit wandered to another cloud or to a fringe): it keeps the network's box, mask and mask
moments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation
from scipy.optimize import least_squares

from retroscope.tasks.clouds.fitting import expand_box
from retroscope.tasks.clouds.geometry import (
    Gaussian2D,
    box_xyxy,
    canonical,
    ellipse_mask,
    pixel_centres,
    rotated,
)
from retroscope.tasks.clouds.moments import box_slices, gaussian_from_mask
from retroscope.tasks.clouds.profiles import thomas_fermi_column

__all__ = ["CloudFit", "joint_fit", "refine_detection"]

MIN_WIDTH = 0.5  # px
MAX_NFEV = 200
#: the Thomas-Fermi radii and peak of a BEC seed, as fractions of the mask's radii and OD
BEC_SEED = {"tf_radius": 0.6, "tf_share": 0.6}
#: a fitted thermal part below this fraction of a BEC's peak OD does not set its label (the
#: simulated BECs have at least 1/7 of their peak in the thermal part)
THERMAL_VISIBLE = 0.05


@dataclass(frozen=True)
class CloudFit:
    """One cloud of a joint fit: ``gaussian`` (thermal part, canonical; background = the
    shared Ib), for a BEC the Thomas-Fermi radii ``tf_rx, tf_ry`` (along that Gaussian's wx,
    wy axes) and peak ``tf_amplitude``; the label ellipse ``label`` =
    (x0, y0, wx, wy, theta), canonical."""

    kind: str
    gaussian: Gaussian2D
    label: tuple[float, float, float, float, float]
    tf_rx: float | None = None
    tf_ry: float | None = None
    tf_amplitude: float | None = None

    @property
    def peak(self) -> float:
        """Peak OD above the background: thermal + condensate."""
        return self.gaussian.amplitude + (self.tf_amplitude or 0.0)

    @property
    def integrated_od(self) -> float:
        """Integral of the fitted profile, px^2: (pi/2) wx wy I0 + (2 pi/5) rx ry I_tf."""
        g = self.gaussian
        total = np.pi / 2 * g.wx * g.wy * g.amplitude
        if self.kind == "BEC":
            total += 2 * np.pi / 5 * self.tf_rx * self.tf_ry * self.tf_amplitude
        return float(total)

    def render(self, shape: tuple[int, int]) -> np.ndarray:
        """The fitted profile of this cloud on the shared background."""
        g = self.gaussian
        out = g.render(shape)
        if self.kind == "BEC":
            y, x = pixel_centres(shape)
            out = out + thomas_fermi_column(x, y, g.x0, g.y0, self.tf_rx, self.tf_ry, g.theta,
                                            self.tf_amplitude)
        return out

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        return ellipse_mask(shape, *self.label)

    def box(self, shape: tuple[int, int]) -> np.ndarray:
        rows, cols = shape
        box = box_xyxy(*self.label)
        return np.clip(box, 0.0, [cols, rows, cols, rows])


def _n_params(kind: str) -> int:
    return 9 if kind == "BEC" else 6


def _model_and_jacobian(x, y, kinds):
    """Residual-model function of the joint fit and its Jacobian over pixels (x, y).

    Parameters: ``p[0]`` = Ib, then per cloud (x0, y0, wx, wy, theta, I0) and for a BEC also
    (rx, ry, I_tf). Thermal part: g = exp(E), E = -2 (x'^2/wx^2 + y'^2/wy^2); condensate:
    t = u^(3/2), u = max(0, 1 - x'^2/rx^2 - y'^2/ry^2), dt/dq = (3/2) u^(1/2) du/dq.
    """
    offsets = np.cumsum([1] + [_n_params(k) for k in kinds])[:-1]

    def evaluate(p, jacobian: bool):
        model = np.full(x.shape, p[0])
        jac = np.zeros((x.size, p.size)) if jacobian else None
        if jacobian:
            jac[:, 0] = 1.0
        for kind, o in zip(kinds, offsets):
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


def joint_fit(image, seeds, kinds, exclude=None, max_nfev: int = MAX_NFEV):
    """Fit all clouds of ``image`` (rows, cols OD) at once.

    ``seeds``: one :class:`Gaussian2D` per cloud (centre, 1/e^2 radii, angle, peak; the first
    seed's background starts Ib); ``kinds``: "MOT", "ODT" or "BEC" per cloud; ``exclude``:
    boolean mask of pixels left out (rings). Returns (list of :class:`CloudFit`, scipy's
    result) or (None, None) when the fit region has too few pixels.
    """
    image = np.asarray(image, dtype=np.float64)
    shape = image.shape
    rows, cols = shape
    region = np.zeros(shape, dtype=bool)
    lower, upper, start = [-np.inf], [np.inf], [seeds[0].background]
    for seed, kind in zip(seeds, kinds):
        wx, wy, theta = (max(float(v), MIN_WIDTH) if k < 2 else float(v)
                         for k, v in enumerate(canonical(seed.wx, seed.wy, seed.theta)))
        roi = expand_box(box_xyxy(seed.x0, seed.y0, wx, wy, theta), 2.0, shape)
        si, sj = box_slices(roi, shape)
        region[si, sj] = True
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
    if exclude is not None:
        region &= ~np.asarray(exclude, dtype=bool)
    n_free = len(start)
    if region.sum() < 2 * n_free:
        return None, None
    y, x = pixel_centres(shape)
    y, x = np.broadcast_arrays(y, x)
    x, y, data = x[region], y[region], image[region]
    lower, upper = np.asarray(lower), np.asarray(upper)
    start = np.clip(np.asarray(start, dtype=np.float64), lower + 1e-9, upper - 1e-9)
    evaluate, offsets = _model_and_jacobian(x, y, list(kinds))
    result = least_squares(lambda p: evaluate(p, False)[0] - data,
                           start, jac=lambda p: evaluate(p, True)[1],
                           bounds=(lower, upper), method="trf", max_nfev=max_nfev)
    p = result.x
    fits = []
    for kind, o in zip(kinds, offsets):
        x0, y0, wx, wy, theta, amp = (float(v) for v in p[o:o + 6])
        gw = Gaussian2D(x0, y0, *(float(v) for v in canonical(wx, wy, theta)), amp, float(p[0]))
        if kind == "BEC":
            rx, ry, amp_tf = (float(v) for v in p[o + 6:o + 9])
            thermal = amp > THERMAL_VISIBLE * (amp + amp_tf)
            lx, ly = max(rx, wx if thermal else 0.0), max(ry, wy if thermal else 0.0)
            label = (x0, y0, *(float(v) for v in canonical(lx, ly, theta)))
            if wy > wx:  # canonical() swapped the thermal axes: the condensate's go along
                rx, ry = ry, rx
            fits.append(CloudFit(kind, gw, label, rx, ry, amp_tf))
        else:
            fits.append(CloudFit(kind, gw, (x0, y0, gw.wx, gw.wy, gw.theta)))
    return fits, result


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def refine_detection(image, det: dict, classes, score_threshold: float = 0.5,
                     accept_iou: float = 0.6, duplicate_iou: float = 0.7,
                     mask_threshold: float = 0.5) -> dict:
    """The network's detections of one shot with the boxes and masks of its thermal clouds
    redrawn from a joint fit (module docstring).

    ``det``: torchvision's output as numpy (``boxes``, ``scores``, ``labels``, soft ``masks``
    (n, H, W)); ``classes``: the class names of labels 1, 2, ... Fitted are the detections of
    class MOT, ODT or BEC with a score >= ``score_threshold`` that are not duplicates (mask
    IoU >= ``duplicate_iou``) of a higher-scoring one; a duplicate is redrawn with its
    original's ellipse. Returns a copy of ``det`` with redrawn ``boxes`` and ``masks`` (0/1
    float) and ``fits``: one :class:`CloudFit` or None per detection.
    """
    image = np.asarray(image, dtype=np.float64)
    image = image[0] if image.ndim == 3 else image
    shape = image.shape
    out = {k: np.array(v, copy=True) for k, v in det.items()}
    n = len(out["scores"])
    out["fits"] = [None] * n
    if n == 0:
        return out
    soft = np.asarray(out["masks"], dtype=np.float64)
    masks = soft >= mask_threshold
    kinds = [classes[int(label) - 1] for label in out["labels"]]
    confident = [i for i in np.argsort(-out["scores"], kind="stable")
                 if out["scores"][i] >= score_threshold and masks[i].any()]
    primary: dict[int, int] = {}
    fitted: list[int] = []
    for i in confident:
        twin = next((j for j in fitted if _iou(masks[i], masks[j]) >= duplicate_iou), None)
        if twin is not None:
            primary[i] = twin
        elif kinds[i] in ("MOT", "ODT", "BEC"):
            fitted.append(i)
    if not fitted:
        return out
    rings = [i for i in confident if kinds[i] not in ("MOT", "ODT", "BEC") and i not in primary]
    exclude = binary_dilation(masks[rings].any(axis=0), iterations=1) if rings else None
    seeds = [gaussian_from_mask(image, soft[i], all_masks=soft[confident]) for i in fitted]
    fits, _ = joint_fit(image, seeds, [kinds[i] for i in fitted], exclude)
    if fits is None:
        return out
    accepted = {}
    for i, fit in zip(fitted, fits):
        drawn = fit.mask(shape)
        if _iou(drawn, masks[i]) >= accept_iou:
            accepted[i] = fit
    for i, j in primary.items():
        if j in accepted:
            accepted[i] = accepted[j]
    for i, fit in accepted.items():
        out["boxes"][i] = fit.box(shape)
        out["masks"][i] = fit.mask(shape).astype(out["masks"].dtype)
        out["fits"][i] = fit
    return out
