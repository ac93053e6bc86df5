"""Camera model and augmentation of the crystal task: geometry, EMCCD noise, renormalisation.

The contract every transform keeps (shape, range, determinism, replay from ``draw``, spec round
trip) is checked for these too, in tests/core/test_transform_contract.py.
"""

import math

import pytest
import torch

from retroscope.core.observe import TRANSFORMS
from retroscope.tasks.crystal.camera import (
    EMCCD,
    Affine,
    Magnify,
    Mirror,
    Renormalise,
    Rotate,
    affine_image,
    crystal_augmentation,
)

H, W = 41, 61  # odd, non-square: catches aspect-ratio bugs in the geometry

@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    return torch.device(request.param)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def offsets(h=H, w=W, dtype=torch.float64):
    dy = torch.arange(h, dtype=dtype)[:, None] - (h - 1) / 2
    dx = torch.arange(w, dtype=dtype)[None, :] - (w - 1) / 2
    return dy, dx


def spot(dy0, dx0, sigma=1.5, h=H, w=W):
    """A Gaussian spot centred (dy0, dx0) pixels from the image centre, peak 1, (1, h, w)."""
    dy, dx = offsets(h, w)
    return torch.exp(-((dy - dy0) ** 2 + (dx - dx0) ** 2) / (2 * sigma**2))[None]


def centroid(img):
    dy, dx = offsets(*img.shape[-2:], dtype=img.dtype)
    m = img[0].sum()
    return float((img[0] * dy).sum() / m), float((img[0] * dx).sum() / m)


def crystal_image(h=160, w=112, n=60, seed=0):
    """A brightness-normalised stand-in for a crystal: spots on an ellipse along the rows."""
    g = gen(seed)
    dy, dx = offsets(h, w, torch.float32)
    img = torch.zeros(h, w)
    for _ in range(n):
        r = torch.rand(2, generator=g)
        a = 2 * math.pi * float(r[0])
        y0, x0 = 50 * float(r[1]) * math.cos(a), 20 * float(r[1]) * math.sin(a)
        img += torch.exp(-((dy - y0) ** 2 + (dx - x0) ** 2) / (2 * 1.3**2))
    img = img / torch.quantile(img, 0.999)
    return img.clamp(0, 1)[None]


# --- settings ----------------------------------------------------------------------------------


def test_registered_and_invalid_settings():
    """Importing the task registers its transforms; settings out of range are refused."""
    for cls in (Rotate, Magnify, Affine, EMCCD, Mirror, Renormalise):
        assert TRANSFORMS[cls.__name__] is cls
    with pytest.raises(ValueError, match="Rotate.max_deg"):
        Rotate(max_deg=-1.0)
    with pytest.raises(ValueError, match="Magnify.high"):
        Magnify(low=1.1, high=1.0)
    with pytest.raises(ValueError, match="Affine.max_shift_px"):
        Affine(max_shift_px=-2.0)
    with pytest.raises(ValueError, match="EMCCD.photons_low"):
        EMCCD(photons_low=0.0)
    with pytest.raises(ValueError, match="EMCCD.gain_high"):
        EMCCD(gain_low=100.0, gain_high=10.0)
    with pytest.raises(ValueError, match="Renormalise.quantile"):
        Renormalise(quantile=1.5)
    with pytest.raises(ValueError, match="pixel_um"):
        crystal_augmentation(0.0)


# --- geometry -----------------------------------------------------------------------------------


def test_rotate_draw_in_range():
    """Angles are drawn uniformly in [-max_deg, max_deg] degrees."""
    x = spot(0, 0)
    angles = [Rotate(max_deg=5.0).draw(x, gen(s))["angle_deg"] for s in range(50)]
    assert all(-5 <= a <= 5 for a in angles) and max(angles) - min(angles) > 5


@pytest.mark.parametrize("angle", [90.0, 30.0, -12.5, 5.0])
def test_rotate_moves_spot_about_centre(angle):
    """A spot turns counter-clockwise (as displayed) about the centre; flux is kept."""
    dy0, dx0 = -6.0, 9.0
    y = Rotate(max_deg=180.0).apply(spot(dy0, dx0), angle_deg=angle)
    a = math.radians(angle)  # counter-clockwise as displayed, rows pointing down
    want = (dy0 * math.cos(a) - dx0 * math.sin(a), dx0 * math.cos(a) + dy0 * math.sin(a))
    got = centroid(y)
    assert got == pytest.approx(want, abs=0.05)
    assert float(y.sum()) == pytest.approx(float(spot(dy0, dx0).sum()), rel=0.02)


def test_rotate_quarter_turn_on_non_square_image():
    """A quarter turn moves a spot right of centre to above it, also on a non-square image."""
    y = Rotate(max_deg=90).apply(spot(0.0, 10.0), angle_deg=90.0)  # right of centre -> above
    assert centroid(y) == pytest.approx((-10.0, 0.0), abs=1e-6)
    assert int(y[0].argmax()) == ((H - 1) // 2 - 10) * W + (W - 1) // 2


@pytest.mark.parametrize("factor", [0.93, 1.07, 1.25])
def test_magnify_moves_spot_radially(factor):
    """Zoom by f moves a spot from r to f r and scales its integral by f**2."""
    dy0, dx0 = 7.0, -11.0
    x = spot(dy0, dx0, sigma=2.5)  # wide enough that bilinear resampling keeps its centroid
    y = Magnify(low=0.9, high=1.5).apply(x, factor=factor)
    assert centroid(y) == pytest.approx((factor * dy0, factor * dx0), abs=0.02)
    # the spot itself grows by the factor: its integral by factor**2
    assert float(y.sum()) == pytest.approx(factor**2 * float(x.sum()), rel=0.02)


def test_magnify_draw_in_range():
    """Zoom factors are drawn in [low, high]."""
    x = spot(0, 0)
    factors = [Magnify().draw(x, gen(s))["factor"] for s in range(50)]
    assert all(0.93 <= f <= 1.07 for f in factors)


def test_affine_composes_zoom_rotation_and_shift():
    """Affine = zoom, then rotation, then a sub-pixel shift, in one resampling."""
    f = Affine(max_deg=5.0, low=0.93, high=1.07, max_shift_px=4.0)
    params = f.draw(spot(0, 0), gen(11))
    assert abs(params["angle_deg"]) <= 5 and 0.93 <= params["factor"] <= 1.07
    assert all(abs(s) <= 4 for s in params["shift_px"])
    dy0, dx0 = 5.0, 8.0
    y = f.apply(spot(dy0, dx0), angle_deg=20.0, factor=1.1, shift_px=(1.5, -2.25))
    a = math.radians(20.0)
    want = (1.1 * (dy0 * math.cos(a) - dx0 * math.sin(a)) + 1.5,
            1.1 * (dx0 * math.cos(a) + dy0 * math.sin(a)) - 2.25)
    assert centroid(y) == pytest.approx(want, abs=0.05)
    # same as rotating the magnified image and shifting by whole pixels (zero-filled edges aside)
    z = affine_image(affine_image(spot(dy0, dx0), factor=1.1), angle_deg=20.0, shift_px=(2, -3))
    assert centroid(z) == pytest.approx((want[0] + 0.5, want[1] - 0.75), abs=0.05)


def test_identity_geometry_is_exact():
    """Zero angle, unit zoom and no shift resample every pixel onto itself."""
    x = crystal_image(H, W, n=10).double()
    assert torch.allclose(affine_image(x), x, atol=1e-12)
    assert torch.allclose(Rotate().apply(x, angle_deg=0.0), x, atol=1e-12)


# --- camera -------------------------------------------------------------------------------------


def flat(value, h=160, w=112):
    return torch.full((1, h, w), value, dtype=torch.float64)


def camera(photons, background=0.0, gain=100.0, read_noise=0.0):
    return EMCCD(photons_low=photons, photons_high=photons, background_low=background,
                 background_high=background, gain_low=gain, gain_high=gain,
                 read_noise_low=read_noise, read_noise_high=read_noise)


def test_emccd_draws_in_range():
    """Photons, background, gain and read noise are drawn within their ranges."""
    f = EMCCD()
    x = crystal_image(H, W, n=10)
    for s in range(30):
        p = f.draw(x, gen(s))
        assert 20 <= p["peak_photons"] <= 400 and 0 <= p["background_photons"] <= 2
        assert 50 <= p["gain"] <= 300 and 10 <= p["read_noise_e"] <= 60
        assert p["electrons"].shape == x.shape and (p["electrons"] >= 0).all()
        assert p["read_normal"].shape == x.shape


def test_emccd_converges_to_input_at_high_photons():
    """With many photons and little background and read noise the camera sees the input."""
    x = crystal_image()
    y = camera(1e7, background=1.0, read_noise=10.0)(x, gen(0))
    assert (y - x).abs().max() < 2e-3
    y = EMCCD(photons_low=1e6, photons_high=1e7, background_high=0.1, read_noise_low=0.0,
              read_noise_high=1.0)(
        x, gen(1))
    assert (y - x).abs().max() < 1e-2


def test_emccd_noiseless_replay_is_exact():
    """Mean electrons and no read noise give back the input: the conversion is unbiased."""
    x = crystal_image(H, W, n=10).double()
    p, g = 50.0, 80.0
    y = EMCCD().apply(x, peak_photons=p, background_photons=1.5, gain=g, read_noise_e=30.0,
                      electrons=(p * x + 1.5) * g, read_normal=torch.zeros_like(x))
    assert torch.allclose(y, x, atol=1e-12)


@pytest.mark.parametrize("photons", [50.0, 200.0, 800.0])
def test_emccd_shot_and_excess_noise(photons):
    """Var = 2 x / P: Poisson counts and the EM register's excess noise factor 2."""
    x = flat(0.4)
    y = camera(photons)(x, gen(5))
    assert float(y.mean()) == pytest.approx(0.4, abs=0.01)
    assert float(y.var()) == pytest.approx(2 * 0.4 / photons, rel=0.08)


def test_emccd_noise_grows_with_fewer_photons():
    """Shot noise: the fewer photons, the noisier the image."""
    x = flat(0.5)
    stds = [float(camera(p)(x, gen(2)).std()) for p in (1000.0, 300.0, 100.0, 30.0)]
    assert stds == sorted(stds) and stds[-1] > 4 * stds[0]


def test_emccd_read_noise_and_background():
    """Read noise adds (sigma_e / (P gain))**2; the expected background is subtracted."""
    x = flat(0.5)
    y = camera(100.0, gain=10.0, read_noise=100.0)(x, gen(3))
    assert float(y.var()) == pytest.approx(2 * 0.5 / 100 + (100 / (100 * 10)) ** 2, rel=0.08)
    # background: the expected level is subtracted, so before the clamp dark pixels average 0
    dark = flat(0.0)
    f = camera(100.0, background=2.0, gain=50.0, read_noise=20.0)
    raw = f.apply(dark, **f.draw(dark, gen(4)))
    sd = math.sqrt(2 * 2.0 / 100**2 + (20 / (100 * 50)) ** 2)
    assert float(raw.mean()) == pytest.approx(0.0, abs=4 * sd / math.sqrt(raw.numel()))
    assert float(raw.std()) == pytest.approx(sd, rel=0.08)


# --- renormalisation and the composite ----------------------------------------------------------


def test_renormalise():
    """The 99.9th percentile becomes 1; an empty image stays empty; quantile 0 -> maximum."""
    x = 0.5 * crystal_image(H, W, n=10)
    y = Renormalise()(x, gen(0))
    # the quantile becomes 1 before the clamp (after it, interpolation with clamped neighbours
    # may leave it a little below 1, as with numpy's brightness_normalise)
    assert float(torch.quantile(Renormalise().apply(x), 0.999)) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(y, (x / torch.quantile(x, 0.999)).clamp(0, 1))
    z = torch.zeros(1, H, W)
    assert torch.equal(Renormalise()(z, gen(0)), z)
    sparse = torch.zeros(1, H, W)
    sparse[0, 3, 4] = 0.25  # quantile 0: fall back to the maximum
    assert float(Renormalise()(sparse, gen(0)).max()) == 1.0


def test_crystal_augmentation_runs_on_task_sized_images(device):
    """On a task-sized image the training transform ends brightness-normalised."""
    t = crystal_augmentation(pixel_um=4.0)
    x = crystal_image().to(device)
    for seed in range(20):
        y = t(x, gen(seed))
        assert y.shape == (1, 160, 112) and y.dtype == torch.float32 and y.device == x.device
        assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
        assert 0.98 <= float(torch.quantile(y, 0.999)) <= 1.0


def test_crystal_augmentation_shift_in_pixels():
    """The off-centre shift is max_shift_um / pixel_um pixels."""
    t = crystal_augmentation(pixel_um=4.0)
    affine = t.transforms[1].transforms[1]
    assert isinstance(affine, Affine) and affine.max_shift_px == pytest.approx(5.0)
    assert crystal_augmentation(10.0, max_shift_um=30.0).transforms[1].transforms[1] \
        .max_shift_px == pytest.approx(3.0)


def test_mirror_flips_exactly_and_is_in_the_training_transform():
    """Mirror images are exact flips, each drawn with probability 0.5, and part of training."""
    x = torch.arange(12.0).reshape(1, 3, 4) / 12
    m = Mirror()
    assert torch.equal(m.apply(x, flip_x=True, flip_z=False), x.flip(-1))
    assert torch.equal(m.apply(x, flip_x=False, flip_z=True), x.flip(-2))
    assert torch.equal(m.apply(x, flip_x=True, flip_z=True), x.flip(-1).flip(-2))
    assert torch.equal(m.apply(x, flip_x=False, flip_z=False), x)
    g = torch.Generator().manual_seed(0)
    draws = [m.draw(x, g) for _ in range(400)]
    assert 0.4 < sum(d["flip_x"] for d in draws) / len(draws) < 0.6
    assert any(isinstance(t, Mirror) for t in crystal_augmentation(4.0).transforms)
