"""MSFT physics checks: Born sphere on the Ewald sphere, direct DFT, backends, absorption."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from retroscope.tasks.diffraction import msft
from retroscope.tasks.diffraction.msft import (
    MSFTConfig,
    detector_mask,
    pattern,
    patterns,
    q_grid,
    scattering_amplitude,
    simulate_pattern,
    sphere_form_factor_intensity,
    transmission,
)
from retroscope.tasks.diffraction.shapes import density

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _log_corr(a, b, mask, floor):
    """Correlation of log10 intensities (each relative to its maximum, floored at ``floor``)."""
    la = np.log10(np.maximum(a / a[mask].max(), floor))[mask]
    lb = np.log10(np.maximum(b / b[mask].max(), floor))[mask]
    return np.corrcoef(la, lb)[0, 1]


def test_default_geometry_covers_the_ewald_disc():
    cfg = MSFTConfig()
    k = 2 * np.pi / 13.5
    assert cfg.dq_nm_inv == pytest.approx(0.00738, rel=0.01)  # Stielow et al. App. B
    qx, qy, qz = q_grid(cfg)
    assert qx.shape == (128, 128) and np.allclose(np.diff(qx[0]), cfg.dq_nm_inv)
    assert np.allclose(qy[:, 0], qx[0]) and qx[0, 64] == 0 and qy[64, 0] == 0
    assert abs(qx).max() > k  # the whole disc |q_perp| <= k is on the detector
    assert np.allclose(qz, np.sqrt(np.maximum(k**2 - qx**2 - qy**2, 0)) - k)
    assert np.array_equal(detector_mask(cfg), np.hypot(qx, qy) <= k)
    assert cfg.grid.box_nm > 2 * 160 + 4 * cfg.grid.dx_nm  # largest cluster fits with margin
    assert cfg.grid.n_xy >= 64 and cfg.grid.dz_nm < 4.0


def test_born_sphere_matches_form_factor_on_the_ewald_sphere():
    """Born MSFT of a sphere vs [3 (sin qR - qR cos qR)/(qR)^3]^2 V^2 with |q| on the Ewald sphere.

    The voxel sphere has a linear edge ramp of width e (one voxel), which multiplies the
    amplitude by sinc(q e / 2) to leading order in e / R; log intensities are floored at 1e-6
    of the peak so that the exact zeros of the form factor do not dominate the correlation.
    """
    cfg = MSFTConfig(born=True)
    radius, e = 100.0, cfg.grid.dx_nm
    amp = scattering_amplitude(density("sphere", radius, [0, 0, 0, 1], cfg.grid), cfg)
    qx, qy, qz = q_grid(cfg)
    mask = detector_mask(cfg)
    q_ewald, q_flat = np.sqrt(qx**2 + qy**2 + qz**2), np.hypot(qx, qy)
    ramp = lambda q: np.sinc(q * e / (2 * np.pi)) ** 2
    ewald = sphere_form_factor_intensity(q_ewald, radius) * ramp(q_ewald)
    flat = sphere_form_factor_intensity(q_flat, radius) * ramp(q_flat)
    intensity = np.abs(amp) ** 2
    assert _log_corr(intensity, ewald, mask, 1e-6) >= 0.999
    assert _log_corr(intensity, flat, mask, 1e-6) < 0.95  # q_z = 0 (projection) must fail
    # absolute scale: A(0) = V (nm^3), a factor of two anywhere would show
    assert intensity[64, 64] == pytest.approx((4 / 3 * np.pi * radius**3) ** 2, rel=0.01)


def test_flat_detector_geometry_and_born_sphere():
    cfg = MSFTConfig(born=True, detector="flat")
    qx, qy, qz = q_grid(cfg)
    k = cfg.k_nm_inv
    cos_theta = 1 + qz / k
    # pixel centres x / D = tan(theta) cos(phi) = q_x / (k cos theta), linear in the column,
    # reaching tan 45 deg = 1 at the outer pixel edge
    x_d, y_d = qx / (k * cos_theta), qy / (k * cos_theta)
    assert np.allclose(np.diff(x_d, axis=1), 1 / 64) and np.allclose(np.diff(y_d, axis=0), 1 / 64)
    assert x_d[0, -1] + 0.5 / 64 == pytest.approx(1.0)
    assert np.allclose(np.hypot(qx, qy), k * np.sqrt(1 - cos_theta**2))
    assert detector_mask(cfg).all()
    radius = 60.0
    amp = scattering_amplitude(density("sphere", radius, [0, 0, 0, 1], cfg.grid), cfg)
    q = np.sqrt(qx**2 + qy**2 + qz**2)
    ramp = np.sinc(q * cfg.grid.dx_nm / (2 * np.pi)) ** 2
    expected = sphere_form_factor_intensity(q, radius) * ramp
    mask = detector_mask(cfg)
    assert _log_corr(np.abs(amp) ** 2, expected, mask, 1e-6) >= 0.995
    image = pattern(density("sphere", radius, [0, 0, 0, 1], cfg.grid), cfg)
    cos3 = cos_theta**3  # pixel solid angle
    ref = np.log10(np.abs(amp) ** 2 * cos3 / (np.abs(amp) ** 2 * cos3).max())
    assert np.allclose(image, np.maximum(ref, -cfg.dynamic_range_decades), atol=1e-5)


def _direct_amplitude(rho, cfg):
    """Explicit sum over voxels of s(r) exp(-i q.r) dV with the Ewald q_z, on the FFT grid."""
    g = cfg.grid
    k, h = cfg.k_nm_inv, cfg.detector_px // 2
    q1 = (np.arange(cfg.detector_px) - h) * 2 * np.pi / (cfg.pad_to * g.dx_nm)
    qx, qy = np.meshgrid(q1, q1, indexing="xy")
    qz = np.sqrt(np.maximum(k**2 - qx**2 - qy**2, 0)) - k
    dz = g.dz_nm
    if cfg.material == "absorption":
        source = np.empty_like(rho)
        for j in range(g.n_z):  # material in front of slice j, l < j
            source[j] = rho[j] * np.exp(-rho[:j].sum(axis=0) * dz / cfg.amplitude_length_nm)
    else:
        phi = k * dz * (cfg.refractive_index - 1) * rho
        source = np.array([(np.exp(1j * phi[j]) - 1) / (1j * k * dz) * np.exp(1j * phi[:j].sum(0))
                           for j in range(g.n_z)])
    amp = np.zeros(qx.shape, dtype=complex)
    for j, z in enumerate(g.z_nm):
        for iy, y in enumerate(g.y_nm):
            for ix, x in enumerate(g.x_nm):
                amp += source[j, iy, ix] * np.exp(-1j * (qx * x + qy * y + qz * z))
    return amp * g.voxel_volume_nm3, (qx, qy, qz)


@pytest.mark.parametrize("material,detector_px,block", [
    ("absorption", 10, False), ("absorption", 9, True), ("refractive_index", 10, True)])
def test_fft_path_matches_direct_dft(material, detector_px, block):
    cfg = MSFTConfig(n_xy=8, n_z=8, pad_to=12, box_nm=40.0, depth_nm=30.0, wavelength_nm=5.0,
                     absorption_length_nm=6.0, material=material, detector_px=detector_px)
    rng = np.random.default_rng(5)
    rho = rng.random(cfg.grid.shape)
    if block:  # empty borders exercise the cropped (occupied-block) numpy path
        rho[:2] = 0
        rho[:, :, 6:] = 0
        rho[:, :1] = 0
    direct, (qx, qy, qz) = _direct_amplitude(rho, cfg)
    assert np.allclose(np.stack(q_grid(cfg)), np.stack([qx, qy, qz]))
    scale = np.abs(direct).max()
    assert np.abs(scattering_amplitude(rho, cfg) - direct).max() < 1e-10 * scale
    torch_amp = scattering_amplitude(rho, cfg, backend="torch", device="cpu")
    assert np.abs(torch_amp - direct).max() < 1e-5 * scale


@pytest.mark.parametrize("overrides", [{}, {"material": "refractive_index"}, {"detector": "flat"}])
def test_numpy_and_torch_agree(overrides):
    cfg = MSFTConfig(**overrides)
    rng = np.random.default_rng(2)
    dens = np.stack([density("icosahedron", r, Rotation.random(rng=rng).as_quat(), cfg.grid)
                     for r in (40.0, 150.0)])
    for rho in dens:
        a_np = scattering_amplitude(rho, cfg, backend="numpy")
        a_t = scattering_amplitude(rho, cfg, backend="torch", device="cpu")
        assert np.abs(a_np - a_t).max() < 1e-5 * np.abs(a_np).max()
    p_np = patterns(dens, cfg, backend="numpy")
    p_t = patterns(dens, cfg, backend="torch", device="cpu")
    assert p_np.shape == p_t.shape == (2, 128, 128) and p_np.dtype == p_t.dtype == np.float32
    bright = p_np > -6
    assert np.abs(p_np - p_t)[bright].max() < 1e-3
    assert np.mean(np.abs(p_np - p_t) < 1e-2) > 0.999


def test_pattern_format():
    cfg = MSFTConfig()
    image = simulate_pattern("icosahedron", 80.0, [0.1, 0.2, 0.3, 0.9] / np.linalg.norm(
        [0.1, 0.2, 0.3, 0.9]), cfg)
    mask = detector_mask(cfg)
    assert image.shape == (128, 128) and image.dtype == np.float32
    assert image.max() == 0.0 and image.min() >= -cfg.dynamic_range_decades
    assert np.all(image[~mask] == -cfg.dynamic_range_decades)
    assert image[64, 64] == 0.0  # forward direction is the brightest pixel
    assert msft._geometry.cache_info().hits > 0  # geometry tables are cached per config


def test_point_group_rotation_leaves_pattern_unchanged():
    cfg = MSFTConfig()
    rot = Rotation.random(rng=np.random.default_rng(4))
    group = Rotation.create_group("I")
    rho = density("icosahedron", 110.0, rot.as_quat(), cfg.grid)
    amp = scattering_amplitude(rho, cfg)
    for i in (7, 23, 41):
        other = scattering_amplitude(
            density("icosahedron", 110.0, (rot * group[i]).as_quat(), cfg.grid), cfg)
        peak = (np.abs(amp) ** 2).max()
        assert np.abs(np.abs(other) ** 2 - np.abs(amp) ** 2).max() <= 1e-6 * peak
    turned = (rot * Rotation.from_rotvec([0.0, 0.0, np.radians(10)])).as_quat()
    changed = pattern(density("icosahedron", 110.0, turned, cfg.grid), cfg)
    assert np.abs(changed - pattern(rho, cfg)).max() > 1.0


def test_absorption_conventions_order_the_damping():
    rot = Rotation.random(rng=np.random.default_rng(9)).as_quat()
    cfg = MSFTConfig()
    rho = density("icosahedron", 120.0, rot, cfg.grid)
    forward = {}
    for name, c in {"born": MSFTConfig(born=True), "intensity": MSFTConfig(attenuation="intensity"),
                    "amplitude": MSFTConfig(attenuation="amplitude")}.items():
        forward[name] = (np.abs(scattering_amplitude(rho, c)) ** 2).sum()
    assert forward["born"] > 1.5 * forward["intensity"] > 1.5 * forward["amplitude"]
    assert np.abs(pattern(rho, cfg) - pattern(rho, MSFTConfig(born=True))).max() > 1.0


@pytest.mark.parametrize("attenuation,intensity_length", [("amplitude", 6.25), ("intensity", 12.5)])
def test_slab_transmission(attenuation, intensity_length):
    cfg = MSFTConfig(attenuation=attenuation)
    rho = np.zeros(cfg.grid.shape)
    m = 16
    rho[:m] = 1.0
    t_nm = m * cfg.grid.dz_nm
    behind = transmission(rho, cfg)[m]  # amplitude reaching the first slice behind the slab
    assert np.allclose(np.abs(behind) ** 2, np.exp(-t_nm / intensity_length))
    assert np.allclose(transmission(rho, cfg)[0], 1.0)


def test_refractive_index_slab_transmission():
    cfg = MSFTConfig(material="refractive_index")
    rho = np.zeros(cfg.grid.shape)
    rho[:8] = 1.0
    t_nm = 8 * cfg.grid.dz_nm
    behind = transmission(rho, cfg)[8, 0, 0]
    beta, delta = cfg.refractive_index.imag, 1 - cfg.refractive_index.real
    assert abs(behind) ** 2 == pytest.approx(np.exp(-2 * cfg.k_nm_inv * beta * t_nm))
    assert np.angle(behind) == pytest.approx(np.angle(np.exp(-1j * cfg.k_nm_inv * delta * t_nm)))
    # silver at 13.5 nm: intensity attenuation length lambda / (4 pi beta) ~ 11.9 nm
    assert 13.5 / (4 * np.pi * beta) == pytest.approx(11.9, abs=0.1)


def test_sphere_form_factor():
    r = 10.0
    v2 = (4 / 3 * np.pi * r**3) ** 2
    assert sphere_form_factor_intensity(0.0, r) == pytest.approx(v2)
    assert sphere_form_factor_intensity(4.493409457909064 / r, r) < 1e-20 * v2  # first zero
    assert sphere_form_factor_intensity(1e-5, r) == pytest.approx(v2, rel=1e-8)


def test_config_validation():
    with pytest.raises(ValueError):
        MSFTConfig(attenuation="field")
    with pytest.raises(ValueError):
        MSFTConfig(detector_px=256)
    with pytest.raises(ValueError):
        scattering_amplitude(np.zeros((4, 4, 4)), MSFTConfig())
    empty = scattering_amplitude(np.zeros(MSFTConfig().grid.shape), MSFTConfig())
    assert empty.shape == (128, 128) and not empty.any()
