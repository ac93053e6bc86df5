"""Momentum maps by the mask method (maps.py): Parseval for the removed parts, the maps'
symmetries for H2+ (mirror in k_y at alpha = 0; inversion with the CEP shifted by pi) and
their absence for HeH+."""

import numpy as np
import pytest

from retroscope.tasks.pmd.maps import KX_AU, KY_AU, momentum_maps, to_momentum
from retroscope.tasks.pmd.tdse import Grid, gaussian_packet


def test_the_momentum_transform_keeps_the_norm():
    grid = Grid(96, 64, 0.5)
    psi = gaussian_packet(grid, 3.0, x0=5.0, k0=1.2)
    phi = to_momentum(psi, grid)
    dk = grid.dk
    assert float((phi.abs() ** 2).sum()) * dk[0] * dk[1] == pytest.approx(1.0, abs=1e-10)


def _mirror_ky(m):  # ky_j -> -ky_j on the stored grid (index j -> 128 - j; j = 0 has no pair)
    return m[..., :0:-1]


@pytest.fixture(scope="module")
def h2_maps():
    return momentum_maps([2.0, 2.0], 2e14, cep_rad=[0.4, 0.4 + np.pi], preset="smoke",
                         precision="complex128")


def test_h2_maps_mirror_in_ky_and_invert_with_the_cep(h2_maps):
    pmd = h2_maps["pmd"]
    assert pmd.shape == (2, len(KX_AU), len(KY_AU)) and np.all(pmd >= 0)
    peak = pmd.max()
    np.testing.assert_allclose(pmd[:, :, 1:], _mirror_ky(pmd), atol=1e-3 * peak)
    # phi + pi flips A: the map turns over, k -> -k (x index i -> 256 - i)
    np.testing.assert_allclose(pmd[1, 1:, 1:], pmd[0, :0:-1, :0:-1], atol=1e-3 * peak)
    assert not np.allclose(pmd[0], pmd[1], atol=0.05 * peak)  # a CEP of 0.4 is asymmetric
    assert 1e-8 < h2_maps["yield_"][0] < 1e-3
    assert h2_maps["ground_energy"][0] == pytest.approx(-1.11, abs=0.02)


def test_heh_maps_do_not_invert_with_the_cep():
    m = momentum_maps([2.0, 2.0], 2e14, cep_rad=[0.4, 0.4 + np.pi], molecule="HeH+",
                      preset="smoke", precision="complex128")["pmd"]
    assert not np.allclose(m[1, 1:, 1:], m[0, :0:-1, :0:-1], atol=0.05 * m.max())
