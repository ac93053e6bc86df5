"""Automatic crop to the crystal (the issue's "automatic crop"; Allsopp et al. 2025 centre and
scale lab images by hand, Sec. III C).

The camera frame is fixed (160 x 112 px at 4 um/px by default), but crystals of 30 ions cover
about 50 x 13 px of it and crystals of 350 ions about 110 x 60 px. A ResNet reduces its input
32-fold, so a small crystal ends up in one or two cells of the last feature map. Here the
crystal's bounding box is found in the (possibly noisy) frame, widened by a margin, brought to
the aspect ratio of the output and resampled onto it with one isotropic zoom, so that every
crystal fills the network's input whatever its size. Isotropic: the crystal's aspect ratio,
which carries the trap's anisotropy, is kept.

The box is robust to camera noise and hot pixels: the frame is smoothed with a Gaussian about
the size of one ion's spot (a matched filter), pixels below ``threshold`` of its maximum are
dropped, and the box spans the ``tail`` and ``1 - tail`` quantiles of the remaining intensity
along rows and columns (so a few isolated noise pixels, whose share of the crystal's light is
tiny, do not stretch it), plus ``margin_px`` + ``margin`` of its size on each side, which brings
the outermost ions back in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

__all__ = ["CropBox", "crystal_box", "crop_to_crystal"]


@dataclass(frozen=True)
class CropBox:
    """A crop in frame pixels: centre (row, col) and size (rows, cols), before resampling."""

    centre: tuple[float, float]
    size: tuple[float, float]


def _quantile_span(profile: np.ndarray, tail: float) -> tuple[float, float]:
    """Positions of the ``tail`` and ``1 - tail`` quantiles of a non-negative 1D profile,
    pixel k covering [k - 1/2, k + 1/2] with its value spread evenly (so the span of a
    mirrored profile is the mirrored span)."""
    cdf = np.concatenate([[0.0], np.cumsum(profile, dtype=np.float64)])
    cdf /= cdf[-1]
    edges = np.arange(len(profile) + 1, dtype=np.float64) - 0.5
    return float(np.interp(tail, cdf, edges)), float(np.interp(1.0 - tail, cdf, edges))


def crystal_box(image: np.ndarray, *, sigma_px: float = 1.0, threshold: float = 0.15,
                tail: float = 0.003, margin_px: float = 3.0,
                margin: float = 0.08) -> CropBox | None:
    """The crystal's box in ``image`` (rows = trap axis), or None when nothing is lit.

    ``sigma_px``: smoothing before thresholding (about one ion's spot). ``threshold``: fraction
    of the smoothed maximum above the median below which pixels are ignored. ``tail``: the
    intensity quantile cut on each side. ``margin_px`` and ``margin``: widening on each side,
    in pixels and as a fraction of the box size.
    """
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"crystal_box: expected a 2D image, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("crystal_box: the image contains NaN or infinite values")
    s = gaussian_filter(x, sigma_px, mode="constant") if sigma_px > 0 else x.copy()
    s -= np.median(s)
    top = float(s.max())
    if top <= 0:
        return None
    s[s < threshold * top] = 0.0
    r0, r1 = _quantile_span(s.sum(axis=1), tail)
    c0, c1 = _quantile_span(s.sum(axis=0), tail)
    h = (r1 - r0) * (1.0 + 2.0 * margin) + 2.0 * margin_px
    w = (c1 - c0) * (1.0 + 2.0 * margin) + 2.0 * margin_px
    return CropBox(centre=(0.5 * (r0 + r1), 0.5 * (c0 + c1)), size=(h, w))


def crop_to_crystal(image: np.ndarray, out_shape: tuple[int, int], *,
                    max_zoom: float = 4.0, zoom: float | None = None,
                    box: CropBox | None = None, **box_kwargs) -> tuple[np.ndarray, float]:
    """Resample ``image`` onto ``out_shape`` (rows, cols) so that the crystal's box, brought to
    the output's aspect ratio, fills it. Returns (cropped image float32, zoom = output pixels
    per frame pixel). The zoom is isotropic and at most ``max_zoom``; beyond the frame the
    output is zero. An empty frame is resampled whole. Bilinear; when the zoom is below one
    the frame is first smoothed (anti-aliasing). With a fixed ``zoom`` (1.0: the frame's own
    scale, so that the crystal's size in um is kept) the window is only centred on the box.
    """
    x = np.asarray(image, dtype=np.float32)
    rows, cols = (int(v) for v in out_shape)
    if rows < 1 or cols < 1:
        raise ValueError(f"crop_to_crystal: out_shape must be positive, got {out_shape}")
    if box is None:
        box = crystal_box(x, **box_kwargs)
    if box is None:
        box = CropBox(centre=((x.shape[0] - 1) / 2, (x.shape[1] - 1) / 2),
                      size=(float(x.shape[0]), float(x.shape[1])))
    h, w = box.size
    if zoom is None:
        zoom = min(rows / max(h, 1e-6), cols / max(w, 1e-6), float(max_zoom))
    elif not 0 < zoom < np.inf:
        raise ValueError(f"crop_to_crystal: zoom must be a positive number, got {zoom!r}")
    if zoom < 1.0:
        x = gaussian_filter(x, 0.5 * (1.0 / zoom - 1.0) + 1e-3, mode="constant")
    i = (np.arange(rows, dtype=np.float64) - (rows - 1) / 2) / zoom + box.centre[0]
    j = (np.arange(cols, dtype=np.float64) - (cols - 1) / 2) / zoom + box.centre[1]
    grid = np.meshgrid(i, j, indexing="ij")
    out = map_coordinates(x, grid, order=1, mode="constant", cval=0.0)
    return out.astype(np.float32), float(zoom)
