"""Optical depth, flags, Reinaudi saturation correction, cross-section and atom number."""

import math

import numpy as np
import pytest

from retroscope.tasks.clouds.frames import Camera, ProbeBeam, absorption_shot, sample_probe
from retroscope.tasks.clouds.optical_depth import (
    ODFlag,
    atom_number,
    corrected_od,
    cross_section_m2,
    optical_depth,
)
from retroscope.tasks.clouds.profiles import Cloud

SHAPE = (48, 64)
CAMERA = Camera(gain_counts_per_e=1.5, quantum_efficiency=0.6, read_noise_e=4.0,
                dark_offset_counts=100.0, bits=16)


def test_od_recovers_the_input_of_a_noise_free_shot():
    od_true = Cloud("ODT", 30.0, 25.0, 14.0, 5.0, 0.3, 2.5).od(SHAPE)
    probe = sample_probe(np.random.default_rng(2), SHAPE)
    frames = absorption_shot(od_true, probe, CAMERA, None)
    od, flags = optical_depth(**frames)
    assert od.dtype == np.float32 and flags.dtype == np.uint8
    np.testing.assert_allclose(od, od_true, atol=1e-5)
    assert not flags.any()


def test_od_values_and_clamping_flags():
    dark = np.full((2, 3), 10.0)
    atoms = np.array([[10.0 + 500.0, 10.0 + 100.0, 5.0], [10.0 + 50.0, 10.0, 30.0]])
    probe = np.array([[10.0 + 1000.0, 10.0 + 100.0, 1010.0], [10.0 + 50.0, 10.0, 0.0]])
    od, flags = optical_depth(atoms, probe, dark)
    assert od[0, 0] == pytest.approx(math.log(2.0))
    assert od[0, 1] == pytest.approx(0.0)
    assert od[0, 2] == pytest.approx(math.log(1000.0))  # atoms - dark = -5 clamped to 1
    assert flags[0, 2] == ODFlag.ATOMS_CLAMPED
    assert flags[1, 1] == ODFlag.ATOMS_CLAMPED | ODFlag.PROBE_CLAMPED
    assert od[1, 2] == pytest.approx(-math.log(20.0))  # probe - dark = -10 clamped to 1
    assert flags[1, 2] == ODFlag.PROBE_CLAMPED and flags[0, 0] == 0
    od5, _ = optical_depth(atoms, probe, dark, min_counts=5.0)
    assert od5[0, 2] == pytest.approx(math.log(1000.0 / 5.0), rel=1e-6)


def test_saturation_flags_where_counts_clip():
    camera = Camera(gain_counts_per_e=1.0, quantum_efficiency=1.0, read_noise_e=2.0,
                    dark_offset_counts=20.0, bits=12)
    probe = ProbeBeam(32.0, 24.0, 25.0, 6000.0)  # centre far above 4095 counts
    od_true = Cloud("MOT", 32.0, 24.0, 6.0, 6.0, 0.0, 2.0).od(SHAPE)
    frames = absorption_shot(od_true, probe, camera, np.random.default_rng(0))
    _, flags = optical_depth(**frames, saturation_counts=camera.max_counts)
    probe_clipped = frames["probe"] >= 4095
    assert probe_clipped.any() and (~probe_clipped).any()
    np.testing.assert_array_equal((flags & ODFlag.PROBE_SATURATED) > 0, probe_clipped)
    np.testing.assert_array_equal((flags & ODFlag.ATOMS_SATURATED) > 0, frames["atoms"] >= 4095)
    assert not (flags[24, 32] & ODFlag.ATOMS_SATURATED)  # the cloud's shadow is below full scale


def test_frame_errors_name_the_frame():
    ok = np.ones((4, 5))
    with pytest.raises(ValueError, match="'probe' has shape"):
        optical_depth(ok, np.ones((4, 6)), ok)
    bad = ok.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="'dark' has 1 non-finite"):
        optical_depth(ok, ok, bad)
    with pytest.raises(ValueError, match="'atoms' must be 2D"):
        optical_depth(np.ones(5), ok, ok)


def test_reinaudi_correction_inverts_saturated_transmission():
    od_true = Cloud("BEC", 32.0, 24.0, 12.0, 9.0, 0.2, 0.5, 7.0, 6.0, 2.5).od(SHAPE)
    i_sat = 2000.0
    probe = ProbeBeam(32.0, 24.0, 60.0, 5000.0)
    camera = Camera(gain_counts_per_e=1.0, quantum_efficiency=1.0, dark_offset_counts=100.0)
    frames = absorption_shot(od_true, probe, camera, None, i_sat_counts=i_sat)
    od_raw, _ = optical_depth(**frames)
    i_in = frames["probe"] - frames["dark"]
    i_out = frames["atoms"] - frames["dark"]
    od = corrected_od(od_raw, i_in, i_out, alpha=1.0, i_sat_counts=i_sat)
    np.testing.assert_allclose(od, od_true, atol=1e-6)
    peak = np.unravel_index(np.argmax(od_true), SHAPE)
    assert od_raw[peak] < od_true[peak] - 1.0  # the plain OD underestimates strongly
    np.testing.assert_allclose(corrected_od(od_raw, i_in, i_out, alpha=1.3),
                               1.3 * od_raw.astype(np.float64))
    with pytest.raises(ValueError, match="alpha"):
        corrected_od(od_raw, i_in, i_out, alpha=0.0)


def test_cross_section():
    lam = 780.241e-9
    sigma0 = 3 * lam**2 / (2 * math.pi)
    assert cross_section_m2(lam) == pytest.approx(2.907e-13, rel=1e-3)
    assert cross_section_m2(lam) == pytest.approx(sigma0, rel=1e-12)
    half = cross_section_m2(lam, detuning_hz=3.0e6, linewidth_hz=6.0e6)
    assert half == pytest.approx(sigma0 / 2)
    assert cross_section_m2(lam, intensity_over_isat=1.0) == pytest.approx(sigma0 / 2)
    assert cross_section_m2(lam, clebsch=7 / 15) == pytest.approx(7 / 15 * sigma0)
    with pytest.raises(ValueError, match="linewidth_hz"):
        cross_section_m2(lam, detuning_hz=1e6)


def test_atom_number_of_a_gaussian_cloud():
    shape = (80, 80)
    cloud = Cloud("MOT", 40.0, 40.0, 12.0, 8.0, 0.7, 1.2)
    od = cloud.od(shape)
    pixel, mag = 6.5e-6, 2.0
    sigma = cross_section_m2(401e-9)
    analytic = math.pi * 12.0 * 8.0 * 1.2 / 2 * pixel**2 / (mag**2 * sigma)
    assert atom_number(od, pixel, mag, sigma) == pytest.approx(analytic, rel=0.01)
    # inside the 1/e^2 ellipse: a fraction 1 - e^-2 of the atoms
    inside = atom_number(od, pixel, mag, sigma, mask=cloud.mask(shape))
    assert inside == pytest.approx((1 - math.e**-2) * analytic, rel=0.01)
    with pytest.raises(ValueError, match="mask shape"):
        atom_number(od, pixel, mag, sigma, mask=np.ones((3, 3), bool))
