"""Laboratory fluorescence images -> the form of a simulated stored crystal image.

Follows the experimental preprocessing of Allsopp et al., J. Chem. Phys. 163, 044201 (2025),
Sec. III C-D: background removal, five-point median averaging, magnification (and trap-size)
rescaling, rotation of the trap axis to the vertical, an automatic ellipse fit that blanks
everything outside the crystal, optional enhancement of the outer layers (Eqs. 2-3),
recentring/cropping and brightness normalisation. :func:`preprocess_lab_image` runs the
chain; its settings (the keys, their checks, and reading one lab's settings from a
TOML/JSON(/YAML) file) are :mod:`.lab_settings`.

Conventions. Images are indexed (row, col) and displayed with row 0 at the top; the trap axis
of a simulated image runs along the rows (vertical), the radial direction x along the columns.
An output pixel is ``imaging.pixel_um`` micrometres of the *simulated* trap. All geometry is
done on the output pixel grid: the lab image is resampled once per pass with
:func:`scipy.ndimage.map_coordinates` (after an anti-aliasing tent filter when the lab pixels are
finer), so magnification, rotation and recentring cost a single interpolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from retroscope.tasks.crystal.lab_settings import validate_lab_settings
from retroscope.tasks.crystal.render import ImagingConfig

#: radius (um of the simulated trap) of the closing that joins neighbouring ion spots into
#: one crystal silhouette; it bridges gaps up to about twice this (ion spacings are 10-20 um)
CLOSE_UM = 12.0


@dataclass(frozen=True)
class Ellipse:
    """Axes-aligned ellipse on the output grid: centre (h = column, k = row), semi-axes
    a (along the columns, radial x) and b (along the rows, trap axis), all in pixels."""

    h: float
    k: float
    a: float
    b: float

    def f(self, shape: tuple[int, int]) -> np.ndarray:
        """f(x, y) = (x - h)^2 / a^2 + (y - k)^2 / b^2 on a grid (x = column, y = row)."""
        y, x = np.indices(shape, dtype=np.float64)
        return (x - self.h) ** 2 / self.a ** 2 + (y - self.k) ** 2 / self.b ** 2

    def scaled(self, factor: float) -> Ellipse:
        return Ellipse(self.h, self.k, self.a * factor, self.b * factor)


# -- image helpers -------------------------------------------------------------------------
def validate_image(image) -> np.ndarray:
    """A 2D, non-empty, finite integer or float array -> float64 (ValueError otherwise)."""
    a = np.asarray(image)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer)
                               or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"image must hold integer or float numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"image must be 2D (rows, cols), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"image is empty (shape {a.shape})")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"image contains {int(np.sum(~np.isfinite(a)))} NaN/inf pixel(s)")
    return a


def estimate_background(image: np.ndarray, border_px: int = 4) -> float:
    """Median of the outermost ``border_px`` rows and columns (the crystal is not there)."""
    b = max(1, min(int(border_px), (min(image.shape) + 1) // 2))
    edge = np.ones(image.shape, dtype=bool)
    edge[b:-b, b:-b] = False
    return float(np.median(image[edge]))


def median5(image: np.ndarray) -> np.ndarray:
    """Five-point (plus-shaped) two-dimensional median filter."""
    footprint = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
    return ndimage.median_filter(image, footprint=footprint, mode="nearest")


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (maximal between-class variance) of ``values``; foreground > it."""
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist).astype(np.float64)
    s0 = np.cumsum(hist * centres)
    w1 = w0[-1] - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        m0 = s0 / w0
        m1 = (s0[-1] - s0) / w1
        between = w0 * w1 * (m0 - m1) ** 2
    between = np.where((w0 > 0) & (w1 > 0), between, -1.0)
    return float(centres[int(np.argmax(between))])


def crystal_mask(image: np.ndarray, threshold="otsu", close_px: int = 3) -> np.ndarray:
    """Silhouette of the crystal: threshold, close the gaps between ion spots, fill holes, keep
    the largest connected piece. ``threshold``: "otsu" or a fraction of the 99.9th percentile."""
    if threshold == "otsu":
        thr = otsu_threshold(image)
    else:
        thr = float(threshold) * float(np.quantile(image, 0.999))
    mask = image > thr
    if not mask.any():
        return mask
    r = max(1, int(close_px))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = xx ** 2 + yy ** 2 <= r * r
    padded = np.pad(mask, r + 1)
    closed = ndimage.binary_closing(padded, structure=disk)[r + 1:-r - 1, r + 1:-r - 1]
    closed = ndimage.binary_fill_holes(closed | mask)
    labels, n = ndimage.label(closed)
    if n > 1:
        sizes = ndimage.sum_labels(closed, labels, index=np.arange(1, n + 1))
        closed = labels == 1 + int(np.argmax(sizes))
    return closed


def mask_moments(mask: np.ndarray, weights: np.ndarray | None = None
                 ) -> tuple[float, float, float, float, float]:
    """(row mean, col mean, var rows, var cols, cov row-col) of the pixels of ``mask``, each
    pixel weighted by ``weights`` (e.g. the intensity) or uniformly."""
    r, c = np.nonzero(mask)
    w = np.ones(len(r)) if weights is None else np.asarray(weights, np.float64)[r, c]
    if len(r) == 0 or not w.sum() > 0:
        raise ValueError("no crystal found in the image (nothing above the threshold)")
    w = w / w.sum()
    r = r.astype(np.float64)
    c = c.astype(np.float64)
    mr, mc = float(w @ r), float(w @ c)
    # + 1/12: a pixel is a unit square, not a point
    return (mr, mc, float(w @ (r - mr) ** 2) + 1 / 12, float(w @ (c - mc) ** 2) + 1 / 12,
            float(w @ ((r - mr) * (c - mc))))


def axis_tilt_deg(mask: np.ndarray, min_aspect: float = 1.0,
                  weights: np.ndarray | None = None) -> float:
    """Tilt of the crystal axis from the vertical, in degrees clockwise as displayed (row 0 at
    the top): > 0 when the upper end of the axis leans to the right.

    The principal axes come from the second moments of ``mask`` (pixels weighted by
    ``weights``, e.g. the image, which is less sensitive to the pixel grid); of the two, the
    one nearest the vertical is taken (the long axis of a prolate crystal imaged roughly
    upright), so the result lies in [-45, 45). A silhouette with major/minor axis ratio
    below ``min_aspect`` has no usable axis: 0 is returned.
    """
    _, _, vrr, vcc, vrc = mask_moments(mask, weights)
    tr, det = vrr + vcc, vrr * vcc - vrc ** 2
    disc = math.sqrt(max(0.0, tr * tr / 4 - det))
    lmax, lmin = tr / 2 + disc, max(tr / 2 - disc, 1e-12)
    if math.sqrt(lmax / lmin) < min_aspect:
        return 0.0
    # major axis direction (drow, dcol) = (-cos t, sin t) for tilt t: vrc = -lam sin(2t)/2
    t_major = -0.5 * math.degrees(math.atan2(2 * vrc, vrr - vcc))
    return (t_major + 45.0) % 90.0 - 45.0


def fit_ellipse(mask: np.ndarray, margin: float = 1.0) -> Ellipse:
    """Axes-aligned ellipse with the moments of ``mask`` (a uniform ellipse of semi-axes a, b
    has variances a^2/4, b^2/4), semi-axes multiplied by ``margin``."""
    mr, mc, vrr, vcc, _ = mask_moments(mask)
    return Ellipse(h=mc, k=mr, a=2 * math.sqrt(vcc) * margin, b=2 * math.sqrt(vrr) * margin)


def enhance_outer_layers(image: np.ndarray, ellipse: Ellipse, amount: float) -> np.ndarray:
    """Eqs. (2)-(3): I = I0 + A I0 f(x, y)^2 with f = (x-h)^2/a^2 + (y-k)^2/b^2."""
    f = ellipse.f(image.shape)
    return image + amount * image * f ** 2


def intensity_centroid(image: np.ndarray) -> tuple[float, float]:
    total = float(image.sum())
    if not total > 0:
        raise ValueError("no crystal found in the image (no intensity left)")
    r, c = np.indices(image.shape, dtype=np.float64)
    return float((r * image).sum() / total), float((c * image).sum() / total)


def _tent_filter(image: np.ndarray, width: float) -> np.ndarray:
    """Separable triangle filter of half-width ``width`` pixels (what CIC deposition onto a
    grid ``width`` times coarser does to a point)."""
    if width <= 1.0:
        return image
    n = int(math.ceil(width))
    k = np.arange(-n, n + 1, dtype=np.float64)
    w = np.clip(1.0 - np.abs(k) / width, 0.0, None)
    w /= w.sum()
    out = ndimage.convolve1d(image, w, axis=0, mode="constant")
    return ndimage.convolve1d(out, w, axis=1, mode="constant")


def _resample(lab: np.ndarray, centre: tuple[float, float], step: float, tilt_deg: float,
              shape: tuple[int, int], order: int) -> np.ndarray:
    """Sample ``lab`` on an output grid of ``shape`` whose centre is lab point ``centre``
    (row, col), ``step`` lab pixels per output pixel, undoing an axis tilt of ``tilt_deg``."""
    rows, cols = shape
    dr, dc = np.meshgrid(np.arange(rows) - (rows - 1) / 2, np.arange(cols) - (cols - 1) / 2,
                         indexing="ij")
    t = math.radians(tilt_deg)
    ct, st = math.cos(t), math.sin(t)
    # output "up" (-1, 0) -> lab axis direction (-cos t, sin t); a proper rotation
    r = centre[0] + step * (ct * dr + st * dc)
    c = centre[1] + step * (-st * dr + ct * dc)
    out = ndimage.map_coordinates(lab, [r, c], order=order, mode="constant", cval=0.0,
                                  prefilter=order > 1)
    return np.clip(out, 0.0, None)


def _to_lab(offset: tuple[float, float], step: float, tilt_deg: float) -> tuple[float, float]:
    """An offset (rows, cols) on the output grid -> the same offset in lab pixels."""
    t = math.radians(tilt_deg)
    ct, st = math.cos(t), math.sin(t)
    return step * (ct * offset[0] + st * offset[1]), step * (-st * offset[0] + ct * offset[1])


# -- the chain -----------------------------------------------------------------------------
def preprocess_lab_image(image: np.ndarray, settings: dict | None, imaging: ImagingConfig,
                         *, return_info: bool = False):
    """A laboratory fluorescence image -> float32 array of ``imaging.shape`` in the form of a
    simulated stored image (crystal centred, trap axis vertical, ``imaging.pixel_um`` um of
    the simulated trap per pixel, brightness on an arbitrary positive scale).

    Steps and ``settings`` keys (every key optional; unknown keys raise ValueError):

    1. Validation: a 2D, non-empty, finite array of integers (uint8, uint16, ...) or floats,
       else ValueError naming the problem. Background removal:
       ``background`` (counts; default ``"border"``): a number of counts to subtract,
       ``"border"`` = the median of the outermost ``border_px`` (pixels, default 4) rows and
       columns of the image, or ``"none"``. The result is clipped at 0.
    2. ``median5`` (bool, default true): the paper's five-point two-dimensional median
       averaging (plus-shaped footprint), removing hot pixels and shot noise.
    3. Magnification. ``pixel_um`` (um per lab-camera pixel in the object plane, i.e. the
       pixel pitch divided by the optical magnification; default ``imaging.pixel_um``, so it
       must be given unless the lab camera happens to match the simulation);
       ``trap_scale`` (dimensionless, default 1.0): factor multiplying lab lengths to give
       lengths in the simulated trap. The cold-fluid density n0 ~ V^2 / (m Omega^2 r0^4), so
       the ion spacing ~ n0^(-1/3) ~ r0^(4/3) (Omega^(2/3)/V^(2/3)); to map a crystal from a
       trap of radius r0_lab onto the simulated (Oxford) trap of radius r0_ref at equal
       voltages and drive frequency use trap_scale = (r0_ref / r0_lab)^(4/3) (times
       (Omega_ref/Omega_lab)^(2/3) if the drive frequencies differ). One output pixel is
       ``imaging.pixel_um / (pixel_um * trap_scale)`` lab pixels. When that is more than one
       (lab pixels finer) and ``antialias`` (bool, default true), the lab image is first
       convolved with a triangle of that half-width, which is what the simulator's bilinear
       deposition does; resampling uses splines of ``interpolation_order`` (0-5, default 1).
    4. Rotation of the trap axis to the vertical. ``rotation_deg`` (degrees): tilt of the trap
       axis in the lab image, clockwise from the vertical as the image is displayed with row 0
       at the top (> 0: the upper end leans to the right); the image is turned back by it.
       When not given and ``auto_rotate`` (bool, default true), the tilt is measured from the
       intensity-weighted second moments of the thresholded crystal: of its two principal
       axes the one nearest the vertical is made vertical (the long axis of a prolate crystal
       imaged roughly upright; the paper turned the Boulder images by about 5 degrees; a
       camera with a horizontal trap axis needs rotation_deg = 90). A silhouette with
       major/minor axis ratio below ``auto_rotate_min_aspect`` (default 1.1) is left
       unrotated.
    5. Ellipse fit (``ellipse``, bool, default true): the crystal silhouette (``threshold``:
       ``"otsu"`` (default) or a fraction in (0, 1) of the 99.9th percentile; gaps between
       ion spots closed, holes filled, largest piece kept) gives the centre (h, k) and
       semi-axes a, b = 2 sqrt(variance) of a uniform axes-aligned ellipse, enlarged by
       ``ellipse_margin`` (factor, default 1.1); every pixel outside it is set to zero.
    6. Outer-layer enhancement, Eqs. (2)-(3): I = I0 + A I0 f(x, y)^2 with
       f = (x - h)^2/a^2 + (y - k)^2/b^2 (x = column, y = row, the ellipse of step 5);
       A = ``enhance_outer`` (dimensionless, default 0.0 = off).
    7. Recentring (``recentre``, bool, default true): the image is sampled so that the
       intensity centroid of the crystal (inside the ellipse) falls on the centre of the
       output, ((rows-1)/2, (cols-1)/2) as in the simulation; then cropped/zero-padded to
       ``imaging.shape``. With recentre false the centre of the lab image is kept.
    8. Brightness: ``brightness_density`` (arbitrary units, default not set): scale so that
       sum(non-zero pixels) / count(non-zero pixels) equals it (the paper's brightness-density
       normalisation). Not set: scale so that the 99.9th percentile is 1 (the network divides
       by it in any case, :func:`~retroscope.tasks.crystal.render.brightness_normalise`).

    ``lab``, ``description`` and ``notes`` (strings) are accepted and ignored.

    With ``return_info=True`` returns ``(image, info)``; ``info`` holds ``background``
    (counts), ``step_px`` (lab pixels per output pixel), ``rotation_deg`` (the tilt used, in
    the convention of the key), ``rotation_source`` ("settings", "auto" or "none"),
    ``centre_lab_px`` ((row, col) in the lab image of the output centre) and ``ellipse``
    (:class:`Ellipse` on the output grid, or None).
    """
    s = validate_lab_settings(settings)
    a = validate_image(image)
    rows, cols = imaging.shape

    # 1. background
    if s["background"] == "border":
        bg = estimate_background(a, s["border_px"])
    elif s["background"] == "none":
        bg = 0.0
    else:
        bg = float(s["background"])
    a = np.clip(a - bg, 0.0, None)
    # 2. five-point median
    if s["median5"]:
        a = median5(a)
    if not a.max() > 0:
        raise ValueError("image has no intensity above the background")

    # 3. magnification
    pixel_um = s["pixel_um"] if s["pixel_um"] is not None else imaging.pixel_um
    step = imaging.pixel_um / (pixel_um * s["trap_scale"])
    if s["antialias"] and step > 1.0:
        a = _tent_filter(a, step)
    order = s["interpolation_order"]
    close_px = max(1, int(round(CLOSE_UM / imaging.pixel_um)))
    lab_centre = ((a.shape[0] - 1) / 2, (a.shape[1] - 1) / 2)

    # pass 0: the whole lab image on the output scale, unrotated -> tilt and rough centre
    full = (int(math.ceil(a.shape[0] / step)) + 4, int(math.ceil(a.shape[1] / step)) + 4)
    img0 = _resample(a, lab_centre, step, 0.0, full, order)
    mask0 = crystal_mask(img0, s["threshold"], close_px)
    if not mask0.any():
        raise ValueError("no crystal found in the image (nothing above the threshold)")
    if s["rotation_deg"] is not None:
        tilt, source = float(s["rotation_deg"]), "settings"
    elif s["auto_rotate"]:
        tilt, source = axis_tilt_deg(mask0, s["auto_rotate_min_aspect"], img0), "auto"
    else:
        tilt, source = 0.0, "none"
    centre = lab_centre
    if s["recentre"]:
        cr, cc = intensity_centroid(np.where(mask0, img0, 0.0))
        off = _to_lab((cr - (full[0] - 1) / 2, cc - (full[1] - 1) / 2), step, 0.0)
        centre = (lab_centre[0] + off[0], lab_centre[1] + off[1])

    # working canvas: the output with half its size as margin on each side
    pr, pc = rows // 2, cols // 2
    work = (rows + 2 * pr, cols + 2 * pc)
    need_ellipse = s["ellipse"] or s["enhance_outer"] > 0

    def rotated(centre):
        img = _resample(a, centre, step, tilt, work, order)
        mask = crystal_mask(img, s["threshold"], close_px)
        ell = fit_ellipse(mask, s["ellipse_margin"]) if need_ellipse else None
        if s["ellipse"]:
            img = np.where(ell.f(img.shape) <= 1.0, img, 0.0)
        elif s["recentre"]:
            mask_img = np.where(mask, img, 0.0)
            return img, ell, mask_img
        return img, ell, img

    # pass 1: rotated, recentred on the rough centre; pass 2: on the crystal's centroid
    img, ell, inside = rotated(centre)
    if s["recentre"]:
        cr, cc = intensity_centroid(inside)
        off = _to_lab((cr - (work[0] - 1) / 2, cc - (work[1] - 1) / 2), step, tilt)
        centre = (centre[0] + off[0], centre[1] + off[1])
        img, ell, _ = rotated(centre)

    # 6. outer-layer enhancement
    if s["enhance_outer"] > 0:
        img = enhance_outer_layers(img, ell, s["enhance_outer"])
    # 7. crop to the output shape (the canvas centre is the output centre)
    out = img[pr:pr + rows, pc:pc + cols]
    if ell is not None:
        ell = Ellipse(ell.h - pc, ell.k - pr, ell.a, ell.b)
    # 8. brightness
    nz = out > 0
    if not nz.any():
        raise ValueError("no crystal left inside the output window")
    if s["brightness_density"] is not None:
        out = out * (s["brightness_density"] / float(out[nz].mean()))
    else:
        top = float(np.quantile(out, 0.999))
        out = out / (top if top > 0 else float(out.max()))
    result = out.astype(np.float32)
    if not return_info:
        return result
    return result, {"background": bg, "step_px": step, "rotation_deg": tilt,
                    "rotation_source": source, "centre_lab_px": centre, "ellipse": ell}
