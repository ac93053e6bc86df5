"""The physics of the pmd task against theory (Shvetsov-Shilovski & Lein, PRA 107, 033106
(2023), Eqs. (1)-(3), (7)): the pulse, the model molecules' ground states, and the split-
operator propagation of a free wave packet. Each check would catch a factor of two."""

import math

import numpy as np
import pytest
import torch

from retroscope.tasks.pmd.pulse import HARTREE_EV, Pulse, peak_field, ponderomotive_energy
from retroscope.tasks.pmd.tdse import (
    Grid,
    Propagator,
    gaussian_packet,
    imaginary_time_ground_state,
    norm,
    potentials,
)


# --- the pulse, Eq. (1) ---------------------------------------------------------------------


def test_pulse_amplitude_ponderomotive_energy_and_duration():
    assert peak_field(1e14) == pytest.approx(0.0534, abs=2e-4)
    assert ponderomotive_energy(1e14) * HARTREE_EV == pytest.approx(5.98, abs=0.02)
    assert ponderomotive_energy(4e14) * HARTREE_EV == pytest.approx(23.9, abs=0.1)
    assert Pulse(1e14).duration == pytest.approx(2 * 110.3, abs=0.1)


@pytest.mark.parametrize("cep", [0.0, 0.7, math.pi / 2])
def test_vector_potential_vanishes_at_the_ends_and_the_field_is_its_derivative(cep):
    pulse = Pulse(2e14, cep_rad=cep)
    t = np.linspace(0.0, pulse.duration, 20001)
    a, f = pulse.vector_potential(t), pulse.electric_field(t)
    assert abs(a[0]) < 1e-12 and abs(a[-1]) < 1e-12
    # no net momentum transfer by a pulse: the integral of F is A(0) - A(T) = 0
    assert abs(np.trapezoid(f, t)) < 1e-6
    np.testing.assert_allclose(-np.gradient(a, t)[1:-1], f[1:-1], atol=2e-6)
    # the envelope peaks at F0 (within the carrier's phase)
    assert np.max(np.abs(f)) == pytest.approx(pulse.f0, rel=0.15)
    assert pulse.vector_potential(-1.0) == 0.0 and pulse.electric_field(pulse.duration + 1) == 0


# --- ground states, Eqs. (3) and (7) ----------------------------------------------------------


@pytest.mark.parametrize("r_bohr, molecule, expected", [
    (1.0, "H2+", -1.2845), (2.0, "H2+", -1.1114), (8.0, "H2+", -0.6678),
    (1.4, "HeH+", -1.657)])
def test_ground_state_energies(r_bohr, molecule, expected):
    """Imaginary-time ground states on 256^2 points of 0.2 bohr against the spectral values
    of the same model (soft core 0.5): within 2e-3 hartree."""
    grid = Grid(256, 256, 0.2)
    e, psi = imaginary_time_ground_state(potentials(grid, r_bohr, 0.0, molecule), grid)
    assert float(e[0]) == pytest.approx(expected, abs=2e-3)
    assert float(norm(psi, grid)[0]) == pytest.approx(1.0, abs=1e-12)


def test_the_ground_state_turns_with_the_molecule():
    grid = Grid(96, 96, 0.25)
    e0, psi0 = imaginary_time_ground_state(potentials(grid, 3.0, 0.0), grid)
    e90, psi90 = imaginary_time_ground_state(potentials(grid, 3.0, 90.0), grid)
    assert float(e0[0]) == pytest.approx(float(e90[0]), abs=1e-6)
    np.testing.assert_allclose(psi90[0].abs().numpy(), psi0[0].abs().numpy().T, atol=1e-6)


# --- propagation -----------------------------------------------------------------------------


def test_norm_is_kept_without_an_absorber():
    grid = Grid(128, 128, 0.4)
    v = potentials(grid, 2.0)
    _, psi = imaginary_time_ground_state(v, grid)
    pulse = Pulse(3e14)
    out = Propagator(v, grid, dt=0.05, precision="complex128").run(
        psi, pulse.vector_potential, 0.0, 40.0)
    assert abs(float(norm(out, grid)[0]) - 1.0) < 1e-6
    # the field has done something: the state is no longer the ground state
    assert float((psi.conj() * out).sum().abs()) * grid.dx ** 2 < 0.999999


def test_a_free_packet_keeps_its_momenta_moves_with_the_field_and_spreads():
    """V = 0: |psi(k)|^2 unchanged by the pulse; <x>(t) = <x>(0) + integral of A (velocity
    gauge, at rest); the width grows as sigma0 sqrt(1 + (t / 2 sigma0^2)^2)."""
    grid = Grid(512, 256, 0.4)  # +-102 x +-51 bohr: the packet never wraps around
    sigma0 = 3.0
    psi0 = gaussian_packet(grid, sigma0)
    pulse = Pulse(2e14, cep_rad=0.3)
    t1 = 60.0
    prop = Propagator(torch.zeros(1, grid.nx, grid.ny, dtype=torch.float64), grid, dt=0.05)
    psi = prop.run(psi0, pulse.vector_potential, 0.0, t1)
    np.testing.assert_allclose(torch.fft.fft2(psi).abs().numpy(),
                               torch.fft.fft2(psi0).abs().numpy(), atol=1e-9)
    density = (psi[0].abs() ** 2).numpy() * grid.dx ** 2
    x = grid.x[:, None]
    mean_x = float((density * x).sum())
    t = np.linspace(0.0, t1, 20001)
    assert mean_x == pytest.approx(np.trapezoid(pulse.vector_potential(t), t), abs=1e-3)
    assert abs(np.trapezoid(pulse.vector_potential(t), t)) > 1.0  # the test can see a drift
    y = grid.y[None, :]
    width_y = math.sqrt(float((density * y ** 2).sum()))
    assert width_y == pytest.approx(sigma0 * math.sqrt(1 + (t1 / (2 * sigma0 ** 2)) ** 2),
                                    rel=1e-3)
