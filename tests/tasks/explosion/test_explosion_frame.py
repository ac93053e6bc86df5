"""The momentum frame and Kabsch alignment on known rotations."""

import numpy as np
import pytest

from retroscope.tasks.explosion import explode, molecule
from retroscope.tasks.explosion.charges import draw_charges
from retroscope.tasks.explosion.frame import aligned_rmsd, canonical_rotation, kabsch, to_frame
from retroscope.tasks.explosion.molecules import atomic_numbers, conformer, masses_u


def rotation_matrix(rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def event(name="CH3CH2OH", seed=0):
    rng = np.random.default_rng(seed)
    symbols, pos = molecule(name)
    pos = conformer(pos, rng)
    q = draw_charges(symbols, rng)
    return symbols, pos, q, explode(pos, q, masses_u(symbols))


def test_frame_is_a_proper_rotation_with_x_along_the_heaviest_ion():
    symbols, pos, q, p = event()
    z = atomic_numbers(symbols)
    rot = canonical_rotation(p, z, q)
    assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    heavy = int(np.argmax(z))                    # the oxygen: one atom of highest Z
    in_frame = to_frame(p, rot)
    assert np.allclose(in_frame[heavy, 1:], 0, atol=1e-9) and in_frame[heavy, 0] > 0


def test_frame_ignores_the_lab_orientation_and_the_ion_order():
    symbols, pos, q, p = event("H2CCl2", seed=1)
    z = atomic_numbers(symbols)
    rng = np.random.default_rng(2)
    rot_lab = rotation_matrix(rng)
    a = to_frame(pos, canonical_rotation(p, z, q))
    b = to_frame(pos @ rot_lab.T, canonical_rotation(p @ rot_lab.T, z, q))
    assert np.abs(a - b).max() < 1e-9
    perm = rng.permutation(len(symbols))
    c = to_frame(pos[perm], canonical_rotation(p[perm], z[perm], q[perm]))
    assert np.abs(c - a[perm]).max() < 1e-9


def test_batched_frame_matches_single_and_respects_the_mask():
    _, _, q1, p1 = event("H2O", 3)
    symbols, _, q2, p2 = event("CH3CH2OH", 4)
    z2 = atomic_numbers(symbols)
    p = np.zeros((2, 9, 3))
    z, q, mask = np.zeros((2, 9)), np.zeros((2, 9)), np.zeros((2, 9), bool)
    p[0, :3], z[0, :3], q[0, :3], mask[0, :3] = p1, [8, 1, 1], q1, True
    p[1], z[1], q[1], mask[1] = p2, z2, q2, True
    rot = canonical_rotation(p, z, q, mask)
    assert np.allclose(rot[0], canonical_rotation(p1, [8, 1, 1], q1))
    assert np.allclose(rot[1], canonical_rotation(p2, z2, q2))
    with pytest.raises(ValueError, match="two detected"):
        canonical_rotation(p1[:1], [8], q1[:1])


def test_kabsch_recovers_a_rotation_and_refuses_a_mirror():
    rng = np.random.default_rng(5)
    _, pos = molecule("CH3CH2OH")                # not planar: its mirror image differs
    rot = rotation_matrix(rng)
    moved = pos @ rot.T + np.array([1.0, -2.0, 0.5])
    r, t = kabsch(pos, moved)
    assert np.allclose(r, rot, atol=1e-10) and np.allclose(t, [1.0, -2.0, 0.5], atol=1e-10)
    assert aligned_rmsd(pos, moved) < 1e-10
    mirror = pos * np.array([1.0, 1.0, -1.0])
    assert aligned_rmsd(mirror, pos) > 0.3   # bohr: a reflection is not a rotation


def test_a_linear_molecule_still_has_a_frame():
    from retroscope.tasks.explosion.molecules import masses_u as masses

    symbols, pos = molecule("CO2")
    p = explode(pos, [2, 1, 1], masses(symbols))
    rot = canonical_rotation(p, atomic_numbers(symbols), [2, 1, 1])
    assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    import torch

    from retroscope.models.ion_transformer import momentum_frame

    ions = torch.tensor(np.c_[atomic_numbers(symbols), [2, 1, 1], p][None], dtype=torch.float64)
    r = momentum_frame(ions)[0].numpy()
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-9) and np.allclose(r[0], rot[0])
