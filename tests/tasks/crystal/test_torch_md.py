"""The batched torch dynamics agree with the numba kernels (CPU here, CUDA where present)."""

import numpy as np
import pytest
import torch

from retroscope.tasks.crystal import dynamics, torch_md
from retroscope.tasks.crystal.formation import FormationConfig, form_crystals
from retroscope.tasks.crystal.trap import OperatingPoint, get_trap


def _system(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)) * 2, np.full(n, 3.0), np.ones(n), np.ones(n)


def _padded(systems, pad):
    b = len(systems)
    pos = torch.zeros(b, pad, 3, dtype=torch.float64)
    kr, kz, q = (torch.ones(b, pad, dtype=torch.float64) for _ in range(3))
    mask = torch.zeros(b, pad, dtype=torch.bool)
    for i, (p, r, z, c) in enumerate(systems):
        n = len(p)
        pos[i, :n], kr[i, :n], kz[i, :n], q[i, :n] = (torch.tensor(a) for a in (p, r, z, c))
        mask[i, :n] = True
        pos[i, n:] = 50.0  # padding ions on top of each other: must not produce NaN
    return pos, kr, kz, q, mask


def test_forces_match_numba_with_padding():
    systems = [_system(17, 0), _system(11, 1)]
    pos, kr, kz, q, mask = _padded(systems, 20)
    f, e = torch_md.forces(pos, kr, kz, q, mask)
    assert torch.isfinite(f).all() and torch.isfinite(e).all()
    for i, (p, r, z, c) in enumerate(systems):
        ref = np.empty_like(p)
        energy = dynamics.coulomb_trap_forces(p, r, z, c, ref)
        np.testing.assert_allclose(f[i, :len(p)].numpy(), ref, atol=1e-10)
        assert float(e[i]) == pytest.approx(energy, rel=1e-12)
        assert float(f[i, len(p):].abs().max()) == 0.0


def _fire_agrees(device):
    systems = [_system(24, 2), _system(15, 3)]
    pos, kr, kz, q, mask = (t.to(device) for t in _padded(systems, 24))
    eq, steps, fmax = torch_md.fire_minimise(pos, kr, kz, q, mask, ftol=1e-6)
    assert bool((fmax < 1e-6).all())
    _, e = torch_md.forces(eq, kr, kz, q, mask)
    for i, (p, r, z, c) in enumerate(systems):
        ref, _, _ = dynamics.fire_minimise(p, r, z, c, ftol=1e-6)
        e_ref = dynamics.coulomb_trap_forces(ref, r, z, c, np.empty_like(ref))
        assert float(e[i]) == pytest.approx(e_ref, rel=1e-9)


def test_batched_fire_reaches_the_numba_minimum():
    _fire_agrees("cpu")


@pytest.mark.gpu
def test_batched_fire_on_cuda():
    _fire_agrees("cuda")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_torch_backend_forms_the_same_crystal_shape(device):
    ops = [OperatingPoint(get_trap("oxford"), 250.0, 2.5, 0.3)] * 2
    comps = [{"Ca+": 12}, {"Ca+": 8, "CaF+": 4}]
    cfg = FormationConfig(n_snapshots=2, sample_periods=1.0, equilibrate_periods=0.5,
                          ftol=1e-6)
    a = form_crystals(ops, comps, [0.005, 0.005], np.random.default_rng(0), cfg)
    b = form_crystals(ops, comps, [0.005, 0.005], np.random.default_rng(0),
                      FormationConfig(**{**cfg.to_dict(), "backend": "torch"}), device=device)
    for x, y in zip(a, b):
        assert y.snapshots_um.shape == x.snapshots_um.shape
        assert y.residual_force < 1e-6
        # both land in a minimum of the same energy landscape (possibly a different one of
        # the near-degenerate structures): the crystal's length and width agree
        for axis in (2, 0):
            assert np.ptp(y.equilibrium_um[:, axis]) == pytest.approx(
                np.ptp(x.equilibrium_um[:, axis]), rel=0.15)
    with pytest.raises(ValueError, match="backend"):
        form_crystals(ops, comps, [0.0, 0.0], np.random.default_rng(0),
                      FormationConfig(backend="jax"))
