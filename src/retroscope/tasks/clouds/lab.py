"""Real shots to network input: group raw frames into shots, compute the optical depth (with
optional fringe removal), bin to the network's frame size, and map the answers back.

Settings (a TOML/JSON file, keys optional)::

    pattern = "(?P<role>image|probe|background)_(?P<id>.+)\\.(?:tiff?|png|bmp)"
    roles = {image = "atoms", probe = "probe", background = "dark"}
    h5_datasets = {atoms = "/images/atoms", probe = "/images/probe", dark = "/images/dark"}
    fits_frames = {atoms = 0, probe = 1, dark = 2}   # frames of a FITS shot, in file order
    fringe_removal = true        # Ockeloen et al. 2010, probes of the same folder as basis
    pca_components = 0           # > 0: a PCA basis of that many components instead
    saturation_counts = 65535    # camera full scale: flag saturated pixels
    bin = "auto"                 # integer binning factor, or the largest that fits
    roi = [row0, col0, rows, cols]  # the camera's region to read (default: see below)
    camera_bits = 12             # a 12-bit camera (in 16-bit files): full scale 4095
    object_pixel_um = 4.0        # camera pixel / magnification, for the atom number
    wavelength_nm = 401.0        # probe wavelength, resonant cross-section 3 lambda^2 / 2 pi

Camera frames of any size: without ``roi``, a frame that bins exactly to the network's input
is read whole; any other is cropped to the largest window that bins to it (a square one for a
square network input, ``bin`` x the network's size when ``bin`` is given) centred on the
strongest absorption (the maximum of the optical depth smoothed over 4 binned pixels) and
kept inside the frame. The crop is reported with every result (``crop_row0``, ``crop_col0``,
``crop_rows``, ``crop_cols``), and positions and widths are given in the camera's pixels.

A shot that cannot be read or that is smaller than the network's input is reported by name
and skipped; the others are still processed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retroscope.tasks.clouds.fringes import atom_free_mask, od_with_fringe_removal
from retroscope.tasks.clouds.optical_depth import cross_section_m2, optical_depth
from retroscope.tasks.clouds.shots import (
    DEFAULT_FITS_FRAMES,
    DEFAULT_H5_DATASETS,
    DEFAULT_PATTERN,
    DEFAULT_ROLES,
    FITS_SUFFIXES,
    ROLES,
    Shot,
    find_triplets,
    load_shot,
    read_fits_shot,
    read_h5_shot,
)

KEYS = {"pattern", "roles", "h5_datasets", "fits_frames", "fringe_removal", "pca_components",
        "saturation_counts", "camera_bits", "bin", "roi", "object_pixel_um", "wavelength_nm"}
H5_SUFFIXES = {".h5", ".hdf5"}
#: the optical depth is smoothed over this many binned pixels to find the strongest absorption
CROP_SMOOTHING_PX = 4.0


def check_settings(settings: dict | None, source: str = "settings") -> dict:
    settings = dict(settings or {})
    unknown = sorted(set(settings) - KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown clouds settings {unknown}; known: {sorted(KEYS)}")
    b = settings.get("bin", "auto")
    if b != "auto" and not (isinstance(b, int) and b >= 1):
        raise ValueError(f"{source}: bin must be 'auto' or a positive integer, got {b!r}")
    for key in ("object_pixel_um", "wavelength_nm", "saturation_counts"):
        if key in settings and not float(settings[key]) > 0:
            raise ValueError(f"{source}: {key} must be positive, got {settings[key]!r}")
    roi = settings.get("roi")
    if roi is not None and not (isinstance(roi, (list, tuple)) and len(roi) == 4
                                and all(isinstance(v, int) and v >= 0 for v in roi)
                                and roi[2] > 0 and roi[3] > 0):
        raise ValueError(f"{source}: roi must be [row0, col0, rows, cols] in camera pixels "
                         f"(non-negative integers, positive size), got {roi!r}")
    bits = settings.get("camera_bits")
    if bits is not None and not (isinstance(bits, int) and 1 <= bits <= 16):
        raise ValueError(f"{source}: camera_bits must be an integer 1-16, got {bits!r}")
    if bits is not None and "saturation_counts" not in settings:
        settings["saturation_counts"] = 2 ** bits - 1  # the camera's full scale
    frames = settings.get("fits_frames")
    if frames is not None and not (isinstance(frames, dict) and set(frames) <= set(ROLES)
                                   and "atoms" in frames and all(
                                       isinstance(v, int) and v >= 0 for v in frames.values())):
        raise ValueError(f"{source}: fits_frames must map atoms (and probe, dark) to frame "
                         f"indices of the FITS file, got {frames!r}")
    return settings


def collect_shots(paths, settings: dict) -> tuple[list[tuple[str, object]], list]:
    """(label, Shot or HDF5 path) for every shot among ``paths`` (folders, frame files of
    triplets, HDF5 shot files), and failures [(label, reason)]."""
    folders: dict[Path, set[str] | None] = {}
    shots, failures = [], []
    for path in map(Path, paths):
        if path.is_dir():
            folders[path] = None
        elif path.suffix.lower() in H5_SUFFIXES | FITS_SUFFIXES:
            shots.append((str(path), path))
        elif not path.exists():
            failures.append((str(path), "no such file"))
        elif folders.get(path.parent, set()) is not None:
            folders.setdefault(path.parent, set()).add(path.name)
    for folder, names in folders.items():
        try:
            scan = find_triplets(folder, settings.get("pattern", DEFAULT_PATTERN),
                                 settings.get("roles", DEFAULT_ROLES))
        except (OSError, ValueError) as exc:
            failures.append((str(folder), str(exc)))
            continue
        found = set()
        for shot in scan.shots:
            files = {p.name for p in (shot.atoms, shot.probe, shot.dark) if p is not None}
            if names is None or files & names:
                shots.append((f"{folder}/{shot.id}", shot))
                found |= files
        for problem in scan.problems:
            failures.append((str(folder), problem))
        for name in sorted((names or set()) - found):
            failures.append((str(folder / name), "not part of a complete shot "
                             "(check the file-name pattern)"))
    return shots, failures


def live_groups(names: list[str], settings: dict | None):
    """The settled files of a watched folder as shots: an absorption triplet once each role
    of the settings' ``roles`` has a file (its atoms frame first), an HDF5 or FITS shot
    file alone, any other file alone (the reader names what is wrong with it). Returns
    (groups of names, names waiting for the other frames of their shot)."""
    import re

    settings = check_settings(settings)
    regex = re.compile(settings.get("pattern", DEFAULT_PATTERN), re.IGNORECASE)
    role_of = {token.lower(): role for token, role in
               settings.get("roles", DEFAULT_ROLES).items()}
    needed = set(role_of.values())
    groups, shots = [], {}
    for name in names:
        match = regex.fullmatch(name)
        token = match.group("role").lower() if match else None
        if Path(name).suffix.lower() in H5_SUFFIXES | FITS_SUFFIXES or token not in role_of:
            groups.append([name])
            continue
        shots.setdefault(match.group("id"), {})[role_of[token]] = name
    waiting = []
    for frames in shots.values():
        if needed <= set(frames):
            groups.append([frames[r] for r in ROLES if r in frames])
        else:
            waiting += frames.values()
    return groups, waiting


def camera_counts(frames: dict[str, np.ndarray], bits: int, label: str) -> dict:
    """Frames of a ``bits``-bit camera in its own counts: 12-bit data stored left-aligned in
    16-bit words (every value a multiple of 2**(16 - bits)) are shifted down; values above
    the camera's full scale otherwise are an error."""
    full = 2 ** bits - 1
    step = 2 ** (16 - bits) if bits < 16 else 1
    top = max(float(f.max()) for f in frames.values())
    if top <= full:
        return frames
    if step > 1 and all(np.all(np.mod(f, step) == 0) for f in frames.values()) \
            and top <= 65535:
        return {role: f / step for role, f in frames.items()}
    raise ValueError(f"{label}: values up to {top:g} exceed a {bits}-bit camera's full "
                     f"scale {full}; check camera_bits")


def crop_window(od: np.ndarray, shape: tuple[int, int], settings: dict,
                label: str) -> tuple[tuple[int, int, int, int], int]:
    """The camera region ``(row0, col0, rows, cols)`` read for a network input of ``shape``
    and its binning factor: the ``roi`` setting, else the whole frame when it bins exactly,
    else the largest window that bins to ``shape`` centred on the strongest absorption."""
    from scipy.ndimage import gaussian_filter

    rows, cols = od.shape
    factor = settings.get("bin", "auto")
    roi = settings.get("roi")
    if roi is not None:
        r0, c0, h, w = roi
        if r0 + h > rows or c0 + w > cols:
            raise ValueError(f"{label}: roi {list(roi)} reaches outside the {rows}x{cols} frame")
        if factor == "auto":
            factor = h // shape[0]
        if factor < 1 or (h, w) != (factor * shape[0], factor * shape[1]):
            raise ValueError(f"{label}: roi of {h}x{w} px does not bin to the network's "
                             f"{shape[0]}x{shape[1]}; make it a multiple (e.g. "
                             f"{max(factor, 1) * shape[0]}x{max(factor, 1) * shape[1]})")
        return (r0, c0, h, w), factor
    if factor == "auto":
        exact = rows % shape[0] == 0 and cols % shape[1] == 0 and \
            rows // shape[0] == cols // shape[1]
        factor = rows // shape[0] if exact else min(rows // shape[0], cols // shape[1])
    h, w = factor * shape[0], factor * shape[1]
    if factor < 1 or h > rows or w > cols:
        raise ValueError(f"{label}: frame {rows}x{cols} is smaller than the network's "
                         f"{shape[0]}x{shape[1]} binned by {max(factor, 1)}")
    if (h, w) == (rows, cols):
        return (0, 0, rows, cols), factor
    smooth = gaussian_filter(np.nan_to_num(od.astype(np.float64)),
                             CROP_SMOOTHING_PX * factor)
    r, c = np.unravel_index(np.argmax(smooth), smooth.shape)
    r0 = int(np.clip(r - h // 2, 0, rows - h))
    c0 = int(np.clip(c - w // 2, 0, cols - w))
    return (r0, c0, h, w), factor


def _bin(od: np.ndarray, window: tuple[int, int, int, int], factor: int) -> np.ndarray:
    r0, c0, h, w = window
    crop = od[r0:r0 + h, c0:c0 + w]
    return crop.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def shot_inputs(paths, settings: dict | None, shape: tuple[int, int] | None):
    """Network observables of real shots: ([(label, source, od_binned, context)], failures).
    ``context`` holds the binning factor and the atoms per (OD x binned pixel), if the
    settings give the pixel size. ``shape=None`` keeps the frame's own pixels (labelling)."""
    settings = check_settings(settings)
    shots, failures = collect_shots(paths, settings)
    frames = {}
    for label, shot in shots:
        try:
            if not isinstance(shot, Path):
                frames[label] = load_shot(shot)
            elif shot.suffix.lower() in FITS_SUFFIXES:
                frames[label] = read_fits_shot(shot, settings.get("fits_frames",
                                                                  DEFAULT_FITS_FRAMES))
            else:
                frames[label] = read_h5_shot(shot, settings.get("h5_datasets",
                                                                DEFAULT_H5_DATASETS))
            if settings.get("camera_bits") is not None:
                frames[label] = camera_counts(frames[label], settings["camera_bits"], label)
        except (OSError, KeyError, ValueError) as exc:
            failures.append((label, str(exc)))
    probes_by_folder: dict[str, list[np.ndarray]] = {}
    for label, f in frames.items():
        if f.get("probe") is not None:
            probes_by_folder.setdefault(str(Path(label).parent), []).append(f["probe"])
    sat = settings.get("saturation_counts")
    items = []
    for label, source in shots:
        if label not in frames:
            continue
        f = frames[label]
        try:
            dark = f.get("dark")
            dark = np.zeros_like(f["atoms"]) if dark is None else dark
            od, flags = optical_depth(f["atoms"], f["probe"], dark, saturation_counts=sat)
            probes = probes_by_folder.get(str(Path(label).parent), [])
            if settings.get("fringe_removal") and len(probes) > 1:
                n = int(settings.get("pca_components", 0)) or None
                od, flags = od_with_fringe_removal(f["atoms"], np.stack(probes), dark,
                                                   atom_free_mask(od), n_components=n,
                                                   saturation_counts=sat)
            if shape is None:
                binned, factor, window = od, 1, (0, 0, *od.shape)
            else:
                window, factor = crop_window(od, shape, settings, label)
                binned = _bin(od, window, factor)
        except (ValueError, KeyError) as exc:
            failures.append((label, str(exc)))
            continue
        r0, c0, h, w = window
        context = {"bin": factor, "crop": [int(r0), int(c0), int(h), int(w)],
                   "saturated_pixels": int(np.count_nonzero(
                       flags[r0:r0 + h, c0:c0 + w] & 3))}
        if "object_pixel_um" in settings:
            sigma = cross_section_m2(float(settings.get("wavelength_nm", 401.0)) * 1e-9)
            context["atoms_per_od_px"] = (float(settings["object_pixel_um"]) * factor
                                          * 1e-6) ** 2 / sigma
        items.append((label, str(getattr(source, "atoms", source)), binned.astype(np.float32),
                      context))
    return items, failures


def frame_columns(context: dict) -> dict:
    """The camera region a shot's answers come from: ``crop_row0``, ``crop_col0``,
    ``crop_rows``, ``crop_cols`` (camera pixels), and the binning factor."""
    if "crop" not in context:
        return {}
    return {**dict(zip(("crop_row0", "crop_col0", "crop_rows", "crop_cols"), context["crop"])),
            "bin": context.get("bin", 1)}


def to_frame(obj: dict, context: dict) -> dict:
    """A described object in the camera's pixels (widths times the binning factor, positions
    also shifted by the crop's corner), the crop it was read from (``crop_row0``,
    ``crop_col0``, ``crop_rows``, ``crop_cols``) and the atom number from the lab's pixel
    size, when given."""
    b = context.get("bin", 1)
    r0, c0 = context.get("crop", (0, 0))[:2]
    offset = {"x0": c0, "y0": r0, "wx": 0, "wy": 0}
    out = {k: v for k, v in obj.items() if k != "mask"}
    for key in ("x0", "y0", "wx", "wy"):
        for suffix in ("", "_low", "_high"):
            if key + suffix in out:
                out[key + suffix] = out[key + suffix] * b + offset[key]
    out["box"] = [v * b + (c0, r0)[i % 2] for i, v in enumerate(obj["box"])]
    out.update(frame_columns(context))
    if "integrated_od" in out:
        out["integrated_od"] = out["integrated_od"] * b * b  # OD x raw pixels
    if "atoms_per_od_px" in context:
        n = obj["integrated_od"] * context["atoms_per_od_px"]
        scale = n / obj["atom_number"] if obj.get("atom_number") else float("nan")
        for suffix in ("", "_low", "_high"):
            if "atom_number" + suffix in out:
                out["atom_number" + suffix] = out["atom_number" + suffix] * scale
    else:
        for suffix in ("", "_low", "_high"):
            out.pop("atom_number" + suffix, None)
    return out
