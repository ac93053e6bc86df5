"""Write files so that a reader never sees half of one.

Every file retroscope writes for later (a shard, a manifest, a run's JSON, a CSV of predictions,
a label file, a demo image) goes through :func:`atomic_write`: the content is written to a
temporary file next to the target, flushed to disk, and moved over the target with
``os.replace``, which is atomic on POSIX and Windows file systems. An interrupted or failed write
leaves the old file (or none) and no temporary file behind.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None],
                 fsync: bool = True) -> Path:
    """Create ``path`` by calling ``write(tmp)`` on a temporary path in the same directory,
    then ``os.replace(tmp, path)``. ``write`` may open ``tmp`` however it likes (text, HDF5,
    an image library). With ``fsync`` the data reach the disk before the rename, so that a
    power cut cannot leave an empty file under the final name. On any error the temporary
    file is removed and the error re-raised; ``path`` is untouched."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def json_default(obj):
    """``json.dumps`` fallback for numpy scalars and arrays and complex numbers ([re, im])."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, complex):
        return [obj.real, obj.imag]
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json_atomic(path: str | os.PathLike, payload, indent: int | None = 2) -> Path:
    """Write ``payload`` as JSON (numpy values converted) to ``path`` atomically."""
    text = json.dumps(payload, indent=indent, default=json_default) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
