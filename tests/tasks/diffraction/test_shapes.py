"""Cluster shapes on voxel grids: geometry, volumes, symmetry, rotation convention."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from retroscope.tasks.diffraction.shapes import (
    SHAPES,
    VoxelGrid,
    density,
    get_shape,
    signed_distance,
)

PHI = (1 + 5**0.5) / 2
FINE = VoxelGrid(n_xy=48, n_z=48, box_nm=120.0, depth_nm=120.0)  # 2.5 nm voxels
R_NM = 50.0


def _analytic_volume(name: str, r: float) -> float:
    if name == "sphere":
        return 4 / 3 * np.pi * r**3
    if name == "icosahedron":
        a = r / np.sin(2 * np.pi / 5)
        return 5 / 12 * (3 + 5**0.5) * a**3
    if name == "decahedron":  # equatorial pentagon of circumradius r, axis = pentagon edge
        a = 2 * r * np.sin(np.pi / 5)
        return 2 / 3 * (2.5 * r**2 * np.sin(2 * np.pi / 5)) * (a / 2)
    if name == "truncated_octahedron":
        a = 2 * r / 10**0.5
        return 8 * 2**0.5 * a**3
    if name == "cuboctahedron":
        return 5 / 3 * 2**0.5 * r**3
    raise KeyError(name)


def _points(grid: VoxelGrid) -> np.ndarray:
    z, y, x = np.meshgrid(grid.z_nm, grid.y_nm, grid.x_nm, indexing="ij")
    return np.stack([x, y, z], axis=-1)


def test_voxel_grid_is_centred():
    g = VoxelGrid(n_xy=64, n_z=128, box_nm=340.0, depth_nm=340.0)
    assert g.shape == (128, 64, 64)
    assert g.dx_nm == pytest.approx(340 / 64) and g.dz_nm == pytest.approx(340 / 128)
    assert g.x_nm.mean() == pytest.approx(0, abs=1e-12)
    assert g.z_nm.mean() == pytest.approx(0, abs=1e-12)
    assert np.allclose(np.diff(g.x_nm), g.dx_nm) and np.allclose(np.diff(g.z_nm), g.dz_nm)
    assert g.x_nm[-1] + g.dx_nm / 2 == pytest.approx(170.0)


def test_shape_registry():
    assert {s: SHAPES[s].group for s in SHAPES} == {
        "icosahedron": "I", "sphere": None, "decahedron": "D5",
        "truncated_octahedron": "O", "cuboctahedron": "O"}
    assert {s: SHAPES[s].n_faces for s in SHAPES} == {
        "icosahedron": 20, "sphere": 0, "decahedron": 10,
        "truncated_octahedron": 14, "cuboctahedron": 14}
    with pytest.raises(ValueError):
        get_shape("dodecahedron")


def test_icosahedron_face_normals_are_dodecahedron_vertices():
    normals, dist = SHAPES["icosahedron"].planes
    dodeca = [(sx, sy, sz) for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)]
    dodeca += [p for s1 in (1, -1) for s2 in (1, -1)  # cyclic permutations of (0, +-phi, +-1/phi)
               for p in ((0, s1 * PHI, s2 / PHI), (s2 / PHI, 0, s1 * PHI), (s1 * PHI, s2 / PHI, 0))]
    dodeca = np.array(dodeca) / 3**0.5
    assert len(dodeca) == 20
    assert np.allclose(np.sort((normals @ dodeca.T).max(axis=1)), 1.0)
    assert np.allclose(dist, dist[0])  # all faces at the inradius


@pytest.mark.parametrize("name", [s for s in SHAPES if s != "sphere"])
def test_vertices_lie_on_the_surface_at_the_circumradius(name):
    s = SHAPES[name]
    v = np.asarray(s.vertices, dtype=float)
    v = R_NM * v / np.linalg.norm(v, axis=1).max()
    assert np.allclose(signed_distance(name, v, R_NM), 0.0, atol=1e-9)
    assert np.linalg.norm(v, axis=1).max() == pytest.approx(R_NM)
    assert signed_distance(name, np.zeros(3), R_NM) == pytest.approx(-R_NM * s.inradius_ratio)


def test_sphere_signed_distance_is_exact():
    p = np.array([[0.0, 0.0, 0.0], [30.0, 40.0, 0.0], [0.0, 0.0, 80.0]])
    assert np.allclose(signed_distance("sphere", p, 50.0), [-50.0, 0.0, 30.0])


@pytest.mark.parametrize("name", list(SHAPES))
def test_volume_and_circumradius(name):
    q = Rotation.random(rng=np.random.default_rng(3)).as_quat()
    rho = density(name, R_NM, q, FINE)
    assert rho.dtype == np.float32 and rho.shape == FINE.shape
    assert rho.min() >= 0 and rho.max() <= 1
    volume = rho.sum(dtype=np.float64) * FINE.voxel_volume_nm3
    assert volume == pytest.approx(_analytic_volume(name, R_NM), rel=0.02)
    r = np.linalg.norm(_points(FINE), axis=-1)
    r_inside = r[rho >= 0.5].max()
    assert R_NM - FINE.dx_nm <= r_inside <= R_NM + FINE.dx_nm / 2


def test_density_matches_body_frame_signed_distance():
    """Active rotation: a point r of the rotated body has R^T r inside the reference body."""
    rot = Rotation.random(rng=np.random.default_rng(7))
    grid = VoxelGrid(24, 20, 120.0, 100.0)
    edge = 4.0
    rho = density("decahedron", R_NM, rot.as_quat(), grid, edge_nm=edge)
    body = rot.inv().apply(_points(grid).reshape(-1, 3)).reshape(*grid.shape, 3)
    expected = np.clip(0.5 - signed_distance("decahedron", body, R_NM) / edge, 0, 1)
    assert np.abs(rho - expected).max() < 1e-6


def test_rotation_is_active():
    """Turning the decahedron by +90 deg about z moves its equatorial vertex from +x to +y."""
    grid = VoxelGrid(40, 8, 120.0, 30.0)
    q = Rotation.from_euler("z", 90, degrees=True).as_quat()
    rho = density("decahedron", R_NM, q, grid)
    mid = grid.n_z // 2
    iy = lambda y: int(np.argmin(np.abs(grid.y_nm - y)))
    ix0 = int(np.argmin(np.abs(grid.x_nm)))
    # the vertex reaches y = +R; on -y the pentagon ends at an edge, R cos 36 deg = 0.81 R
    assert rho[mid, iy(0.9 * R_NM), ix0] > 0.5
    assert rho[mid, iy(-0.9 * R_NM), ix0] == 0.0


@pytest.mark.parametrize("name", ["icosahedron", "decahedron", "truncated_octahedron",
                                  "cuboctahedron"])
def test_density_is_invariant_under_the_point_group(name):
    rot = Rotation.random(rng=np.random.default_rng(11))
    group = Rotation.create_group(SHAPES[name].group)
    grid = VoxelGrid(32, 32, 120.0, 120.0)
    ref = density(name, R_NM, rot.as_quat(), grid)
    for i in range(1, len(group), max(1, len(group) // 6)):
        other = density(name, R_NM, (rot * group[i]).as_quat(), grid)
        assert np.abs(other - ref).max() < 1e-5
    turned = density(name, R_NM, (rot * Rotation.from_rotvec([0.1, 0.2, 0.0])).as_quat(), grid)
    assert np.abs(turned - ref).max() > 0.3


def test_soft_edge_width():
    grid = VoxelGrid(8, 200, 40.0, 200.0)  # 1 nm slices along the z axis through the sphere
    rho = density("sphere", 50.0, [0, 0, 0, 1], grid, edge_nm=10.0)
    column = rho[:, 3, 3].astype(float)  # lateral offset (2.5, 2.5) nm: |r| ~ |z| near the pole
    r = np.sqrt(grid.z_nm**2 + 2 * 2.5**2)
    assert np.allclose(column, np.clip(0.5 - (r - 50.0) / 10.0, 0, 1), atol=1e-6)
