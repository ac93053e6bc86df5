"""Explanations of experimental files, written per input as ``<stem>_<method>.npy`` (the map,
float32, the network input's size) and ``<stem>_<method>.png`` (:func:`attribution_plot`).

Files are read exactly as ``retroscope predict`` reads them: the run's task reads and
preprocesses them (``Task.read_experimental``, with the settings file given and those a file
records) and the run turns them into network inputs of the shape it was trained on
(``Run.accept``). A file that cannot be read or has the wrong shape is reported by name with
the reason; every other input is still explained.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from retroscope.explain.figure import attribution_plot
from retroscope.explain.maps import target_network
from retroscope.explain.methods import METHODS, attribute_model
from retroscope.infer.batch import load_settings
from retroscope.io.atomic import atomic_write
from retroscope.runs import open_run


def explain_files(run: Path, files: list[Path], method: str = "occlusion",
                  out: Path = Path("explanations"), target: int | str | None = None,
                  settings: Path | None = None, device: str | None = None,
                  **options) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Attribution maps of ``target`` (default: the first target column) by ``method`` for
    every input in ``files``, written into ``out``; ``settings``: the task's preprocessing
    settings (TOML/JSON); ``options``: the method's own (:mod:`retroscope.explain.methods`).
    Returns the written (NPY, PNG) pairs and the failures [(label, reason)]."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    opened = open_run(Path(run))
    task = opened.task
    cfg = load_settings(settings)
    if cfg is not None:  # refused here, once, rather than once per file
        task.check_settings(dict(cfg), source=str(settings))
    model, column = target_network(opened, target, device)
    items, failures = task.read_experimental(files, cfg)
    inputs, kept, refused = opened.accept(items)
    written: list[tuple[Path, Path]] = []
    if inputs:
        x = np.stack(inputs).astype(np.float32)
        maps = attribute_model(model, x, method, **options)
        used: set[str] = set()
        for (label, source, _), image, attribution in zip(kept, x, maps):
            stem = unique(output_stem(label, source), used)
            npy = write_npy(Path(out) / f"{stem}_{method}.npy", attribution)
            png = attribution_plot(image, attribution, Path(out) / f"{stem}_{method}.png",
                                   title=f"{label}: {method} attribution to {column}",
                                   image_label=task.input_label,
                                   attribution_label=f"{column} attribution (encoded output)")
            written.append((npy, png))
    return written, failures + refused


def output_stem(label: str, source: str) -> str:
    """The file-name stem of an input's outputs: the source file's stem, then what the label
    adds to the file's name (a frame of a stack, "shots.h5[3]" -> "shots_3"), with anything
    but letters, digits, dots and dashes replaced by "_"."""
    path = Path(source)
    for prefix in (str(path), path.name):
        if label.startswith(prefix):
            label = label[len(prefix):]
            break
    extra = re.sub(r"[^\w.-]+", "_", label).strip("_.")
    return f"{path.stem}_{extra}" if extra else path.stem


def unique(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... when inputs of one call share it (files of the
    same name in different folders), so that no output overwrites another."""
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}-{k}"
    used.add(name)
    return name


def write_npy(path: Path, array: np.ndarray) -> Path:
    """``array`` as float32 NPY at ``path`` (folders created), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(array, dtype=np.float32))

    return atomic_write(path, write)
