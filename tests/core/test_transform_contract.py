"""The contract every registered observation transform keeps (``retroscope.core.observe``).

A transform maps one sample ``(C, H, W)`` in [0, 1] onto a new tensor of the same shape, dtype
and device, finite and in [0, 1], without touching its input; every random number comes from the
generator passed in (same seed, same bytes); it turns into a JSON-able spec and back
(:func:`build_transform`) and pickles (DataLoader workers). This file checks that for every class
in :data:`TRANSFORMS`, including those a task registers when imported, so a new transform is held
to the contract without writing a test for it. What a filter *does* is tested next to it.
"""

import json
import pickle

import pytest
import torch

import retroscope.tasks.crystal.camera  # noqa: F401  (registers the crystal camera transforms)
import retroscope.tasks.diffraction.augmentation  # noqa: F401
from retroscope.core.observe import (
    TRANSFORMS,
    BeamStop,
    CenterCrop,
    Compose,
    Filter,
    GaussianBlur,
    Identity,
    Jitter,
    PoissonNoise,
    RandomChoice,
    RandomSubset,
    SaltPepper,
    UnevenSensitivity,
    UniformNoise,
    build_transform,
)

H, W = 23, 15  # odd, non-square: catches shape and aspect-ratio bugs

#: Examples of the transforms that cannot be built without arguments (composites), and extra
#: settings worth holding to the contract (another code path). Every other registered class is
#: built with its defaults.
EXAMPLES = {
    "Compose": [Compose([GaussianBlur(max_sigma_px=1.0), UniformNoise(max_fraction=0.2)])],
    "RandomChoice": [RandomChoice([Identity(), BeamStop(), SaltPepper()], weights=[1, 2, 1]),
                     RandomChoice([Compose([Jitter(), UnevenSensitivity()]),
                                   RandomSubset([CenterCrop(), UniformNoise()])])],
    "RandomSubset": [RandomSubset([Jitter(), CenterCrop(), GaussianBlur()], p=0.5)],
    "PoissonNoise": [PoissonNoise(),
                     PoissonNoise(photons_range=(1.0, 100.0), log_decades=3.0)],
}

#: Channel counts a class accepts, where not both 1 and 2.
CHANNELS: dict[str, tuple[int, ...]] = {}

NAMES = sorted(TRANSFORMS)
FILTERS = [n for n in NAMES if issubclass(TRANSFORMS[n], Filter)]
SEEDS = range(3)


def examples(name):
    """The instances of registered class ``name`` that the contract is checked on."""
    if name in EXAMPLES:
        return EXAMPLES[name]
    try:
        return [TRANSFORMS[name]()]
    except TypeError:
        pytest.fail(f"transform {name!r} is registered but has required fields: add an example "
                    f"of it to EXAMPLES in {__file__}")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def sample(c=1, h=H, w=W, dtype=torch.float32, seed=0):
    """A random sample in [0, 1] that also holds exact 0s and 1s, as normalised images do."""
    x = torch.rand((c, h, w), generator=gen(seed), dtype=dtype)
    x.view(-1)[::7] = 0.0
    x.view(-1)[0] = 1.0
    return x


def is_random(t):
    if isinstance(t, Filter):
        return type(t).draw is not Filter.draw
    if isinstance(t, Compose):
        return any(is_random(c) for c in t.transforms)
    return True


def check_output(y, x):
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert y is not x


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    return torch.device(request.param)


def test_every_registered_transform_has_an_example():
    """A registered transform that cannot be built with defaults needs an entry in EXAMPLES."""
    missing = []
    for name in NAMES:
        try:
            examples(name)
        except pytest.fail.Exception:
            missing.append(name)
    assert not missing, f"add examples to EXAMPLES in {__file__} for: {', '.join(missing)}"
    assert set(EXAMPLES) <= set(TRANSFORMS), "EXAMPLES names a transform that is not registered"
    for name, items in EXAMPLES.items():
        assert all(type(t) is TRANSFORMS[name] for t in items), name


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_range_and_input_untouched(name, device):
    """Same shape, dtype and device out; finite, in [0, 1]; the input is never changed."""
    for t in examples(name):
        for c in CHANNELS.get(name, (1, 2)):
            x = sample(c).to(device)
            x0 = x.clone()
            for seed in SEEDS:
                check_output(t(x, gen(seed)), x)
            assert torch.equal(x, x0)


@pytest.mark.parametrize("name", NAMES)
def test_float64_and_tiny_images(name):
    """float64 stays float64; images of a few pixels (or one) keep the contract."""
    for t in examples(name):
        c = max(CHANNELS.get(name, (1, 2)))
        for h, w in [(H, W), (2, 5), (1, 1)]:
            x = sample(c, h, w, dtype=torch.float64)
            for seed in SEEDS:
                check_output(t(x, gen(seed)), x)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_bytes(name):
    """The generator is the only source of randomness; a random transform uses it."""
    x = sample()
    for t in examples(name):
        outputs = [t(x, gen(seed)).numpy().tobytes() for seed in SEEDS]
        assert outputs == [t(x, gen(seed)).numpy().tobytes() for seed in SEEDS]
        if is_random(t):
            assert len(set(outputs)) > 1, f"{t} gives the same output for every seed"


@pytest.mark.parametrize("name", FILTERS)
def test_filter_call_is_apply_of_draw(name):
    """A Filter's output replays from its drawn parameters: ``apply(x, **draw(x, g))``."""
    x = sample()
    for t in examples(name):
        params = t.draw(x, gen(7))
        assert torch.equal(t(x, gen(7)), t.apply(x, **params).clamp(0, 1))


@pytest.mark.parametrize("name", NAMES)
def test_spec_round_trips_through_json(name):
    """``build_transform(t.to_spec())`` rebuilds ``t``; the spec is plain JSON."""
    for t in examples(name):
        spec = t.to_spec()
        assert spec["name"] == name
        text = json.dumps(spec)
        rebuilt = build_transform(json.loads(text))
        assert rebuilt == t and json.dumps(rebuilt.to_spec()) == text


@pytest.mark.parametrize("name", NAMES)
def test_picklable(name):
    """Transforms travel to spawned DataLoader workers."""
    for t in examples(name):
        assert pickle.loads(pickle.dumps(t)) == t
