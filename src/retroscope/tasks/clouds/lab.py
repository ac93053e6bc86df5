"""Real shots to network input: group raw frames into shots, compute the optical depth (with
optional fringe removal), bin to the network's frame size, and map the answers back.

Settings (a TOML/JSON file, keys optional)::

    pattern = "(?P<role>image|probe|background)_(?P<id>.+)\\.(?:tiff?|png|bmp)"
    roles = {image = "atoms", probe = "probe", background = "dark"}
    h5_datasets = {atoms = "/images/atoms", probe = "/images/probe", dark = "/images/dark"}
    fringe_removal = true        # Ockeloen et al. 2010, probes of the same folder as basis
    pca_components = 0           # > 0: a PCA basis of that many components instead
    saturation_counts = 65535    # camera full scale: flag saturated pixels
    bin = "auto"                 # integer binning factor, or frame size / network size
    object_pixel_um = 4.0        # camera pixel / magnification, for the atom number
    wavelength_nm = 401.0        # probe wavelength, resonant cross-section 3 lambda^2 / 2 pi

A shot that cannot be read or whose size does not bin to the network's is reported by name
and skipped; the others are still processed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retroscope.tasks.clouds.fringes import atom_free_mask, od_with_fringe_removal
from retroscope.tasks.clouds.optical_depth import cross_section_m2, optical_depth
from retroscope.tasks.clouds.shots import (
    DEFAULT_H5_DATASETS,
    DEFAULT_PATTERN,
    DEFAULT_ROLES,
    Shot,
    find_triplets,
    load_shot,
    read_h5_shot,
)

KEYS = {"pattern", "roles", "h5_datasets", "fringe_removal", "pca_components",
        "saturation_counts", "bin", "object_pixel_um", "wavelength_nm"}
H5_SUFFIXES = {".h5", ".hdf5"}


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
    return settings


def collect_shots(paths, settings: dict) -> tuple[list[tuple[str, object]], list]:
    """(label, Shot or HDF5 path) for every shot among ``paths`` (folders, frame files of
    triplets, HDF5 shot files), and failures [(label, reason)]."""
    folders: dict[Path, set[str] | None] = {}
    shots, failures = [], []
    for path in map(Path, paths):
        if path.is_dir():
            folders[path] = None
        elif path.suffix.lower() in H5_SUFFIXES:
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


def _bin(od: np.ndarray, shape: tuple[int, int], factor, label: str) -> tuple[np.ndarray, int]:
    rows, cols = od.shape
    if factor == "auto":
        if rows % shape[0] or cols % shape[1] or rows // shape[0] != cols // shape[1]:
            raise ValueError(f"{label}: frame {rows}x{cols} does not bin to the network's "
                             f"{shape[0]}x{shape[1]}; set bin and crop the frames")
        factor = rows // shape[0]
    if (rows // factor, cols // factor) != tuple(shape) or rows % factor or cols % factor:
        raise ValueError(f"{label}: frame {rows}x{cols} binned by {factor} is not the "
                         f"network's {shape[0]}x{shape[1]}")
    return od.reshape(shape[0], factor, shape[1], factor).mean(axis=(1, 3)), factor


def shot_inputs(paths, settings: dict | None, shape: tuple[int, int] | None):
    """Network observables of real shots: ([(label, source, od_binned, context)], failures).
    ``context`` holds the binning factor and the atoms per (OD x binned pixel), if the
    settings give the pixel size. ``shape=None`` keeps the frame's own pixels (labelling)."""
    settings = check_settings(settings)
    shots, failures = collect_shots(paths, settings)
    frames = {}
    for label, shot in shots:
        try:
            frames[label] = (read_h5_shot(shot, settings.get("h5_datasets", DEFAULT_H5_DATASETS))
                             if isinstance(shot, Path) else load_shot(shot))
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
            binned, factor = ((od, 1) if shape is None else
                              _bin(od, shape, settings.get("bin", "auto"), label))
        except (ValueError, KeyError) as exc:
            failures.append((label, str(exc)))
            continue
        context = {"bin": factor, "saturated_pixels": int(np.count_nonzero(flags & 3))}
        if "object_pixel_um" in settings:
            sigma = cross_section_m2(float(settings.get("wavelength_nm", 401.0)) * 1e-9)
            context["atoms_per_od_px"] = (float(settings["object_pixel_um"]) * factor
                                          * 1e-6) ** 2 / sigma
        items.append((label, str(getattr(source, "atoms", source)), binned.astype(np.float32),
                      context))
    return items, failures


def to_frame(obj: dict, context: dict) -> dict:
    """A described object in the raw frame's pixels (positions and widths times the binning
    factor) with the atom number from the lab's pixel size, when given."""
    b = context.get("bin", 1)
    out = {k: v for k, v in obj.items() if k != "mask"}
    for key in ("x0", "y0", "wx", "wy"):
        for suffix in ("", "_low", "_high"):
            if key + suffix in out:
                out[key + suffix] = out[key + suffix] * b
    out["box"] = [v * b for v in obj["box"]]
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
