"""The transform framework of the online observation: what a detector imperfection is.

A transform maps one sample, a float tensor ``(C, H, W)`` in the network's scale ``[0, 1]`` (for
a log-scaled image 0 = floor or no signal, 1 = brightest), onto another of the same shape, also
clamped to ``[0, 1]``. Every random number comes from the ``torch.Generator`` passed in, so the
same seed gives the same bytes; draws are made on the generator's device and moved to the
sample's device, so a transform works on CPU and CUDA tensors alike. Inputs are never modified
in place.

A leaf :class:`Filter` separates *what is drawn* (:meth:`Filter.draw`, a dict of parameters in
named units such as ``sigma_px`` or ``shift_px``) from *what is done* (:meth:`Filter.apply`),
so a test or a plot can replay a filter with known parameters. :class:`Compose`,
:class:`RandomChoice` and :class:`RandomSubset` combine transforms.

Transforms are frozen dataclasses registered by class name in :data:`TRANSFORMS`
(:func:`register_transform`); :meth:`Transform.to_spec` and :func:`build_transform` turn them
into JSON-able dicts and back, so a run records its augmentation in its config. The helpers
:func:`rand`, :func:`uniform`, :func:`randint`, :func:`like`, :func:`check_sample`,
:func:`check_range` and :func:`offsets` are for writing new filters.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

# --------------------------------------------------------------------------------------------
# helpers for writing filters: random draws on the generator's device, checks


def rand(g: torch.Generator, shape: Sequence[int]) -> Tensor:
    """Uniform numbers in [0, 1) of ``shape`` on the generator's device."""
    return torch.rand(tuple(shape), generator=g, device=g.device)


def uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(rand(g, ()))


def randint(g: torch.Generator, n: int) -> int:
    """A uniform integer in ``[0, n)``."""
    return int(torch.randint(n, (), generator=g, device=g.device))


def like(t: Tensor, x: Tensor) -> Tensor:
    """``t`` as a float tensor on the device and in the dtype of ``x``."""
    return t.to(device=x.device, dtype=x.dtype)


def check_sample(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 3 or not x.is_floating_point():
        what = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x)
        raise ValueError(f"expected one sample, a float tensor (C, H, W); got {what}")
    return x


def check_range(owner: object, name: str, value: float, low: float, high: float) -> None:
    if not (isinstance(value, (int, float)) and low <= value <= high):
        raise ValueError(f"{type(owner).__name__}.{name} must be in [{low}, {high}], got {value!r}")


def offsets(x: Tensor) -> tuple[Tensor, Tensor]:
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
    y = check_sample(x).clamp(0.0, 1.0)
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
        check_sample(x)
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
        check_range(self, "p", self.p, 0.0, 1.0)

    def __call__(self, x: Tensor, g: torch.Generator) -> Tensor:
        n = len(self.transforms)
        keep = (rand(g, (n,)) < self.p).tolist()
        order = list(range(n))
        if self.shuffle:
            order = torch.randperm(n, generator=g, device=g.device).tolist()
        return _run([self.transforms[i] for i in order if keep[i]], x, g)


# --------------------------------------------------------------------------------------------
# the registry

#: every transform class by name, for :func:`build_transform`
TRANSFORMS: dict[str, type[Transform]] = {}


def register_transform(cls: type[Transform]) -> type[Transform]:
    """Register a transform class under its name (a class decorator); a different class under
    a taken name is an error."""
    known = TRANSFORMS.get(cls.__name__)
    if known is not None and known is not cls:
        raise ValueError(f"a different transform is already registered as {cls.__name__!r}")
    TRANSFORMS[cls.__name__] = cls
    return cls


for _cls in (Compose, RandomChoice, RandomSubset):
    register_transform(_cls)

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
