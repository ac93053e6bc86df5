"""The filter library: detector imperfections as :class:`~.transform.Filter` transforms.

The filters of Stielow et al., Mach. Learn.: Sci. Technol. 2, 025011 (2021), Appendix D and
Fig. 2: identity, uniform noise, salt-and-pepper noise,
Gaussian blur, jitter distortion, centre crop (finite detector), a central hole (beam-stop
shadow), shift (beam-pointing jitter) and uneven detector sensitivity; and
:class:`PoissonNoise`, photon-counting statistics for counting detectors. Each is registered in
:data:`~.transform.TRANSFORMS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from retroscope.core.observe.transform import (
    Filter,
    check_range,
    check_sample,
    like,
    offsets,
    rand,
    randint,
    register_transform,
    uniform,
)

# --------------------------------------------------------------------------------------------
# filters of Stielow et al., App. D


@register_transform
@dataclass(frozen=True)
class Identity(Filter):
    """The trivial filter of App. D: the image unchanged (a clamped copy)."""

    def apply(self, x: Tensor) -> Tensor:
        return x


@register_transform
@dataclass(frozen=True)
class UniformNoise(Filter):
    """Uniform noise (App. D): every pixel changes by a random margin in ``[-a, a]``, with the
    amplitude ``a`` drawn uniformly up to ``max_fraction`` of the sample's maximum signal."""

    max_fraction: float = 0.5

    def __post_init__(self) -> None:
        check_range(self, "max_fraction", self.max_fraction, 0.0, 1.0)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        return {
            "amplitude_fraction": uniform(g, 0.0, self.max_fraction),
            "noise": 2.0 * rand(g, x.shape) - 1.0,
        }

    def apply(self, x: Tensor, amplitude_fraction: float, noise: Tensor) -> Tensor:
        return x + amplitude_fraction * x.amax() * like(noise, x)


@register_transform
@dataclass(frozen=True)
class SaltPepper(Filter):
    """Salt-and-pepper noise (App. D): a random fraction of pixels, drawn uniformly up to
    ``max_fraction``, is set to the sample's minimum or maximum (even odds); a hit pixel is
    hit in every channel."""

    max_fraction: float = 0.02

    def __post_init__(self) -> None:
        check_range(self, "max_fraction", self.max_fraction, 0.0, 1.0)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        fraction = uniform(g, 0.0, self.max_fraction)
        return {"pixels": rand(g, x.shape[-2:]) < fraction, "salt": rand(g, x.shape[-2:]) < 0.5}

    def apply(self, x: Tensor, pixels: Tensor, salt: Tensor) -> Tensor:
        pixels, salt = pixels.to(x.device), salt.to(x.device)
        y = torch.where(pixels & salt, x.amax(), x)
        return torch.where(pixels & ~salt, x.amin(), y)


def _gaussian_kernel(sigma_px: float, radius: int, x: Tensor) -> Tensor:
    k = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    w = torch.exp(-0.5 * (k / max(sigma_px, 1e-6)) ** 2)
    return w / w.sum()


def gaussian_blur(x: Tensor, sigma_px: float) -> Tensor:
    """Blur ``x`` (C, H, W) with a Gaussian of standard deviation ``sigma_px`` pixels.

    Separable convolution, kernel truncated at 3 sigma (and at the image size), reflect
    padding so the image keeps its size and its edges are not darkened.
    """
    c, h, w = x.shape
    r = math.ceil(3.0 * sigma_px)
    rx, ry = min(r, w - 1), min(r, h - 1)
    kx = _gaussian_kernel(sigma_px, rx, x).view(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = _gaussian_kernel(sigma_px, ry, x).view(1, 1, -1, 1).expand(c, 1, -1, 1)
    y = F.conv2d(F.pad(x[None], (rx, rx, 0, 0), mode="reflect"), kx, groups=c)
    y = F.conv2d(F.pad(y, (0, 0, ry, ry), mode="reflect"), ky, groups=c)
    return y[0]


@register_transform
@dataclass(frozen=True)
class GaussianBlur(Filter):
    """Gaussian blur (App. D, limited detector resolution): the kernel's radius (its standard
    deviation, ``sigma_px``) is drawn uniformly up to ``max_sigma_px`` pixels."""

    max_sigma_px: float = 5.0

    def __post_init__(self) -> None:
        check_range(self, "max_sigma_px", self.max_sigma_px, 0.0, math.inf)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        return {"sigma_px": uniform(g, 0.0, self.max_sigma_px)}

    def apply(self, x: Tensor, sigma_px: float) -> Tensor:
        return gaussian_blur(x, sigma_px)


@register_transform
@dataclass(frozen=True)
class Jitter(Filter):
    """Jitter distortion (App. D): resample the image on a smoothly displaced grid.

    The displacement field (dy, dx) is bilinear interpolation of random values in [-1, 1] on
    a grid of control points at most ``spacing_px`` pixels apart (corners included), scaled by
    an amplitude drawn uniformly up to ``max_px`` pixels: no pixel moves more than ``max_px``
    along either axis, and neighbouring pixels move by at most ``2 max_px / spacing_px``
    relative to each other. Bilinear resampling, edge values beyond the edge.
    """

    max_px: float = 2.0
    spacing_px: float = 16.0

    def __post_init__(self) -> None:
        check_range(self, "max_px", self.max_px, 0.0, math.inf)
        check_range(self, "spacing_px", self.spacing_px, 1.0, math.inf)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        knots = [math.ceil((n - 1) / self.spacing_px) + 1 for n in x.shape[-2:]]
        return {
            "amplitude_px": uniform(g, 0.0, self.max_px),
            "knots": 2.0 * rand(g, (2, max(knots[0], 2), max(knots[1], 2))) - 1.0,
        }

    def apply(self, x: Tensor, amplitude_px: float, knots: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        field = F.interpolate(like(knots, x)[None], size=(h, w), mode="bilinear",
                              align_corners=True)[0] * amplitude_px
        ys = torch.arange(h, device=x.device, dtype=x.dtype)[:, None] + field[0]
        xs = torch.arange(w, device=x.device, dtype=x.dtype)[None, :] + field[1]
        # grid_sample's normalised coordinates, align_corners=False: pixel centre i -> (2i+1)/n-1
        grid = torch.stack(((2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1), dim=-1)
        return F.grid_sample(x[None], grid[None], mode="bilinear", padding_mode="border",
                             align_corners=False)[0]


_CROP_SHAPES = ("square", "circle")


@register_transform
@dataclass(frozen=True)
class CenterCrop(Filter):
    """Centre crop (App. D, finite detector size): zero everything outside a centred square
    or circle whose half-width is a fraction, drawn uniformly in ``[min_fraction, 1]``, of half
    the shorter image side. ``shapes`` lists the shapes to pick from (even odds)."""

    min_fraction: float = 0.6
    shapes: Sequence[str] = _CROP_SHAPES

    def __post_init__(self) -> None:
        check_range(self, "min_fraction", self.min_fraction, 0.0, 1.0)
        shapes = tuple(self.shapes)
        if not shapes or not set(shapes) <= set(_CROP_SHAPES):
            raise ValueError(f"CenterCrop.shapes must be a non-empty subset of {_CROP_SHAPES}, "
                             f"got {shapes}")
        object.__setattr__(self, "shapes", shapes)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        fraction = uniform(g, self.min_fraction, 1.0)
        return {
            "half_width_px": fraction * min(x.shape[-2:]) / 2,
            "shape": self.shapes[randint(g, len(self.shapes))],
        }

    def apply(self, x: Tensor, half_width_px: float, shape: str) -> Tensor:
        dy, dx = offsets(x)
        if shape == "square":
            keep = (dy.abs() <= half_width_px) & (dx.abs() <= half_width_px)
        else:
            keep = dy**2 + dx**2 <= half_width_px**2
        return x * keep


@register_transform
@dataclass(frozen=True)
class BeamStop(Filter):
    """Central hole (App. D, shadow of the beam dump): zero a centred disc whose radius is
    drawn uniformly up to ``max_radius_fraction`` of the shorter image side."""

    max_radius_fraction: float = 0.15

    def __post_init__(self) -> None:
        check_range(self, "max_radius_fraction", self.max_radius_fraction, 0.0, 1.0)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        return {"radius_px": uniform(g, 0.0, self.max_radius_fraction) * min(x.shape[-2:])}

    def apply(self, x: Tensor, radius_px: float) -> Tensor:
        dy, dx = offsets(x)
        return x * (dy**2 + dx**2 >= radius_px**2)


def shift_image(x: Tensor, dy: int, dx: int) -> Tensor:
    """Translate ``x`` (C, H, W) by ``dy`` rows and ``dx`` columns; zero fill."""
    h, w = x.shape[-2:]
    y = torch.zeros_like(x)
    if abs(dy) < h and abs(dx) < w:
        y[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            x[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return y


@register_transform
@dataclass(frozen=True)
class Shift(Filter):
    """Shift (App. D, source-point and beam-pointing jitter): translate by whole pixels
    ``shift_px = (dy, dx)``, each drawn uniformly from ``[-max_px, max_px]``; zero fill."""

    max_px: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.max_px, int) or self.max_px < 0:
            raise ValueError(f"Shift.max_px must be an integer >= 0, got {self.max_px!r}")

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        d = torch.randint(-self.max_px, self.max_px + 1, (2,), generator=g, device=g.device)
        return {"shift_px": (int(d[0]), int(d[1]))}

    def apply(self, x: Tensor, shift_px: tuple[int, int]) -> Tensor:
        return shift_image(x, *shift_px)


_SENSITIVITY_PATTERNS = ("halves", "quadrants", "smooth")


@register_transform
@dataclass(frozen=True)
class UnevenSensitivity(Filter):
    """Uneven detector sensitivity (App. D): attenuate parts of the image by a gain map.

    Patterns, picked with even odds among ``patterns``: ``"halves"`` (two detector halves,
    split along a random axis, e.g. the two panels of a pnCCD), ``"quadrants"`` (four
    segments) - each segment with its own constant gain - or ``"smooth"`` (bilinear
    interpolation of 3 x 3 random gains). Every gain is drawn uniformly in
    ``[1 - max_attenuation, 1]``.

    The gain multiplies the [0, 1] image as in the paper's image-space augmentation; on a
    log-scaled image that both lowers the signal and compresses its dynamic range, and keeps
    the floor at 0.
    """

    max_attenuation: float = 0.5
    patterns: Sequence[str] = _SENSITIVITY_PATTERNS

    def __post_init__(self) -> None:
        check_range(self, "max_attenuation", self.max_attenuation, 0.0, 1.0)
        patterns = tuple(self.patterns)
        if not patterns or not set(patterns) <= set(_SENSITIVITY_PATTERNS):
            raise ValueError("UnevenSensitivity.patterns must be a non-empty subset of "
                             f"{_SENSITIVITY_PATTERNS}, got {patterns}")
        object.__setattr__(self, "patterns", patterns)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        pattern = self.patterns[randint(g, len(self.patterns))]
        if pattern == "halves":
            grid = (2, 1) if randint(g, 2) else (1, 2)
        elif pattern == "quadrants":
            grid = (2, 2)
        else:
            grid = (3, 3)
        gains = 1.0 - self.max_attenuation * rand(g, grid)
        return {"gains": gains, "smooth": pattern == "smooth"}

    def apply(self, x: Tensor, gains: Tensor, smooth: bool) -> Tensor:
        size = tuple(x.shape[-2:])
        g4 = like(gains, x)[None, None]
        if smooth:
            gain = F.interpolate(g4, size=size, mode="bilinear", align_corners=True)
        else:
            gain = F.interpolate(g4, size=size, mode="nearest")
        return x * gain[0]


@register_transform
@dataclass(frozen=True)
class PoissonNoise(Filter):
    """Photon-counting (shot) noise for counting detectors; not one of the App. D filters.

    Poisson statistics act on intensity, not on a log-scaled image, so the filter maps the
    sample to relative intensity ``I`` (peak 1), draws ``counts ~ Poisson(N * I)`` with a
    peak photon number ``N`` drawn log-uniformly in ``photons_range``, and maps the counts back:

    - ``log_decades=None``: the sample is linear intensity (e.g. a fluorescence camera image
      scaled so that 1 is the peak); the output is ``counts / N``.
    - ``log_decades=d``: the sample is ``1 + log10(I) / d`` (``d`` decades below the peak map
      to 0, and 0 means no signal), a log-scaled pattern; zero counts map to 0.

    ``log_decades`` must match how the task scaled its images; it cannot be inferred from one
    image.
    """

    photons_range: Sequence[float] = (10.0, 1e4)
    log_decades: float | None = None

    def __post_init__(self) -> None:
        lo_hi = tuple(float(v) for v in self.photons_range)
        if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1] < math.inf:
            raise ValueError(f"PoissonNoise.photons_range must be (low, high) with "
                             f"0 < low <= high, got {self.photons_range!r}")
        object.__setattr__(self, "photons_range", lo_hi)
        if self.log_decades is not None:
            check_range(self, "log_decades", self.log_decades, 1e-6, math.inf)

    def _intensity(self, x: Tensor) -> Tensor:
        if self.log_decades is None:
            return x.clamp_min(0.0)
        return torch.where(x > 0, 10.0 ** (self.log_decades * (x - 1.0)), 0.0)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        lo, hi = self.photons_range
        peak = math.exp(uniform(g, math.log(lo), math.log(hi)))
        rate = (peak * self._intensity(x)).to(g.device)
        return {"peak_photons": peak, "counts": torch.poisson(rate, generator=g)}

    def apply(self, x: Tensor, peak_photons: float, counts: Tensor) -> Tensor:
        relative = like(counts, x) / peak_photons
        if self.log_decades is None:
            return relative
        return torch.where(relative > 0, 1.0 + torch.log10(relative) / self.log_decades, 0.0)
