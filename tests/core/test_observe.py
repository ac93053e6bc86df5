"""Online observation transforms (Stielow et al., App. D): determinism, ranges, each filter."""

import json
import math
import pickle

import pytest
import torch

from retroscope.core.observe import (
    TRANSFORMS,
    BeamStop,
    CenterCrop,
    Compose,
    GaussianBlur,
    Identity,
    Jitter,
    OnlineObserver,
    PoissonNoise,
    RandomChoice,
    RandomSubset,
    SaltPepper,
    Shift,
    UnevenSensitivity,
    UniformNoise,
    build_transform,
    stielow_augmentation,
)

H, W = 37, 31  # odd, non-square: catches shape bugs

ALL = [
    Identity(),
    UniformNoise(),
    SaltPepper(),
    GaussianBlur(),
    Jitter(),
    CenterCrop(),
    BeamStop(),
    Shift(),
    UnevenSensitivity(),
    PoissonNoise(),
    PoissonNoise(photons_range=(1.0, 100.0), log_decades=3.0),
    stielow_augmentation(),
]


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    return torch.device(request.param)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def sample(seed=0, c=1, device="cpu"):
    return torch.rand((c, H, W), generator=gen(seed)).to(device)


def replay(f, x, seed):
    """The parameters a filter draws with ``seed`` and its output for the same seed."""
    return f.draw(x, gen(seed)), f(x, gen(seed))


def centre_distance(shape):
    h, w = shape
    dy = torch.arange(h, dtype=torch.float64)[:, None] - (h - 1) / 2
    dx = torch.arange(w, dtype=torch.float64)[None, :] - (w - 1) / 2
    return torch.sqrt(dy**2 + dx**2)


@pytest.mark.parametrize("t", ALL, ids=lambda t: type(t).__name__)
def test_shape_range_and_input_untouched(t, device):
    x = sample(c=2, device=device)
    x0 = x.clone()
    for seed in range(5):
        y = t(x, gen(seed))
        assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
        assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
        assert y is not x
    assert torch.equal(x, x0)


@pytest.mark.parametrize("t", ALL, ids=lambda t: type(t).__name__)
def test_same_seed_same_bytes(t):
    x = sample()
    assert torch.equal(t(x, gen(3)), t(x, gen(3)))


def test_float64_and_tiny_images():
    t = stielow_augmentation()
    for shape in [(1, H, W), (3, 2, 5), (1, 1, 1)]:
        x = torch.rand(shape, dtype=torch.float64, generator=gen(1))
        for seed in range(30):
            y = t(x, gen(seed))
            assert y.shape == x.shape and y.dtype == torch.float64 and torch.isfinite(y).all()


def test_rejects_non_samples():
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        GaussianBlur()(torch.rand(H, W), gen(0))
    with pytest.raises(ValueError, match="float"):
        Compose([Identity()])(torch.zeros((1, H, W), dtype=torch.int64), gen(0))


def test_invalid_settings():
    with pytest.raises(ValueError, match="UniformNoise.max_fraction"):
        UniformNoise(max_fraction=2.0)
    with pytest.raises(ValueError, match="Shift.max_px"):
        Shift(max_px=2.5)
    with pytest.raises(ValueError, match="shapes"):
        CenterCrop(shapes=("triangle",))
    with pytest.raises(ValueError, match="weights"):
        RandomChoice([Identity(), Shift()], weights=[1.0])
    with pytest.raises(ValueError, match="photons_range"):
        PoissonNoise(photons_range=(0.0, 10.0))


# --- each filter does what it says ------------------------------------------------------------


def test_uniform_noise_amplitude_at_most_half_the_maximum():
    f = UniformNoise()
    x = 0.6 * sample()
    largest = 0.0
    for seed in range(20):
        p, y = replay(f, x, seed)
        change = (y - x).abs().max().item()
        assert change <= 0.5 * x.max().item() + 1e-6
        assert p["amplitude_fraction"] <= 0.5
        largest = max(largest, change)
    assert largest > 0.1  # it does add noise


def test_salt_pepper_sets_few_pixels_to_min_or_max():
    f = SaltPepper(max_fraction=0.05)
    x = 0.25 + 0.5 * torch.rand((2, 64, 64), generator=gen(0))
    for seed in range(10):
        p, y = replay(f, x, seed)
        changed = (y != x).any(dim=0)
        assert torch.equal(changed, p["pixels"])
        assert changed.float().mean() <= 0.05 + 4 * math.sqrt(0.05 / 64**2)
        hit = y[:, changed]
        assert torch.all((hit == x.min()) | (hit == x.max()))


def test_blur_removes_high_frequencies():
    x = sample()
    power = lambda z: torch.fft.fft2(z - z.mean()).abs() ** 2  # noqa: E731
    fy = torch.fft.fftfreq(H).abs()[:, None]
    fx = torch.fft.fftfreq(W).abs()[None, :]
    high = (fy > 0.25) | (fx > 0.25)
    y = GaussianBlur().apply(x, sigma_px=2.0)
    assert power(y)[0][high].sum() < 0.01 * power(x)[0][high].sum()
    assert torch.allclose(y.mean(), x.mean(), atol=0.02)  # reflect padding keeps the level
    assert torch.allclose(GaussianBlur().apply(x, sigma_px=0.0), x)
    for seed in range(5):
        p, y = replay(GaussianBlur(), x, seed)
        assert 0 <= p["sigma_px"] <= 5.0


def test_jitter_displacement_is_bounded_and_smooth():
    ramp = (torch.arange(W, dtype=torch.float64) / (W - 1)).expand(1, H, W).clone()
    f = Jitter(max_px=2.0)
    for seed in range(5):
        p, y = replay(f, ramp, seed)
        dx_px = (y - ramp)[0, 3:-3, 3:-3] * (W - 1)  # a linear ramp moves by its slope
        assert dx_px.abs().max() <= p["amplitude_px"] + 1e-9 <= 2.0 + 1e-9
        # smooth: neighbours move together (knots at most 16 px apart)
        assert (dx_px[:, 1:] - dx_px[:, :-1]).abs().max() <= 2 * p["amplitude_px"] / 15 + 1e-9
    assert torch.allclose(f.apply(ramp, amplitude_px=0.0, knots=p["knots"]), ramp)


def test_center_crop_zeroes_corners_keeps_centre():
    x = torch.ones((1, H, W))
    f = CenterCrop()
    r = centre_distance((H, W))
    for shape in ("square", "circle"):
        y = f.apply(x, half_width_px=10.0, shape=shape)
        assert y[0, 0, 0] == y[0, 0, -1] == y[0, -1, 0] == y[0, -1, -1] == 0
        assert torch.all(y[0][r <= 10.0] == 1)
        assert torch.all(y[0][r > 10.0 * math.sqrt(2) + 1e-9] == 0)
    for seed in range(10):
        p, y = replay(CenterCrop(shapes=("circle",)), x, seed)
        assert 0.6 * W / 2 <= p["half_width_px"] <= W / 2
        assert y[0, 0, 0] == y[0, -1, -1] == 0 and y[0, H // 2, W // 2] == 1


def test_beam_stop_zeroes_centre_disc_and_leaves_corners():
    x = sample()
    r = centre_distance((H, W))
    for seed in range(10):
        p, y = replay(BeamStop(max_radius_fraction=0.3), x, seed)
        assert p["radius_px"] <= 0.3 * W
        assert torch.all(y[0][r < p["radius_px"]] == 0)
        assert torch.equal(y[0][r >= p["radius_px"]], x[0][r >= p["radius_px"]])
        corners = (0, [0, 0, -1, -1], [0, -1, 0, -1])
        assert torch.equal(y[corners], x[corners])


def test_shift_moves_centroid_by_drawn_amount():
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64),
                            torch.arange(W, dtype=torch.float64), indexing="ij")
    blob = torch.exp(-((yy - H // 2) ** 2 + (xx - W // 2) ** 2) / 2)[None]

    def centroid(z):
        return (z[0] * yy).sum() / z.sum(), (z[0] * xx).sum() / z.sum()

    moved = 0
    for seed in range(10):
        p, y = replay(Shift(max_px=8), blob, seed)
        dy, dx = p["shift_px"]
        assert abs(dy) <= 8 and abs(dx) <= 8
        (y0, x0), (y1, x1) = centroid(blob), centroid(y)
        assert abs(y1 - y0 - dy) < 1e-6 and abs(x1 - x0 - dx) < 1e-6
        moved += (dy, dx) != (0, 0)
    assert moved
    assert torch.all(Shift().apply(blob, shift_px=(H, 0)) == 0)


def test_uneven_sensitivity_attenuates_within_bounds():
    x = sample()
    f = UnevenSensitivity(max_attenuation=0.5)
    for seed in range(20):
        y = f(x, gen(seed))
        assert torch.all(y <= x + 1e-7) and torch.all(y >= 0.5 * x - 1e-7)
    y = f.apply(torch.ones((1, H, W)), gains=torch.tensor([[0.5, 1.0]]), smooth=False)
    assert torch.all(y[0, :, : W // 2] == 0.5) and torch.all(y[0, :, W // 2 + 1:] == 1.0)


def test_poisson_noise_counts_photons():
    x = sample()
    lin = PoissonNoise(photons_range=(1e6, 1e6))
    assert (lin(x, gen(0)) - x).abs().max() < 0.01  # many photons: little noise
    p, y = replay(PoissonNoise(photons_range=(5.0, 5.0)), x, 0)
    assert torch.allclose(y * p["peak_photons"], torch.round(y * p["peak_photons"]), atol=1e-4)
    log = PoissonNoise(photons_range=(1e9, 1e9), log_decades=3.0)
    x[:, :5] = 0.0
    y = log(x, gen(0))
    assert torch.all(y[:, :5] == 0)  # no signal stays no signal
    assert (y - x)[:, 5:].abs().max() < 0.01


# --- composition, the paper's scheme ----------------------------------------------------------


def test_composites():
    x = sample()
    rim = CenterCrop(min_fraction=1.0, shapes=("circle",))  # always zeroes the corners
    for seed in range(5):
        assert RandomChoice([Identity(), rim], weights=[0, 1])(x, gen(seed))[0, 0, 0] == 0
        assert torch.equal(RandomChoice([Identity(), rim], weights=[1, 0])(x, gen(seed)), x)
    assert torch.equal(RandomSubset([UniformNoise(), Shift()], p=0.0)(x, gen(0)), x)
    for seed in range(5):
        assert RandomSubset([Shift(max_px=0), rim], p=1.0)(x, gen(seed))[0, 0, 0] == 0
    kept = [RandomSubset([rim], p=0.5)(x, gen(s))[0, 0, 0] == 0 for s in range(40)]
    assert 5 < sum(kept) < 35
    y = Compose([])(x, gen(0))
    assert torch.equal(y, x) and y is not x


def test_stielow_scheme_has_eleven_choices():
    t = stielow_augmentation()
    assert isinstance(t, RandomChoice) and len(t.transforms) == 11
    names = [type(c).__name__ for c in t.transforms]
    assert names[0] == "Identity" and names[-2:] == ["RandomSubset", "Compose"]
    assert len(set(names[1:-2])) == 8
    x = sample()
    outputs = {t(x, gen(s)).sum().item() for s in range(30)}
    assert len(outputs) > 10


# --- configs, online observer -----------------------------------------------------------------


def test_build_transform_round_trips_json():
    t = stielow_augmentation()
    spec = json.loads(json.dumps(t.to_spec()))
    t2 = build_transform(spec)
    assert t2 == t and t2.to_spec() == spec
    x = sample()
    assert torch.equal(t(x, gen(5)), t2(x, gen(5)))
    assert build_transform({"name": "GaussianBlur", "max_sigma_px": 3}) == GaussianBlur(3)
    pair = [{"name": "Shift"}, {"name": "BeamStop"}]
    assert build_transform(pair) == Compose([Shift(), BeamStop()])
    names = {"Identity", "Compose", "RandomChoice", "RandomSubset", "PoissonNoise"}
    assert names <= set(TRANSFORMS)
    with pytest.raises(ValueError, match="unknown transform 'Blur'"):
        build_transform({"name": "Blur"})
    with pytest.raises(ValueError, match="GaussianBlur"):
        build_transform({"name": "GaussianBlur", "sigma": 3})


def test_online_observer_reproducible_and_picklable():
    obs = OnlineObserver(stielow_augmentation(), seed=7)
    x = sample()
    clone = pickle.loads(pickle.dumps(obs))
    for i in range(10):
        assert torch.equal(obs(x, i, epoch=2), clone(x, i, epoch=2))
    noisy = OnlineObserver(UniformNoise(), seed=7)
    assert not torch.equal(noisy(x, 0), noisy(x, 1))
    assert not torch.equal(noisy(x, 0, epoch=0), noisy(x, 0, epoch=1))
    assert not torch.equal(noisy(x, 0), OnlineObserver(UniformNoise(), seed=8)(x, 0))
    with pytest.raises(ValueError):
        obs(x, -1)


class _Noisy(torch.utils.data.Dataset):
    def __init__(self, observer):
        self.observer = observer

    def __len__(self):
        return 6

    def __getitem__(self, i):
        return self.observer(torch.full((1, 8, 7), 0.5), i)


def test_online_observer_independent_of_worker_count():
    ds = _Noisy(OnlineObserver(UniformNoise(), seed=1))
    runs = [
        torch.cat(list(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=n)))
        for n in (0, 2)
    ]
    assert torch.equal(runs[0], runs[1])
