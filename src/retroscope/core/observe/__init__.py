"""Online observation: cheap detector imperfections applied in the DataLoader.

The expensive physics (a clean scattering pattern, a clean camera image) is stored once; the
imperfections of a real detector are drawn afresh every time a sample is loaded.

- :mod:`.transform`: what a transform is (:class:`Transform`, :class:`Filter`), how transforms
  combine (:class:`Compose`, :class:`RandomChoice`, :class:`RandomSubset`), the registry
  :data:`TRANSFORMS` and :func:`build_transform`, and helpers for writing filters;
- :mod:`.filters`: the library of filters (Stielow et al. 2021, App. D; Poisson noise);
- :mod:`.observer`: :class:`OnlineObserver`, a transform seeded per (seed, epoch, sample).

A task assembles its own scheme from these (``Task.observe``); a lab registers a filter of its
own with :func:`register_transform`.
"""

from retroscope.core.observe.filters import (
    BeamStop,
    CenterCrop,
    GaussianBlur,
    Identity,
    Jitter,
    PoissonNoise,
    SaltPepper,
    Shift,
    UnevenSensitivity,
    UniformNoise,
    gaussian_blur,
    shift_image,
)
from retroscope.core.observe.observer import OnlineObserver
from retroscope.core.observe.transform import (
    TRANSFORMS,
    Compose,
    Filter,
    RandomChoice,
    RandomSubset,
    Transform,
    build_transform,
    register_transform,
)

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
    "register_transform",
    "shift_image",
]
