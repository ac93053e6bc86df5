"""The augmentation scheme of Stielow et al. (2021), App. D and Fig. 2, for diffraction patterns.

The filters themselves are tested in tests/core/test_observe.py, the contract every transform
keeps in tests/core/test_transform_contract.py.
"""

import json

import torch

from retroscope.core.observe import Compose, RandomChoice, RandomSubset, build_transform
from retroscope.tasks.diffraction.augmentation import stielow_augmentation

H, W = 37, 31  # odd, non-square

#: the filters of App. D in the order of the experiment (Fig. 2 and the docstring)
ORDER = ["Shift", "BeamStop", "Jitter", "GaussianBlur", "UnevenSensitivity", "UniformNoise",
         "SaltPepper", "CenterCrop"]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_stielow_scheme_has_eleven_choices():
    """Identity, each of the eight filters alone, a random subset of them, and all of them in
    the experiment's order: eleven choices with even odds."""
    t = stielow_augmentation()
    assert isinstance(t, RandomChoice) and len(t.transforms) == 11 and t.weights is None
    names = [type(c).__name__ for c in t.transforms]
    assert names[0] == "Identity" and sorted(names[1:9]) == sorted(ORDER)
    subset, everything = t.transforms[9], t.transforms[10]
    assert isinstance(subset, RandomSubset) and subset.shuffle
    assert isinstance(everything, Compose)
    assert [type(c).__name__ for c in everything.transforms] == ORDER
    assert [type(c).__name__ for c in subset.transforms] == ORDER


def test_stielow_scheme_is_a_recordable_config():
    """The run records the scheme as JSON and rebuilds the same transform from it."""
    t = stielow_augmentation()
    assert build_transform(json.loads(json.dumps(t.to_spec()))) == t


def test_stielow_scheme_draws_a_new_choice_each_time():
    """Each load draws one of the eleven choices afresh: many seeds, many different outputs."""
    t = stielow_augmentation()
    x = torch.rand((1, H, W), generator=gen(0))
    outputs = {t(x, gen(s)).sum().item() for s in range(30)}
    assert len(outputs) > 10
