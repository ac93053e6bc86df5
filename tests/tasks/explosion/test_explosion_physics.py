"""The Coulomb-explosion simulator against theory and an independent integrator."""

import math

import numpy as np
import pytest

from retroscope.tasks.explosion import explode, explode_batch, explode_reference, molecule
from retroscope.tasks.explosion.charges import (AU_PER_FS, draw_charges,
                                                ionisation_times)
from retroscope.tasks.explosion.dynamics import coulomb_energy, integrate, kinetic_energy
from retroscope.tasks.explosion.molecules import (BOHR_PER_ANGSTROM, ELECTRON_MASSES_PER_U,
                                                  conformer, g2_names, masses_u)

HARTREE_EV = 27.211386


def water(oh_angstrom=0.969, angle_deg=104.0):
    half = math.radians(angle_deg) / 2
    d = oh_angstrom * BOHR_PER_ANGSTROM
    pos = np.array([[0, 0, 0], [d * math.sin(half), 0, d * math.cos(half)],
                    [-d * math.sin(half), 0, d * math.cos(half)]])
    return pos - pos.mean(axis=0)


def test_constants():
    assert BOHR_PER_ANGSTROM == pytest.approx(1.8897261, abs=1e-6)
    assert ELECTRON_MASSES_PER_U == pytest.approx(1822.888, abs=1e-3)


def test_two_protons_reach_the_analytic_momentum():
    m = masses_u(["H", "H"])
    mu = m[0] * ELECTRON_MASSES_PER_U / 2
    expected = math.sqrt(2 * mu * 1 * 1 / 2.0)
    assert expected == pytest.approx(30.31, abs=5e-3)
    pos = np.array([[0, 0, -1.0], [0, 0, 1.0]])
    for p in (explode(pos, [1, 1], m), explode_reference(pos, [1, 1], m)):
        assert np.linalg.norm(p, axis=1) == pytest.approx([expected] * 2, rel=1e-4)
        assert p[1, 2] > 0 > p[0, 2]


def test_water_coulomb_energy_and_momenta():
    pos, m, q = water(), masses_u(["O", "H", "H"]), [2, 1, 1]
    energy = coulomb_energy(pos, q)
    assert energy == pytest.approx(2.5309, abs=2e-4)
    assert energy * HARTREE_EV == pytest.approx(68.87, abs=0.01)
    ref = explode_reference(pos, q, m)
    assert np.linalg.norm(ref, axis=1) == pytest.approx([69.28, 67.08, 67.08], abs=0.01)
    fast = explode(pos, q, m)
    assert np.abs(fast - ref).max() <= 1e-3 * np.abs(ref).max()
    assert kinetic_energy(fast, m) == pytest.approx(energy, rel=1e-4)   # the KER


def one_molecule_per_size():
    names = {}
    for name in g2_names():
        names.setdefault(len(molecule(name)[0]), name)
    return [names[n] for n in sorted(names)]


def test_batched_matches_solve_ivp_for_every_size():
    rng = np.random.default_rng(3)
    names = one_molecule_per_size()
    assert [len(molecule(n)[0]) for n in names] == list(range(2, 10))
    for name in names:
        symbols, pos = molecule(name)
        q = draw_charges(symbols, rng)
        m = masses_u(symbols)
        ref = explode_reference(pos, q, m)
        fast = explode(pos, q, m)
        assert np.abs(fast - ref).max() <= 1e-3 * np.abs(ref).max(), name
        # conservation: total momentum zero, energy = Coulomb energy at t = 0
        assert np.abs(fast.sum(axis=0)).max() <= 1e-9 * np.abs(fast).sum()
        assert kinetic_energy(fast, m) == pytest.approx(coulomb_energy(pos, q), rel=1e-4)


def test_padding_changes_nothing():
    rng = np.random.default_rng(4)
    s1, p1 = molecule("H2O")
    s2, p2 = molecule("CH3CH2OH")
    q1, q2 = draw_charges(s1, rng), draw_charges(s2, rng)
    pos = np.zeros((2, 10, 3))
    q, m, mask = np.zeros((2, 10)), np.ones((2, 10)), np.zeros((2, 10), bool)
    for b, (s, p, qq) in enumerate([(s1, p1, q1), (s2, p2, q2)]):
        pos[b, :len(s)], q[b, :len(s)], m[b, :len(s)], mask[b, :len(s)] = p, qq, masses_u(s), True
    out = explode_batch(pos, q, m, mask=mask)
    assert np.array_equal(out[0, :3], explode(p1, q1, masses_u(s1)))
    assert np.array_equal(out[1, :9], explode(p2, q2, masses_u(s2)))
    assert not out[~mask].any()


def test_charge_up_energy_and_limits():
    rng = np.random.default_rng(5)
    symbols, pos = molecule("H2CCl2")
    m = masses_u(symbols)
    q = draw_charges(symbols, rng)
    instant = explode(pos, q, m)
    e_instant = coulomb_energy(pos, q)
    # all times 0: the cheap mode exactly
    zeros = np.zeros((len(q), q.max()))
    assert np.array_equal(explode(pos, q, m, zeros), instant)
    kinetic = []
    for fwhm in (30.0, 10.0, 2.0, 0.02):
        times = ionisation_times(q, np.random.default_rng(6), fwhm, auger_fs=fwhm / 5)
        ex = integrate(pos[None], q[None], m[None], times[None])
        ker = kinetic_energy(ex.momenta_au[0], m)
        # the final kinetic energy is the sum of the Coulomb-energy jumps at the charge times
        assert ker == pytest.approx(ex.deposited_energy_hartree[0], rel=1e-4)
        assert np.abs(ex.momenta_au[0].sum(axis=0)).max() <= 1e-9 * np.abs(ex.momenta_au).sum()
        kinetic.append(ker)
    # the molecule stretches while it charges: less energy for longer pulses, the
    # instantaneous value in the limit
    assert kinetic[0] < kinetic[1] < kinetic[2] < e_instant
    assert kinetic[0] < 0.9 * e_instant
    assert kinetic[3] == pytest.approx(e_instant, rel=1e-3)
    times = ionisation_times(q, np.random.default_rng(6), 10.0)
    ref = explode_reference(pos, q, m, times)
    fast = explode(pos, q, m, times)
    assert np.abs(fast - ref).max() <= 1e-3 * np.abs(ref).max()


def test_ionisation_times_shape_and_units():
    q = np.array([3, 1, 1])
    t = ionisation_times(q, np.random.default_rng(0), pulse_fwhm_fs=10.0, auger_fs=0.0)
    assert t.shape == (3, 3)
    assert np.isnan(t[1:, 1:]).all() and np.isfinite(t[0]).all()
    assert (np.diff(t[0]) >= 0).all()
    big = ionisation_times(np.full(20000, 1), np.random.default_rng(1), 10.0, 0.0)[:, 0]
    fwhm_au = 2 * math.sqrt(2 * math.log(2)) * big.std()
    assert fwhm_au == pytest.approx(10.0 * AU_PER_FS, rel=0.03)
    auger = ionisation_times(np.full(20000, 1), np.random.default_rng(1), 0.0, 5.0)[:, 0]
    assert auger.mean() == pytest.approx(5.0 * AU_PER_FS, rel=0.03)


def rotation_matrix(rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_rotation_and_identical_atoms():
    rng = np.random.default_rng(7)
    symbols, pos = molecule("CH3CH2OH")
    pos = conformer(pos, rng)
    q, m = draw_charges(symbols, rng), masses_u(symbols)
    p = explode(pos, q, m)
    rot = rotation_matrix(rng)
    assert np.abs(explode(pos @ rot.T, q, m) - p @ rot.T).max() <= 1e-10 * np.abs(p).max()
    hydrogens = [i for i, s in enumerate(symbols) if s == "H" and q[i] == 1]
    a, b = hydrogens[:2]
    perm = np.arange(len(symbols))
    perm[[a, b]] = perm[[b, a]]
    swapped = explode(pos[perm], q[perm], m[perm])
    assert np.abs(swapped - p[perm]).max() <= 1e-10 * np.abs(p).max()


def test_same_seed_same_bytes():
    def draw(seed):
        rng = np.random.default_rng(seed)
        symbols, pos = molecule("H2CCl2")
        pos = conformer(pos, rng, max_displaced=3)
        q = draw_charges(symbols, rng)
        t = ionisation_times(q, rng, 5.0)
        return explode(pos, q, masses_u(symbols), t)

    assert draw(11).tobytes() == draw(11).tobytes()
    assert draw(11).tobytes() != draw(12).tobytes()


def test_conformer_displaces_within_bounds():
    rng = np.random.default_rng(8)
    _, pos = molecule("CH4")
    for _ in range(50):
        new = conformer(pos, rng, max_displaced=2, jitter_angstrom=0.0)
        shift = np.linalg.norm((new - new.mean(0)) - (pos - pos.mean(0)), axis=1)
        assert np.allclose(new.mean(axis=0), 0, atol=1e-12)
        assert shift.max() <= 0.3 * BOHR_PER_ANGSTROM * 1.01


def test_bad_input_is_refused():
    pos = np.zeros((1, 2, 3))
    with pytest.raises(ValueError, match="positions must be"):
        explode_batch(np.zeros((1, 2, 2)), [[1, 1]], [[1, 1]])
    with pytest.raises(ValueError, match="integers"):
        explode_batch(pos, [[1.5, 1]], [[1, 1]])
    with pytest.raises(ValueError, match="finite"):
        explode_batch(np.full((1, 2, 3), np.nan), [[1, 1]], [[1, 1]])
    with pytest.raises(ValueError, match="unknown molecule"):
        molecule("unobtainium")
    with pytest.raises(ValueError, match="no charge range"):
        draw_charges(["Xe"], np.random.default_rng(0))
