"""Readers for experimental image files: PNG, TIFF, NPY, HDF5 and CXI.

:func:`read_images` turns one file into a list of ``(label, frame)`` pairs, ``frame`` a 2D
float array holding the stored values unscaled (turning them into network input is the task's
``preprocess``). The label is the file name, with ``[i]`` appended for each frame of a file
that holds a stack (a 3D array, a multi-page TIFF, an animated PNG), ``i`` counting from 0.

=================  ==========================================================================
extension          content
=================  ==========================================================================
``.png``           8- or 16-bit grayscale (RGB and palette images become luminance,
                   ITU-R BT.601 weights; alpha is ignored), read with Pillow
``.tif, .tiff``    8/16/32-bit integer or float pages, one frame per page, read with tifffile
``.npy``           a 2D image or a 3D stack (N, H, W)
``.h5, .hdf5,``    ``/entry_1/data_1/data``, else ``/entry_N/instrument_1/detector_1/data`` of
``.cxi``           the lowest N that has one (CXI conventions, https://www.cxidb.org/cxi.html),
                   or the dataset named as ``file.h5::/path/to/data`` or with ``dataset=``
=================  ==========================================================================

Self-describing files: what retroscope writes records the preprocessing settings its values
need (e.g. ``{"scale": "unit"}``) as JSON under the key ``retroscope`` in a PNG text chunk, in
the TIFF ``ImageDescription`` tag, or as an HDF5 attribute of the image dataset.
:func:`read_file` returns them (``ImageFile.settings``) with the frames and the bit depth of
the stored integers, so a reader can honour them and tell an ambiguous 8-bit image.

Anything wrong with a file raises :class:`ReadError`, whose message names the file (and the
HDF5 dataset) and the reason: missing, unreadable or corrupt, unknown extension, empty, not
2D or 3D, non-numeric, or not finite. Nothing is clipped or repaired, and files are only ever
opened for reading.

:func:`write_png`, :func:`write_tiff` and :func:`write_cxi` write the files the demo and the
tests read back, with the settings they need; each writes a temporary file next to the
target and ``os.replace`` s it, so a reader (or a watched folder) never sees a half-written
file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tifffile
from PIL import Image

from retroscope.io.atomic import atomic_write

__all__ = ["CXI_DATA", "CXI_VERSION", "EXTENSIONS", "METADATA_KEY", "ImageFile", "ReadError",
           "read_file", "read_images", "write_cxi", "write_png", "write_tiff"]

#: file extension -> format
EXTENSIONS = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".npy": "npy", ".h5": "hdf5",
              ".hdf5": "hdf5", ".cxi": "hdf5"}
#: where CXI files keep their images (:func:`write_cxi` writes here)
CXI_DATA = "/entry_1/data_1/data"
#: the CXI version written by :func:`write_cxi` (1.5)
CXI_VERSION = 150

#: the key of the recorded settings (PNG text chunk, JSON object in a TIFF description, HDF5
#: attribute of the image dataset)
METADATA_KEY = "retroscope"

_ENTRY = re.compile(r"entry_(\d+)")
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as Pillow's RGB -> "L"


class ReadError(Exception):
    """A file (or a dataset in it) that cannot be read as images; says which and why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(os.fspath(path), reason)
        self.path = os.fspath(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class ImageFile:
    """One file read: its frames ``[(label, 2D float array)]``, the preprocessing settings it
    records (``{}`` when none) and the bit depth of its stored integers (None for floats)."""

    frames: list[tuple[str, np.ndarray]]
    settings: dict = field(default_factory=dict)
    bits: int | None = None


def read_images(
    path: str | os.PathLike, dataset: str | None = None
) -> list[tuple[str, np.ndarray]]:
    """Every frame of an image file as ``(label, 2D float array)``; see the module docstring.

    ``dataset`` (or a ``::/path`` suffix on ``path``) names the HDF5 dataset to read. Integer
    data of up to 16 bits and float32 come back as float32, wider types as float64.
    Raises :class:`ReadError` for any file that cannot be read as finite images.
    """
    return read_file(path, dataset).frames


def read_file(path: str | os.PathLike, dataset: str | None = None) -> ImageFile:
    """Every frame of an image file with the settings it records and its bit depth (see
    :func:`read_images`)."""
    text = os.fspath(path)
    if "::" in text:
        text, _, inner = text.partition("::")
        if dataset is not None and dataset != inner:
            raise ReadError(path, f"two datasets named: {inner!r} in the path and {dataset!r}")
        dataset = inner
    file = Path(text)
    if not file.exists():
        raise ReadError(file, "no such file")
    if not file.is_file():
        raise ReadError(file, "not a regular file")
    kind = EXTENSIONS.get(file.suffix.lower())
    if kind is None:
        raise ReadError(file, f"unknown extension {file.suffix!r}; expected one of "
                              f"{', '.join(EXTENSIONS)}")
    if kind == "hdf5":
        source, data, text = _read_hdf5(file, dataset)
        return ImageFile(_frames(source, file.name, data), _settings(source, text),
                         _bits(data))
    if dataset is not None:
        raise ReadError(file, f"dataset {dataset!r} named, but a {kind.upper()} file has none")
    if kind == "npy":
        data = _read_npy(file)
        return ImageFile(_frames(str(file), file.name, data), {}, _bits(data))
    pages, text = _read_png(file) if kind == "png" else _read_tiff(file)
    settings, bits = _settings(str(file), text), max((_bits(p) or 0) for p in pages) or None
    if len(pages) == 1:
        return ImageFile([_check_frame(str(file), file.name, pages[0])], settings, bits)
    return ImageFile([_check_frame(str(file), file.name, p, i) for i, p in enumerate(pages)],
                     settings, bits)


def read_array(path: str | os.PathLike) -> np.ndarray:
    """The whole array of an NPY file or of an HDF5 dataset (``file.h5::/path``), of any rank:
    for inputs that are not images (curves, spectra). Errors are :class:`ReadError`."""
    text = os.fspath(path)
    text, _, inner = text.partition("::")
    file = Path(text)
    if not file.is_file():
        raise ReadError(file, "no such file")
    kind = EXTENSIONS.get(file.suffix.lower())
    if kind == "npy" and not inner:
        return _read_npy(file)
    if kind == "hdf5":
        return _read_hdf5(file, inner or None)[1]
    raise ReadError(file, "an array is read from an NPY file or an HDF5 dataset "
                          "(file.h5::/path)")


def _bits(data: np.ndarray) -> int | None:
    """Bit depth of stored integers (1 for booleans), None for floats."""
    if data.dtype.kind == "b":
        return 1
    return 8 * data.dtype.itemsize if data.dtype.kind in "iu" else None


def _settings(source: str, text: str | bytes | None) -> dict:
    """The settings recorded under :data:`METADATA_KEY` (``{}`` when none); a record that is
    not a JSON object is an error, not ignored."""
    if text is None:
        return {}
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        record = json.loads(text)
    except ValueError as e:
        raise ReadError(source, f"metadata {METADATA_KEY!r} is not JSON ({e})") from e
    if not isinstance(record, dict) or not isinstance(record.get("settings", {}), dict):
        raise ReadError(source, f"metadata {METADATA_KEY!r} must be a JSON object with a "
                                f"'settings' object, got {text[:80]!r}")
    return dict(record.get("settings", {}))


def _record(settings: Mapping[str, Any] | None) -> str | None:
    """The JSON written under :data:`METADATA_KEY` for ``settings`` (None: nothing)."""
    if not settings:
        return None
    return json.dumps({"settings": dict(settings), "writer": "retroscope"}, sort_keys=True)


# --------------------------------------------------------------------------------------------
# checks shared by all formats


def _frames(source: str, name: str, data: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Split a 2D image or a 3D stack (N, H, W) into checked, labelled frames."""
    if data.ndim not in (2, 3):
        what = "empty array" if data.size == 0 else "expected a 2D image or a 3D stack (N, H, W)"
        raise ReadError(source, f"{what}, got shape {data.shape}")
    if data.ndim == 2:
        return [_check_frame(source, name, data)]
    if len(data) == 0:
        raise ReadError(source, f"empty stack, got shape {data.shape}")
    return [_check_frame(source, name, frame, i) for i, frame in enumerate(data)]


def _check_frame(
    source: str, name: str, frame: np.ndarray, index: int | None = None
) -> tuple[str, np.ndarray]:
    """``(label, float frame)`` for frame ``index`` of a stack (``None``: a single image)."""
    where = "" if index is None else f"frame {index}: "
    if frame.dtype.kind not in "biuf":
        raise ReadError(source, f"{where}expected real numbers, got dtype {frame.dtype}")
    if frame.size == 0:
        raise ReadError(source, f"{where}zero-size frame, shape {frame.shape}")
    frame = frame.astype(np.result_type(frame.dtype, np.float32), copy=False)
    finite = np.isfinite(frame)
    if not finite.all():
        n_nan = int(np.isnan(frame).sum())
        if n_nan == frame.size:
            reason = "NaN-filled: every value is NaN"
        else:
            n_inf = frame.size - int(finite.sum()) - n_nan
            reason = f"NaN-filled: {n_nan} NaN and {n_inf} infinite of {frame.size} values"
        raise ReadError(source, f"{where}{reason}")
    return (name if index is None else f"{name}[{index}]"), frame


# --------------------------------------------------------------------------------------------
# formats


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float64) @ _LUMA


def _read_png(file: Path) -> tuple[list[np.ndarray], str | None]:
    pages = []
    try:
        with Image.open(file) as im:
            if im.format != "PNG":
                raise ReadError(file, f"not a PNG file (Pillow reads it as {im.format})")
            text = im.info.get(METADATA_KEY)
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                if im.mode in ("1", "L", "I", "F") or im.mode.startswith("I;16"):
                    pages.append(np.asarray(im))
                elif im.mode in ("LA", "La"):
                    pages.append(np.asarray(im)[..., 0])
                else:
                    pages.append(_luminance(np.asarray(im.convert("RGB"))))
    except ReadError:
        raise
    except Exception as e:  # Pillow raises many types for corrupt files
        raise ReadError(file, f"unreadable or corrupt PNG ({type(e).__name__}: {e})") from e
    return pages, text


def _read_tiff(file: Path) -> tuple[list[np.ndarray], str | None]:
    try:
        with tifffile.TiffFile(file) as tif:
            pages = [(p.asarray(), p.axes, p.photometric) for p in tif.pages]
            description = tif.pages[0].description if len(tif.pages) else ""
    except Exception as e:  # tifffile raises many types for corrupt files
        raise ReadError(file, f"unreadable or corrupt TIFF ({type(e).__name__}: {e})") from e
    if not pages:
        raise ReadError(file, "unreadable or corrupt TIFF (no image page found)")
    gray = []
    for i, (a, axes, photometric) in enumerate(pages):
        if "S" in axes:
            a = np.moveaxis(a, axes.index("S"), -1)
            if photometric != tifffile.PHOTOMETRIC.RGB or a.shape[-1] < 3:
                raise ReadError(file, f"page {i}: {a.shape[-1]} samples per pixel with "
                                      f"photometric {photometric.name}; expected gray or RGB")
            a = _luminance(a)
        if a.ndim != 2:
            raise ReadError(file, f"page {i}: expected a 2D page, got axes {axes!r}")
        gray.append(a)
    return gray, _tiff_record(description)


def _tiff_record(description: str) -> str | None:
    """The retroscope record in a TIFF description (a JSON object with the key), else None:
    other programs write their own descriptions there."""
    try:
        record = json.loads(description or "")
    except ValueError:
        return None
    if isinstance(record, dict) and METADATA_KEY in record:
        return json.dumps(record[METADATA_KEY])
    return None


def _read_npy(file: Path) -> np.ndarray:
    try:
        with open(file, "rb") as fh:
            data = np.load(fh, allow_pickle=False)
            if not isinstance(data, np.ndarray):
                raise ReadError(file, "an NPZ archive, not an NPY array")
    except ReadError:
        raise
    except Exception as e:
        raise ReadError(file, f"unreadable or corrupt NPY ({type(e).__name__}: {e})") from e
    return data


def _read_hdf5(file: Path, dataset: str | None) -> tuple[str, np.ndarray, str | None]:
    """``(source, array, recorded settings)``: source names the file and the dataset read."""
    try:
        h5 = h5py.File(file, "r")
    except Exception as e:
        raise ReadError(file, f"not a readable HDF5 file ({type(e).__name__}: {e})") from e
    with h5:
        name = dataset if dataset is not None else _find_cxi_data(h5, file)
        source = f"{file}::{name}"
        try:
            obj = h5.get(name)
            if isinstance(obj, h5py.Dataset):
                return source, np.asarray(obj[()]), obj.attrs.get(METADATA_KEY)
        except Exception as e:
            raise ReadError(source, f"cannot read ({type(e).__name__}: {e})") from e
    if obj is None:
        raise ReadError(source, "no such dataset")
    raise ReadError(source, f"a {type(obj).__name__}, not a dataset")


def _find_cxi_data(h5: h5py.File, file: Path) -> str:
    if CXI_DATA in h5:
        return CXI_DATA
    entries = sorted((int(m[1]), key) for key in h5 if (m := _ENTRY.fullmatch(key)))
    for _, entry in entries:
        name = f"/{entry}/instrument_1/detector_1/data"
        if name in h5:
            return name
    raise ReadError(file, f"no image dataset: neither {CXI_DATA} nor "
                          "/entry_N/instrument_1/detector_1/data exists; name one as "
                          "'FILE::/path/to/data' or with dataset=")


# --------------------------------------------------------------------------------------------
# writers


def write_png(path: str | os.PathLike, image01: np.ndarray,
              settings: Mapping[str, Any] | None = None) -> Path:
    """Write a 2D image with values in [0, 1] as a 16-bit grayscale PNG (0 -> 0, 1 -> 65535),
    with ``settings`` (how the values are to be read) in a text chunk.

    Values outside [0, 1] or not finite raise ``ValueError``; nothing is clipped.
    """
    from PIL.PngImagePlugin import PngInfo

    img = np.asarray(image01, dtype=np.float64)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"write_png {path}: expected a non-empty 2D image, got shape {img.shape}")
    if not (np.isfinite(img).all() and img.min() >= 0.0 and img.max() <= 1.0):
        raise ValueError(f"write_png {path}: values must be finite and in [0, 1], got range "
                         f"[{np.nanmin(img)}, {np.nanmax(img)}]")
    counts = np.round(img * 65535.0).astype(np.uint16)
    info = PngInfo()
    if (record := _record(settings)) is not None:
        info.add_text(METADATA_KEY, record)
    return atomic_write(path, lambda tmp: Image.fromarray(counts).save(tmp, format="PNG",
                                                                       pnginfo=info))


def write_tiff(path: str | os.PathLike, images: np.ndarray,
               settings: Mapping[str, Any] | None = None) -> Path:
    """Write a 2D image or a stack (one page per frame) as TIFF in its own dtype, with
    ``settings`` as a JSON object in the ImageDescription tag."""
    data = np.asarray(images)
    if data.ndim not in (2, 3) or data.size == 0:
        raise ValueError(f"write_tiff {path}: expected a 2D image or a stack, got shape "
                         f"{data.shape}")
    record = _record(settings)
    description = None if record is None else json.dumps({METADATA_KEY: json.loads(record)})

    def write(tmp: Path) -> None:
        # each frame its own page (not one 3-D ImageJ hyperstack), so every reader sees frames
        with tifffile.TiffWriter(tmp) as tif:
            for i, frame in enumerate(data.reshape(-1, *data.shape[-2:])):
                # only the first page carries the record
                tif.write(frame, description=description if i == 0 else None, metadata=None)

    return atomic_write(path, write)


def write_cxi(
    path: str | os.PathLike, images: np.ndarray, extra: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Path:
    """Write a stack (N, H, W) as a CXI file, with ``settings`` as an attribute of the images.

    The images go to ``/entry_1/data_1/data``, hard-linked as
    ``/entry_1/instrument_1/detector_1/data``, with ``/cxi_version``. ``extra`` maps further
    HDF5 paths to values (e.g. ``{"/particles/particle_00/extrinsic_quaternion": q}``, as
    Condor writes them). Values are written as given, so a test can also write bad data.
    """
    data = np.asarray(images)
    if data.ndim != 3:
        raise ValueError(f"write_cxi {path}: expected a stack (N, H, W), got shape {data.shape}")

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("cxi_version", data=CXI_VERSION)
            images = f.create_dataset(CXI_DATA, data=data)
            f.require_group("/entry_1/instrument_1/detector_1")["data"] = images
            if (record := _record(settings)) is not None:
                images.attrs[METADATA_KEY] = record
            for key, value in (extra or {}).items():
                if key in f:
                    raise ValueError(f"write_cxi {path}: extra field {key!r} already written")
                f.create_dataset(key, data=value)

    return atomic_write(path, write)
