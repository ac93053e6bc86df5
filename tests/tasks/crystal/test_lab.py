"""Lab-image preprocessing for the crystal task (Allsopp et al. 2025, Sec. III C-D): a synthetic
"lab" image (finer pixels, tilted, off-centre, background + shot noise) must come out like the
direct simulated rendering at the task's pixel size."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from retroscope.tasks.crystal import lab, lab_settings
from retroscope.tasks.crystal.formation import form_crystal
from retroscope.tasks.crystal.render import (
    ImagingConfig,
    exposure_samples,
    render,
    render_points,
)
from retroscope.tasks.crystal.task import brightness_normalise
from retroscope.tasks.crystal.trap import OperatingPoint, get_trap

IMAGING = ImagingConfig(pixel_um=4.0, shape=(160, 112))
LAB_PIXEL_UM = 1.55
LAB_SHAPE = (400, 330)
LAB_CENTRE_UM = (-30.0, 20.0)  # the crystal is off-centre in the lab frame
PHOTONS_PER_ION = 3000.0
BACKGROUND = 100.0
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "crystal"


def tilt_points(pts: np.ndarray, tilt_deg: float) -> np.ndarray:
    """Tilt the trap axis by ``tilt_deg`` clockwise as displayed (row 0 on top): the upper
    end of the axis (small z = small row) moves to the right (larger x = larger column)."""
    t = math.radians(tilt_deg)
    out = pts.copy()
    z, x = pts[:, 2], pts[:, 0]
    out[:, 2] = z * math.cos(t) + x * math.sin(t)
    out[:, 0] = -z * math.sin(t) + x * math.cos(t)
    return out


@pytest.fixture(scope="module")
def crystal():
    op = OperatingPoint(get_trap("oxford"), 250.0, 2.5, 0.3)
    return form_crystal(op, {"Ca+": 80}, 0.005, np.random.default_rng(0))


@pytest.fixture(scope="module")
def direct(crystal):
    return render(crystal, IMAGING)


def lab_image(crystal, tilt_deg: float, seed: int = 1) -> np.ndarray:
    pts, w = exposure_samples(crystal, IMAGING.micromotion_phases)
    cfg = ImagingConfig(pixel_um=LAB_PIXEL_UM, shape=LAB_SHAPE)
    clean = render_points(tilt_points(pts, tilt_deg), w, cfg, center_um=LAB_CENTRE_UM)
    rng = np.random.default_rng(seed)
    return rng.poisson(PHOTONS_PER_ION * clean + BACKGROUND).astype(np.uint16)


@pytest.fixture(scope="module")
def tilted(crystal):
    image = lab_image(crystal, 5.0)
    out, info = lab.preprocess_lab_image(image, {"pixel_um": LAB_PIXEL_UM}, IMAGING,
                                         return_info=True)
    return image, out, info


def uniform_ellipse(shape, a, b, tilt_deg, centre=None) -> np.ndarray:
    """Filled ellipse: semi-axis b along the (tilted) trap axis, a across it."""
    r, c = np.indices(shape, dtype=np.float64)
    cr, cc = centre or ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    dr, dc = r - cr, c - cc
    t = math.radians(tilt_deg)
    along = -math.cos(t) * dr + math.sin(t) * dc  # axis "up" = (-cos t, sin t)
    across = math.sin(t) * dr + math.cos(t) * dc
    return ((along / b) ** 2 + (across / a) ** 2 <= 1.0).astype(np.float64)


# -- the whole chain against the simulator --------------------------------------------------
def test_lab_image_matches_direct_rendering(crystal, direct, tilted):
    image, out, info = tilted
    assert out.shape == IMAGING.shape and out.dtype == np.float32
    assert np.all(out >= 0) and np.isfinite(out).all()
    assert info["background"] == pytest.approx(BACKGROUND, abs=1.0)
    assert info["step_px"] == pytest.approx(IMAGING.pixel_um / LAB_PIXEL_UM)
    corr = np.corrcoef(brightness_normalise(direct).ravel(),
                       brightness_normalise(out).ravel())[0, 1]
    assert corr > 0.9  # measured 0.997
    # centred like the simulation: centroid on ((rows-1)/2, (cols-1)/2) and on the direct one's
    centre = np.array([(IMAGING.shape[0] - 1) / 2, (IMAGING.shape[1] - 1) / 2])
    got, ref = np.array(lab.intensity_centroid(out)), np.array(lab.intensity_centroid(direct))
    assert np.abs(got - centre).max() < 1.0
    assert np.abs(got - ref).max() < 1.0
    # the ellipse fitted to the lab image has the axes of the one fitted to the simulation
    ell = info["ellipse"]
    ref_ell = lab.fit_ellipse(lab.crystal_mask(direct), margin=1.1)
    assert ell.a == pytest.approx(ref_ell.a, rel=0.10)
    assert ell.b == pytest.approx(ref_ell.b, rel=0.10)
    # ... and of the crystal: half its extent plus the focal spot width (um -> px)
    eq = crystal.equilibrium_um
    spot = IMAGING.sigma0_um
    assert ell.a / 1.1 == pytest.approx((np.ptp(eq[:, 0]) / 2 + spot) / IMAGING.pixel_um,
                                        rel=0.10)
    assert ell.b / 1.1 == pytest.approx((np.ptp(eq[:, 2]) / 2 + spot) / IMAGING.pixel_um,
                                        rel=0.10)


def test_stored_image_passes_through(direct):
    """A simulated stored image (or its 8-bit PNG) at the task's pixel size comes back."""
    for image in (direct, np.round(255 * brightness_normalise(direct)).astype(np.uint8)):
        out = lab.preprocess_lab_image(image, {"pixel_um": IMAGING.pixel_um}, IMAGING)
        corr = np.corrcoef(brightness_normalise(direct).ravel(),
                           brightness_normalise(out).ravel())[0, 1]
        assert corr > 0.98  # measured 0.996


def test_task_preprocess_uses_lab_chain(tilted):
    from retroscope.tasks.crystal.task import CrystalTask

    image, out, _ = tilted
    via_task = CrystalTask().preprocess(image, {"pixel_um": LAB_PIXEL_UM})
    np.testing.assert_array_equal(via_task, out)


# -- rotation -----------------------------------------------------------------------------
@pytest.mark.parametrize("tilt", [-30.0, -5.0, 12.0, 40.0])
def test_axis_tilt_sign_convention(tilt):
    mask = uniform_ellipse((201, 201), a=15, b=60, tilt_deg=tilt) > 0
    assert lab.axis_tilt_deg(mask) == pytest.approx(tilt, abs=0.5)
    # an oblate silhouette: the (short) axis nearest the vertical is the one reported
    oblate = uniform_ellipse((201, 201), a=60, b=25, tilt_deg=tilt) > 0
    assert lab.axis_tilt_deg(oblate) == pytest.approx(tilt, abs=0.5)
    # round: no axis
    assert lab.axis_tilt_deg(uniform_ellipse((101, 101), 30, 30, 0) > 0, min_aspect=1.1) == 0.0


@pytest.mark.parametrize("tilt", [-8.0, 20.0])
def test_explicit_rotation_turns_axis_vertical(tilt):
    image = 50 * uniform_ellipse((240, 240), a=12, b=50, tilt_deg=tilt)
    imaging = ImagingConfig(pixel_um=4.0, shape=(160, 112))
    for settings in ({"rotation_deg": tilt}, {}):  # given, and measured
        out, info = lab.preprocess_lab_image(
            image, {"pixel_um": 4.0, "median5": False, "background": "none", **settings},
            imaging, return_info=True)
        assert info["rotation_deg"] == pytest.approx(tilt, abs=0.5)
        assert lab.axis_tilt_deg(out > 0.5 * out.max()) == pytest.approx(0.0, abs=0.5)


def test_auto_rotation_recovers_tilt(crystal, tilted):
    _, out5, info = tilted
    assert info["rotation_source"] == "auto"
    assert info["rotation_deg"] == pytest.approx(5.0, abs=1.0)  # measured 5.03
    _, info_m5 = lab.preprocess_lab_image(lab_image(crystal, -5.0, seed=2),
                                          {"pixel_um": LAB_PIXEL_UM}, IMAGING,
                                          return_info=True)
    assert info_m5["rotation_deg"] == pytest.approx(-5.0, abs=1.0)  # measured -4.8
    given = lab.preprocess_lab_image(lab_image(crystal, 5.0),
                                     {"pixel_um": LAB_PIXEL_UM, "rotation_deg": 5.0}, IMAGING)
    assert np.corrcoef(given.ravel(), out5.ravel())[0, 1] > 0.98


# -- ellipse and enhancement ---------------------------------------------------------------
def test_pixels_outside_fitted_ellipse_are_zero(crystal):
    image = lab_image(crystal, 5.0).astype(np.float64)
    image[20:26, 20:26] += 400.0  # a bright speck far from the crystal
    image[300, 250] = 60000.0  # a hot pixel
    out, info = lab.preprocess_lab_image(image, {"pixel_um": LAB_PIXEL_UM}, IMAGING,
                                         return_info=True)
    f = info["ellipse"].f(out.shape)
    assert np.all(out[f > 1.0] == 0.0)
    assert np.count_nonzero(out[f <= 1.0]) > 0.9 * np.count_nonzero(f <= 1.0)
    # without the ellipse step the speck and the noise survive
    off = lab.preprocess_lab_image(image, {"pixel_um": LAB_PIXEL_UM, "ellipse": False},
                                   IMAGING)
    assert np.count_nonzero(off[f > 1.0]) > 0


def test_enhancement_formula_exact():
    rng = np.random.default_rng(3)
    image = rng.random((40, 30))
    ell = lab.Ellipse(h=14.0, k=21.5, a=8.0, b=15.0)
    y, x = np.indices(image.shape, dtype=np.float64)
    f = (x - 14.0) ** 2 / 8.0 ** 2 + (y - 21.5) ** 2 / 15.0 ** 2
    np.testing.assert_allclose(lab.enhance_outer_layers(image, ell, 0.7),
                               image + 0.7 * image * f ** 2, rtol=1e-12)
    np.testing.assert_allclose(ell.f(image.shape), f, rtol=1e-12)


def test_enhancement_in_chain(tilted):
    image, base, info = tilted
    boosted = lab.preprocess_lab_image(image, {"pixel_um": LAB_PIXEL_UM, "enhance_outer": 2.0},
                                       IMAGING)
    f = info["ellipse"].f(base.shape)
    nz = base > 0
    assert np.array_equal(nz, boosted > 0)
    ratio = boosted[nz] / (base[nz] * (1 + 2.0 * f[nz] ** 2))  # one overall scale factor
    np.testing.assert_allclose(ratio, ratio.mean(), rtol=1e-4)


# -- magnification and brightness ------------------------------------------------------------
def test_trap_scale_shrinks_lengths(tilted):
    image, _, info = tilted
    _, half = lab.preprocess_lab_image(image, {"pixel_um": LAB_PIXEL_UM, "trap_scale": 0.5},
                                       IMAGING, return_info=True)
    assert half["ellipse"].b == pytest.approx(0.5 * info["ellipse"].b, rel=0.1)
    assert half["step_px"] == pytest.approx(2 * info["step_px"])


def test_brightness_density(tilted):
    image, out, _ = tilted
    assert np.quantile(out, 0.999) == pytest.approx(1.0, rel=1e-5)
    dens = lab.preprocess_lab_image(image, {"pixel_um": LAB_PIXEL_UM,
                                            "brightness_density": 0.25}, IMAGING)
    assert dens[dens > 0].mean() == pytest.approx(0.25, rel=1e-5)


def test_median5_and_background():
    image = np.full((9, 9), 10.0)
    image[4, 4] = 1000.0  # a hot pixel
    assert np.all(lab.median5(image) == 10.0)
    plus = np.zeros((5, 5))
    plus[2, 1:4] = 5.0  # a horizontal bar survives a plus-shaped median
    assert lab.median5(plus)[2, 2] == 5.0
    noisy = np.random.default_rng(0).poisson(100.0, (64, 64)).astype(np.uint16)
    assert lab.estimate_background(noisy) == pytest.approx(100.0, abs=1.0)


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("image, message", [
    (np.array([[1.0, np.nan], [2.0, 3.0]]), "NaN"),
    (np.ones((4, 4, 3)), "2D"),
    (np.zeros((0, 5)), "empty"),
    (np.array([["a", "b"]]), "dtype"),
    (np.ones((4, 4), dtype=bool), "dtype"),
    (np.zeros((30, 30), dtype=np.uint8), "no intensity"),
])
def test_bad_images_raise(image, message):
    with pytest.raises(ValueError, match=message):
        lab.preprocess_lab_image(image, {}, IMAGING)


# -- settings -----------------------------------------------------------------------------
def test_settings_validation_names_key():
    with pytest.raises(ValueError, match="'pixel_size'"):
        lab_settings.validate_lab_settings({"pixel_size": 1.5})
    with pytest.raises(ValueError, match="'pixel_um'"):
        lab_settings.validate_lab_settings({"pixel_um": -1.0})
    with pytest.raises(ValueError, match="'median5'"):
        lab_settings.validate_lab_settings({"median5": "yes"})
    with pytest.raises(ValueError, match="'background'"):
        lab_settings.validate_lab_settings({"background": "auto"})
    with pytest.raises(ValueError, match="'threshold'"):
        lab_settings.validate_lab_settings({"threshold": 1.5})
    with pytest.raises(ValueError, match="'trap_scale'"):
        lab.preprocess_lab_image(np.ones((8, 8)), {"trap_scale": True}, IMAGING)
    full = lab_settings.validate_lab_settings({"pixel_um": 2, "background": 12})
    assert full["pixel_um"] == 2.0 and full["background"] == 12.0 and full["median5"] is True


def test_load_lab_settings(tmp_path, monkeypatch):
    good = tmp_path / "lab.toml"
    good.write_text('pixel_um = 1.55\nrotation_deg = 5\nbackground = "border"\n')
    assert lab_settings.load_lab_settings(good) == {"pixel_um": 1.55, "rotation_deg": 5,
                                                    "background": "border"}
    bad = tmp_path / "bad.toml"
    bad.write_text("pixel_um = 1.55\nellipse_margn = 1.2\n")
    with pytest.raises(ValueError, match=r"bad\.toml.*'ellipse_margn'"):
        lab_settings.load_lab_settings(bad)
    wrong_type = tmp_path / "lab.json"
    wrong_type.write_text(json.dumps({"enhance_outer": "lots"}))
    with pytest.raises(ValueError, match=r"lab\.json.*'enhance_outer'"):
        lab_settings.load_lab_settings(wrong_type)
    broken = tmp_path / "broken.toml"
    broken.write_text("pixel_um = \n")
    with pytest.raises(ValueError, match=r"broken\.toml"):
        lab_settings.load_lab_settings(broken)
    with pytest.raises(ValueError, match=r"\.toml, \.json or \.yaml"):
        lab_settings.load_lab_settings(tmp_path / "lab.ini")
    yml = tmp_path / "lab.yaml"
    yml.write_text("pixel_um: 1.5\nauto_rotate: false\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # PyYAML not importable
    with pytest.raises(ValueError, match="PyYAML"):
        lab_settings.load_lab_settings(yml)


def test_load_yaml_settings(tmp_path):
    pytest.importorskip("yaml")
    yml = tmp_path / "lab.yml"
    yml.write_text("pixel_um: 1.5\nauto_rotate: false\nmedian_5: true\n")
    with pytest.raises(ValueError, match=r"lab\.yml.*'median_5'"):
        lab_settings.load_lab_settings(yml)
    yml.write_text("pixel_um: 1.5\nauto_rotate: false\n")
    assert lab_settings.load_lab_settings(yml) == {"pixel_um": 1.5, "auto_rotate": False}


@pytest.mark.parametrize("name", ["lab-boulder.toml", "lab-liverpool.toml"])
def test_example_settings_load_and_run(name, tilted):
    settings = lab_settings.load_lab_settings(EXAMPLES / name)
    assert 1.0 < settings["pixel_um"] < 2.0
    image, _, _ = tilted
    out = lab.preprocess_lab_image(image, settings, IMAGING)
    assert out.shape == IMAGING.shape and out.max() > 0
