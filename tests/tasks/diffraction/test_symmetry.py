"""Point groups, fundamental domain, misorientation and the torch alignment used by losses."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from retroscope.tasks.diffraction.shapes import SHAPES
from retroscope.tasks.diffraction.symmetry import (
    align_to_reference_torch,
    fundamental_domain_spans,
    group,
    icosahedral_group,
    misorientation_deg,
    quaternion_multiply_torch,
    reduce_to_fundamental,
    sample_fundamental,
)

torch = pytest.importorskip("torch")


def _all_products(a: Rotation, b: Rotation) -> np.ndarray:
    """Quaternions of a[i] * b[j], (len(a), len(b), 4)."""
    n, m = len(a), len(b)
    prod = Rotation.from_quat(np.repeat(a.as_quat(), m, axis=0)) * Rotation.from_quat(
        np.tile(b.as_quat(), (n, 1)))
    return prod.as_quat().reshape(n, m, 4)


def _same_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a . b| = 1 for quaternions of the same rotation (q and -q)."""
    return np.abs(np.sum(a * b, axis=-1))


def test_icosahedral_group_closes_under_multiplication():
    g = icosahedral_group()
    assert len(g) == 60 and g is icosahedral_group()
    quats = g.as_quat()
    products = _all_products(g, g).reshape(-1, 4)
    best = np.abs(products @ quats.T).max(axis=1)
    assert np.all(np.abs(best - 1) < 1e-9)


def test_icosahedral_group_maps_the_icosahedron_onto_itself():
    verts = np.asarray(SHAPES["icosahedron"].vertices)
    normals, _ = SHAPES["icosahedron"].planes
    for rot in icosahedral_group():
        for pts in (verts, normals):
            moved = rot.apply(pts)
            assert np.abs(moved[:, None] - pts[None]).sum(-1).min(axis=1).max() < 1e-9


def test_group_lookup():
    assert len(group("O")) == 24 and len(group("D5")) == 10 and len(group(None)) == 1


def test_reduce_to_fundamental():
    rng = np.random.default_rng(0)
    q = Rotation.random(200, rng=rng).as_quat()
    red = reduce_to_fundamental(q)
    assert red.shape == (200, 4) and np.all(red[:, 3] >= 0)
    assert np.allclose(misorientation_deg(q, red), 0, atol=1e-6)
    # smallest angle among the 60 equivalents
    cands = _all_products(Rotation.from_quat(q), icosahedral_group())
    smallest = np.degrees(2 * np.arccos(np.clip(np.abs(cands[..., 3]).max(axis=1), 0, 1)))
    assert np.allclose(np.degrees(Rotation.from_quat(red).magnitude()), smallest, atol=1e-5)
    # idempotent, and the same for every equivalent
    assert np.allclose(reduce_to_fundamental(red), red)
    g7 = icosahedral_group()[7]
    assert np.allclose(reduce_to_fundamental((Rotation.from_quat(q) * g7).as_quat()), red)


def test_misorientation():
    rng = np.random.default_rng(1)
    r = Rotation.random(50, rng=rng)
    g = icosahedral_group()
    idx = rng.integers(0, 60, size=50)
    equiv = r * g[idx]
    assert np.allclose(misorientation_deg(r.as_quat(), equiv.as_quat()), 0, atol=1e-6)
    assert np.allclose(misorientation_deg(r.as_quat(), -equiv.as_quat()), 0, atol=1e-6)
    axes = rng.normal(size=(50, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = rng.uniform(0.5, 10, size=50)
    turned = r * Rotation.from_rotvec(np.radians(angles)[:, None] * axes)
    assert np.allclose(misorientation_deg(r.as_quat(), turned.as_quat()), angles, atol=1e-6)
    # symmetric, and blind to the symmetry on either side
    assert np.allclose(misorientation_deg(turned.as_quat(), r.as_quat()), angles, atol=1e-6)
    assert np.allclose(misorientation_deg((turned * g[idx]).as_quat(), r.as_quat()), angles,
                       atol=1e-6)
    # without symmetry it is the plain geodesic angle
    big = r * Rotation.from_rotvec(np.radians(170.0) * axes)
    assert np.allclose(misorientation_deg(r.as_quat(), big.as_quat(), group=None), 170.0)
    assert np.all(misorientation_deg(r.as_quat(), big.as_quat()) <= 44.5)


def test_sample_fundamental_max_angle():
    q = sample_fundamental(20000, np.random.default_rng(2))
    assert q.shape == (20000, 4) and np.all(q[:, 3] >= 0)
    angle = np.degrees(Rotation.from_quat(q).magnitude())
    assert 40.0 < angle.max() < 45.0
    # Haar measure: P(angle <= t) = (t - sin t) / pi on SO(3), 60 times that in the domain as
    # long as t < 36 deg (half the smallest group angle, so the ball lies inside the domain)
    t = np.radians(30.0)
    assert np.mean(angle <= 30.0) == pytest.approx(60 * (t - np.sin(t)) / np.pi, abs=0.015)


@pytest.mark.parametrize("name", ["I", "O", "D5", None])
def test_fundamental_domain_spans(name):
    spans = fundamental_domain_spans(name)
    q = sample_fundamental(20000, np.random.default_rng(4), name)
    sampled = q.max(axis=0) - q.min(axis=0)
    assert spans.shape == (4,)
    assert np.all(spans >= sampled - 1e-9) and np.all(spans - sampled < 0.02)
    if name == "I":
        half_angle = np.radians(44.4775) / 2
        assert spans[3] == pytest.approx(1 - np.cos(half_angle), abs=1e-4)
        assert np.allclose(spans[:3], spans[0])  # the dodecahedral domain is isotropic here


def test_quaternion_product_matches_scipy_composition():
    rng = np.random.default_rng(5)
    a, b = Rotation.random(20, rng=rng), Rotation.random(20, rng=rng)
    prod = quaternion_multiply_torch(torch.as_tensor(a.as_quat()), torch.as_tensor(b.as_quat()))
    assert np.allclose(_same_rotation(prod.numpy(), (a * b).as_quat()), 1.0)
    v = rng.normal(size=(20, 3))
    assert np.allclose(Rotation.from_quat(prod.numpy()).apply(v), a.apply(b.apply(v)))


def test_align_to_reference_matches_brute_force():
    rng = np.random.default_rng(6)
    g = icosahedral_group()
    target = Rotation.random(32, rng=rng)
    ref = (target * g[rng.integers(0, 60, 32)] * Rotation.from_rotvec(
        0.2 * rng.normal(size=(32, 3)))).as_quat()
    ref[::2] *= -1  # the reference may sit on either sheet of the double cover
    got = align_to_reference_torch(torch.as_tensor(target.as_quat()), torch.as_tensor(ref),
                                   torch.as_tensor(g.as_quat())).numpy()
    cands = _all_products(target, g)  # scipy r * g, (32, 60, 4)
    cands = np.concatenate([cands, -cands], axis=1)
    best = cands[np.arange(32), np.linalg.norm(cands - ref[:, None], axis=-1).argmin(axis=1)]
    assert np.allclose(got, best, atol=1e-12)
    assert np.allclose(misorientation_deg(got, target.as_quat()), 0, atol=1e-6)
