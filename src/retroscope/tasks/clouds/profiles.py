"""Column optical-depth profiles of atom clouds: thermal Gaussians and bimodal condensates.

A thermal cloud (class "MOT" or "ODT") is the rotated 2D Gaussian of Hofer et al., Mach. Learn.:
Sci. Technol. 2, 045008 (2021), Eq. (1), with peak optical depth ``od_peak`` and 1/e^2 radii
``wx, wy`` (:func:`~retroscope.tasks.clouds.geometry.gaussian_2d`); its integrated optical depth
is ``pi wx wy od_peak / 2`` (pixels^2).

A "BEC" is bimodal: that thermal Gaussian plus a Thomas-Fermi condensate with the same centre and
angle. The 3D Thomas-Fermi density is an inverted parabola; its column (line-of-sight integral)
is ``tf_od_peak * max(0, 1 - x'^2/tf_rx^2 - y'^2/tf_ry^2)^(3/2)`` with (x', y') the rotated
coordinates of Eq. (1) and ``tf_rx, tf_ry`` the Thomas-Fermi radii (where the column vanishes);
it integrates to ``(2 pi / 5) tf_rx tf_ry tf_od_peak``.

An "other" cloud is none of these: a ring (ring-shaped condensates, as in the public real
frames of ``sbanik1/Probe-Reconstruction``, see ``docs/data.md``) or, with azimuthal modulation, a crescent. Its column OD is
``od_peak * exp(-2 d^2 / ring_width^2) * exp(-crescent (1 - cos(phi - crescent_angle)))`` with
``d = (rho - 1) sqrt(wx wy)`` the distance from the ring line, ``rho^2 = x'^2/wx^2 + y'^2/wy^2``
and ``phi = atan2(y'/wy, x'/wx)``: the ring's radii are ``wx, wy`` and ``ring_width`` its 1/e^2
half-thickness. It has no Gaussian parameters; its label (mask) is where its OD is at least
e^-2 of its peak, the same level as the 1/e^2 ellipse of a Gaussian, and its box is that
mask's bounding box. Detecting it as its own class is how a detector trained on Gaussians
finds a ring as one object and says that it is not a MOT or ODT cloud.

All lengths are in pixels with the pixel convention of :mod:`retroscope.tasks.clouds.geometry`
(pixel (row i, col j) centred at (j + 0.5, i + 0.5)); angles in radians; OD is dimensionless.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from retroscope.tasks.clouds.geometry import (
    box_xyxy,
    ellipse_mask,
    gaussian_2d,
    pixel_centres,
    rotated,
)

CLOUD_KINDS = ("MOT", "ODT", "BEC", "other")
#: the OD level, relative to the peak, that bounds every label (the 1/e^2 contour)
LABEL_LEVEL = math.exp(-2.0)


def thomas_fermi_column(x, y, x0, y0, rx, ry, theta=0.0, od_peak=1.0):
    """Column optical depth of a Thomas-Fermi condensate of radii ``rx, ry`` (pixels) at
    (x, y): ``od_peak * max(0, 1 - x'^2/rx^2 - y'^2/ry^2)^(3/2)``."""
    xr, yr = rotated(x, y, x0, y0, theta)
    return od_peak * np.maximum(0.0, 1.0 - (xr / rx) ** 2 - (yr / ry) ** 2) ** 1.5


def ring_column(x, y, x0, y0, wx, wy, theta, od_peak, ring_width, crescent=0.0,
                crescent_angle=0.0):
    """Column OD of a ring (crescent when ``crescent`` > 0) of radii ``wx, wy`` and 1/e^2
    half-thickness ``ring_width`` (pixels); peak ``od_peak`` on the ring at ``crescent_angle``."""
    xr, yr = rotated(x, y, x0, y0, theta)
    u, v = xr / wx, yr / wy
    d = (np.hypot(u, v) - 1.0) * math.sqrt(wx * wy)
    azimuth = np.exp(-crescent * (1.0 - np.cos(np.arctan2(v, u) - crescent_angle)))
    return od_peak * np.exp(-2.0 * d**2 / ring_width**2) * azimuth


def integrated_od(wx, wy, od_peak, tf_rx=0.0, tf_ry=0.0, tf_od_peak=0.0) -> float:
    """Integrated column OD (px^2) of a thermal Gaussian, (pi/2) wx wy od_peak, plus that of a
    Thomas-Fermi condensate, (2 pi/5) tf_rx tf_ry tf_od_peak (module docstring)."""
    return float(math.pi / 2.0 * wx * wy * od_peak
                 + 2.0 * math.pi / 5.0 * tf_rx * tf_ry * tf_od_peak)


def bimodal_peaks(od_peak_total: float, condensate_fraction: float, wx: float, wy: float,
                  tf_rx: float, tf_ry: float) -> tuple[float, float]:
    """Split a peak optical depth between the thermal and condensed parts of a bimodal cloud.

    Returns ``(od_peak, tf_od_peak)`` with ``od_peak + tf_od_peak = od_peak_total`` and the
    condensate's share of the integrated OD (i.e. of the atom number),
    ``(2 pi/5) tf_rx tf_ry tf_od_peak / [(2 pi/5) tf_rx tf_ry tf_od_peak + (pi/2) wx wy od_peak]``,
    equal to ``condensate_fraction`` (0 = thermal only, 1 = pure condensate).
    """
    if not 0.0 <= condensate_fraction <= 1.0:
        raise ValueError(f"bimodal_peaks: condensate_fraction must be in [0, 1], "
                         f"got {condensate_fraction!r}")
    if not od_peak_total >= 0.0:
        raise ValueError(f"bimodal_peaks: od_peak_total must be >= 0, got {od_peak_total!r}")
    tf_area = 2.0 * math.pi / 5.0 * tf_rx * tf_ry  # integral per unit peak OD, px^2
    thermal_area = math.pi / 2.0 * wx * wy
    f = condensate_fraction
    # tf_od_peak * tf_area / (od_peak * thermal_area) = f / (1 - f)
    weight_tf = f * thermal_area
    weight_thermal = (1.0 - f) * tf_area
    tf_od_peak = od_peak_total * weight_tf / (weight_tf + weight_thermal)
    return od_peak_total - tf_od_peak, tf_od_peak


def _check_positive(kind: str, name: str, value) -> None:
    if value is None or not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"Cloud({kind}): {name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class Cloud:
    """One atom cloud. ``x0, y0``: centre (px); ``wx, wy``: 1/e^2 radii of the thermal part
    along the cloud's axes (px); ``theta``: angle of the wx axis from the image's +x axis
    towards +y (rad); ``od_peak``: peak OD of the thermal part. For ``kind == "BEC"`` also
    ``tf_rx, tf_ry`` (Thomas-Fermi radii, px) and ``tf_od_peak`` (peak column OD of the
    condensate); these stay ``None`` for "MOT" and "ODT". For ``kind == "other"`` (a ring or
    crescent, see the module docstring) ``ring_width``, ``crescent`` and ``crescent_angle``.

    Label: the 1/e^2 ellipse of Eq. (1) for thermal clouds. For a BEC the label ellipse has, on
    each of the cloud's axes, the larger of the thermal 1/e^2 radius and the Thomas-Fermi
    radius, i.e. the smallest ellipse with the cloud's axes that contains both the thermal 1/e^2
    contour and the condensate's edge; the thermal radii are ignored when ``od_peak == 0``
    (pure condensate), so an invisible thermal part never sets the label.
    """

    kind: str
    x0: float
    y0: float
    wx: float
    wy: float
    theta: float = 0.0
    od_peak: float = 1.0
    tf_rx: float | None = None
    tf_ry: float | None = None
    tf_od_peak: float | None = None
    ring_width: float | None = None
    crescent: float | None = None
    crescent_angle: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in CLOUD_KINDS:
            raise ValueError(f"Cloud: kind must be one of {CLOUD_KINDS}, got {self.kind!r}")
        for name in ("x0", "y0", "theta"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"Cloud({self.kind}): {name} must be finite, "
                                 f"got {getattr(self, name)!r}")
        _check_positive(self.kind, "wx", self.wx)
        _check_positive(self.kind, "wy", self.wy)
        if not (math.isfinite(self.od_peak) and self.od_peak >= 0.0):
            raise ValueError(f"Cloud({self.kind}): od_peak must be finite and >= 0, "
                             f"got {self.od_peak!r}")
        tf = (self.tf_rx, self.tf_ry, self.tf_od_peak)
        ring = (self.ring_width, self.crescent, self.crescent_angle)
        if self.kind != "other" and any(v is not None for v in ring):
            raise ValueError(f"Cloud({self.kind}): ring_width, crescent, crescent_angle are "
                             f"only for kind 'other', got {ring}")
        if self.kind == "other":
            _check_positive(self.kind, "ring_width", self.ring_width)
            for name in ("crescent", "crescent_angle"):
                value = getattr(self, name)
                if value is None or not math.isfinite(value) or (name == "crescent"
                                                                 and value < 0):
                    raise ValueError(f"Cloud(other): {name} must be finite"
                                     f"{' and >= 0' if name == 'crescent' else ''}, "
                                     f"got {value!r}")
        if self.kind != "BEC":
            if any(v is not None for v in tf):
                raise ValueError(f"Cloud({self.kind}): tf_rx, tf_ry, tf_od_peak are only for "
                                 f"kind 'BEC', got {tf}")
            return
        _check_positive(self.kind, "tf_rx", self.tf_rx)
        _check_positive(self.kind, "tf_ry", self.tf_ry)
        if self.tf_od_peak is None or not (math.isfinite(self.tf_od_peak)
                                           and self.tf_od_peak >= 0.0):
            raise ValueError(f"Cloud(BEC): tf_od_peak must be finite and >= 0, "
                             f"got {self.tf_od_peak!r}")

    def od(self, shape: tuple[int, int]) -> np.ndarray:
        """Column optical depth on a (rows, cols) image, float64."""
        y, x = pixel_centres(shape)
        if self.kind == "other":
            return np.asarray(ring_column(x, y, self.x0, self.y0, self.wx, self.wy, self.theta,
                                          self.od_peak, self.ring_width, self.crescent,
                                          self.crescent_angle), dtype=np.float64)
        out = gaussian_2d(x, y, self.x0, self.y0, self.wx, self.wy, self.theta, self.od_peak)
        if self.kind == "BEC":
            out = out + thomas_fermi_column(x, y, self.x0, self.y0, self.tf_rx, self.tf_ry,
                                            self.theta, self.tf_od_peak)
        return np.asarray(out, dtype=np.float64)

    @property
    def gaussian(self) -> bool:
        """Whether the label is an ellipse (MOT, ODT, BEC), not an OD level set ("other")."""
        return self.kind != "other"

    def label_ellipse(self) -> tuple[float, float, float, float, float]:
        """(x0, y0, wx, wy, theta) of the ellipse that labels this cloud (see the class
        docstring); ``wx, wy`` are not reordered (use geometry.canonical for that)."""
        if not self.gaussian:
            raise ValueError("Cloud(other): a ring has no label ellipse; use mask()")
        if self.kind != "BEC":
            return self.x0, self.y0, self.wx, self.wy, self.theta
        thermal = self.od_peak > 0.0
        wx = max(self.tf_rx, self.wx if thermal else 0.0)
        wy = max(self.tf_ry, self.wy if thermal else 0.0)
        return self.x0, self.y0, wx, wy, self.theta

    def box(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """(x_min, y_min, x_max, y_max) bounding box of the label, px: of the label ellipse,
        or for "other" of the mask's pixels on a frame of ``shape`` (required then)."""
        if self.gaussian:
            return box_xyxy(*self.label_ellipse())
        if shape is None:
            raise ValueError("Cloud(other): box() needs the frame shape")
        mask = self.mask(shape)
        if not mask.any():
            return np.array([self.x0, self.y0, self.x0, self.y0], dtype=np.float64)
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Boolean mask of the pixels whose centre lies inside the label ellipse, or for
        "other" whose OD is at least ``LABEL_LEVEL`` (e^-2) of the peak."""
        if not self.gaussian:
            if not self.od_peak > 0:
                return np.zeros(shape, dtype=bool)
            return self.od(shape) >= LABEL_LEVEL * self.od_peak
        return ellipse_mask(shape, *self.label_ellipse())


def render_od(clouds: Iterable[Cloud], shape: tuple[int, int]) -> np.ndarray:
    """Sum of the clouds' column optical depths on a (rows, cols) image (zeros if none)."""
    out = np.zeros(shape, dtype=np.float64)
    for cloud in clouds:
        out += cloud.od(shape)
    return out
