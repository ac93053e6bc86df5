"""Cloud profiles (thermal, Thomas-Fermi, bimodal labels) and the raw-frame simulator."""

import math

import numpy as np
import pytest

from retroscope.tasks.clouds.frames import (
    Camera,
    PlaneFringe,
    ProbeBeam,
    RingFringe,
    absorption_shot,
    fluorescence_shot,
    sample_probe,
    transmitted_counts,
)
from retroscope.tasks.clouds.geometry import box_xyxy, ellipse_mask, gaussian_2d, pixel_centres
from retroscope.tasks.clouds.profiles import (
    Cloud,
    bimodal_peaks,
    render_od,
    thomas_fermi_column,
)

SHAPE = (72, 96)  # rows, cols; non-square catches x/y swaps


def test_thermal_cloud_peak_and_integral():
    cloud = Cloud("MOT", x0=40.0, y0=30.0, wx=9.0, wy=5.0, theta=0.4, od_peak=1.5)
    od = cloud.od(SHAPE)
    assert od.shape == SHAPE and od.dtype == np.float64
    assert od.max() == pytest.approx(1.5, rel=0.02)
    assert od.sum() == pytest.approx(math.pi * 9.0 * 5.0 * 1.5 / 2, rel=0.01)
    # the 1/e^2 contour: OD on the wx axis at distance wx is od_peak e^-2
    x = 40.0 + 9.0 * math.cos(0.4)
    y = 30.0 + 9.0 * math.sin(0.4)
    assert gaussian_2d(x, y, 40.0, 30.0, 9.0, 5.0, 0.4, 1.5) == pytest.approx(1.5 * math.e**-2)


def test_thomas_fermi_column_integral_and_shape():
    y, x = pixel_centres(SHAPE)
    col = thomas_fermi_column(x, y, 48.0, 36.0, 20.0, 12.0, 0.3, 2.0)
    assert col.sum() == pytest.approx(2 * math.pi / 5 * 20.0 * 12.0 * 2.0, rel=0.01)
    assert col.max() == pytest.approx(2.0, rel=0.01)
    # zero outside the Thomas-Fermi ellipse, positive inside
    inside = ellipse_mask(SHAPE, 48.0, 36.0, 20.0, 12.0, 0.3)
    assert np.all(col[~inside] == 0.0) and np.all(col[inside] >= 0.0)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_bimodal_peaks_give_the_condensate_fraction(fraction):
    od_peak, tf_peak = bimodal_peaks(3.0, fraction, wx=20.0, wy=14.0, tf_rx=8.0, tf_ry=6.0)
    assert od_peak + tf_peak == pytest.approx(3.0)
    n_tf = 2 * math.pi / 5 * 8.0 * 6.0 * tf_peak
    n_th = math.pi / 2 * 20.0 * 14.0 * od_peak
    assert n_tf / (n_tf + n_th) == pytest.approx(fraction, abs=1e-12)
    with pytest.raises(ValueError, match="condensate_fraction"):
        bimodal_peaks(3.0, 1.5, 20.0, 14.0, 8.0, 6.0)


def test_bec_od_is_thermal_plus_condensate_and_its_label():
    bec = Cloud("BEC", 50.0, 35.0, wx=14.0, wy=8.0, theta=0.2, od_peak=0.5,
                tf_rx=10.0, tf_ry=11.0, tf_od_peak=2.0)
    thermal = Cloud("ODT", 50.0, 35.0, 14.0, 8.0, 0.2, 0.5)
    y, x = pixel_centres(SHAPE)
    tf = thomas_fermi_column(x, y, 50.0, 35.0, 10.0, 11.0, 0.2, 2.0)
    np.testing.assert_allclose(bec.od(SHAPE), thermal.od(SHAPE) + tf)
    # label: the larger radius along each axis (thermal wx, Thomas-Fermi ry)
    assert bec.label_ellipse() == (50.0, 35.0, 14.0, 11.0, 0.2)
    np.testing.assert_allclose(bec.box(), box_xyxy(50.0, 35.0, 14.0, 11.0, 0.2))
    np.testing.assert_array_equal(bec.mask(SHAPE), ellipse_mask(SHAPE, 50.0, 35.0, 14.0, 11.0,
                                                                0.2))
    pure = Cloud("BEC", 50.0, 35.0, 14.0, 8.0, 0.2, 0.0, 10.0, 6.0, 2.0)
    assert pure.label_ellipse() == (50.0, 35.0, 10.0, 6.0, 0.2)
    assert thermal.label_ellipse() == (50.0, 35.0, 14.0, 8.0, 0.2)


def test_cloud_validation_and_render():
    with pytest.raises(ValueError, match="kind"):
        Cloud("BLOB", 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="tf_rx"):
        Cloud("BEC", 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="only for kind 'BEC'"):
        Cloud("MOT", 1.0, 1.0, 1.0, 1.0, tf_rx=1.0)
    with pytest.raises(ValueError, match="wy"):
        Cloud("ODT", 1.0, 1.0, 1.0, -2.0)
    a = Cloud("MOT", 20.0, 20.0, 6.0, 6.0, 0.0, 1.0)
    b = Cloud("ODT", 60.0, 40.0, 12.0, 3.0, 1.0, 0.7)
    np.testing.assert_allclose(render_od([a, b], SHAPE), a.od(SHAPE) + b.od(SHAPE))
    assert not render_od([], SHAPE).any()


def test_camera_flat_field_is_poisson_with_gain():
    camera = Camera(gain_counts_per_e=2.5, quantum_efficiency=0.7, read_noise_e=0.0,
                    dark_offset_counts=100.0, bits=16)
    photons = np.full((200, 200), 400.0)
    counts = camera.expose(photons, np.random.default_rng(0))
    assert counts.dtype == np.float32 and np.all(counts == np.rint(counts))
    signal = counts.astype(np.float64) - 100.0
    assert signal.mean() == pytest.approx(2.5 * 0.7 * 400.0, rel=0.005)
    # Var = gain^2 QE N = gain * mean (+1/12 from rounding)
    assert signal.var() == pytest.approx(2.5 * signal.mean() + 1 / 12, rel=0.04)
    noisy = Camera(gain_counts_per_e=1.0, quantum_efficiency=1.0, read_noise_e=8.0)
    dark = noisy.expose(np.zeros((200, 200)), np.random.default_rng(1))
    assert dark.var() == pytest.approx(64.0 + 1 / 12, rel=0.04)


def test_camera_saturation_and_full_well():
    camera = Camera(gain_counts_per_e=1.0, quantum_efficiency=1.0, read_noise_e=2.0,
                    dark_offset_counts=10.0, bits=8)
    counts = camera.expose(np.full((20, 20), 1000.0), np.random.default_rng(0))
    assert camera.max_counts == 255 and np.all(counts == 255.0)
    assert camera.expected_counts(np.array([1000.0]))[0] == 255.0
    well = Camera(gain_counts_per_e=1.0, quantum_efficiency=1.0, read_noise_e=0.0,
                  dark_offset_counts=0.0, full_well_e=50.0)
    assert np.all(well.expose(np.full((5, 5), 1e4), np.random.default_rng(0)) == 50.0)
    with pytest.raises(ValueError, match="photons"):
        camera.expose(np.array([-1.0]), np.random.default_rng(0))
    with pytest.raises(ValueError, match="bits"):
        Camera(bits=64)


def test_lambert_w_transmission():
    od = np.linspace(0.0, 4.0, 41)
    weak = transmitted_counts(np.full_like(od, 10.0), od, i_sat_counts=1e5)
    np.testing.assert_allclose(weak, 10.0 * np.exp(-od), rtol=2e-4)
    np.testing.assert_allclose(transmitted_counts(10.0, od), 10.0 * np.exp(-od))
    # strong light: exact solution of ln(I_out/I_in) + (I_out - I_in)/I_sat = -OD
    i_in, i_sat = 3000.0, 1000.0
    i_out = transmitted_counts(np.full_like(od, i_in), od, i_sat_counts=i_sat)
    np.testing.assert_allclose(np.log(i_out / i_in) + (i_out - i_in) / i_sat, -od, atol=1e-10)
    assert np.all(i_out[1:] > i_in * np.exp(-od[1:]))  # saturation bleaches the cloud
    with pytest.raises(ValueError, match="overflows"):
        transmitted_counts(np.array([1e6]), np.array([0.0]), i_sat_counts=1.0)


def test_probe_beam_fringes_aperture_and_jitter():
    fringes = (PlaneFringe(0.5, 0.2, 0.05, 0.3), RingFringe(30.0, 20.0, 5.0, 20.0, 0.1, 1.0))
    beam = ProbeBeam(48.0, 36.0, 40.0, 1000.0, aperture_px=30.0, fringes=fringes,
                     phase_jitter_rad=1.0, intensity_jitter=0.02)
    light = beam.intensity_counts(SHAPE)
    assert light.shape == SHAPE and np.all(light >= 0)
    y, x = pixel_centres(SHAPE)
    outside = (x - 48.0) ** 2 + (y - 36.0) ** 2 > 30.0**2
    assert np.all(light[outside] == 0) and np.all(light[~outside] > 0)
    assert light.max() <= 1000.0 * (1 + 0.05 + 0.1)
    other = beam.jittered(np.random.default_rng(3))
    for before, after in zip(beam.fringes, other.fringes):
        assert 0 < abs(after.phase_rad - before.phase_rad) <= 1.0
    assert abs(other.peak_counts / 1000.0 - 1) <= 0.02
    steady = ProbeBeam(48.0, 36.0, 40.0, 1000.0, fringes=fringes)
    np.testing.assert_array_equal(steady.jittered(np.random.default_rng(0)).intensity_counts(
        SHAPE), steady.intensity_counts(SHAPE))


def test_sample_probe_is_deterministic_and_in_range():
    a = sample_probe(np.random.default_rng(7), SHAPE)
    b = sample_probe(np.random.default_rng(7), SHAPE)
    assert a == b
    assert 2_000 <= a.peak_counts <= 20_000 and 0.6 * 72 <= a.waist_px <= 1.5 * 72
    planes = [f for f in a.fringes if isinstance(f, PlaneFringe)]
    assert 1 <= len(planes) <= 3 and all(0.01 <= f.contrast <= 0.05 for f in planes)
    assert all(4 <= 2 * math.pi / math.hypot(f.kx_rad_per_px, f.ky_rad_per_px) <= 40
               for f in planes)
    assert a.phase_jitter_rad == 1.0 and a.aperture_px is None


def test_noise_free_absorption_shot_frames():
    od = Cloud("MOT", 48.0, 36.0, 10.0, 7.0, 0.5, 2.0).od(SHAPE)
    probe = sample_probe(np.random.default_rng(1), SHAPE, phase_jitter_rad=1.0)
    camera = Camera(gain_counts_per_e=2.0, quantum_efficiency=0.5, dark_offset_counts=100.0)
    frames = absorption_shot(od, probe, camera, None)
    assert set(frames) == {"atoms", "probe", "dark"}
    np.testing.assert_allclose(frames["dark"], 100.0)
    np.testing.assert_allclose(frames["probe"] - 100.0, probe.intensity_counts(SHAPE))
    np.testing.assert_allclose(-np.log((frames["atoms"] - 100.0) / (frames["probe"] - 100.0)),
                               od, atol=1e-9)


def test_noisy_absorption_shot_moves_the_fringes():
    probe = ProbeBeam(48.0, 36.0, 200.0, 20_000.0,
                      fringes=(PlaneFringe(0.6, 0.1, 0.1, 0.0),),
                      phase_jitter_rad=math.pi, intensity_jitter=0.0)
    camera = Camera(gain_counts_per_e=1.0, quantum_efficiency=1.0, read_noise_e=0.0,
                    dark_offset_counts=0.0)
    frames = absorption_shot(np.zeros(SHAPE), probe, camera, np.random.default_rng(5))
    assert all(f.dtype == np.float32 for f in frames.values())
    ratio = frames["atoms"] / frames["probe"]
    # shot noise alone gives std sqrt(2/20000) = 0.01; moved 10% fringes give more
    assert ratio.std() > 0.03
    again = absorption_shot(np.zeros(SHAPE), probe, camera, np.random.default_rng(5))
    np.testing.assert_array_equal(again["atoms"], frames["atoms"])


def test_fluorescence_shot_is_background_plus_column():
    od = Cloud("ODT", 48.0, 36.0, 12.0, 4.0, 0.0, 0.8).od(SHAPE)
    camera = Camera(gain_counts_per_e=1.0, quantum_efficiency=1.0, dark_offset_counts=50.0)
    clean = fluorescence_shot(od, camera, None, counts_per_od=500.0, background_counts=20.0)
    np.testing.assert_allclose(clean["atoms"] - clean["dark"], 500.0 * od, atol=1e-9)
    np.testing.assert_allclose(clean["dark"], 70.0)
    noisy = fluorescence_shot(od, camera, np.random.default_rng(0), counts_per_od=500.0,
                              background_counts=20.0)
    assert (noisy["atoms"] - noisy["dark"]).sum() == pytest.approx(500.0 * od.sum(), rel=0.05)
    with pytest.raises(ValueError, match="column_od"):
        fluorescence_shot(-od, camera, None)
