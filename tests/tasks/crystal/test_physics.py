"""Physics of the ion-crystal simulator checked against analytic results.

Every tolerance is well below a factor of two (and mostly below the few-percent level), so a
lost factor in a spring constant, a unit or a temperature would fail.
"""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from retroscope.tasks.crystal import dynamics, theory
from retroscope.tasks.crystal.formation import (
    Crystal,
    FormationConfig,
    _initial_positions,
    equilibrium_positions,
    form_crystal,
)
from retroscope.tasks.crystal.render import ImagingConfig, render
from retroscope.tasks.crystal.trap import (
    EPS0,
    OperatingPoint,
    TrapError,
    Units,
    get_species,
    get_trap,
    spring_constants,
)

V_RF, V_END, KAPPA = 250.0, 2.5, 0.3
OP = OperatingPoint(get_trap("oxford"), V_RF, V_END, KAPPA)
CA = get_species("Ca+")
UNITS = Units.of(OP, CA)


# -- 1. full RF dynamics of a single ion ---------------------------------------------------

def _peak_frequency(signal: np.ndarray, dt: float, lo: float, hi: float) -> float:
    """Angular frequency of the largest spectral line in (lo, hi): Hann window, 16x zero
    padding, parabolic refinement of the peak."""
    n = len(signal)
    spec = np.abs(np.fft.rfft((signal - signal.mean()) * np.hanning(n), 16 * n))
    freq = 2 * np.pi * np.fft.rfftfreq(16 * n, dt)
    band = (freq > lo) & (freq < hi)
    i = int(np.argmax(np.where(band, spec, 0.0)))
    a, b, c = spec[i - 1:i + 2]
    return float(freq[i] + 0.5 * (a - c) / (a - 2 * b + c) * (freq[1] - freq[0]))


def _line_amplitudes(signal: np.ndarray, t: np.ndarray, omegas: list[float]) -> np.ndarray:
    """Amplitudes of sinusoids at the given angular frequencies, by linear least squares."""
    basis = np.column_stack([f(w * t) for w in omegas for f in (np.cos, np.sin)])
    coef, *_ = np.linalg.lstsq(basis, signal, rcond=None)
    return np.hypot(coef[0::2], coef[1::2])


def _floquet_beta(a: float, q: float) -> float:
    """Exact characteristic exponent of x'' + (a - 2 q cos 2 tau) x = 0 (monodromy matrix)."""
    def rhs(tau, y):
        return [y[1], -(a - 2 * q * math.cos(2 * tau)) * y[0]]

    cols = [solve_ivp(rhs, (0.0, math.pi), y0, rtol=1e-11, atol=1e-12).y[:, -1]
            for y0 in ([1.0, 0.0], [0.0, 1.0])]
    return math.acos(0.5 * (cols[0][0] + cols[1][1])) / math.pi


@pytest.fixture(scope="module")
def rf_trajectory():
    """One Ca+ ion in the full time-dependent RF field: ~45 radial periods, 50 steps per
    RF period, released at rest (RF phase 0) from a small displacement."""
    kz_ref = OP.k_z(CA)
    g = OP.geometry
    rf_x = CA.charge_c * V_RF / g.r0_m**2 / kz_ref
    dc_r = KAPPA * CA.charge_c * V_END / g.z0_m**2 / kz_ref
    omega = g.omega_rf * UNITS.time_s
    steps_per_rf, n_rf = 50, 800
    dt = 2 * np.pi / omega / steps_per_rf
    pos0 = np.array([[0.3, 0.2, 0.25]])
    out = dynamics.rf_verlet(pos0, np.zeros((1, 3)), [rf_x], [dc_r], [1.0], [1.0], [1.0],
                             omega, dt, n_rf * steps_per_rf, 1)
    t = dt * np.arange(1, len(out) + 1)
    return out[:, 0, :], t, dt, omega


def test_rf_secular_frequencies_match_pseudopotential(rf_trajectory):
    xyz, _, dt, omega = rf_trajectory
    w_r = OP.omega_r(CA) * UNITS.time_s  # 1.956 omega_z
    w_z = OP.omega_z(CA) * UNITS.time_s  # 1 by construction of the units
    assert w_z == pytest.approx(1.0, rel=1e-12)
    assert omega == pytest.approx(OP.geometry.omega_rf / OP.omega_z(CA), rel=1e-12)
    for axis in (0, 1):  # x and y feel the RF in antiphase but have the same secular frequency
        w = _peak_frequency(xyz[:, axis], dt, 0.3 * w_r, 2.0 * w_r)
        assert w == pytest.approx(w_r, rel=0.02)  # measured: 0.6 % above the formula
    wz = _peak_frequency(xyz[:, 2], dt, 0.3, 3.0)
    assert wz == pytest.approx(w_z, rel=1e-3)  # measured: 3e-7


def test_rf_secular_frequency_matches_exact_mathieu(rf_trajectory):
    """Tighter: against the exact Floquet exponent (the formula is lowest order in q), which
    the pseudopotential underestimates by 0.54 % at q = 0.168; Verlet adds ~0.07 %."""
    xyz, _, dt, omega = rf_trajectory
    q, a = OP.q(CA), OP.a_r(CA)
    beta = _floquet_beta(a, q)
    assert beta == pytest.approx(math.sqrt(a + q * q / 2), rel=0.01)
    w = _peak_frequency(xyz[:, 0], dt, 0.5, 4.0)
    assert w == pytest.approx(beta * omega / 2, rel=2e-3)


def test_rf_micromotion_amplitude(rf_trajectory):
    """x(t) = X cos(w t) [1 + (q/2) cos(Omega t)]: the sidebands at Omega -+ w sum to q/2 of
    the secular line (measured: 1.1 % above q/2); y the same; none on z."""
    xyz, t, dt, omega = rf_trajectory
    q = OP.q(CA)
    for axis in (0, 1):
        w = _peak_frequency(xyz[:, axis], dt, 0.5, 4.0)
        amp = _line_amplitudes(xyz[:, axis], t, [w, omega - w, omega + w])
        assert (amp[1] + amp[2]) / amp[0] == pytest.approx(q / 2, rel=0.15)
    # released at rest at RF phase 0 from x0: secular amplitude x0 / (1 + q/2)
    w = _peak_frequency(xyz[:, 0], dt, 0.5, 4.0)
    amp = _line_amplitudes(xyz[:, 0], t, [w, omega - w, omega + w])
    assert amp[0] == pytest.approx(0.3 / (1 + q / 2), rel=0.02)
    amp_z = _line_amplitudes(xyz[:, 2], t, [1.0, omega - 1.0, omega + 1.0])
    assert amp_z[1] + amp_z[2] < 1e-6 * amp_z[0]


# -- 2. two ions ---------------------------------------------------------------------------

def test_two_ion_separation():
    pos = equilibrium_positions(2, V_RF, V_END, KAPPA)
    d_theory = (CA.charge_c**2 / (2 * np.pi * EPS0 * CA.mass_kg * OP.omega_z(CA) ** 2)) \
        ** (1 / 3) * 1e6  # um, 24.4 um here
    d = abs(pos[1, 2] - pos[0, 2])
    assert d == pytest.approx(d_theory, rel=5e-3)  # measured: 6e-7
    assert np.all(np.abs(pos[:, :2]) < 1e-3 * d)  # on the axis
    assert abs(pos[:, 2].sum()) < 1e-3 * d  # centred on the trap


# -- 3. large crystal versus cold-fluid theory ---------------------------------------------

def test_large_crystal_matches_cold_fluid_spheroid():
    n = 300
    pos = equilibrium_positions(n, V_RF, V_END, KAPPA, seed=0)
    sph = theory.spheroid(n, OP.k_r(CA) / OP.k_z(CA), 1.0)
    length_um = UNITS.length_m * 1e6
    radius, half_length = sph["radius"] * length_um, sph["half_length"] * length_um
    n0_um3 = sph["density"] / length_um**3
    # dimensionless density = eps0 V^2 / (m r0^4 Omega^2) in SI
    assert n0_um3 * 1e18 == pytest.approx(OP.cold_fluid_density(CA), rel=1e-9)
    assert n0_um3 * 1e18 == pytest.approx(EPS0 * V_RF**2 / (
        CA.mass_kg * OP.geometry.r0_m**4 * OP.geometry.omega_rf**2), rel=1e-9)
    # spheroid from second moments: uniform spheroid <x^2 + y^2> = 2 R^2 / 5, <z^2> = Z^2 / 5
    c = pos - pos.mean(axis=0)
    r_fit = math.sqrt(2.5 * np.mean(c[:, 0] ** 2 + c[:, 1] ** 2))
    z_fit = math.sqrt(5.0 * np.mean(c[:, 2] ** 2))
    n_fit = n / (4 / 3 * np.pi * r_fit**2 * z_fit)
    assert r_fit == pytest.approx(radius, rel=0.10)  # measured: -2.2 %
    assert z_fit == pytest.approx(half_length, rel=0.10)  # measured: -0.3 %
    assert z_fit / r_fit == pytest.approx(sph["aspect"], rel=0.10)  # measured: +2.0 %
    assert n_fit == pytest.approx(n0_um3, rel=0.10)  # measured: +4.9 %


# -- 4. cold-fluid theory ------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [1.01, 1.3, 2.0, 2.85, 5.0, 20.0])
def test_depolarisation_equals_turner(alpha):
    assert theory.depolarisation_axial(alpha) == pytest.approx(theory.turner_q1(alpha),
                                                               rel=1e-9)


def test_depolarisation_limits_and_inverse():
    assert theory.depolarisation_axial(1.0) == pytest.approx(1 / 3, rel=1e-12)
    for eps in (1e-3, 1e-5):
        assert theory.depolarisation_axial(1 + eps) == pytest.approx(1 / 3, abs=2 * eps)
        assert theory.depolarisation_axial(1 - eps) == pytest.approx(1 / 3, abs=2 * eps)
    # monotonic decreasing: 1 for a flat disc, 0 for a needle
    alphas = np.geomspace(0.05, 20, 40)
    nz = np.array([theory.depolarisation_axial(a) for a in alphas])
    assert np.all(np.diff(nz) < 0) and nz[0] > 0.9 and nz[-1] < 0.02
    for alpha in (0.2, 0.7, 1.0, 1.5, 2.85, 8.0):
        nz = theory.depolarisation_axial(alpha)
        # k_z / (2 k_r + k_z) = N_z  <=>  k_r = k_z (1 / N_z - 1) / 2
        kr = (1 / nz - 1) / 2
        assert theory.aspect_ratio(kr, 1.0) == pytest.approx(alpha, rel=1e-8)
    with pytest.raises(ValueError):
        theory.aspect_ratio(-0.6, 1.0)


# -- 5. mixed crystals sort by mass --------------------------------------------------------

@pytest.mark.parametrize("dark,heavier", [("Xe+", True), ("CaF+", True), ("ND3+", False)])
def test_mixed_crystal_sorts_from_random_start(dark, heavier):
    composition = {"Ca+": 60, dark: 40}
    species = [CA, get_species(dark)]
    kinds = np.repeat([0, 1], [60, 40])
    kr_s, kz_s = spring_constants(OP, species, CA)
    # the random start really is mixed: both species fill the same spheroid
    start = _initial_positions(kr_s[kinds], kz_s[kinds], np.ones(100),
                               np.random.default_rng(3), "random")
    r0 = np.hypot(start[:, 0], start[:, 1])
    assert r0[kinds == 1].mean() == pytest.approx(r0[kinds == 0].mean(), rel=0.25)
    crystal = form_crystal(OP, composition, 0.0, np.random.default_rng(3),
                           FormationConfig(initial="random", ftol=1e-4, n_snapshots=0,
                                           max_fire_steps=100000))
    assert crystal.residual_force < 1e-4
    r = np.hypot(crystal.equilibrium_um[:, 0], crystal.equilibrium_um[:, 1])
    lit = crystal.fluorescing
    assert lit.sum() == 60
    if heavier:  # heavy dark ions form a shell around the Ca+ core
        assert r[~lit].mean() > 1.5 * r[lit].mean()
        assert r[~lit].min() > r[lit].max()
    else:  # light dark ions form a core inside the Ca+
        assert r[~lit].mean() < 0.5 * r[lit].mean()
        assert r[~lit].max() < r[lit].min()


# -- 6. thermal sampling -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Ca+", "Xe+"])
def test_langevin_equipartition_single_ion(name):
    """<z^2> = k_B T / k_z and <x^2> = k_B T / k_r, for a light and a heavy ion alike."""
    sp = get_species(name)
    temp = UNITS.temperature(0.010)  # 10 mK
    assert temp == pytest.approx(1.380649e-23 * 0.010 / (OP.k_z(CA) * UNITS.length_m**2))
    kr = OP.k_r(sp) / OP.k_z(CA)
    mass = sp.mass_u / CA.mass_u
    snaps, _ = dynamics.langevin_sample(np.zeros((1, 3)), [kr], [1.0], [1.0], [mass], [1.0],
                                        temp, 0.05, 400, 40000, 10, np.random.default_rng(1))
    assert np.mean(snaps[:, 0, 2] ** 2) == pytest.approx(temp, rel=0.10)  # measured 1 %
    assert np.mean(snaps[:, 0, :2] ** 2) == pytest.approx(temp / kr, rel=0.10)  # 2 %
    assert np.all(np.abs(snaps[:, 0, :].mean(axis=0)) < 0.1 * np.sqrt(temp))


def test_langevin_two_ions_normal_modes():
    """COM: <Zc^2> = T / 2; stretch (omega^2 = 3): var(z2 - z1) = 2 T / 3."""
    temp = UNITS.temperature(0.010)
    z0 = 0.25 ** (1 / 3)  # equilibrium half-separation in l0
    kr = OP.k_r(CA) / OP.k_z(CA)
    snaps, _ = dynamics.langevin_sample(np.array([[0, 0, -z0], [0, 0, z0]]), [kr, kr],
                                        [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], temp,
                                        0.05, 400, 40000, 10, np.random.default_rng(2))
    zc = snaps[:, :, 2].mean(axis=1)
    sep = snaps[:, 1, 2] - snaps[:, 0, 2]
    assert np.mean(zc**2) == pytest.approx(temp / 2, rel=0.10)  # measured -1.8 %
    assert np.var(sep) == pytest.approx(2 * temp / 3, rel=0.10)  # measured +1.5 %
    assert sep.mean() == pytest.approx(2 * z0, rel=1e-2)


# -- 7. rendering --------------------------------------------------------------------------

def _hand_crystal(positions_um, lit) -> Crystal:
    lit = np.asarray(lit, dtype=bool)
    species = [CA, get_species("CaF+")]
    kinds = np.where(lit, 0, 1)
    pos = np.asarray(positions_um, dtype=np.float64)
    return Crystal(species, kinds, pos, pos[None].copy(),
                   np.array([OP.q(species[k]) for k in kinds]), 0, 0.0)


def test_render_counts_fluorescing_ions_in_view():
    cfg = ImagingConfig()  # 128 x 128 px of 4 um: field of view +-256 um
    pos = [[0, 0, 0], [30, 20, -100], [-50, -40, 120], [10, 0, 60],  # lit, inside
           [0, 0, 400], [600, 0, 0],  # lit, far outside
           [0, 0, 20], [-20, 10, -40], [40, -30, 0]]  # dark, inside
    lit = [1, 1, 1, 1, 1, 1, 0, 0, 0]
    image = render(_hand_crystal(pos, lit), cfg)
    assert image.sum() == pytest.approx(4.0, rel=0.01)
    assert np.all(image >= 0)
    # dark ions contribute nothing: same image without them
    image_lit = render(_hand_crystal(pos[:6], lit[:6]), cfg)
    np.testing.assert_allclose(image, image_lit, atol=1e-12)


def test_render_formed_mixed_crystal():
    crystal = form_crystal(OP, {"Ca+": 60, "CaF+": 40}, 0.005, np.random.default_rng(5),
                           FormationConfig(n_snapshots=8))
    assert crystal.snapshots_um.shape == (8, 100, 3)
    image = render(crystal)
    assert image.sum() == pytest.approx(60.0, rel=0.01)
    lit_only = Crystal(crystal.species, crystal.kinds[:60], crystal.equilibrium_um[:60],
                       crystal.snapshots_um[:, :60], crystal.q[:60], 0, 0.0)
    assert np.all(crystal.fluorescing[:60]) and not np.any(crystal.fluorescing[60:])
    np.testing.assert_allclose(image, render(lit_only), atol=1e-12)


def _spot_sigma_um(law: str, depth_um: float, slice_um: float = 4.0) -> tuple[np.ndarray,
                                                                              float]:
    """Render one ion at a pixel centre, depth_um from the focus; returns (image, rms x)."""
    cfg = ImagingConfig(blur_law=law, micromotion_phases=0, slice_um=slice_um)
    # pixel centres lie at (k - 63.5) * 4 um: x = z = 2 um is the centre of pixel 64
    image = render(_hand_crystal([[2.0, depth_um, 2.0]], [1]), cfg)
    cols = np.arange(cfg.shape[1])
    px = image.sum(axis=0) / image.sum()
    mean = (px * cols).sum()
    return image, math.sqrt((px * (cols - mean) ** 2).sum()) * cfg.pixel_um


def test_blur_laws():
    sigma0, dof = ImagingConfig().sigma0_um, ImagingConfig().dof_um
    ccmd, gauss = ImagingConfig(blur_law="ccmd"), ImagingConfig(blur_law="gaussian")
    assert ccmd.sigma_um(0.0) == gauss.sigma_um(0.0) == pytest.approx(sigma0)
    for d in (-dof, 0.5 * dof, dof, 3 * dof):
        assert ccmd.sigma_um(d) == pytest.approx(sigma0 * (1 + abs(d) / dof))
        assert gauss.sigma_um(d) == pytest.approx(sigma0 * math.sqrt(1 + (d / dof) ** 2))
    # in focus both laws give the same image, of width sigma0. Slices are [k, k+1) * slice_um
    # blurred at their centre, so an ion at the focus is rendered at d = slice_um / 2: with
    # thin slices that is d ~ 0
    img_c, s_c = _spot_sigma_um("ccmd", 0.0, slice_um=0.02)
    img_g, s_g = _spot_sigma_um("gaussian", 0.0, slice_um=0.02)
    assert s_c == pytest.approx(sigma0, rel=0.01)
    assert s_g == pytest.approx(sigma0, rel=0.01)
    assert img_c.sum() == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(img_c, img_g, atol=1e-3 * img_c.max())
    # default 4 um slices: the in-focus slice is blurred at d = 2 um, 4 % wider for "ccmd"
    _, s_c = _spot_sigma_um("ccmd", 0.0)
    assert s_c == pytest.approx(ccmd.sigma_um(2.0), rel=0.01)
    # one depth of field out (slice centred at 50 um): 2 sigma0 versus sqrt(2) sigma0
    _, s_c = _spot_sigma_um("ccmd", dof)
    _, s_g = _spot_sigma_um("gaussian", dof)
    assert s_c == pytest.approx(2 * sigma0, rel=0.02)
    assert s_g == pytest.approx(math.sqrt(2) * sigma0, rel=0.02)
    with pytest.raises(ValueError, match="blur_law"):
        ImagingConfig(blur_law="lorentzian")


# -- 8. errors -----------------------------------------------------------------------------

def test_non_confining_operating_point():
    op = OperatingPoint(get_trap("oxford"), 10.0, 10.0, KAPPA)
    with pytest.raises(TrapError, match=r"not radially confined.*V = 10.0 V, U = 10.0 V"):
        op.omega_r(CA)
    with pytest.raises(TrapError, match="Ca\\+ is not radially confined"):
        form_crystal(op, {"Ca+": 5}, 0.0, np.random.default_rng(0))
    # confined Ca+ but not the heavy dark ion: the error names the species
    op = OperatingPoint(get_trap("oxford"), 120.0, 2.5, KAPPA)
    op.check_stable(CA)
    with pytest.raises(TrapError, match="Xe\\+ is not radially confined"):
        form_crystal(op, {"Ca+": 5, "Xe+": 2}, 0.0, np.random.default_rng(0))


def test_mathieu_q_outside_stability():
    op = OperatingPoint(get_trap("oxford"), 1400.0, 2.5, KAPPA)
    assert OP.q(CA) * 1400 / V_RF > 0.908
    with pytest.raises(TrapError, match="Mathieu q = 0.94"):
        op.check_stable(CA)
    with pytest.raises(TrapError, match="q < 0.908"):
        equilibrium_positions(3, 1400.0, 2.5, KAPPA)
    # a light dark ion goes unstable first (q ~ 1/m)
    with pytest.raises(TrapError, match="ND3\\+: Mathieu q"):
        form_crystal(OperatingPoint(get_trap("oxford"), 700.0, 2.5, KAPPA),
                     {"Ca+": 3, "ND3+": 1}, 0.0, np.random.default_rng(0))


def test_bad_inputs_name_the_field():
    with pytest.raises(TrapError, match="number of Ca\\+ ions must be >= 0, got -1"):
        form_crystal(OP, {"Ca+": -1}, 0.0, np.random.default_rng(0))
    with pytest.raises(TrapError, match="number of CaF\\+ ions"):
        equilibrium_positions(3, V_RF, V_END, KAPPA, dark={"CaF+": -2})
    with pytest.raises(TrapError, match="at least one ion"):
        equilibrium_positions(0, V_RF, V_END, KAPPA)
    for field, kwargs in (("v_rf", dict(v_rf=-1.0, v_end=1.0, kappa=0.3)),
                          ("v_end", dict(v_rf=100.0, v_end=0.0, kappa=0.3)),
                          ("kappa", dict(v_rf=100.0, v_end=1.0, kappa=float("nan")))):
        with pytest.raises(TrapError, match=f"^{field} must be"):
            OperatingPoint(get_trap("oxford"), **kwargs)
    with pytest.raises(TrapError, match="temperature"):
        form_crystal(OP, {"Ca+": 2}, -1.0, np.random.default_rng(0))
    with pytest.raises(TrapError, match="mass"):
        get_species(-5.0)
