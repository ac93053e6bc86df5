"""The pmd map as an image: scales, the network's log image, crops and resampling.

``to_linear`` turns a file's values (linear, log10 or the paper's [0, 1] image) back into a
linear map; ``unit_log_image`` is Sec. II A's W = log10(map / max), floored at -5 and scaled to
[0, 1]; ``paper_crop`` its rectangle where W > -5 resampled bicubically; ``k_extent`` and
``onto_grid`` put a map on another momentum window onto the stored grid.
"""

from __future__ import annotations

import numpy as np

from retroscope.tasks.pmd.maps import KX_AU, KY_AU, LOW_K_AU

#: decades below the maximum that the network sees (Sec. II A: W = -5 for all smaller values)
FLOOR_DECADES = 5.0


def to_linear(a: np.ndarray, s: dict) -> np.ndarray:
    """A map in the file's ``scale`` -> linear values (see ``PmdTask.preprocess``)."""
    scale = s.get("scale", "linear")
    if scale == "linear":
        a = a - float(s.get("background", 0.0))
        if a.min() < -1e-12 * abs(a).max():
            raise ValueError(f"negative values in a linear map (min {a.min():.3g}); set "
                             f"background or the right scale")
        return np.clip(a, 0.0, None)
    if scale == "log10":
        return 10.0 ** (a - a.max())
    u = (a - a.min()) / np.ptp(a)  # unit: (W + 5) / 5 with W = log10(PMD / max)
    return np.where(u > 0, 10.0 ** (FLOOR_DECADES * (u - 1.0)), 0.0)


def k_extent(value, dims: int, source: str) -> list[list[float]]:
    """``k_extent_au`` checked: ``dims`` increasing [min, max] pairs (1D: one pair)."""
    pairs = [value] if dims == 1 and len(np.shape(value)) == 1 else value
    try:
        pairs = [[float(lo), float(hi)] for lo, hi in pairs]
    except (TypeError, ValueError):
        pairs = None
    if pairs is None or len(pairs) != dims or any(not hi > lo for lo, hi in pairs):
        form = "[kx_min, kx_max]" if dims == 1 else "[[kx_min, kx_max], [ky_min, ky_max]]"
        raise ValueError(f"{source}: k_extent_au must be {form} in a.u. with min < max, got "
                         f"{value!r}")
    return pairs


def onto_grid(a: np.ndarray, extent: list[list[float]], grid: tuple) -> np.ndarray:
    """Linear interpolation of a map whose pixels tile ``extent`` onto the stored ``grid``
    (pixel centres), zero outside."""
    from scipy.interpolate import RegularGridInterpolator

    centres = [lo + (np.arange(n) + 0.5) * (hi - lo) / n
               for (lo, hi), n in zip(extent, a.shape)]
    points = np.stack(np.meshgrid(*grid, indexing="ij"), axis=-1)
    return RegularGridInterpolator(centres, a, bounds_error=False, fill_value=0.0)(points)


def unit_log_image(a: np.ndarray, peak: float) -> np.ndarray:
    """(log10(a / peak) + 5) / 5, clipped to [0, 1], float32 (zeros when peak <= 0)."""
    if not peak > 0:
        return np.zeros(a.shape, dtype=np.float32)
    with np.errstate(divide="ignore"):
        w = np.log10(np.clip(a / peak, 0.0, None))
    return np.clip(w / FLOOR_DECADES + 1.0, 0.0, 1.0).astype(np.float32)


def paper_crop(x: np.ndarray) -> np.ndarray:
    """Sec. II A: the smallest rectangle holding every W > -5 (x > 0), resampled bicubically
    onto the map's own shape and rescaled to [0, 1]."""
    from scipy.ndimage import map_coordinates

    rows, cols = np.nonzero(x > 0)
    if rows.size == 0:
        return x
    r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
    rr = np.linspace(r0, r1, x.shape[0])
    cc = np.linspace(c0, c1, x.shape[1])
    out = map_coordinates(x, np.meshgrid(rr, cc, indexing="ij"), order=3, mode="nearest")
    span = np.ptp(out)
    return ((out - out.min()) / span if span > 0 else out).astype(np.float32)


def outside_low_k() -> np.ndarray:
    kx, ky = np.meshgrid(KX_AU, KY_AU, indexing="ij")
    return np.hypot(kx, ky) >= LOW_K_AU
