"""Online observation transforms: cheap detector imperfections applied in the DataLoader.

The expensive physics (a clean scattering pattern, a clean camera image) is stored once; the
imperfections of a real detector are drawn afresh every time a sample is loaded. A transform
maps one sample, a float tensor ``(C, H, W)`` in the network's scale ``[0, 1]`` (for the
diffraction task a log-intensity image, 0 = floor or no signal, 1 = brightest), onto another
of the same shape, also clamped to ``[0, 1]``.

Every random number comes from the ``torch.Generator`` passed in, so the same seed gives the
same bytes; draws are made on the generator's device and moved to the sample's device, so a
transform works on CPU and CUDA tensors alike. Inputs are never modified in place.

A leaf :class:`Filter` separates *what is drawn* (:meth:`Filter.draw`, a dict of parameters
in named units such as ``sigma_px`` or ``shift_px``) from *what is done*
(:meth:`Filter.apply`), so a test or a plot can replay a filter with known parameters.

The filters are those of Stielow et al., "Fast reconstruction of single-shot wide-angle
diffraction images through deep learning", Appendix D and Fig. 2: identity, uniform noise,
salt-and-pepper noise, Gaussian blur, jitter distortion, centre crop (finite detector), a
central hole (beam-stop shadow), shift (beam-pointing jitter) and uneven detector sensitivity;
:func:`stielow_augmentation` assembles the paper's eleven-way scheme. :class:`PoissonNoise`
adds photon-counting statistics for counting detectors.

Transforms are frozen dataclasses registered by class name in :data:`TRANSFORMS`;
:meth:`Transform.to_spec` and :func:`build_transform` turn them into JSON-able dicts and back,
so a run records its augmentation in its config. A lab registers its own filter with
``TRANSFORMS[MyFilter.__name__] = MyFilter``. :class:`OnlineObserver` seeds one generator per
(seed, epoch, sample index), so augmentation in DataLoader workers is reproducible and does not
depend on the number of workers.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "TRANSFORMS",
    "BeamStop",
    "CenterCrop",
    "Compose",
    "Filter",
    "GaussianBlur",
    "Identity",
    "Jitter",
    "OnlineObserver",
    "PoissonNoise",
    "RandomChoice",
    "RandomSubset",
    "SaltPepper",
    "Shift",
    "Transform",
    "UnevenSensitivity",
    "UniformNoise",
    "build_transform",
    "gaussian_blur",
    "shift_image",
    "stielow_augmentation",
]


# --------------------------------------------------------------------------------------------
# helpers: random draws on the generator's device, checks


def _rand(g: torch.Generator, shape: Sequence[int]) -> Tensor:
    """Uniform numbers in [0, 1) of ``shape`` on the generator's device."""
    return torch.rand(tuple(shape), generator=g, device=g.device)


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(_rand(g, ()))


def _randint(g: torch.Generator, n: int) -> int:
    """A uniform integer in ``[0, n)``."""
    return int(torch.randint(n, (), generator=g, device=g.device))


def _like(t: Tensor, x: Tensor) -> Tensor:
    """``t`` as a float tensor on the device and in the dtype of ``x``."""
    return t.to(device=x.device, dtype=x.dtype)


def _check_sample(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 3 or not x.is_floating_point():
        what = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x)
        raise ValueError(f"expected one sample, a float tensor (C, H, W); got {what}")
    return x


def _check_range(owner: object, name: str, value: float, low: float, high: float) -> None:
    if not (isinstance(value, (int, float)) and low <= value <= high):
        raise ValueError(f"{type(owner).__name__}.{name} must be in [{low}, {high}], got {value!r}")


def _offsets(x: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel distances from the image centre: ``dy`` of shape (H, 1) and ``dx`` of (1, W)."""
    h, w = x.shape[-2:]
    dy = torch.arange(h, device=x.device, dtype=x.dtype) - (h - 1) / 2
    dx = torch.arange(w, device=x.device, dtype=x.dtype) - (w - 1) / 2
    return dy[:, None], dx[None, :]


def _spec_value(value: Any) -> Any:
    if isinstance(value, Transform):
        return value.to_spec()
    if isinstance(value, (tuple, list)):
        return [_spec_value(v) for v in value]
    return value


def _run(transforms: Sequence[Transform], x: Tensor, g: torch.Generator) -> Tensor:
    y = _check_sample(x).clamp(0.0, 1.0)
    for t in transforms:
        y = t(y, g)
    return y


# --------------------------------------------------------------------------------------------
# base classes


class Transform(ABC):
    """A random map of one sample ``(C, H, W)`` in [0, 1] onto a new tensor of the same shape.

    Subclasses are frozen dataclasses whose fields are their settings; they draw every random
    number from ``g`` and return a new tensor clamped to [0, 1].
    """

    @abstractmethod
    def __call__(self, x: Tensor, g: torch.Generator) -> Tensor: ...

    def to_spec(self) -> dict[str, Any]:
        """The JSON-able config that :func:`build_transform` turns back into this transform."""
        spec: dict[str, Any] = {"name": type(self).__name__}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            spec[f.name] = _spec_value(getattr(self, f.name))
        return spec


class Filter(Transform):
    """A leaf transform: ``apply(x, **draw(x, g))`` clamped to [0, 1].

    :meth:`draw` returns the random parameters of one application (scalars in the units of
    their names, tensors on the generator's device); :meth:`apply` is deterministic.
    """

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        return {}

    @abstractmethod
    def apply(self, x: Tensor, **params: Any) -> Tensor: ...

    def __call__(self, x: Tensor, g: torch.Generator) -> Tensor:
        _check_sample(x)
        return self.apply(x, **self.draw(x, g)).clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------
# composition


def _as_transforms(owner: object, transforms: Sequence[Transform]) -> tuple[Transform, ...]:
    items = tuple(transforms)
    for t in items:
        if not isinstance(t, Transform):
            raise TypeError(f"{type(owner).__name__}: {t!r} is not a Transform")
    return items


@dataclass(frozen=True)
class Compose(Transform):
    """Apply ``transforms`` one after the other."""

    transforms: Sequence[Transform]

    def __post_init__(self) -> None:
        object.__setattr__(self, "transforms", _as_transforms(self, self.transforms))

    def __call__(self, x: Tensor, g: torch.Generator) -> Tensor:
        return _run(self.transforms, x, g)


@dataclass(frozen=True)
class RandomChoice(Transform):
    """Apply one of ``transforms``, picked with probabilities proportional to ``weights``
    (uniform when ``None``)."""

    transforms: Sequence[Transform]
    weights: Sequence[float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "transforms", _as_transforms(self, self.transforms))
        if not self.transforms:
            raise ValueError("RandomChoice needs at least one transform")
        if self.weights is not None:
            w = tuple(float(v) for v in self.weights)
            if len(w) != len(self.transforms):
                raise ValueError(
                    f"RandomChoice: {len(w)} weights for {len(self.transforms)} transforms"
                )
            if not all(math.isfinite(v) and v >= 0 for v in w) or sum(w) <= 0:
                raise ValueError(f"RandomChoice: weights must be >= 0 and not all 0, got {w}")
            object.__setattr__(self, "weights", w)

    def __call__(self, x: Tensor, g: torch.Generator) -> Tensor:
        n = len(self.transforms)
        w = torch.tensor(self.weights or (1.0,) * n, dtype=torch.float64, device=g.device)
        i = int(torch.multinomial(w, 1, generator=g))
        return _run((self.transforms[i],), x, g)


@dataclass(frozen=True)
class RandomSubset(Transform):
    """Apply a random combination of ``transforms``: each is kept with probability ``p``, in
    a random order when ``shuffle`` (else in the given order)."""

    transforms: Sequence[Transform]
    p: float = 0.5
    shuffle: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "transforms", _as_transforms(self, self.transforms))
        _check_range(self, "p", self.p, 0.0, 1.0)

    def __call__(self, x: Tensor, g: torch.Generator) -> Tensor:
        n = len(self.transforms)
        keep = (_rand(g, (n,)) < self.p).tolist()
        order = list(range(n))
        if self.shuffle:
            order = torch.randperm(n, generator=g, device=g.device).tolist()
        return _run([self.transforms[i] for i in order if keep[i]], x, g)


# --------------------------------------------------------------------------------------------
# filters of Stielow et al., App. D


@dataclass(frozen=True)
class Identity(Filter):
    """The trivial filter of App. D: the image unchanged (a clamped copy)."""

    def apply(self, x: Tensor) -> Tensor:
        return x


@dataclass(frozen=True)
class UniformNoise(Filter):
    """Uniform noise (App. D): every pixel changes by a random margin in ``[-a, a]``, with the
    amplitude ``a`` drawn uniformly up to ``max_fraction`` of the sample's maximum signal."""

    max_fraction: float = 0.5

    def __post_init__(self) -> None:
        _check_range(self, "max_fraction", self.max_fraction, 0.0, 1.0)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        return {
            "amplitude_fraction": _uniform(g, 0.0, self.max_fraction),
            "noise": 2.0 * _rand(g, x.shape) - 1.0,
        }

    def apply(self, x: Tensor, amplitude_fraction: float, noise: Tensor) -> Tensor:
        return x + amplitude_fraction * x.amax() * _like(noise, x)


@dataclass(frozen=True)
class SaltPepper(Filter):
    """Salt-and-pepper noise (App. D): a random fraction of pixels, drawn uniformly up to
    ``max_fraction``, is set to the sample's minimum or maximum (even odds); a hit pixel is
    hit in every channel."""

    max_fraction: float = 0.02

    def __post_init__(self) -> None:
        _check_range(self, "max_fraction", self.max_fraction, 0.0, 1.0)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        fraction = _uniform(g, 0.0, self.max_fraction)
        return {"pixels": _rand(g, x.shape[-2:]) < fraction, "salt": _rand(g, x.shape[-2:]) < 0.5}

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


@dataclass(frozen=True)
class GaussianBlur(Filter):
    """Gaussian blur (App. D, limited detector resolution): the kernel's radius (its standard
    deviation, ``sigma_px``) is drawn uniformly up to ``max_sigma_px`` pixels."""

    max_sigma_px: float = 5.0

    def __post_init__(self) -> None:
        _check_range(self, "max_sigma_px", self.max_sigma_px, 0.0, math.inf)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        return {"sigma_px": _uniform(g, 0.0, self.max_sigma_px)}

    def apply(self, x: Tensor, sigma_px: float) -> Tensor:
        return gaussian_blur(x, sigma_px)


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
        _check_range(self, "max_px", self.max_px, 0.0, math.inf)
        _check_range(self, "spacing_px", self.spacing_px, 1.0, math.inf)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        knots = [math.ceil((n - 1) / self.spacing_px) + 1 for n in x.shape[-2:]]
        return {
            "amplitude_px": _uniform(g, 0.0, self.max_px),
            "knots": 2.0 * _rand(g, (2, max(knots[0], 2), max(knots[1], 2))) - 1.0,
        }

    def apply(self, x: Tensor, amplitude_px: float, knots: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        field = F.interpolate(_like(knots, x)[None], size=(h, w), mode="bilinear",
                              align_corners=True)[0] * amplitude_px
        ys = torch.arange(h, device=x.device, dtype=x.dtype)[:, None] + field[0]
        xs = torch.arange(w, device=x.device, dtype=x.dtype)[None, :] + field[1]
        # grid_sample's normalised coordinates, align_corners=False: pixel centre i -> (2i+1)/n-1
        grid = torch.stack(((2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1), dim=-1)
        return F.grid_sample(x[None], grid[None], mode="bilinear", padding_mode="border",
                             align_corners=False)[0]


_CROP_SHAPES = ("square", "circle")


@dataclass(frozen=True)
class CenterCrop(Filter):
    """Centre crop (App. D, finite detector size): zero everything outside a centred square
    or circle whose half-width is a fraction, drawn uniformly in ``[min_fraction, 1]``, of half
    the shorter image side. ``shapes`` lists the shapes to pick from (even odds)."""

    min_fraction: float = 0.6
    shapes: Sequence[str] = _CROP_SHAPES

    def __post_init__(self) -> None:
        _check_range(self, "min_fraction", self.min_fraction, 0.0, 1.0)
        shapes = tuple(self.shapes)
        if not shapes or not set(shapes) <= set(_CROP_SHAPES):
            raise ValueError(f"CenterCrop.shapes must be a non-empty subset of {_CROP_SHAPES}, "
                             f"got {shapes}")
        object.__setattr__(self, "shapes", shapes)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        fraction = _uniform(g, self.min_fraction, 1.0)
        return {
            "half_width_px": fraction * min(x.shape[-2:]) / 2,
            "shape": self.shapes[_randint(g, len(self.shapes))],
        }

    def apply(self, x: Tensor, half_width_px: float, shape: str) -> Tensor:
        dy, dx = _offsets(x)
        if shape == "square":
            keep = (dy.abs() <= half_width_px) & (dx.abs() <= half_width_px)
        else:
            keep = dy**2 + dx**2 <= half_width_px**2
        return x * keep


@dataclass(frozen=True)
class BeamStop(Filter):
    """Central hole (App. D, shadow of the beam dump): zero a centred disc whose radius is
    drawn uniformly up to ``max_radius_fraction`` of the shorter image side."""

    max_radius_fraction: float = 0.15

    def __post_init__(self) -> None:
        _check_range(self, "max_radius_fraction", self.max_radius_fraction, 0.0, 1.0)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        return {"radius_px": _uniform(g, 0.0, self.max_radius_fraction) * min(x.shape[-2:])}

    def apply(self, x: Tensor, radius_px: float) -> Tensor:
        dy, dx = _offsets(x)
        return x * (dy**2 + dx**2 >= radius_px**2)


def shift_image(x: Tensor, dy: int, dx: int) -> Tensor:
    """Translate ``x`` (C, H, W) by ``dy`` rows and ``dx`` columns; zero fill."""
    h, w = x.shape[-2:]
    y = torch.zeros_like(x)
    if abs(dy) < h and abs(dx) < w:
        y[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            x[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return y


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
        _check_range(self, "max_attenuation", self.max_attenuation, 0.0, 1.0)
        patterns = tuple(self.patterns)
        if not patterns or not set(patterns) <= set(_SENSITIVITY_PATTERNS):
            raise ValueError("UnevenSensitivity.patterns must be a non-empty subset of "
                             f"{_SENSITIVITY_PATTERNS}, got {patterns}")
        object.__setattr__(self, "patterns", patterns)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        pattern = self.patterns[_randint(g, len(self.patterns))]
        if pattern == "halves":
            grid = (2, 1) if _randint(g, 2) else (1, 2)
        elif pattern == "quadrants":
            grid = (2, 2)
        else:
            grid = (3, 3)
        gains = 1.0 - self.max_attenuation * _rand(g, grid)
        return {"gains": gains, "smooth": pattern == "smooth"}

    def apply(self, x: Tensor, gains: Tensor, smooth: bool) -> Tensor:
        size = tuple(x.shape[-2:])
        g4 = _like(gains, x)[None, None]
        if smooth:
            gain = F.interpolate(g4, size=size, mode="bilinear", align_corners=True)
        else:
            gain = F.interpolate(g4, size=size, mode="nearest")
        return x * gain[0]


@dataclass(frozen=True)
class PoissonNoise(Filter):
    """Photon-counting (shot) noise for counting detectors; not one of the App. D filters.

    Poisson statistics act on intensity, not on a log-scaled image, so the filter maps the
    sample to relative intensity ``I`` (peak 1), draws ``counts ~ Poisson(N * I)`` with a
    peak photon number ``N`` drawn log-uniformly in ``photons_range``, and maps the counts back:

    - ``log_decades=None``: the sample is linear intensity (e.g. a fluorescence camera image
      scaled so that 1 is the peak); the output is ``counts / N``.
    - ``log_decades=d``: the sample is ``1 + log10(I) / d`` (``d`` decades below the peak map
      to 0, and 0 means no signal), the scale of the diffraction task; zero counts map to 0.

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
            _check_range(self, "log_decades", self.log_decades, 1e-6, math.inf)

    def _intensity(self, x: Tensor) -> Tensor:
        if self.log_decades is None:
            return x.clamp_min(0.0)
        return torch.where(x > 0, 10.0 ** (self.log_decades * (x - 1.0)), 0.0)

    def draw(self, x: Tensor, g: torch.Generator) -> dict[str, Any]:
        lo, hi = self.photons_range
        peak = math.exp(_uniform(g, math.log(lo), math.log(hi)))
        rate = (peak * self._intensity(x)).to(g.device)
        return {"peak_photons": peak, "counts": torch.poisson(rate, generator=g)}

    def apply(self, x: Tensor, peak_photons: float, counts: Tensor) -> Tensor:
        relative = _like(counts, x) / peak_photons
        if self.log_decades is None:
            return relative
        return torch.where(relative > 0, 1.0 + torch.log10(relative) / self.log_decades, 0.0)


# --------------------------------------------------------------------------------------------
# the paper's scheme, the online observer, the registry


def stielow_augmentation() -> Transform:
    """The augmentation scheme of Stielow et al., App. D and Fig. 2, as one transform.

    One of eleven choices, with even odds: the identity, each of the eight filters alone, a
    random combination of all filters in random order (:class:`RandomSubset`), or all filters
    in the fixed order of the experiment: the pattern moves on the detector (shift), the beam
    dump shadows its centre (central hole), the detector blurs (jitter, Gaussian blur), its
    segments differ in gain (uneven sensitivity), readout adds noise and hot or dead pixels
    (uniform, salt-and-pepper), and nothing exists beyond the detector's edge (centre crop).
    The paper added the eleven filtered copies to the training set (11-fold); here one choice
    is drawn each time a sample is loaded, which has the same distribution.
    """
    ordered = [Shift(), BeamStop(), Jitter(), GaussianBlur(), UnevenSensitivity(),
               UniformNoise(), SaltPepper(), CenterCrop()]
    return RandomChoice([Identity(), *ordered, RandomSubset(ordered), Compose(ordered)])


@dataclass(frozen=True)
class OnlineObserver:
    """Apply ``transform`` to sample ``index`` of ``epoch`` with its own seeded generator.

    The generator is seeded from ``numpy.random.SeedSequence([seed, epoch, index])``, so the
    imperfections of a sample depend only on (seed, epoch, index): reproducible, different
    every epoch, and independent of DataLoader worker count and order. Picklable, so it can
    travel to spawned workers.
    """

    transform: Transform
    seed: int

    def __post_init__(self) -> None:
        if not isinstance(self.transform, Transform):
            raise TypeError(f"OnlineObserver: {self.transform!r} is not a Transform")
        if operator.index(self.seed) < 0:
            raise ValueError(f"OnlineObserver.seed must be >= 0, got {self.seed}")

    def generator(self, index: int, epoch: int = 0) -> torch.Generator:
        """The CPU generator of sample ``index`` in ``epoch``."""
        if operator.index(index) < 0 or operator.index(epoch) < 0:
            raise ValueError(f"index and epoch must be >= 0, got index={index}, epoch={epoch}")
        state = np.random.SeedSequence([self.seed, epoch, index]).generate_state(1, np.uint64)
        return torch.Generator().manual_seed(int(state[0]))

    def __call__(self, x: Tensor, index: int, epoch: int = 0) -> Tensor:
        return self.transform(x, self.generator(index, epoch))


TRANSFORMS: dict[str, type[Transform]] = {
    cls.__name__: cls
    for cls in (Identity, Compose, RandomChoice, RandomSubset, UniformNoise, SaltPepper,
                GaussianBlur, Jitter, CenterCrop, BeamStop, Shift, UnevenSensitivity,
                PoissonNoise)
}


def build_transform(spec: dict | list) -> Transform:
    """Build a transform from its config, as written by :meth:`Transform.to_spec`.

    A dict names a registered class (``{"name": "GaussianBlur", "max_sigma_px": 3}``); the
    nested ``transforms`` of composites are specs themselves; a list is a :class:`Compose`.
    """
    if isinstance(spec, list):
        return Compose([build_transform(s) for s in spec])
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"a transform spec is a dict with a 'name' or a list, got {spec!r}")
    kwargs = dict(spec)
    name = kwargs.pop("name")
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; known: {', '.join(sorted(TRANSFORMS))}")
    if "transforms" in kwargs:
        kwargs["transforms"] = [build_transform(s) for s in kwargs["transforms"]]
    try:
        return TRANSFORMS[name](**kwargs)
    except TypeError as e:
        raise ValueError(f"transform {name!r}: {e}") from None
