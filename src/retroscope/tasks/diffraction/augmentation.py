"""The detector imperfections of Stielow et al. (2021), App. D and Fig. 2, as one transform."""

from __future__ import annotations

from retroscope.core.observe import (
    BeamStop,
    CenterCrop,
    Compose,
    GaussianBlur,
    Identity,
    Jitter,
    RandomChoice,
    RandomSubset,
    SaltPepper,
    Shift,
    Transform,
    UnevenSensitivity,
    UniformNoise,
)


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

