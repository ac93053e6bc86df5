"""Focal-volume averaging of momentum maps and their interpolation in the (R, I0) plane, after
Shvetsov-Shilovski & Lein, PRA 107, 033106 (2023), Sec. II B (and their Ref. [17]).

Eq. (5) averages the maps over the focal volume, Eq. (6) gives its volume element::

    dP/d^3k = integral_0^I0 dP(I)/d^3k (-dV/dI) dI                          (5)
    (-dV/dI) dI ~ (I0/I) (I0/I + 2) sqrt(I0/I - 1) dI                        (6)

for a beam whose intensity is Lorentzian along its axis and Gaussian across it,
I(r, z) = I0 / (1 + z^2/z_R^2) exp(-2 r^2 / w(z)^2), w(z)^2 = w0^2 (1 + z^2/z_R^2). The
volume where the intensity exceeds I is, with beta = sqrt(I0/I - 1),

    V(I) = pi w0^2 z_R [4 beta / 3 + 2 beta^3 / 9 - (4/3) arctan(beta)],

so -dV/dI = pi w0^2 z_R / (3 I0) (I0/I) (I0/I + 2) sqrt(I0/I - 1): Eq. (6) holds with the
measure dI (not dI/I), and the constant is pi w0^2 z_R / (3 I0). Volumes here are in units of
pi w0^2 z_R, intensities in W/cm^2.

The few averaged maps a campaign can afford (each needs ~10 TDSE runs) are augmented by linear
interpolation on the Delaunay triangles of the irregular (R, I0) points ("2D interpolation on
an irregular grid", Sec. II B); :func:`write_interpolated_maps` stores the result marked as
derived, so that those maps are only ever training rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retroscope.core.task import Task
from retroscope.data.derived import write_derived_dataset
from retroscope.data.shards import Manifest
from retroscope.tasks.pmd.maps import KX_AU, KY_AU

#: points of the (R, I0) plane interpolated at once (bounds the memory of one evaluation)
CHUNK = 64


def focal_volume_element(intensity_w_cm2, peak_w_cm2: float) -> np.ndarray:
    """-dV/dI of Eq. (6) with its constant: (I0/I) (I0/I + 2) sqrt(I0/I - 1) / (3 I0), in
    units of pi w0^2 z_R per W/cm^2, for intensities in (0, I0]."""
    i = _intensities(intensity_w_cm2, peak_w_cm2)
    x = peak_w_cm2 / i
    return x * (x + 2.0) * np.sqrt(np.clip(x - 1.0, 0.0, None)) / (3.0 * peak_w_cm2)


def focal_weights(intensities_w_cm2, peak_w_cm2: float) -> np.ndarray:
    """Trapezoid weights w_j (units of pi w0^2 z_R) of Eq. (5) on the intensities I_1 < ... <
    I_n = I0: sum_j w_j P(I_j) is Eq. (5) over [I_1, I0] with the map P(I) linear in I
    between neighbouring intensities, the trapezoid rule's own assumption, and the volume
    element of Eq. (6) integrated exactly on each interval (w_j = integral of the hat function
    of node j times -dV/dI), with the moments

        integral_I^I0 (-dV/dI') dI' = V(I),  integral_I^I0 I' (-dV/dI') dI' = (2/3) I beta^3.

    The textbook trapezoid, which samples -dV/dI at the nodes too, would give the map at I0 no
    weight, since -dV/dI vanishes there like sqrt(I0 - I): whatever only the peak intensity
    reaches (the highest momenta) would drop out of the average. Both rules converge to the
    same integral. The volume below I_1 is left out (see :func:`focal_intensities`)."""
    i = _intensities(intensities_w_cm2, peak_w_cm2)
    if i.ndim != 1 or len(i) < 2 or np.any(np.diff(i) <= 0):
        raise ValueError(f"need two or more strictly increasing intensities, got {i}")
    if not np.isclose(i[-1], peak_w_cm2, rtol=1e-9, atol=0.0):
        raise ValueError(f"the last intensity must be the peak {peak_w_cm2:g} W/cm^2 (Eq. 5 "
                         f"runs up to it), got {i[-1]:g}")
    beta = np.sqrt(np.clip(peak_w_cm2 / i - 1.0, 0.0, None))
    m0 = 4.0 * beta / 3.0 + 2.0 * beta**3 / 9.0 - 4.0 * np.arctan(beta) / 3.0
    m1 = 2.0 * i * beta**3 / 3.0
    a, b = i[:-1], i[1:]
    v0, v1 = m0[:-1] - m0[1:], m1[:-1] - m1[1:]  # integrals of -dV/dI and of I (-dV/dI)
    w = np.zeros_like(i)
    w[:-1] += (b * v0 - v1) / (b - a)
    w[1:] += (v1 - a * v0) / (b - a)
    return w


def focal_intensities(peak_w_cm2: float, n: int = 10, lowest_fraction: float = 0.1) -> np.ndarray:
    """``n`` equally spaced intensities from ``lowest_fraction`` I0 to I0 (W/cm^2), where the
    TDSE is solved for one focal-averaged map ("about 10 intensity points are sufficient",
    Sec. II B).

    Eq. (5) starts at 0, but the ionisation probability falls by many orders of magnitude
    before a tenth of the peak (the tunnelling exponent 2 (2 Ip)^(3/2) / 3E, E ~ sqrt(I), grows
    by about 44 from 4e14 to 4e13 W/cm^2 and 88 from 1e14 to 1e13 for Ip = 1.1 hartree),
    far faster than -dV/dI grows (~I^(-5/2)): for the paper's peaks, 1e14-4e14, the lowest map
    is at 1e13-4e13 W/cm^2, and what lies below it is negligible."""
    if n < 2 or not 0.0 < lowest_fraction < 1.0:
        raise ValueError(f"need n >= 2 and 0 < lowest_fraction < 1, got {n}, {lowest_fraction}")
    return np.linspace(lowest_fraction * peak_w_cm2, peak_w_cm2, n)


def focal_average(maps, intensities_w_cm2, peak_w_cm2: float) -> np.ndarray:
    """The focal-volume averaged map of Eq. (5) from the maps (n_I, 256, 128) at the
    intensities of :func:`focal_weights`, divided by the focal volume the rule covers
    (sum_j w_j): the mean map of the molecules where I >= I_1, so a map that does not depend
    on I comes back unchanged (the network's input is normalised to its maximum anyway).
    Absolute maps (probability per a.u.^2), summed in float64."""
    maps = np.asarray(maps, dtype=np.float64)
    w = focal_weights(intensities_w_cm2, peak_w_cm2)
    if len(maps) != len(w):
        raise ValueError(f"{len(maps)} maps for {len(w)} intensities")
    return np.tensordot(w / w.sum(), maps, axes=1)


def interpolate_maps(r_bohr, intensity_w_cm2, maps, r_new, i_new, log: bool = True,
                     floor_decades: float = 12.0) -> np.ndarray:
    """Maps at the points (r_new, i_new) of the (R, I0) plane from maps (n, ...) at the
    irregular points (r_bohr, intensity_w_cm2): every pixel linear on the Delaunay triangles
    (``scipy.interpolate.LinearNDInterpolator``; Sec. II B). Both axes are scaled to [0, 1]
    first (bohr and W/cm^2 differ by 14 orders of magnitude; the triangles would be slivers).

    ``log`` (default): interpolate log10 of each map, floored ``floor_decades`` below its own
    maximum, i.e. a weighted geometric mean of a triangle's three maps. The yield grows by
    orders of magnitude over the intensity range: a linear blend would be the brightest
    corner's map, its fringes filling in the minima of the others, while in log10 each decade
    counts as it does for the network (whose input is log10 of the map over its maximum,
    Sec. II A), a minimum of one corner stays a minimum, and the overall scale comes out
    geometric, as an exponentially growing yield wants. ``log=False`` blends linearly.

    Raises ValueError naming the new points outside the convex hull of the given ones."""
    from scipy.interpolate import LinearNDInterpolator
    from scipy.spatial import Delaunay, QhullError

    pts = np.column_stack([np.ravel(r_bohr), np.ravel(intensity_w_cm2)]).astype(np.float64)
    new = np.column_stack([np.ravel(r_new), np.ravel(i_new)]).astype(np.float64)
    maps = np.asarray(maps)
    if len(maps) != len(pts):
        raise ValueError(f"{len(maps)} maps for {len(pts)} (R, I0) points")
    low, span = pts.min(axis=0), np.ptp(pts, axis=0)
    try:
        tri = Delaunay((pts - low) / np.where(span > 0, span, 1.0))
    except QhullError as exc:
        raise ValueError("the (R, I0) points span no area (fewer than three, or all on one "
                         "line): nothing to interpolate on") from exc
    scaled = (new - low) / np.where(span > 0, span, 1.0)
    outside = tri.find_simplex(scaled) < 0
    if np.any(outside):
        named = ", ".join(f"(R={r:g} bohr, I0={i:g} W/cm^2)" for r, i in new[outside][:5])
        raise ValueError(f"{int(outside.sum())} point(s) outside the convex hull of the "
                         f"simulated (R, I0) points: {named}")
    values = _to_log(maps, floor_decades) if log else maps.astype(np.float64)
    interp = LinearNDInterpolator(tri, values.reshape(len(maps), -1))
    out = np.empty((len(new),) + maps.shape[1:], dtype=np.result_type(maps.dtype, np.float32))
    for start in range(0, len(new), CHUNK):
        part = interp(scaled[start:start + CHUNK]).reshape((-1,) + maps.shape[1:])
        out[start:start + CHUNK] = 10.0**part if log else part
    return out


def write_interpolated_maps(out: Path, task: Task, r_bohr, intensity_w_cm2, maps,
                            source: str, shard_size: int = 100) -> Manifest:
    """Store maps (n, 256, 128) made by :func:`interpolate_maps` at (r_bohr, intensity_w_cm2)
    as the new dataset ``out`` of ``task``, every row marked derived (only ever a training
    row; ``retroscope.data.derived``), with dP/dk_x as a simulated record has it (the total
    yield, taken on the TDSE's whole grid, is not recoverable from the map and not stored).
    CEP and orientation take the values the task's space fixes; ``source`` names the
    simulated maps and the interpolation (recorded in the manifest). Write-once."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape[1:] != (len(KX_AU), len(KY_AU)):
        raise ValueError(f"expected maps (n, {len(KX_AU)}, {len(KY_AU)}), got {maps.shape}")
    params = {"r_bohr": np.ravel(r_bohr).astype(np.float64),
              "intensity_w_cm2": np.ravel(intensity_w_cm2).astype(np.float64)}
    for name in ("cep_rad", "alpha_deg"):
        p = task.space[name]
        if p.low != p.high:
            raise ValueError(f"{name} varies in the task's space ({p.low:g}-{p.high:g}): an "
                             "interpolation in (R, I0) needs it fixed")
        params[name] = np.full(len(maps), p.low)
    dp_dkx = (maps.sum(axis=2) * (KY_AU[1] - KY_AU[0])).astype(np.float32)
    data = {task.observable: maps, "dp_dkx": dp_dkx}
    return write_derived_dataset(out, task, params, data, source, shard_size)


def interpolate_training_split(data: Path, out: Path, n: int, seed: int = 0) -> Manifest:
    """``n`` maps interpolated (:func:`interpolate_maps`, log) at random points of the (R, I0)
    plane inside the convex hull of the *training* rows of the dataset ``data`` (typically
    focal-volume averaged), stored as the derived dataset ``out`` of the same settings, to be
    merged with ``data`` (``retroscope merge``). Only training rows are interpolated from: a
    map built from a validation or test map would carry its answer into training."""
    from scipy.spatial import Delaunay

    from retroscope.core.registry import get_task
    from retroscope.data.dataset import ShardDataset

    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    data = Path(data)
    manifest = Manifest.load(data)
    task = get_task(manifest.task).with_config(**manifest.config)
    ds = ShardDataset(data, task, "train", in_memory=True)
    r, i0 = ds.params["r_bohr"], ds.params["intensity_w_cm2"]
    maps = np.stack([ds.observable(k) for k in range(len(ds))])
    ds.close()
    pts = np.column_stack([r, i0])
    low, span = pts.min(axis=0), np.ptp(pts, axis=0)
    hull = Delaunay((pts - low) / span)  # as interpolate_maps scales them
    rng = np.random.default_rng(seed)
    unit = np.empty((0, 2))
    while len(unit) < n:  # uniform in the bounding box, kept where inside the hull
        draw = rng.uniform(size=(2 * n, 2))
        unit = np.concatenate([unit, draw[hull.find_simplex(draw) >= 0]])
    new = low + unit[:n] * span
    made = interpolate_maps(r, i0, maps, new[:, 0], new[:, 1])
    source = (f"log-linear interpolation (Delaunay, R and I0 scaled to [0, 1]) of the "
              f"{len(maps)} training maps of {data} at {n} random points, seed {seed}")
    return write_interpolated_maps(out, task, new[:, 0], new[:, 1], made, source)


def _intensities(intensity_w_cm2, peak_w_cm2: float) -> np.ndarray:
    i = np.asarray(intensity_w_cm2, dtype=np.float64)
    if not peak_w_cm2 > 0 or np.any(i <= 0) or np.any(i > peak_w_cm2 * (1 + 1e-9)):
        raise ValueError(f"intensities must lie in (0, I0 = {peak_w_cm2:g}] W/cm^2")
    return np.minimum(i, peak_w_cm2)


def _to_log(maps: np.ndarray, floor_decades: float) -> np.ndarray:
    """log10 of each map, floored ``floor_decades`` below its own maximum."""
    maps = maps.astype(np.float64)
    flat = maps.reshape(len(maps), -1)
    peak = flat.max(axis=1)
    if np.any(peak <= 0) or np.any(flat < 0):
        bad = np.flatnonzero((peak <= 0) | (flat.min(axis=1) < 0))
        raise ValueError(f"map(s) {bad.tolist()} have negative values or none above 0: "
                         "no log10")
    floor = peak * 10.0**-floor_decades
    return np.log10(np.maximum(flat, floor[:, None])).reshape(maps.shape)
