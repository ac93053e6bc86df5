"""Is a faint cloud of known shape in a shot? Template photometry against shifted copies.

In a series of shots (a loading curve, a scan) the early ones can hold so few atoms that no
detector, human or network, sees a cloud. Whether there are atoms at all is then a question
for photometry, not detection: take the cloud's region from the bright shots (a template),
measure the mean optical depth inside it, and compare with the same region shifted to places
that miss it. The spread of those shifted means is the noise of such a mean, fringes and
correlated noise included, so ``significance = excess / spread`` needs no noise model.

Used by ``benchmarks/clouds.py`` and the real-frame tests on the public ring-BEC series
(``docs/data.md``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["template_region", "template_photometry"]


def template_region(ods, smooth_px: float = 3.0, level: float = 0.3) -> np.ndarray:
    """The region of a cloud seen in ``ods`` (bright shots, (n, rows, cols) or (rows, cols)):
    their mean, smoothed by a Gaussian of ``smooth_px``, above ``level`` of its peak."""
    mean = np.mean(np.asarray(ods, np.float64).reshape(-1, *np.shape(ods)[-2:]), axis=0)
    template = ndimage.gaussian_filter(mean, smooth_px)
    if not template.max() > 0:
        raise ValueError("ods: no positive optical depth to draw a template region from")
    return template > level * template.max()


def template_photometry(od, region: np.ndarray, min_shift_px: int = 150,
                        step_px: int = 50, max_shift_px: int = 200) -> dict:
    """Mean OD of ``od`` inside ``region`` minus the mean over the same region shifted
    (cyclically) to the places of a ``step_px`` grid between ``min_shift_px`` and
    ``max_shift_px`` away (Chebyshev distance), and the spread (std) of those means.

    Returns ``{"excess", "spread", "significance", "shifts"}``; the shifts must miss the
    region, so ``min_shift_px`` should exceed its extent."""
    od = np.asarray(od, np.float64)
    region = np.asarray(region, bool)
    if od.shape != region.shape or od.ndim != 2:
        raise ValueError(f"od, region: expected equal 2D shapes, got {od.shape} and "
                         f"{region.shape}")
    if not region.any():
        raise ValueError("region: empty")
    grid = range(-max_shift_px, max_shift_px + 1, step_px)
    shifts = [(dy, dx) for dy in grid for dx in grid if max(abs(dy), abs(dx)) >= min_shift_px]
    if len(shifts) < 2:
        raise ValueError(f"fewer than 2 shifts between {min_shift_px} and {max_shift_px} px")
    away = np.array([od[np.roll(region, s, axis=(0, 1))].mean() for s in shifts])
    excess = float(od[region].mean() - away.mean())
    spread = float(away.std())
    return {"excess": excess, "spread": spread,
            "significance": excess / spread if spread > 0 else float("nan"),
            "shifts": len(shifts)}
