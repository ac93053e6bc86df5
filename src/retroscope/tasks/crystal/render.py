"""Fluorescence image of a crystal, as CCMD makes it (Allsopp et al. 2025, Fig. 2).

Only laser-cooled ions fluoresce, each with the same photon rate (the cooling beam is much
wider than the crystal). The camera looks along y: the image plane is (x, z) with the trap
axis z vertical (rows) and x horizontal (columns), the focal plane at y = y_focus. Positions
sampled over the exposure (Langevin snapshots x evenly spaced RF phases of the radial
micromotion x -> x (1 + (q/2) cos phi), y -> y (1 - (q/2) cos phi)) are sorted into slices by
their distance d from the focal plane; each slice is deposited on the pixel grid (bilinear,
so sub-pixel positions survive) and blurred with a Gaussian whose width grows with |d|:

    "ccmd":     sigma(d) = sigma0 (1 + |d| / dof)           (CCMD; sigma0 = w0 / sqrt 2)
    "gaussian": sigma(d) = sigma0 sqrt(1 + (d / dof)^2)     (Gaussian-beam defocus, LIon)

and the slices are summed. The image is in photons per ion per exposure (each ion's spot
integrates to one); camera effects are online observation transforms (:mod:`.camera`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from retroscope.tasks.crystal.formation import Crystal


@dataclass(frozen=True)
class ImagingConfig:
    """Camera and optics: pixel size (um/px), shape (rows = axial, cols = radial), focus."""

    pixel_um: float = 4.0
    shape: tuple[int, int] = (128, 128)
    sigma0_um: float = 5.0 / np.sqrt(2.0)
    dof_um: float = 50.0
    blur_law: str = "ccmd"
    slice_um: float = 4.0
    focus_um: float = 0.0
    micromotion_phases: int = 8

    def __post_init__(self) -> None:
        if self.blur_law not in ("ccmd", "gaussian"):
            raise ValueError(f"blur_law must be 'ccmd' or 'gaussian', got {self.blur_law!r}")
        for name in ("pixel_um", "sigma0_um", "dof_um", "slice_um"):
            if not getattr(self, name) > 0:
                raise ValueError(f"imaging {name} must be positive, got {getattr(self, name)}")

    def sigma_um(self, depth_um: np.ndarray) -> np.ndarray:
        d = np.abs(np.asarray(depth_um, dtype=np.float64))
        if self.blur_law == "ccmd":
            return self.sigma0_um * (1.0 + d / self.dof_um)
        return self.sigma0_um * np.sqrt(1.0 + (d / self.dof_um) ** 2)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


def exposure_samples(crystal: Crystal, phases: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (M, 3) in um of the fluorescing ions over the exposure, with weights (M,).

    Each snapshot is repeated at ``phases`` evenly spaced RF phases with the radial
    micromotion applied; every ion carries total weight one.
    """
    lit = crystal.fluorescing
    snaps = crystal.snapshots_um[:, lit]  # (S, n, 3)
    q = crystal.q[lit]
    if phases > 0:
        c = np.cos(2 * np.pi * (np.arange(phases) + 0.5) / phases)  # (P,)
        fx = 1.0 + 0.5 * q[None, :] * c[:, None]  # (P, n)
        fy = 1.0 - 0.5 * q[None, :] * c[:, None]
        s = np.repeat(snaps[None], phases, axis=0)  # (P, S, n, 3)
        s[..., 0] *= fx[:, None, :]
        s[..., 1] *= fy[:, None, :]
        snaps = s.reshape(-1, s.shape[-2], 3)
    pts = snaps.reshape(-1, 3)
    weights = np.full(len(pts), 1.0 / max(1, len(snaps)))
    return pts, weights


def render(crystal: Crystal, cfg: ImagingConfig | None = None,
           center_um: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The clean image (rows = z, cols = x), photons per ion; centre_um = (z, x) at the centre."""
    cfg = cfg or ImagingConfig()
    pts, w = exposure_samples(crystal, cfg.micromotion_phases)
    return render_points(pts, w, cfg, center_um)


def render_points(pts_um: np.ndarray, weights: np.ndarray, cfg: ImagingConfig,
                  center_um: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    rows, cols = cfg.shape
    image = np.zeros((rows, cols), dtype=np.float64)
    if len(pts_um) == 0:
        return image
    # pixel coordinates: pixel centres at integers, image centre at ((rows-1)/2, (cols-1)/2)
    r = (pts_um[:, 2] - center_um[0]) / cfg.pixel_um + (rows - 1) / 2
    c = (pts_um[:, 0] - center_um[1]) / cfg.pixel_um + (cols - 1) / 2
    depth = pts_um[:, 1] - cfg.focus_um
    slice_idx = np.floor(depth / cfg.slice_um).astype(np.int64)
    for s in np.unique(slice_idx):
        sel = slice_idx == s
        layer = _deposit(r[sel], c[sel], weights[sel], rows, cols)
        if not layer.any():
            continue
        sigma_px = float(cfg.sigma_um((s + 0.5) * cfg.slice_um)) / cfg.pixel_um
        image += gaussian_filter(layer, sigma_px, mode="constant", truncate=4.0)
    return image


def _deposit(r: np.ndarray, c: np.ndarray, w: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Bilinear (cloud-in-cell) deposition of weighted points onto a rows x cols grid."""
    r0 = np.floor(r).astype(np.int64)
    c0 = np.floor(c).astype(np.int64)
    fr, fc = r - r0, c - c0
    out = np.zeros(rows * cols)
    for dr, dc, ww in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc),
                       (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rr, cc = r0 + dr, c0 + dc
        ok = (rr >= 0) & (rr < rows) & (cc >= 0) & (cc < cols)
        out += np.bincount(rr[ok] * cols + cc[ok], weights=(w * ww)[ok], minlength=rows * cols)
    return out.reshape(rows, cols)


def brightness_normalise(image: np.ndarray, quantile: float = 0.999) -> np.ndarray:
    """Image / its ``quantile`` (the brightest ion spots), clipped to [0, 1], float32."""
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {x.shape}")
    top = float(np.quantile(x, quantile)) if x.size else 0.0
    if not np.isfinite(top) or top <= 0:
        top = float(x.max()) if x.size and x.max() > 0 else 1.0
    return np.clip(x / top, 0.0, 1.0)
