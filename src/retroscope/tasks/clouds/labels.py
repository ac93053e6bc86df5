"""COCO-style JSON labels of atom-cloud frames: boxes, masks and Gaussian parameters.

Hofer et al., Mach. Learn.: Sci. Technol. 2, 045008 (2021), Sec. 2: every cloud carries a class
('MOT', 'ODT'; here also 'BEC'), a region-of-interest box at its 1/e^2 radii along the image
axes and a segmentation mask that is one inside the 1/e^2 contour of the fitted Gaussian.

Each annotation has COCO's fields - ``bbox`` as [x, y, width, height] (the 1/e^2 box of
geometry.box_xyxy clipped to the image), ``area`` (the mask's pixel count), ``iscrowd`` 0 and
``segmentation`` as uncompressed run-length encoding {"counts": [...], "size": [h, w]} - and
an extra ``gaussian`` dict with the parameters of Eq. (1). The RLE runs over the mask in
column-major (Fortran) order and starts with a run of zeros (0 if the first pixel is set),
which is COCO's convention: pycocotools' ``mask.frPyObjects`` and ``mask.decode`` read it.
Image and annotation ids start at 1, category ids at 1 in the order given.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retroscope.io.atomic import atomic_write
from retroscope.tasks.clouds.geometry import Gaussian2D

__all__ = ["coco_dataset", "rle_decode", "rle_encode", "write_coco_json"]

CATEGORIES = ("MOT", "ODT", "BEC")


def rle_encode(mask) -> dict:
    """Uncompressed COCO RLE of a boolean (rows, cols) mask: run lengths in column-major
    order, alternating zeros and ones, starting with zeros."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"mask: expected a non-empty 2D array, got shape {mask.shape}")
    flat = mask.ravel(order="F")
    edges = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def rle_decode(rle: dict) -> np.ndarray:
    """The boolean (rows, cols) mask of an uncompressed COCO RLE."""
    rows, cols = (int(v) for v in rle["size"])
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if np.any(counts < 0) or counts.sum() != rows * cols:
        raise ValueError(f"rle: counts must be non-negative and sum to {rows} x {cols} = "
                         f"{rows * cols}, got sum {counts.sum()}")
    values = np.arange(counts.size) % 2 == 1
    return np.repeat(values, counts).reshape((rows, cols), order="F")


def _annotation(ann_id: int, image_id: int, category_id: int, cloud: Gaussian2D,
                shape: tuple[int, int]) -> dict:
    rows, cols = shape
    mask = cloud.mask(shape)
    area = int(mask.sum())
    if area == 0:
        raise ValueError(f"clouds: cloud {cloud} of image {image_id} covers no pixel centre of "
                         f"its {rows}x{cols} image")
    x0, y0, x1, y1 = np.clip(cloud.box(), 0.0, [cols, rows, cols, rows]).tolist()
    return {"id": ann_id, "image_id": image_id, "category_id": category_id,
            "bbox": [x0, y0, x1 - x0, y1 - y0], "area": area, "iscrowd": 0,
            "segmentation": rle_encode(mask),
            "gaussian": {k: float(v) for k, v in cloud.to_dict().items()}}


def coco_dataset(images: Sequence[dict], categories: Sequence[str] = CATEGORIES) -> dict:
    """COCO dataset dict of labelled frames.

    ``images``: dicts with ``file_name``, ``height``, ``width`` and ``clouds``, a list of
    (class name, Gaussian2D) pairs; every class name must be in ``categories``.
    """
    category_ids = {name: i + 1 for i, name in enumerate(categories)}
    if len(category_ids) != len(categories):
        raise ValueError(f"categories: expected distinct names, got {list(categories)}")
    entries, annotations = [], []
    for image_id, image in enumerate(images, start=1):
        missing = {"file_name", "height", "width", "clouds"} - set(image)
        if missing:
            raise ValueError(f"images[{image_id - 1}]: missing keys {sorted(missing)}")
        shape = (int(image["height"]), int(image["width"]))
        if min(shape) < 1:
            raise ValueError(f"images[{image_id - 1}]: expected positive height and width, "
                             f"got {shape}")
        entries.append({"id": image_id, "file_name": str(image["file_name"]),
                        "height": shape[0], "width": shape[1]})
        for name, cloud in image["clouds"]:
            if name not in category_ids:
                raise ValueError(f"images[{image_id - 1}].clouds: class {name!r} is not one "
                                 f"of the categories {list(categories)}")
            annotations.append(_annotation(len(annotations) + 1, image_id, category_ids[name],
                                           cloud, shape))
    return {"info": {"description": "retroscope clouds: labelled atom-cloud frames"},
            "images": entries, "annotations": annotations,
            "categories": [{"id": i, "name": n} for n, i in category_ids.items()]}


def write_coco_json(path, dataset: dict, overwrite: bool = False) -> Path:
    """Write ``dataset`` as JSON to ``path`` atomically
    (:func:`~retroscope.io.atomic.atomic_write`), so a reader never sees a half-written file.
    Refuses an existing ``path`` unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"path: {path} exists; pass overwrite=True to replace it")
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(dataset), encoding="utf-8"))
    return path
