"""Cluster shapes on a voxel grid with soft (partial-volume) edges.

A polyhedron is stored as its face planes ``n_i . r <= d_i`` (unit outward normals ``n_i``),
scaled so that its circumradius is one; the signed distance is approximated by the largest
plane distance ``max_i (n_i . r - d_i)`` (exact on the faces, negative inside, and a lower bound
of the true distance outside near edges and vertices). The sphere uses the exact ``|r| - R``.

Conventions (shared with :mod:`retroscope.tasks.diffraction.msft`):

* Beam along +z. Density arrays are ``(n_z, n_y, n_x)``: axis 0 is z (the slices, beam
  travelling towards increasing index), axis 1 is y, axis 2 is x.
* Orientations are unit quaternions ``(x, y, z, w)`` (scipy's scalar-last order) describing the
  *active* rotation ``R`` of the body: a point ``r`` belongs to the rotated body when ``R^T r``
  belongs to the reference body, i.e. the rotated body has face normals ``R n_i``.
* The reference icosahedron has its vertices at the cyclic permutations of ``(0, +-1, +-phi)``,
  the convention of ``scipy.spatial.transform.Rotation.create_group('I')``; its 20 face normals
  point at the vertices of the dual dodecahedron. The cubic shapes have their 4-fold axes along
  x, y, z (group ``'O'``); the decahedron its 5-fold axis along z and one equatorial vertex on
  +x (group ``'D5'`` of scipy, whose 2-fold axes lie in the xy plane at multiples of 36 deg).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.spatial import ConvexHull
from scipy.spatial.transform import Rotation

PHI = (1.0 + np.sqrt(5.0)) / 2.0


@dataclass(frozen=True)
class VoxelGrid:
    """A centred voxel grid: ``n_xy`` x ``n_xy`` columns of width ``box_nm`` and ``n_z`` slices
    over ``depth_nm`` along the beam. Coordinates are cell centres with the origin at the box
    centre (so an even ``n`` has no voxel centred on 0)."""

    n_xy: int
    n_z: int
    box_nm: float
    depth_nm: float

    @property
    def dx_nm(self) -> float:
        """Lateral voxel size (x and y)."""
        return self.box_nm / self.n_xy

    @property
    def dz_nm(self) -> float:
        """Slice thickness along the beam."""
        return self.depth_nm / self.n_z

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_z, self.n_xy, self.n_xy)

    @property
    def x_nm(self) -> np.ndarray:
        """Cell-centre x (and y) coordinates, shape (n_xy,)."""
        return (np.arange(self.n_xy) - (self.n_xy - 1) / 2.0) * self.dx_nm

    @property
    def y_nm(self) -> np.ndarray:
        return self.x_nm

    @property
    def z_nm(self) -> np.ndarray:
        """Cell-centre z coordinates of the slices, shape (n_z,)."""
        return (np.arange(self.n_z) - (self.n_z - 1) / 2.0) * self.dz_nm

    @property
    def voxel_volume_nm3(self) -> float:
        return self.dx_nm * self.dx_nm * self.dz_nm


@dataclass(frozen=True)
class Shape:
    """A convex cluster shape.

    ``vertices`` (unit circumradius, body frame) define a polyhedron through their convex hull;
    ``vertices=None`` is the sphere. ``group`` is the scipy point-group name of its rotation
    symmetry (``Rotation.create_group``), or None for the sphere (full rotation group).
    """

    name: str
    group: str | None
    vertices: tuple[tuple[float, float, float], ...] | None = None

    @cached_property
    def planes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit outward face normals (m, 3) and plane distances (m,) for circumradius 1."""
        if self.vertices is None:
            raise ValueError("the sphere has no face planes")
        v = np.asarray(self.vertices, dtype=np.float64)
        v = v / np.linalg.norm(v, axis=1).max()
        eq = ConvexHull(v).equations  # n . r + c <= 0 inside, one row per hull triangle
        _, first = np.unique(np.round(eq, 8), axis=0, return_index=True)  # one row per face
        eq = eq[np.sort(first)]
        norm = np.linalg.norm(eq[:, :3], axis=1)
        return eq[:, :3] / norm[:, None], -eq[:, 3] / norm

    @property
    def n_faces(self) -> int:
        return 0 if self.vertices is None else len(self.planes[1])

    @property
    def inradius_ratio(self) -> float:
        """Smallest plane distance over circumradius (1 for the sphere)."""
        return 1.0 if self.vertices is None else float(self.planes[1].min())


def _signed_permutations(base: tuple[float, float, float], cyclic: bool) -> tuple:
    """All sign choices of ``base`` under its cyclic (or all) coordinate permutations."""
    perms = ([(0, 1, 2), (1, 2, 0), (2, 0, 1)] if cyclic
             else list(itertools.permutations(range(3))))
    out = set()
    for p in perms:
        for signs in itertools.product((1.0, -1.0), repeat=3):
            out.add(tuple(float(signs[i] * base[p[i]]) + 0.0 for i in range(3)))
    return tuple(sorted(out))


def _decahedron_vertices() -> tuple:
    """Pentagonal bipyramid of five twinned tetrahedra (Marks/Ino truncations omitted): the
    5-fold axis (length = equatorial edge a) along z, equatorial vertices at radius
    ``a / (2 sin 36 deg)`` (the circumradius), one of them on +x."""
    r_eq = 1.0
    a = 2.0 * r_eq * np.sin(np.pi / 5.0)
    ring = [(r_eq * np.cos(2 * np.pi * i / 5), r_eq * np.sin(2 * np.pi * i / 5), 0.0)
            for i in range(5)]
    return tuple(ring) + ((0.0, 0.0, a / 2.0), (0.0, 0.0, -a / 2.0))


SHAPES: dict[str, Shape] = {
    "icosahedron": Shape("icosahedron", "I", _signed_permutations((0.0, 1.0, PHI), cyclic=True)),
    "sphere": Shape("sphere", None, None),
    "decahedron": Shape("decahedron", "D5", _decahedron_vertices()),
    "truncated_octahedron": Shape("truncated_octahedron", "O",
                                  _signed_permutations((0.0, 1.0, 2.0), cyclic=False)),
    "cuboctahedron": Shape("cuboctahedron", "O",
                           _signed_permutations((0.0, 1.0, 1.0), cyclic=False)),
}


def get_shape(shape: str | Shape) -> Shape:
    if isinstance(shape, Shape):
        return shape
    try:
        return SHAPES[shape]
    except KeyError:
        raise ValueError(f"unknown shape {shape!r}; known: {sorted(SHAPES)}") from None


def signed_distance(shape: str | Shape, points_nm: np.ndarray, radius_nm: float) -> np.ndarray:
    """Approximate signed distance (nm, negative inside) of body-frame points ``(..., 3)``
    (x, y, z) to the shape of circumradius ``radius_nm``: ``max_i(n_i . r - R d_i)``."""
    s = get_shape(shape)
    p = np.asarray(points_nm, dtype=np.float64)
    if s.vertices is None:
        return np.linalg.norm(p, axis=-1) - radius_nm
    normals, dist = s.planes
    return (p @ normals.T - radius_nm * dist).max(axis=-1)


def _support(coords: np.ndarray, reach: float) -> slice:
    """Index range of the sorted ``coords`` within [-reach, reach]."""
    return slice(int(np.searchsorted(coords, -reach, "left")),
                 int(np.searchsorted(coords, reach, "right")))


def density(shape: str | Shape, radius_nm: float, quaternion_xyzw, grid: VoxelGrid,
            edge_nm: float | None = None) -> np.ndarray:
    """Soft-edged density in [0, 1] of the rotated shape, float32 ``(n_z, n_y, n_x)``.

    ``rho = clip(0.5 - d / edge_nm, 0, 1)`` with ``d`` the signed distance: a linear ramp of width
    ``edge_nm`` (default: one lateral voxel, a partial-volume estimate) centred on the surface,
    so the integrated volume is that of the sharp body to first order.

    Only the cube that can hold non-zero density is evaluated (``|r| <= R (1 + edge/(2 r_in))``
    with ``r_in`` the inradius, since ``d(r) >= (|r|/R - 1) r_in`` outside), one face plane at a
    time from separable x, y and z projections of the rotated normals ``R n_i``.
    """
    s = get_shape(shape)
    edge = grid.dx_nm if edge_nm is None else float(edge_nm)
    if edge <= 0 or radius_nm <= 0:
        raise ValueError("radius_nm and edge_nm must be positive")
    out = np.zeros(grid.shape, dtype=np.float32)
    reach = radius_nm + 0.5 * edge / s.inradius_ratio
    x, z = grid.x_nm, grid.z_nm
    sz, sy, sx = _support(z, reach), _support(x, reach), _support(x, reach)
    zc, yc, xc = z[sz], x[sy], x[sx]
    if min(len(zc), len(yc), len(xc)) == 0:
        return out
    if s.vertices is None:
        d = np.sqrt(zc[:, None, None] ** 2 + yc[None, :, None] ** 2 + xc[None, None, :] ** 2)
        d -= radius_nm
    else:
        normals, dist = s.planes
        rotated = Rotation.from_quat(np.asarray(quaternion_xyzw, dtype=np.float64).reshape(4)
                                     ).apply(normals)
        d = np.full((len(zc), len(yc), len(xc)), -np.inf)
        for (nx, ny, nz), di in zip(rotated, radius_nm * dist):
            lateral = yc[:, None] * ny + xc[None, :] * nx
            np.maximum(d, (zc * nz - di)[:, None, None] + lateral[None], out=d)
    out[sz, sy, sx] = np.clip(0.5 - d / edge, 0.0, 1.0)
    return out
