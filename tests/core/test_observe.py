"""Online observation transforms (Stielow et al., App. D): what each filter does, composites,
the registry and the online observer. The contract every transform keeps (shape, range,
determinism, spec round trip) is in test_transform_contract.py."""

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
)

H, W = 37, 31  # odd, non-square: catches shape bugs


def gen(seed):
    return torch.Generator().manual_seed(seed)


def sample(seed=0, c=1):
    return torch.rand((c, H, W), generator=gen(seed))


def replay(f, x, seed):
    """The parameters a filter draws with ``seed`` and its output for the same seed."""
    return f.draw(x, gen(seed)), f(x, gen(seed))


def centre_distance(shape):
    h, w = shape
    dy = torch.arange(h, dtype=torch.float64)[:, None] - (h - 1) / 2
    dx = torch.arange(w, dtype=torch.float64)[None, :] - (w - 1) / 2
    return torch.sqrt(dy**2 + dx**2)


def test_rejects_non_samples():
    """A transform takes one float sample (C, H, W), nothing else."""
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        GaussianBlur()(torch.rand(H, W), gen(0))
    with pytest.raises(ValueError, match="float"):
        Compose([Identity()])(torch.zeros((1, H, W), dtype=torch.int64), gen(0))


def test_invalid_settings():
    """Settings outside their physical range are refused, naming the field."""
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
    """Uniform noise changes a pixel by at most max_fraction of the sample's maximum."""
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
    """Salt and pepper hits the drawn pixels (all channels) with the sample's min or max."""
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
    """A Gaussian blur suppresses high spatial frequencies and keeps the mean level."""
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
    """Jitter moves no pixel more than its amplitude, and neighbours move together."""
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
    """The finite detector: everything beyond the drawn half-width is zero."""
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
    """The beam-stop shadow zeroes exactly the centred disc of the drawn radius."""
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
    """A shift by (dy, dx) whole pixels moves the centroid by (dy, dx); zero fill."""
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
    """Gains lie in [1 - max_attenuation, 1]; a halves pattern has two constant gains."""
    x = sample()
    f = UnevenSensitivity(max_attenuation=0.5)
    for seed in range(20):
        y = f(x, gen(seed))
        assert torch.all(y <= x + 1e-7) and torch.all(y >= 0.5 * x - 1e-7)
    y = f.apply(torch.ones((1, H, W)), gains=torch.tensor([[0.5, 1.0]]), smooth=False)
    assert torch.all(y[0, :, : W // 2] == 0.5) and torch.all(y[0, :, W // 2 + 1:] == 1.0)


def test_poisson_noise_counts_photons():
    """Shot noise: integer photon counts, vanishing at many photons; no signal stays 0."""
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


# --- composition ------------------------------------------------------------------------------


def test_composites():
    """RandomChoice follows its weights, RandomSubset keeps each transform with probability p,
    an empty Compose is a copy."""
    x = sample()
    rim = CenterCrop(min_fraction=1.0, shapes=("circle",))  # always zeroes the corners
    for seed in range(5):
        assert RandomChoice([Identity(), rim], weights=[0, 1])(x, gen(seed))[0, 0, 0] == 0
        assert torch.equal(RandomChoice([Identity(), rim], weights=[1, 0])(x, gen(seed)), x)
    assert torch.equal(RandomSubset([UniformNoise(), Shift()], p=0.0)(x, gen(0)), x)
    for seed in range(5):
        assert RandomSubset([Identity(), rim], p=1.0)(x, gen(seed))[0, 0, 0] == 0
    kept = [RandomSubset([rim], p=0.5)(x, gen(s))[0, 0, 0] == 0 for s in range(40)]
    assert 5 < sum(kept) < 35
    y = Compose([])(x, gen(0))
    assert torch.equal(y, x) and y is not x


# --- configs, online observer -----------------------------------------------------------------


def test_build_transform_reads_configs():
    """Specs as a user writes them: ints for floats, a list for a Compose; unknown names and
    settings are refused by name. (Every transform's own round trip: the contract test.)"""
    assert build_transform({"name": "GaussianBlur", "max_sigma_px": 3}) == GaussianBlur(3)
    pair = [{"name": "Shift"}, {"name": "BeamStop"}]
    assert build_transform(pair) == Compose([Shift(), BeamStop()])
    core = {"Identity", "UniformNoise", "SaltPepper", "GaussianBlur", "Jitter", "CenterCrop",
            "BeamStop", "Shift", "UnevenSensitivity", "PoissonNoise", "Compose",
            "RandomChoice", "RandomSubset"}
    assert core <= set(TRANSFORMS)
    with pytest.raises(ValueError, match="unknown transform 'Blur'"):
        build_transform({"name": "Blur"})
    with pytest.raises(ValueError, match="GaussianBlur"):
        build_transform({"name": "GaussianBlur", "sigma": 3})


def test_online_observer_reproducible_and_picklable():
    """The imperfections of a sample depend on (seed, epoch, index) alone, also after pickling."""
    obs = OnlineObserver(RandomChoice([UniformNoise(), Jitter(), SaltPepper()]), seed=7)
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
    """Two DataLoader workers draw the same imperfections as the main process."""
    ds = _Noisy(OnlineObserver(UniformNoise(), seed=1))
    runs = [
        torch.cat(list(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=n)))
        for n in (0, 2)
    ]
    assert torch.equal(runs[0], runs[1])
