"""The above-threshold-ionisation comb: in a long, nearly monochromatic pulse the
photoelectrons come at E_n = n omega - I_p - U_p (the energy of n photons less the binding
energy and the ponderomotive energy). Their position tests the field's amplitude (F0 from the
intensity), the Volkov phases of the mask method and the grid propagator together: a factor
of two in U_p moves the comb by 0.3-0.4 omega at this intensity (U_p = 2.6 omega)."""

import numpy as np
import pytest
from scipy.interpolate import interp1d

from retroscope.tasks.pmd.maps import momentum_density
from retroscope.tasks.pmd.presets import Preset
from retroscope.tasks.pmd.pulse import OMEGA_800NM, FlatTopPulse, ponderomotive_energy
from retroscope.tasks.pmd.tdse import Grid, potentials

INTENSITY = 6.7e13  # U_p = 2.6 omega: a doubled or halved U_p would shift the comb visibly


@pytest.fixture(scope="module")
def spectrum():
    """Photoelectron density along the polarisation (k_y = 0) of H2+ at R = 8 bohr (I_p =
    0.668 hartree), a 4-cycle flat-top pulse, on a box 256 bohr long for a momentum
    resolution of 0.025 a.u."""
    preset = Preset("ati-check", 512, 48, 0.5, 0.1, mask_x=100.0, mask_y=8.0,
                    after_pulse=150.0, mask_every=5, inner_radius=20.0)
    grid = Grid(preset.nx, preset.ny, preset.dx)
    density, energy = momentum_density(potentials(grid, 8.0), grid,
                                       [FlatTopPulse(INTENSITY)], preset, "complex64")
    kx, ky = np.fft.fftshift(grid.kx), np.fft.fftshift(grid.ky)
    line = np.fft.fftshift(density[0])[:, np.argmin(np.abs(ky))]
    return kx, line, -float(energy[0])


def comb_offset(kx, line, ip, up, omega=OMEGA_800NM) -> float:
    """Where the spectrum's peaks sit relative to n omega - I_p - U_p, in units of omega
    (0: on the comb; the phase of the spectrum's Fourier component of period omega in E,
    both directions of emission, E from 0.03 to 0.5 hartree)."""
    total = 0j
    for side in (kx > 0.2, kx < -0.2):
        e, dens = 0.5 * kx[side] ** 2, line[side]
        order = np.argsort(e)
        grid_e = np.linspace(0.03, 0.5, 2000)
        values = interp1d(e[order], dens[order])(grid_e)
        total += np.sum(values * np.exp(2j * np.pi * (grid_e + ip + up) / omega))
    return float(np.angle(total) / (2 * np.pi))


def test_the_peaks_sit_on_the_ati_comb(spectrum):
    kx, line, ip = spectrum
    assert ip == pytest.approx(0.668, abs=2e-3)
    up = ponderomotive_energy(INTENSITY)
    assert up / OMEGA_800NM == pytest.approx(2.6, abs=0.05)
    assert abs(comb_offset(kx, line, ip, up)) < 0.1
    # the check can fail: with U_p doubled or halved the same spectrum is off the comb
    assert abs(comb_offset(kx, line, ip, 2 * up)) > 0.2
    assert abs(comb_offset(kx, line, ip, 0.5 * up)) > 0.2
