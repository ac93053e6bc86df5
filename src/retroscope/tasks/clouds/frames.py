"""Raw camera frames of one absorption or fluorescence shot of atom clouds.

Absorption imaging takes three frames (Hofer et al., Mach. Learn.: Sci. Technol. 2, 045008
(2021), footnote to Fig. 2): "atoms" (probe light after the cloud), "probe" (probe light, no
atoms) and "dark" (no probe). The probe is a Gaussian beam multiplied by interference fringes
(plane-wave fringes from reflections, ring patterns from dust); between the atom and the probe
frame the fringe phases drift and the power changes a little, so the shot's own probe frame is an
imperfect reference and fringe removal is needed (Ockeloen et al., PRA 82, 061606(R) (2010)).

Units: light on the camera is given in *counts* per pixel per exposure, i.e. the mean camera
signal above the dark offset (``photons = counts / Camera.counts_per_photon``); lengths in
pixels with the pixel convention of :mod:`retroscope.tasks.clouds.geometry`; phases in radians.
Every random draw comes from the ``numpy.random.Generator`` passed in; ``rng=None`` gives the
noise-free expectation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import lambertw

from retroscope.tasks.clouds.geometry import pixel_centres

# largest exponent s - OD of the Lambert-W argument s*exp(s - OD) before float64 overflows
_MAX_EXPONENT = 700.0


@dataclass(frozen=True)
class PlaneFringe:
    """Plane-wave interference fringes: relative modulation
    ``contrast * cos(kx x + ky y + phase)``, wave vector in rad/px, phase in rad."""

    kx_rad_per_px: float
    ky_rad_per_px: float
    contrast: float
    phase_rad: float = 0.0

    def modulation(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.contrast * np.cos(self.kx_rad_per_px * x + self.ky_rad_per_px * y
                                      + self.phase_rad)


@dataclass(frozen=True)
class RingFringe:
    """Fresnel diffraction rings of a dust particle at (x0, y0) (px): relative modulation
    ``contrast * exp(-r^2/extent_px^2) * cos(pi r^2 / fresnel_px^2 + phase)``, where
    ``fresnel_px = sqrt(lambda z)`` (the first Fresnel zone's radius) sets the ring spacing."""

    x0: float
    y0: float
    fresnel_px: float
    extent_px: float
    contrast: float
    phase_rad: float = 0.0

    def modulation(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r2 = (x - self.x0) ** 2 + (y - self.y0) ** 2
        return self.contrast * np.exp(-r2 / self.extent_px**2) * np.cos(
            math.pi * r2 / self.fresnel_px**2 + self.phase_rad)


@dataclass(frozen=True)
class ProbeBeam:
    """Gaussian probe beam ``peak_counts * exp(-2 r^2 / waist_px^2)`` centred at (x0, y0) (px),
    times ``1 + sum(fringe modulations)`` (clipped at 0), zero outside the optional circular
    aperture of radius ``aperture_px`` about the beam centre.

    Between two frames (:meth:`jittered`) every fringe phase moves by a uniform draw in
    ``[-phase_jitter_rad, phase_jitter_rad]`` and the power changes by a factor
    ``1 + u``, ``u`` uniform in ``[-intensity_jitter, intensity_jitter]``.
    """

    x0: float
    y0: float
    waist_px: float
    peak_counts: float
    aperture_px: float | None = None
    fringes: tuple[PlaneFringe | RingFringe, ...] = ()
    phase_jitter_rad: float = 0.0
    intensity_jitter: float = 0.0

    def __post_init__(self) -> None:
        if not (self.waist_px > 0 and self.peak_counts >= 0):
            raise ValueError(f"ProbeBeam: need waist_px > 0 and peak_counts >= 0, got "
                             f"{self.waist_px!r}, {self.peak_counts!r}")
        if self.aperture_px is not None and not self.aperture_px > 0:
            raise ValueError(f"ProbeBeam: aperture_px must be > 0 or None, "
                             f"got {self.aperture_px!r}")
        if not (self.phase_jitter_rad >= 0 and 0 <= self.intensity_jitter < 1):
            raise ValueError(f"ProbeBeam: need phase_jitter_rad >= 0 and 0 <= "
                             f"intensity_jitter < 1, got {self.phase_jitter_rad!r}, "
                             f"{self.intensity_jitter!r}")

    def intensity_counts(self, shape: tuple[int, int]) -> np.ndarray:
        """Probe light on a (rows, cols) frame in counts per pixel per exposure, float64."""
        y, x = pixel_centres(shape)
        r2 = (x - self.x0) ** 2 + (y - self.y0) ** 2
        fringes = np.ones(shape)
        for fringe in self.fringes:
            fringes = fringes + fringe.modulation(x, y)
        out = self.peak_counts * np.exp(-2.0 * r2 / self.waist_px**2) * np.maximum(fringes, 0.0)
        if self.aperture_px is not None:
            out = np.where(r2 <= self.aperture_px**2, out, 0.0)
        return out

    def jittered(self, rng: np.random.Generator) -> ProbeBeam:
        """The same beam in another frame: fringe phases and power drawn anew (see class)."""
        fringes = tuple(replace(f, phase_rad=f.phase_rad + rng.uniform(
            -self.phase_jitter_rad, self.phase_jitter_rad)) for f in self.fringes)
        scale = 1.0 + rng.uniform(-self.intensity_jitter, self.intensity_jitter)
        return replace(self, fringes=fringes, peak_counts=self.peak_counts * scale)


def sample_probe(rng: np.random.Generator, shape: tuple[int, int], *,
                 peak_counts: tuple[float, float] = (2_000.0, 20_000.0),
                 waist_frac: tuple[float, float] = (0.6, 1.5),
                 centre_frac: float = 0.1,
                 n_plane: tuple[int, int] = (1, 3),
                 plane_period_px: tuple[float, float] = (4.0, 40.0),
                 plane_contrast: tuple[float, float] = (0.01, 0.05),
                 n_rings: tuple[int, int] = (0, 3),
                 fresnel_px: tuple[float, float] = (3.0, 12.0),
                 ring_extent_px: tuple[float, float] = (10.0, 60.0),
                 ring_contrast: tuple[float, float] = (0.02, 0.10),
                 aperture_frac: tuple[float, float] | None = None,
                 phase_jitter_rad: float = 1.0,
                 intensity_jitter: float = 0.02) -> ProbeBeam:
    """Draw a probe beam for a (rows, cols) frame; ``(low, high)`` ranges are uniform.

    Centre: frame centre plus up to ``centre_frac`` of the frame size along each axis; waist
    (1/e^2 radius, px): ``waist_frac`` times the smaller frame side; ``n_plane`` plane fringes
    (integers, inclusive) of period ``plane_period_px`` in a uniform direction; ``n_rings``
    dust rings centred anywhere on the frame; aperture radius (if ``aperture_frac`` is given):
    that fraction of the smaller frame side. Fringe phases uniform in [0, 2 pi).
    """
    rows, cols = shape
    side = min(rows, cols)
    fringes: list[PlaneFringe | RingFringe] = []
    for _ in range(rng.integers(n_plane[0], n_plane[1], endpoint=True)):
        k = 2.0 * math.pi / rng.uniform(*plane_period_px)
        direction = rng.uniform(0.0, 2.0 * math.pi)
        fringes.append(PlaneFringe(k * math.cos(direction), k * math.sin(direction),
                                   rng.uniform(*plane_contrast),
                                   rng.uniform(0.0, 2.0 * math.pi)))
    for _ in range(rng.integers(n_rings[0], n_rings[1], endpoint=True)):
        fringes.append(RingFringe(rng.uniform(0.0, cols), rng.uniform(0.0, rows),
                                  rng.uniform(*fresnel_px), rng.uniform(*ring_extent_px),
                                  rng.uniform(*ring_contrast),
                                  rng.uniform(0.0, 2.0 * math.pi)))
    x0 = cols / 2 + rng.uniform(-centre_frac, centre_frac) * cols
    y0 = rows / 2 + rng.uniform(-centre_frac, centre_frac) * rows
    aperture = None if aperture_frac is None else rng.uniform(*aperture_frac) * side
    return ProbeBeam(x0, y0, rng.uniform(*waist_frac) * side, rng.uniform(*peak_counts),
                     aperture, tuple(fringes), phase_jitter_rad, intensity_jitter)


@dataclass(frozen=True)
class Camera:
    """A linear camera: ``quantum_efficiency`` photo-electrons per photon (Poisson), capped at
    ``full_well_e`` (electrons, None for no cap), Gaussian read noise ``read_noise_e`` (rms
    electrons), ``gain_counts_per_e`` counts per electron, ``dark_offset_counts`` added, rounded
    to integers and clipped to ``[0, 2**bits - 1]`` (the saturation value)."""

    gain_counts_per_e: float = 1.0
    quantum_efficiency: float = 0.8
    read_noise_e: float = 5.0
    dark_offset_counts: float = 100.0
    bits: int = 16
    full_well_e: float | None = None

    def __post_init__(self) -> None:
        if not (self.gain_counts_per_e > 0 and 0 < self.quantum_efficiency <= 1
                and self.read_noise_e >= 0 and self.dark_offset_counts >= 0):
            raise ValueError(f"Camera: need gain_counts_per_e > 0, 0 < quantum_efficiency <= 1, "
                             f"read_noise_e >= 0, dark_offset_counts >= 0; got {self}")
        if not (isinstance(self.bits, int) and 1 <= self.bits <= 32):
            raise ValueError(f"Camera: bits must be an integer in [1, 32], got {self.bits!r}")
        if self.full_well_e is not None and not self.full_well_e > 0:
            raise ValueError(f"Camera: full_well_e must be > 0 or None, got {self.full_well_e!r}")

    @property
    def max_counts(self) -> int:
        """Saturation value (full scale) of the digitiser, counts."""
        return 2**self.bits - 1

    @property
    def counts_per_photon(self) -> float:
        return self.gain_counts_per_e * self.quantum_efficiency

    def _electrons(self, photons: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        photons = np.asarray(photons, dtype=np.float64)
        if not np.all(np.isfinite(photons) & (photons >= 0)):
            raise ValueError("Camera.expose: photons must be finite and >= 0")
        mean = self.quantum_efficiency * photons
        electrons = mean if rng is None else rng.poisson(mean).astype(np.float64)
        return electrons if self.full_well_e is None else np.minimum(electrons, self.full_well_e)

    def expected_counts(self, photons: np.ndarray) -> np.ndarray:
        """Noise-free signal (float64, not rounded): offset + gain * QE * photons, with the
        full-well cap and clipped to the saturation value."""
        counts = self.dark_offset_counts + self.gain_counts_per_e * self._electrons(photons, None)
        return np.clip(counts, 0.0, self.max_counts)

    def expose(self, photons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One exposure of ``photons`` per pixel: integer-valued counts as float32."""
        electrons = self._electrons(photons, rng)
        electrons = electrons + self.read_noise_e * rng.standard_normal(electrons.shape)
        counts = np.rint(self.dark_offset_counts + self.gain_counts_per_e * electrons)
        return np.clip(counts, 0.0, self.max_counts).astype(np.float32)


def _read_out(camera: Camera, counts: np.ndarray,
              rng: np.random.Generator | None) -> np.ndarray:
    photons = counts / camera.counts_per_photon
    return camera.expected_counts(photons) if rng is None else camera.expose(photons, rng)


def transmitted_counts(i_in_counts: np.ndarray, od: np.ndarray,
                       i_sat_counts: float | None = None) -> np.ndarray:
    """Light after a resonant cloud of optical depth ``od`` (Beer-Lambert with saturation).

    ``dI/dOD = -I / (1 + I/I_sat)`` integrates to ``ln(I_out/I_in) + (I_out - I_in)/I_sat =
    -OD``, solved exactly by ``I_out/I_sat = W0((I_in/I_sat) exp(I_in/I_sat - OD))`` (Lambert
    W, principal branch; Reinaudi et al., Opt. Lett. 32, 3143 (2007)). ``i_sat_counts=None``
    gives the unsaturated ``I_in exp(-OD)``. Intensities in counts per pixel per exposure.
    """
    i_in = np.asarray(i_in_counts, dtype=np.float64)
    od = np.asarray(od, dtype=np.float64)
    if not (np.all(np.isfinite(od)) and np.all(np.isfinite(i_in)) and np.all(i_in >= 0)):
        raise ValueError("transmitted_counts: od must be finite and i_in_counts finite, >= 0")
    if i_sat_counts is None:
        return i_in * np.exp(-od)
    if not i_sat_counts > 0:
        raise ValueError(f"transmitted_counts: i_sat_counts must be > 0, got {i_sat_counts!r}")
    s_in = i_in / i_sat_counts
    if np.any(s_in - od > _MAX_EXPONENT):
        raise ValueError(f"transmitted_counts: I_in/I_sat - OD exceeds {_MAX_EXPONENT} "
                         f"(exp overflows); max I_in/I_sat = {s_in.max():.3g}")
    return i_sat_counts * lambertw(s_in * np.exp(s_in - od)).real


def absorption_shot(od: np.ndarray, probe: ProbeBeam, camera: Camera,
                    rng: np.random.Generator | None,
                    i_sat_counts: float | None = None) -> dict[str, np.ndarray]:
    """Frames "atoms", "probe" and "dark" of one absorption shot of the column OD ``od``.

    atoms: the beam ``probe`` through the cloud (:func:`transmitted_counts`, saturation with
    ``i_sat_counts`` if given); probe: ``probe.jittered(rng)`` (fringes moved, power changed),
    no atoms; dark: no light. Each frame is a separate :meth:`Camera.expose`. With ``rng=None``
    the frames are the noise-free :meth:`Camera.expected_counts` (float64) and the probe frame
    has the atom frame's fringes.
    """
    od = np.asarray(od, dtype=np.float64)
    if od.ndim != 2:
        raise ValueError(f"absorption_shot: od must be 2D, got shape {od.shape}")
    i_in = probe.intensity_counts(od.shape)
    reference = probe if rng is None else probe.jittered(rng)
    return {"atoms": _read_out(camera, transmitted_counts(i_in, od, i_sat_counts), rng),
            "probe": _read_out(camera, reference.intensity_counts(od.shape), rng),
            "dark": _read_out(camera, np.zeros(od.shape), rng)}


def fluorescence_shot(column_od: np.ndarray, camera: Camera, rng: np.random.Generator | None,
                      counts_per_od: float = 1_000.0,
                      background_counts: float | np.ndarray = 100.0) -> dict[str, np.ndarray]:
    """Frames "atoms" and "dark" of one fluorescence shot.

    Model: every atom scatters the imaging (e.g. MOT) light at the same rate and the cloud is
    optically thin to its own fluorescence (no reabsorption, no multiple scattering), so the
    scattered signal is proportional to the column density; ``column_od`` is that column in
    optical-depth units (or any unit; ``counts_per_od`` converts it to counts per pixel per
    exposure). Stray light ``background_counts`` (scalar or per-pixel array, counts) is in both
    frames; "dark" is the same exposure without atoms, which is what is subtracted. ``rng=None``
    gives the noise-free expectation.
    """
    column = np.asarray(column_od, dtype=np.float64)
    if column.ndim != 2 or not np.all(np.isfinite(column) & (column >= 0)):
        raise ValueError(f"fluorescence_shot: column_od must be 2D, finite and >= 0, "
                         f"got shape {column.shape}")
    background = np.broadcast_to(np.asarray(background_counts, dtype=np.float64), column.shape)
    if not (counts_per_od >= 0 and np.all(background >= 0)):
        raise ValueError("fluorescence_shot: counts_per_od and background_counts must be >= 0")
    return {"atoms": _read_out(camera, background + counts_per_od * column, rng),
            "dark": _read_out(camera, background, rng)}
