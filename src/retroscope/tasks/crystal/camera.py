"""Online camera model and augmentation of the Coulomb-crystal task (Allsopp et al. 2025).

The stored sample is a clean fluorescence image (rows = trap axis z, vertical; cols = radial x)
brightness-normalised to [0, 1] (image / its 99.9th percentile, clipped), one channel. In the
DataLoader it is augmented as in the paper ("rotating the crystal image, moving it off centre,
and enlarging or reducing its size") and passed through a model of the EMCCD camera, then
brightness-normalised again, because the network always sees brightness-normalised images.

Filters (all :class:`~retroscope.core.observe.Filter`, registered in
:data:`~retroscope.core.observe.TRANSFORMS` when this module is imported):

- :class:`Rotate` - rotation about the image centre by ``angle_deg`` (degrees);
- :class:`Magnify` - zoom about the image centre by ``factor``;
- :class:`Affine` - rotation, zoom and sub-pixel shift ``shift_px`` in one resampling;
- :class:`EMCCD` - photon counting, electron multiplication and read noise;
- :class:`Renormalise` - divide by the sample's 99.9th percentile (no random parameters).

:func:`crystal_augmentation` assembles them into the training transform. Geometry is resampled
bilinearly with :func:`torch.nn.functional.affine_grid` / ``grid_sample`` (zero fill), so it
works on CPU and CUDA tensors alike; every random number comes from the generator passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from retroscope.core.observe import (
    Compose,
    Filter,
    GaussianBlur,
    Identity,
    RandomChoice,
    Transform,
    register_transform,
)
from retroscope.core.observe.transform import check_range, like, rand, uniform

__all__ = [
    "EMCCD",
    "Mirror",
    "Affine",
    "Magnify",
    "Renormalise",
    "Rotate",
    "affine_image",
    "crystal_augmentation",
]


# --------------------------------------------------------------------------------------------
# geometry


def affine_image(x: Tensor, angle_deg: float = 0.0, factor: float = 1.0,
                 shift_px: Sequence[float] = (0.0, 0.0)) -> Tensor:
    """Zoom ``x`` (C, H, W) by ``factor`` and rotate it by ``angle_deg`` about the image
    centre, then translate it by ``shift_px = (dy, dx)`` pixels (rows, columns).

    A point at pixel offset ``(dy, dx)`` from the centre ``((H-1)/2, (W-1)/2)`` moves to
    ``(dy', dx') = R (factor * (dy, dx)) + shift_px``, where a positive angle turns the image
    counter-clockwise as displayed (row 0 at the top): ``dx' = f (dx cos a + dy sin a)``,
    ``dy' = f (dy cos a - dx sin a)``. Pixels are square, so the geometry holds for
    non-square images. Bilinear resampling, zero fill beyond the edge.
    """
    h, w = x.shape[-2:]
    a = math.radians(angle_deg)
    cos, sin = math.cos(a), math.sin(a)
    sy, sx = (float(s) for s in shift_px)
    # output offset p' -> source offset p = R(-a) (p' - s) / f, in pixels (x = col, y = row)
    a00, a01 = cos / factor, -sin / factor
    a10, a11 = sin / factor, cos / factor
    tx, ty = -(a00 * sx + a01 * sy), -(a10 * sx + a11 * sy)
    # to grid_sample's normalised coordinates (align_corners=False): offset u px -> 2 u / n
    theta = torch.tensor([[a00, a01 * h / w, 2.0 * tx / w],
                          [a10 * w / h, a11, 2.0 * ty / h]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta[None], [1, *x.shape], align_corners=False)
    return F.grid_sample(x[None], grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[0]


def _check_factors(owner: object, low: float, high: float) -> None:
    check_range(owner, "low", low, 1e-3, 1e3)
    check_range(owner, "high", high, low, 1e3)


@dataclass(frozen=True)
class Rotate(Filter):
    """Rotate the image about its centre by ``angle_deg`` degrees (counter-clockwise as
    displayed), drawn uniformly in ``[-max_deg, max_deg]`` (degrees). Bilinear, zero fill."""

    max_deg: float = 5.0

    def __post_init__(self) -> None:
        check_range(self, "max_deg", self.max_deg, 0.0, 180.0)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        return {"angle_deg": uniform(g, -self.max_deg, self.max_deg)}

    def apply(self, x: Tensor, angle_deg: float) -> Tensor:
        return affine_image(x, angle_deg=angle_deg)


@dataclass(frozen=True)
class Magnify(Filter):
    """Enlarge or reduce the image about its centre by ``factor`` (dimensionless, > 1
    enlarges), drawn uniformly in ``[low, high]``: a point ``r`` pixels from the centre moves
    to ``factor * r``. Bilinear, zero fill."""

    low: float = 0.93
    high: float = 1.07

    def __post_init__(self) -> None:
        _check_factors(self, self.low, self.high)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        return {"factor": uniform(g, self.low, self.high)}

    def apply(self, x: Tensor, factor: float) -> Tensor:
        return affine_image(x, factor=factor)


@dataclass(frozen=True)
class Affine(Filter):
    """Rotation, magnification and off-centre shift in one bilinear resampling
    (:func:`affine_image`; zero fill).

    Drawn uniformly: ``angle_deg`` in ``[-max_deg, max_deg]`` (degrees), ``factor`` in
    ``[low, high]`` (dimensionless zoom) and ``shift_px = (dy, dx)`` with each component in
    ``[-max_shift_px, max_shift_px]`` (pixels, sub-pixel; rows along the trap axis).
    """

    max_deg: float = 5.0
    low: float = 0.93
    high: float = 1.07
    max_shift_px: float = 5.0

    def __post_init__(self) -> None:
        check_range(self, "max_deg", self.max_deg, 0.0, 180.0)
        _check_factors(self, self.low, self.high)
        check_range(self, "max_shift_px", self.max_shift_px, 0.0, math.inf)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        angle = uniform(g, -self.max_deg, self.max_deg)
        factor = uniform(g, self.low, self.high)
        dy = uniform(g, -self.max_shift_px, self.max_shift_px)
        dx = uniform(g, -self.max_shift_px, self.max_shift_px)
        return {"angle_deg": angle, "factor": factor, "shift_px": (dy, dx)}

    def apply(self, x: Tensor, angle_deg: float, factor: float,
              shift_px: Sequence[float]) -> Tensor:
        return affine_image(x, angle_deg=angle_deg, factor=factor, shift_px=shift_px)


# --------------------------------------------------------------------------------------------
# camera


def _log_uniform(g: torch.Generator, low: float, high: float) -> float:
    return math.exp(uniform(g, math.log(low), math.log(high)))


@dataclass(frozen=True)
class EMCCD(Filter):
    """An electron-multiplying CCD looking at the brightness-normalised image.

    Drawn per sample (units in the names):

    - ``peak_photons``: detected photons (photoelectrons) in a pixel of value 1, log-uniform
      in ``[photons_low, photons_high]``;
    - ``background_photons``: uniform background (scattered light, dark counts and
      clock-induced charge) in photoelectrons per pixel, uniform in
      ``[background_low, background_high]``;
    - ``gain``: EM gain (electrons out per photoelectron), uniform in ``[gain_low, gain_high]``;
    - ``read_noise_e``: rms read noise in electrons, uniform in
      ``[read_noise_low, read_noise_high]``;
    - ``electrons``: the EM register's output per pixel (electrons), and ``read_normal``, a
      standard normal per pixel (tensors on the generator's device).

    Model: ``counts ~ Poisson(peak_photons * x + background_photons)``; the multiplication
    register is the high-gain approximation ``electrons ~ Gamma(shape=counts, scale=gain)``
    (0 for no counts; mean ``counts * gain``, excess noise factor 2 overall), drawn exactly
    with ``torch._standard_gamma(..., generator=g)``; the read-out adds
    ``read_noise_e * read_normal``. The signal is converted back to the image scale by
    subtracting the expected background ``background_photons * gain`` and dividing by
    ``peak_photons * gain``, then clamped to [0, 1]. Before the clamp the output is unbiased,
    ``E[y] = x``, with variance ``2 (peak_photons x + background_photons) / peak_photons**2 +
    (read_noise_e / (peak_photons gain))**2``; with many photons, little background and little
    read noise it converges to the input.
    """

    photons_low: float = 20.0
    photons_high: float = 400.0
    background_low: float = 0.0
    background_high: float = 2.0
    gain_low: float = 50.0
    gain_high: float = 300.0
    read_noise_low: float = 10.0
    read_noise_high: float = 60.0

    def __post_init__(self) -> None:
        check_range(self, "photons_low", self.photons_low, 1e-6, math.inf)
        check_range(self, "photons_high", self.photons_high, self.photons_low, math.inf)
        check_range(self, "background_low", self.background_low, 0.0, math.inf)
        check_range(self, "background_high", self.background_high, self.background_low,
                     math.inf)
        check_range(self, "gain_low", self.gain_low, 1.0, math.inf)
        check_range(self, "gain_high", self.gain_high, self.gain_low, math.inf)
        check_range(self, "read_noise_low", self.read_noise_low, 0.0, math.inf)
        check_range(self, "read_noise_high", self.read_noise_high, self.read_noise_low,
                     math.inf)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        peak = _log_uniform(g, self.photons_low, self.photons_high)
        background = uniform(g, self.background_low, self.background_high)
        gain = uniform(g, self.gain_low, self.gain_high)
        read_noise = uniform(g, self.read_noise_low, self.read_noise_high)
        dtype = torch.promote_types(x.dtype, torch.float32)
        rate = (peak * x.clamp_min(0.0) + background).to(device=g.device, dtype=dtype)
        counts = torch.poisson(rate, generator=g)
        gamma = torch._standard_gamma(counts, generator=g)  # shape 0 gives ~1e-308, not 0
        electrons = torch.where(counts > 0, gamma * gain, 0.0)
        read_normal = torch.randn(x.shape, generator=g, device=g.device, dtype=dtype)
        return {"peak_photons": peak, "background_photons": background, "gain": gain,
                "read_noise_e": read_noise, "electrons": electrons, "read_normal": read_normal}

    def apply(self, x: Tensor, peak_photons: float, background_photons: float, gain: float,
              read_noise_e: float, electrons: Tensor, read_normal: Tensor) -> Tensor:
        signal = like(electrons, x) + read_noise_e * like(read_normal, x)
        return (signal - background_photons * gain) / (peak_photons * gain)


@dataclass(frozen=True)
class Mirror(Filter):
    """Mirror the image left-right (x -> -x) and/or up-down (z -> -z), each with probability
    ``probability``: exact symmetries of the linear Paul trap (pseudopotential, Coulomb energy
    and micromotion), so a mirrored crystal image is an equally likely crystal with the same
    ion number. Training on them teaches the network what prediction averages over
    (:attr:`CrystalTask.input_flips`)."""

    probability: float = 0.5

    def __post_init__(self) -> None:
        check_range(self, "probability", self.probability, 0.0, 1.0)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        u = rand(g, (2,))
        return {"flip_x": bool(u[0] < self.probability), "flip_z": bool(u[1] < self.probability)}

    def apply(self, x: Tensor, flip_x: bool, flip_z: bool) -> Tensor:
        dims = tuple(d for d, on in ((-1, flip_x), (-2, flip_z)) if on)
        return torch.flip(x, dims) if dims else x.clone()


@dataclass(frozen=True)
class Renormalise(Filter):
    """Brightness normalisation: divide the sample by its ``quantile`` (over all pixels and
    channels; dimensionless, 0.999 = the 99.9th percentile), so that this quantile becomes 1,
    and clamp to [0, 1]. Falls back to the maximum when the quantile is 0, and leaves an
    all-zero sample unchanged, as :func:`~retroscope.tasks.crystal.render.brightness_normalise`
    does for stored images. No random parameters."""

    quantile: float = 0.999

    def __post_init__(self) -> None:
        check_range(self, "quantile", self.quantile, 0.0, 1.0)

    def apply(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1)
        if flat.numel() == 0:
            return x.clone()
        q = torch.quantile(flat.to(torch.promote_types(flat.dtype, torch.float32)),
                           self.quantile).to(x.dtype)
        top = torch.where(q > 0, q, flat.amax())
        top = torch.where(torch.isfinite(top) & (top > 0), top, torch.ones_like(top))
        return x / top


for _cls in (Rotate, Magnify, Affine, EMCCD, Mirror, Renormalise):
    register_transform(_cls)


# --------------------------------------------------------------------------------------------
# the training transform


def crystal_augmentation(pixel_um: float, *, max_shift_um: float = 20.0) -> Transform:
    """The online transform used in training, for images of ``pixel_um`` micrometres per pixel.

    In order:

    0. :class:`Mirror`: left-right and up-down mirror images, each with probability 0.5
       (symmetries of the trap);
    1. geometry, with probability 0.8 (:class:`Affine`, one resampling): rotation by up to
       +-5 degrees, magnification 0.93-1.07, shift off centre by up to ``max_shift_um``
       (20 um) along each axis, i.e. ``max_shift_um / pixel_um`` pixels;
    2. extra blur (focus, optics), with probability 0.3: :class:`GaussianBlur` with sigma
       drawn uniformly up to 1 px;
    3. the camera, with probability 0.9: :class:`EMCCD` with its default ranges (20-400
       photons at the brightest spot, 0-2 background photons/px, gain 50-300, read noise
       10-60 e-); the remaining 10 % keep the clean simulation;
    4. :class:`Renormalise` (99.9th percentile to 1), as the network sees brightness-normalised
       images.
    """
    if not (isinstance(pixel_um, (int, float)) and 0 < pixel_um < math.inf):
        raise ValueError(f"crystal_augmentation: pixel_um must be > 0, got {pixel_um!r}")
    if not (isinstance(max_shift_um, (int, float)) and 0 <= max_shift_um < math.inf):
        raise ValueError(f"crystal_augmentation: max_shift_um must be >= 0, got {max_shift_um!r}")
    geometry = Affine(max_deg=5.0, low=0.93, high=1.07, max_shift_px=max_shift_um / pixel_um)
    return Compose([
        Mirror(probability=0.5),
        RandomChoice([Identity(), geometry], weights=[0.2, 0.8]),
        RandomChoice([Identity(), GaussianBlur(max_sigma_px=1.0)], weights=[0.7, 0.3]),
        RandomChoice([Identity(), EMCCD()], weights=[0.1, 0.9]),
        Renormalise(quantile=0.999),
    ])

