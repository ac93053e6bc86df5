"""``retroscope clouds ...``: tools of the clouds task (registered through the entry-point
group ``retroscope.cli``).

``retroscope clouds label SHOTS... --rois ROIS.json --out labels.json`` runs the paper's
labelling recipe (Hofer et al. 2021, Sec. 2) on real shots: from rough regions of interest
(drawn by hand, or the detections of a trained run with ``--run``), fit a 2D Gaussian in each
ROI expanded x2, redraw the ROI at the fitted 1/e^2 radii, refit, and write COCO-style JSON
(boxes, 1/e^2-ellipse masks as RLE, the Gaussian parameters) so a lab can label its own frames.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True, help="Tools of the clouds task (atom-cloud shots).")
console = Console()


def _rough_rois(rois_file: Path | None, run: Path | None, items) -> dict[str, list]:
    """label -> [(class, box xyxy in frame pixels)] from a JSON file or a trained run."""
    if rois_file is not None:
        raw = json.loads(Path(rois_file).read_text())
        out = {}
        for label, entries in raw.items():
            out[label] = [(e["class"], [float(v) for v in e["box"]]) for e in entries]
        return out
    from retroscope.learners.detection.predictor import DetectionPredictor
    from retroscope.tasks.clouds.lab import _bin

    predictor = DetectionPredictor(run)
    shape = predictor.input_shape[-2:]
    out = {}
    for label, _, od, _ in items:
        binned, factor = _bin(od, shape, "auto", label)
        objs = predictor.predict([binned])[0]
        out[label] = [(o["class"], [v * factor for v in o["box"]]) for o in objs]
    return out


@app.command()
def label(
    shots: Annotated[list[Path], typer.Argument(help="folders / frame files / HDF5 shots")],
    out: Annotated[Path, typer.Option("--out", help="COCO JSON to write")],
    rois: Annotated[Optional[Path], typer.Option(help="JSON: {shot label: [{class, box}]}")] = None,
    run: Annotated[Optional[Path], typer.Option(help="take rough ROIs from this trained run")] = None,
    settings: Annotated[Optional[Path], typer.Option(help="TOML/JSON reading settings")] = None,
    iterations: Annotated[int, typer.Option(help="fit-and-redraw rounds (paper: 2)")] = 2,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out")] = False,
) -> None:
    """Label real shots with the paper's fit-redraw-refit recipe; write COCO JSON."""
    from retroscope.infer.batch import load_settings
    from retroscope.tasks.clouds.fitting import label_clouds
    from retroscope.tasks.clouds.labels import coco_dataset, write_coco_json
    from retroscope.tasks.clouds.lab import check_settings, shot_inputs

    if (rois is None) == (run is None):
        raise typer.BadParameter("give exactly one of --rois and --run")
    if out.exists() and not overwrite:
        raise typer.BadParameter(f"{out} exists; use --overwrite")
    cfg = check_settings(load_settings(settings), str(settings))
    items, failures = shot_inputs(shots, cfg, None)
    rough = _rough_rois(rois, run, items)
    images = []
    for label, source, od, _ in items:
        entries = rough.get(label, [])
        fits = label_clouds(od, [box for _, box in entries], iterations=iterations)
        images.append({"file_name": source, "height": od.shape[0], "width": od.shape[1],
                       "clouds": [(name, g) for (name, _), g in zip(entries, fits)]})
        console.print(f"{label}: {len(fits)} cloud(s)")
    write_coco_json(out, coco_dataset(images), overwrite=overwrite)
    for label, reason in failures:
        console.print(f"[red]failed:[/] {label}: {reason}")
    console.print(f"{sum(len(i['clouds']) for i in images)} clouds in {len(images)} shots -> {out}")
    if failures:
        raise typer.Exit(1)
