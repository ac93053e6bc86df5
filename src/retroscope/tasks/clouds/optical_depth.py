"""Optical depth, saturation correction, cross-section and atom number of absorption images.

- OD = -ln[(atoms - dark)/(probe - dark)], both differences clamped to >= ``min_counts``
  (Hofer et al., Mach. Learn.: Sci. Technol. 2, 045008 (2021), footnote to Fig. 2: an absorption
  image is made from atom, probe and dark frames).
- Saturation (Reinaudi et al., Opt. Lett. 32, 3143 (2007)): sigma0 n = alpha OD + (I_in -
  I_out)/I_sat, intensities in the same units (here counts per pixel per exposure).
- sigma = sigma0 / (1 + 4 Delta^2/Gamma^2 + I/I_sat), sigma0 = 3 lambda^2 / (2 pi) for a closed
  cycling transition; N = (A_pix / M^2) / sigma * sum(OD).

Per-pixel quality flags are a ``uint8`` bitmask of :class:`ODFlag` values.
"""

from __future__ import annotations

import enum
import math

import numpy as np


class ODFlag(enum.IntFlag):
    """Bits of the per-pixel flag mask returned by :func:`optical_depth`."""

    ATOMS_SATURATED = 1  # atom frame at or above the saturation value
    PROBE_SATURATED = 2  # probe frame at or above the saturation value
    ATOMS_CLAMPED = 4  # atoms - dark < min_counts, raised to min_counts
    PROBE_CLAMPED = 8  # probe - dark < min_counts, raised to min_counts


def check_frames(frames: dict[str, np.ndarray], caller: str) -> dict[str, np.ndarray]:
    """The frames as float64 arrays after checking that they are 2D, share one shape and are
    finite; the ValueError names the caller and the offending frame."""
    out = {name: np.asarray(frame, dtype=np.float64) for name, frame in frames.items()}
    first, ref = next(iter(out.items()))
    for name, frame in out.items():
        if frame.ndim != 2:
            raise ValueError(f"{caller}: frame '{name}' must be 2D, got shape {frame.shape}")
        if frame.shape != ref.shape:
            raise ValueError(f"{caller}: frame '{name}' has shape {frame.shape} but "
                             f"'{first}' has {ref.shape}")
        bad = np.count_nonzero(~np.isfinite(frame))
        if bad:
            raise ValueError(f"{caller}: frame '{name}' has {bad} non-finite pixels")
    return out


def optical_depth(atoms: np.ndarray, probe: np.ndarray, dark: np.ndarray,
                  min_counts: float = 1.0,
                  saturation_counts: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(od, flags)``: OD = -ln[(atoms - dark)/(probe - dark)] (float32) with both
    differences clamped to >= ``min_counts`` (counts), and a ``uint8`` :class:`ODFlag` bitmask
    marking clamped pixels and, if ``saturation_counts`` (the camera's full-scale value, raw
    counts) is given, pixels where the raw atom or probe frame reaches it."""
    if not min_counts > 0:
        raise ValueError(f"optical_depth: min_counts must be > 0, got {min_counts!r}")
    f = check_frames({"atoms": atoms, "probe": probe, "dark": dark}, "optical_depth")
    signal = f["atoms"] - f["dark"]
    reference = f["probe"] - f["dark"]
    conditions = [(signal < min_counts, ODFlag.ATOMS_CLAMPED),
                  (reference < min_counts, ODFlag.PROBE_CLAMPED)]
    if saturation_counts is not None:
        conditions += [(f["atoms"] >= saturation_counts, ODFlag.ATOMS_SATURATED),
                       (f["probe"] >= saturation_counts, ODFlag.PROBE_SATURATED)]
    flags = np.zeros(signal.shape, dtype=np.uint8)
    for where, bit in conditions:
        flags[where] |= np.uint8(bit)
    od = -np.log(np.maximum(signal, min_counts) / np.maximum(reference, min_counts))
    return od.astype(np.float32), flags


def corrected_od(od_raw: np.ndarray, i_in_counts: np.ndarray, i_out_counts: np.ndarray,
                 alpha: float = 1.0, i_sat_counts: float = math.inf) -> np.ndarray:
    """Saturation-corrected OD (Reinaudi et al. 2007): ``alpha * od_raw + (I_in - I_out) /
    I_sat``, with I_in, I_out the dark-subtracted probe and atom signals and I_sat the
    (effective) saturation intensity, all in counts per pixel per exposure; ``alpha >= 1`` is a
    calibration constant (1 for an ideal two-level atom). The default ``i_sat_counts=inf``
    gives ``alpha * od_raw``."""
    if not (alpha > 0 and i_sat_counts > 0):
        raise ValueError(f"corrected_od: need alpha > 0 and i_sat_counts > 0, got "
                         f"{alpha!r}, {i_sat_counts!r}")
    i_in = np.asarray(i_in_counts, dtype=np.float64)
    i_out = np.asarray(i_out_counts, dtype=np.float64)
    return alpha * np.asarray(od_raw, dtype=np.float64) + (i_in - i_out) / i_sat_counts


def cross_section_m2(wavelength_m: float, detuning_hz: float = 0.0,
                     linewidth_hz: float | None = None, intensity_over_isat: float = 0.0,
                     clebsch: float = 1.0) -> float:
    """Absorption cross-section (m^2): ``clebsch * sigma0 / (1 + 4 Delta^2/Gamma^2 + I/I_sat)``
    with ``sigma0 = 3 lambda^2 / (2 pi)`` (closed cycling transition). ``detuning_hz`` (Delta
    / 2 pi) and ``linewidth_hz`` (Gamma / 2 pi, natural FWHM) in the same unit; the linewidth is
    needed only off resonance. ``clebsch`` scales sigma0 (e.g. the squared Clebsch-Gordan
    coefficient, or 7/15 for isotropic light on the Rb D2 line)."""
    if not (wavelength_m > 0 and intensity_over_isat >= 0 and clebsch > 0):
        raise ValueError(f"cross_section_m2: need wavelength_m > 0, intensity_over_isat >= 0, "
                         f"clebsch > 0; got {wavelength_m!r}, {intensity_over_isat!r}, "
                         f"{clebsch!r}")
    if detuning_hz != 0.0 and not (linewidth_hz is not None and linewidth_hz > 0):
        raise ValueError(f"cross_section_m2: detuning_hz={detuning_hz!r} needs linewidth_hz > 0, "
                         f"got {linewidth_hz!r}")
    detuning_term = 0.0 if detuning_hz == 0.0 else 4.0 * (detuning_hz / linewidth_hz) ** 2
    sigma0 = 3.0 * wavelength_m**2 / (2.0 * math.pi)
    return clebsch * sigma0 / (1.0 + detuning_term + intensity_over_isat)


def atom_number(od: np.ndarray, pixel_size_m: float, magnification: float, sigma_m2: float,
                mask: np.ndarray | None = None) -> float:
    """Atom number ``N = (A_pix / M^2) / sigma * sum(OD)`` over all pixels or those where
    ``mask`` is True; ``pixel_size_m`` is the camera pixel pitch (m), ``magnification`` M the
    imaging magnification, ``sigma_m2`` the cross-section (m^2, :func:`cross_section_m2`)."""
    if not (pixel_size_m > 0 and magnification > 0 and sigma_m2 > 0):
        raise ValueError(f"atom_number: need pixel_size_m, magnification, sigma_m2 > 0, got "
                         f"{pixel_size_m!r}, {magnification!r}, {sigma_m2!r}")
    od = np.asarray(od, dtype=np.float64)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != od.shape:
            raise ValueError(f"atom_number: mask shape {mask.shape} != od shape {od.shape}")
        od = od[mask]
    area_m2 = pixel_size_m**2 / magnification**2
    return float(area_m2 / sigma_m2 * od.sum())
