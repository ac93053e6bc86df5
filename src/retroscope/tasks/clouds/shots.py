"""Readers of real shots: atom, probe and dark frames from image files or HDF5 shot files.

An absorption shot is three frames (Hofer et al., Mach. Learn.: Sci. Technol. 2, 045008
(2021), footnote to Fig. 2): "atoms" (probe through the cloud), "probe" (no atoms) and "dark"
(no probe); a fluorescence shot has "atoms" and "dark". Folders of single-frame images are grouped
into shots by a regular expression with the named groups ``role`` and ``id``; the default matches
``Image_<id>.tiff`` / ``Probe_<id>.tiff`` / ``Background_<id>.tiff`` (the naming of
``sbanik1/Probe-Reconstruction``), case-insensitively, with extension .tif, .tiff, .png or .bmp.
Frames are returned as float64 counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import tifffile
from PIL import Image

ROLES = ("atoms", "probe", "dark")
DEFAULT_PATTERN = r"(?P<role>image|probe|background)_(?P<id>.+)\.(?:tiff?|png|bmp)"
DEFAULT_ROLES = {"image": "atoms", "probe": "probe", "background": "dark"}
DEFAULT_H5_DATASETS = {"atoms": "/images/atoms", "probe": "/images/probe",
                       "dark": "/images/dark"}
#: frames of a FITS shot file, counted in file order over its image HDUs (a cube's planes
#: one by one): atoms, probe, dark
DEFAULT_FITS_FRAMES = {"atoms": 0, "probe": 1, "dark": 2}
FITS_SUFFIXES = {".fits", ".fit", ".fts"}
_PILLOW_SUFFIXES = (".png", ".bmp")
_TIFF_SUFFIXES = (".tif", ".tiff")
_SINGLE_CHANNEL_MODES = ("1", "L", "I", "F", "I;16", "I;16L", "I;16B")


class FrameError(ValueError):
    """A frame file that cannot be read, is not a 2D single-channel image or holds NaN/inf."""


class IncompleteShotError(ValueError):
    """Shots that lack a required frame (raised by :func:`find_triplets` with strict=True)."""


class MissingDatasetError(KeyError):
    """An HDF5 shot file without the requested dataset path."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


@dataclass(frozen=True)
class Shot:
    """One shot: its id and the paths of its frames (None where the folder has none)."""

    id: str
    atoms: Path
    probe: Path | None = None
    dark: Path | None = None


class TripletScan(NamedTuple):
    """Result of :func:`find_triplets`: the complete shots, sorted by id, and one message per
    incomplete shot naming its id and missing roles."""

    shots: list[Shot]
    problems: list[str]


def _natural_key(text: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", text) if part]


def find_triplets(folder: str | Path, pattern: str | re.Pattern = DEFAULT_PATTERN,
                  roles: Mapping[str, str] = DEFAULT_ROLES, *,
                  require: Iterable[str] = ("atoms", "probe"),
                  strict: bool = False) -> TripletScan:
    """Group the image files of ``folder`` into shots.

    ``pattern``: a regular expression (a string is compiled case-insensitively) that must
    fully match a file name and has the named groups ``role`` and ``id``; files that do not
    match are ignored. ``roles`` maps the captured role token (case-insensitive) to "atoms",
    "probe" or "dark". A shot is complete when it has every role in ``require`` ("atoms" is
    always required). Returns :class:`TripletScan` ``(shots, problems)``; with ``strict=True``
    an incomplete shot raises :class:`IncompleteShotError` listing all of them instead. Two
    files for the same id and role raise ValueError.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"find_triplets: {folder} is not a directory")
    regex = re.compile(pattern, re.IGNORECASE) if isinstance(pattern, str) else pattern
    if not {"role", "id"} <= set(regex.groupindex):
        raise ValueError(f"find_triplets: pattern {regex.pattern!r} needs the named groups "
                         f"'role' and 'id'")
    role_map = {token.lower(): role for token, role in roles.items()}
    required = set(require) | {"atoms"}
    unknown = sorted((set(role_map.values()) | required) - set(ROLES))
    if unknown:
        raise ValueError(f"find_triplets: roles and require may only name {ROLES}, got {unknown}")
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.iterdir()):
        match = regex.fullmatch(path.name)
        if match is None or not path.is_file():
            continue
        token = match.group("role").lower()
        if token not in role_map:
            raise ValueError(f"find_triplets: {path}: role {match.group('role')!r} is not in "
                             f"roles {sorted(role_map)}")
        frames = found.setdefault(match.group("id"), {})
        role = role_map[token]
        if role in frames:
            raise ValueError(f"find_triplets: two {role} frames for shot "
                             f"{match.group('id')!r}: {frames[role].name}, {path.name}")
        frames[role] = path
    shots, problems = [], []
    for shot_id in sorted(found, key=_natural_key):
        frames = found[shot_id]
        missing = [role for role in ROLES if role in required and role not in frames]
        if missing:
            problems.append(f"shot {shot_id!r} in {folder}: missing {', '.join(missing)} "
                            f"(has {', '.join(sorted(frames))})")
        else:
            shots.append(Shot(shot_id, **frames))
    if strict and problems:
        raise IncompleteShotError("find_triplets: incomplete shots:\n" + "\n".join(problems))
    return TripletScan(shots, problems)


def _checked(frame: np.ndarray, where: str) -> np.ndarray:
    if frame.ndim != 2:
        raise FrameError(f"{where}: expected a 2D single-channel image, got shape {frame.shape}")
    if not np.issubdtype(frame.dtype, np.number) or np.iscomplexobj(frame):
        raise FrameError(f"{where}: expected real numbers, got dtype {frame.dtype}")
    frame = frame.astype(np.float64)
    bad = np.count_nonzero(~np.isfinite(frame))
    if bad:
        raise FrameError(f"{where}: {bad} NaN or infinite pixels")
    return frame


def read_frame(path: str | Path) -> np.ndarray:
    """One 2D frame as float64: TIFF via tifffile, PNG or BMP via Pillow (single channel)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _TIFF_SUFFIXES + _PILLOW_SUFFIXES:
        raise FrameError(f"{path}: unsupported extension {path.suffix!r}, expected one of "
                         f"{_TIFF_SUFFIXES + _PILLOW_SUFFIXES}")
    if not path.is_file():
        raise FileNotFoundError(f"read_frame: no file {path}")
    try:
        if suffix in _TIFF_SUFFIXES:
            frame = tifffile.imread(path)
        else:
            with Image.open(path) as image:
                frame = _grey(image, path)
    except FrameError:
        raise
    except Exception as exc:  # tifffile and Pillow raise many types for corrupt files
        raise FrameError(f"{path}: cannot read image: {exc}") from exc
    return _checked(np.asarray(frame), str(path))


def _grey(image: Image.Image, path: Path) -> np.ndarray:
    """The counts of a single-channel image; a palette image (Pillow mode 'P', what many
    camera programs write as 8-bit BMP) or an RGB image is accepted when it is grey (every
    palette entry, or every pixel, has R = G = B) and read as those grey levels."""
    if image.mode in _SINGLE_CHANNEL_MODES:
        return np.asarray(image)
    if image.mode == "P":
        palette = np.asarray(image.getpalette(), dtype=np.int64).reshape(-1, 3)
        index = np.asarray(image)
        used = palette[np.unique(index)]
        if not (used == used[:, :1]).all():
            raise FrameError(f"{path}: a colour palette (Pillow mode 'P'); expected grey levels")
        return palette[index, 0]
    if image.mode in ("RGB", "RGBA"):
        rgb = np.asarray(image)[..., :3]
        if (rgb == rgb[..., :1]).all():
            return rgb[..., 0]
    raise FrameError(f"{path}: expected a single-channel (grey) image, got Pillow mode "
                     f"{image.mode!r} with colour")


def _same_shape(frames: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    shapes = {role: frame.shape for role, frame in frames.items()}
    if len(set(shapes.values())) > 1:
        raise FrameError(f"{where}: frames differ in shape: {shapes}")
    return frames


def read_h5_shot(path: str | Path,
                 datasets: Mapping[str, str] = DEFAULT_H5_DATASETS) -> dict[str, np.ndarray]:
    """Frames of an HDF5 shot file: ``datasets`` maps each role ("atoms", "probe", "dark") to
    the dataset path holding it; a missing path raises :class:`MissingDatasetError` naming the
    file and the path. Returns role -> float64 frame, all of one shape."""
    path = Path(path)
    bad = sorted(set(datasets) - set(ROLES))
    if bad:
        raise ValueError(f"read_h5_shot: roles must be among {ROLES}, got {bad}")
    if not path.is_file():
        raise FileNotFoundError(f"read_h5_shot: no file {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise FrameError(f"{path}: cannot open as HDF5: {exc}") from exc
    frames = {}
    with handle:
        for role, name in datasets.items():
            item = handle.get(name)
            if not isinstance(item, h5py.Dataset):
                what = "no dataset" if item is None else "a group, not a dataset,"
                raise MissingDatasetError(f"{path}: {what} at {name!r} (role {role!r}); "
                                          f"pass datasets={{{role!r}: '/path/in/file'}}")
            frames[role] = _checked(np.asarray(item[()]), f"{path}:{name}")
    return _same_shape(frames, str(path))


def fits_frames(path: str | Path) -> list[np.ndarray]:
    """Every 2-D frame of a FITS file, in file order: each image HDU's data, a cube
    (N, H, W) giving its N planes (astropy, the optional extra ``retroscope[fits]``)."""
    try:
        from astropy.io import fits
    except ImportError as exc:
        raise FrameError(f"{path}: reading FITS needs astropy: pip install "
                         f"'retroscope[fits]'") from exc
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fits_frames: no file {path}")
    frames = []
    try:
        with fits.open(path, memmap=False) as hdus:
            for i, hdu in enumerate(hdus):
                data = getattr(hdu, "data", None)
                if data is None or not getattr(hdu, "is_image", False):
                    continue
                data = np.asarray(data)
                if data.ndim == 2:
                    frames.append(data)
                elif data.ndim == 3:
                    frames.extend(data)
                else:
                    raise FrameError(f"{path}: HDU {i} holds a {data.ndim}-D array "
                                     f"{data.shape}; expected frames or a cube of frames")
    except FrameError:
        raise
    except Exception as exc:  # astropy raises many types for corrupt files
        raise FrameError(f"{path}: cannot read as FITS: {exc}") from exc
    return frames


def read_fits_shot(path: str | Path,
                   roles: Mapping[str, int] = DEFAULT_FITS_FRAMES) -> dict[str, np.ndarray]:
    """The frames of a FITS shot file: ``roles`` maps "atoms", "probe", "dark" to frame
    indices of :func:`fits_frames` (a role whose frame is missing is an error, except a
    default "dark"). Returns role -> float64 frame, all of one shape."""
    frames = fits_frames(path)
    out = {}
    for role, index in roles.items():
        if index >= len(frames):
            if role == "dark" and roles is DEFAULT_FITS_FRAMES:
                continue
            raise FrameError(f"{path}: role {role!r} is frame {index}, but the file has "
                             f"{len(frames)} frames; set fits_frames")
        # FITS stores big-endian; native float64 for the arithmetic
        out[role] = _checked(np.asarray(frames[index]).astype(np.float64),
                             f"{path}: frame {index}")
    return _same_shape(out, str(path))


def load_shot(shot: Shot) -> dict[str, np.ndarray]:
    """The frames of ``shot`` (role -> float64 array) for the roles it has, all one shape."""
    frames = {role: read_frame(getattr(shot, role)) for role in ROLES
              if getattr(shot, role) is not None}
    return _same_shape(frames, f"shot {shot.id!r} ({shot.atoms.parent})")
