"""The rotated 2D Gaussian of an atom cloud and its 1/e^2 ellipse, box and mask.

Hofer et al., Mach. Learn.: Sci. Technol. 2, 045008 (2021), Eq. (1)::

    I(x, y) = Ib + I0 exp(-2 [x'^2 / wx^2 + y'^2 / wy^2])
    x' =  (x - x0) cos(theta) + (y - y0) sin(theta)
    y' = -(x - x0) sin(theta) + (y - y0) cos(theta)

wx, wy are the 1/e^2 radii along the cloud's own axes (wx along the direction at angle theta
from the image's +x axis, counter-clockwise towards +y); the 1/e^2 contour is the ellipse
x'^2/wx^2 + y'^2/wy^2 = 1. The paper's region-of-interest box is drawn at the 1/e^2 radii
along the *image* axes, i.e. the bounding box of that ellipse, and the segmentation mask is the
inside of the ellipse.

Pixel convention (COCO's and torchvision's): x is the column and y the row coordinate, in
pixels; pixel (row i, column j) covers [j, j+1) x [i, i+1) and its centre is (j + 0.5, i + 0.5).
Boxes are (x_min, y_min, x_max, y_max) in these continuous coordinates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Gaussian2D:
    """Parameters of Eq. (1): centre and 1/e^2 radii in pixels, angle in radians, intensities
    in the image's units (optical depth, or counts for fluorescence)."""

    x0: float
    y0: float
    wx: float
    wy: float
    theta: float = 0.0
    amplitude: float = 1.0
    background: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def box(self) -> np.ndarray:
        return box_xyxy(self.x0, self.y0, self.wx, self.wy, self.theta)

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        return ellipse_mask(shape, self.x0, self.y0, self.wx, self.wy, self.theta)

    def render(self, shape: tuple[int, int]) -> np.ndarray:
        y, x = pixel_centres(shape)
        return gaussian_2d(x, y, self.x0, self.y0, self.wx, self.wy, self.theta,
                           self.amplitude, self.background)


def pixel_centres(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) coordinates of the pixel centres, broadcastable to ``shape`` (rows, columns)."""
    rows, cols = shape
    return (np.arange(rows, dtype=np.float64)[:, None] + 0.5,
            np.arange(cols, dtype=np.float64)[None, :] + 0.5)


def rotated(x, y, x0, y0, theta):
    """Coordinates (x', y') along the cloud's axes (Eq. 1)."""
    c, s = np.cos(theta), np.sin(theta)
    dx, dy = x - x0, y - y0
    return dx * c + dy * s, -dx * s + dy * c


def gaussian_2d(x, y, x0, y0, wx, wy, theta=0.0, amplitude=1.0, background=0.0):
    """Eq. (1) evaluated at (x, y)."""
    xr, yr = rotated(x, y, x0, y0, theta)
    return background + amplitude * np.exp(-2.0 * ((xr / wx) ** 2 + (yr / wy) ** 2))


def ellipse_mask(shape: tuple[int, int], x0, y0, wx, wy, theta=0.0) -> np.ndarray:
    """Boolean (rows, cols) mask of the pixels whose centre lies inside the 1/e^2 ellipse."""
    y, x = pixel_centres(shape)
    xr, yr = rotated(x, y, x0, y0, theta)
    return (xr / wx) ** 2 + (yr / wy) ** 2 <= 1.0


def half_extents(wx, wy, theta=0.0) -> tuple[np.ndarray, np.ndarray]:
    """Half-widths of the 1/e^2 ellipse along the image's x and y axes (the 1/e^2 radii
    along the image axes that the paper's ROI boxes are drawn at)."""
    c, s = np.cos(theta), np.sin(theta)
    return (np.sqrt((wx * c) ** 2 + (wy * s) ** 2), np.sqrt((wx * s) ** 2 + (wy * c) ** 2))


def box_xyxy(x0, y0, wx, wy, theta=0.0) -> np.ndarray:
    """The (x_min, y_min, x_max, y_max) bounding box of the 1/e^2 ellipse (last axis 4)."""
    hx, hy = half_extents(wx, wy, theta)
    return np.stack(np.broadcast_arrays(x0 - hx, y0 - hy, x0 + hx, y0 + hy), axis=-1)


def canonical(wx, wy, theta):
    """Enforce wx >= wy (major axis first) by swapping and turning theta by pi/2, and wrap
    theta into [-pi/2, pi/2) (an ellipse is symmetric under theta -> theta + pi)."""
    wx, wy, theta = np.broadcast_arrays(np.asarray(wx, float), np.asarray(wy, float),
                                        np.asarray(theta, float))
    swap = wy > wx
    major = np.where(swap, wy, wx)
    minor = np.where(swap, wx, wy)
    theta = np.where(swap, theta + np.pi / 2, theta)
    theta = (theta + np.pi / 2) % np.pi - np.pi / 2
    return major, minor, theta


def angle_difference(a, b):
    """Smallest difference between two ellipse orientations (period pi), in [-pi/2, pi/2)."""
    return (np.asarray(a) - np.asarray(b) + np.pi / 2) % np.pi - np.pi / 2
