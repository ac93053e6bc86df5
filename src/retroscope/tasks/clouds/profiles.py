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

CLOUD_KINDS = ("MOT", "ODT", "BEC")


def thomas_fermi_column(x, y, x0, y0, rx, ry, theta=0.0, od_peak=1.0):
    """Column optical depth of a Thomas-Fermi condensate of radii ``rx, ry`` (pixels) at
    (x, y): ``od_peak * max(0, 1 - x'^2/rx^2 - y'^2/ry^2)^(3/2)``."""
    xr, yr = rotated(x, y, x0, y0, theta)
    return od_peak * np.maximum(0.0, 1.0 - (xr / rx) ** 2 - (yr / ry) ** 2) ** 1.5


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
    condensate); these stay ``None`` for "MOT" and "ODT".

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
        out = gaussian_2d(x, y, self.x0, self.y0, self.wx, self.wy, self.theta, self.od_peak)
        if self.kind == "BEC":
            out = out + thomas_fermi_column(x, y, self.x0, self.y0, self.tf_rx, self.tf_ry,
                                            self.theta, self.tf_od_peak)
        return np.asarray(out, dtype=np.float64)

    def label_ellipse(self) -> tuple[float, float, float, float, float]:
        """(x0, y0, wx, wy, theta) of the ellipse that labels this cloud (see the class
        docstring); ``wx, wy`` are not reordered (use geometry.canonical for that)."""
        if self.kind != "BEC":
            return self.x0, self.y0, self.wx, self.wy, self.theta
        thermal = self.od_peak > 0.0
        wx = max(self.tf_rx, self.wx if thermal else 0.0)
        wy = max(self.tf_ry, self.wy if thermal else 0.0)
        return self.x0, self.y0, wx, wy, self.theta

    def box(self) -> np.ndarray:
        """(x_min, y_min, x_max, y_max) bounding box of the label ellipse, px."""
        return box_xyxy(*self.label_ellipse())

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Boolean mask of the pixels whose centre lies inside the label ellipse."""
        return ellipse_mask(shape, *self.label_ellipse())


def render_od(clouds: Iterable[Cloud], shape: tuple[int, int]) -> np.ndarray:
    """Sum of the clouds' column optical depths on a (rows, cols) image (zeros if none)."""
    out = np.zeros(shape, dtype=np.float64)
    for cloud in clouds:
        out += cloud.od(shape)
    return out
