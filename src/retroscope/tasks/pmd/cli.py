"""``retroscope pmd ...``: the studies of the pmd task (entry-point group ``retroscope.cli``).

``retroscope pmd study sample-size|cep|one-d|alternatives|transfer|dictionary DATA ...
--out DIR``
trains and scores through the shared pipeline and writes ``DIR/<study>.json`` with the
paper's numbers beside ours (:mod:`retroscope.tasks.pmd.studies`).
``retroscope pmd interpolate DATA --n N --out DIR`` adds maps interpolated in the (R, I0)
plane between the training maps of DATA (Sec. II B; :mod:`retroscope.tasks.pmd.focal`).
Make the data sets with ``retroscope simulate pmd --config '{"preset": "fast", ...}'``
first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True, help="Tools of the pmd task (photoelectron maps).")
study = typer.Typer(no_args_is_help=True,
                    help="The paper's studies on our data: JSON and figures with its numbers.")
app.add_typer(study, name="study")
console = Console()

Out = Annotated[Path, typer.Option("--out", help="study folder (runs, JSON, figures)")]
Minutes = Annotated[float, typer.Option(help="training minutes per network")]


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise typer.BadParameter(f"--sizes takes comma-separated integers, got {text!r}")
    if not sizes or sizes[0] < 2:
        raise typer.BadParameter("--sizes needs training-set sizes of at least 2 maps")
    return sizes


def _print(result: dict) -> None:
    console.print_json(json.dumps({k: v for k, v in result.items() if k != "paper"},
                                  default=float))


@study.command("sample-size")
def sample_size(
    data: Annotated[Path, typer.Argument(help="dataset (CEP 0: the base set)")],
    out: Out,
    sizes: Annotated[str, typer.Option(help="training-set sizes")] = "250,500,1000",
    minutes: Minutes = 10.0,
    recipe: Annotated[Optional[str], typer.Option(help="paper: SGD as in Sec. II A")] = None,
    epochs: Annotated[Optional[int], typer.Option(
        help="epochs per network (default: as many as the minutes allow)")] = None,
) -> None:
    """MAE of R against the number of training maps, with the fit MAE(N) = a N^b + c."""
    from retroscope.tasks.pmd.studies import sample_size as run

    _print(run(data, out, _sizes(sizes), minutes, recipe, epochs=epochs))


@study.command("cep")
def cep(
    data: Annotated[Path, typer.Argument(help="dataset with random CEP")],
    out: Out,
    sizes: Annotated[str, typer.Option(help="training-set sizes")] = "500,1000,1500,2000",
    minutes: Minutes = 10.0,
    recipe: Annotated[Optional[str], typer.Option(help="paper: SGD as in Sec. II A")] = None,
    epochs: Annotated[Optional[int], typer.Option(
        help="epochs per network (default: as many as the minutes allow)")] = None,
) -> None:
    """Sec. III: the learning curve on maps of random CEP, beside the paper's fit."""
    from retroscope.tasks.pmd.studies import sample_size as run

    _print(run(data, out, _sizes(sizes), minutes, recipe, name="cep", epochs=epochs))


@study.command("one-d")
def one_d(
    data: Annotated[Path, typer.Argument(help="dataset")],
    out: Out,
    minutes: Minutes = 10.0,
) -> None:
    """Sec. III: R from dP/dk_x with a 1D CNN and a perceptron, beside the 2D network."""
    from retroscope.tasks.pmd.studies import one_d as run

    _print(run(data, out, minutes))


@study.command("alternatives")
def alternatives(
    data: Annotated[Path, typer.Argument(help="dataset (its train and test splits)")],
    out: Out,
    run: Annotated[Optional[Path], typer.Option(help="a trained run to score beside")] = None,
    methods: Annotated[str, typer.Option(help="comma-separated alternatives")] =
        "dc_mse,dc_sift,svm_hog,dt_hog,svm_sift",
    max_test: Annotated[Optional[int], typer.Option(help="score on this many test maps")] = None,
) -> None:
    """Sec. V: the classical methods on the same splits as the network."""
    from retroscope.tasks.pmd.studies import alternatives as study_run

    _print(study_run(data, out, run, [m.strip() for m in methods.split(",") if m.strip()],
                     max_test))


@study.command("transfer")
def transfer(
    base: Annotated[Path, typer.Argument(help="the base dataset the run was trained on")],
    run: Annotated[Path, typer.Argument(help="the run trained on the base set")],
    sets: Annotated[list[str], typer.Argument(help="NAME=DATASET for each Table I column")],
    out: Out,
    minutes: Minutes = 5.0,
    freeze: Annotated[int, typer.Option(help="leading conv blocks kept frozen")] = 3,
    lr: Annotated[float, typer.Option(help="learning rate of the transfer runs")] = 1e-3,
) -> None:
    """Table I: base network, transfer learning, a new network and the alternatives."""
    from retroscope.tasks.pmd.studies import transfer as study_run

    named = {}
    for entry in sets:
        name, sep, path = entry.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"sets are NAME=DATASET, got {entry!r}")
        named[name] = Path(path)
    _print(study_run(base, run, named, out, minutes, freeze, lr))


@study.command("dictionary")
def dictionary(
    data: Annotated[Path, typer.Argument(help="dataset (CEP 0, R in whole bohr bins)")],
    out: Out,
    minutes: Minutes = 10.0,
    per_cell: Annotated[int, typer.Option(help="maps per (R class, intensity third)")] = 3,
) -> None:
    """Sec. VI: classify by occlusion features vs Grad-CAM, LIME and random patches."""
    from retroscope.tasks.pmd.studies import dictionary as study_run

    _print(study_run(data, out, minutes, per_cell))


@app.command("interpolate")
def interpolate(
    data: Annotated[Path, typer.Argument(help="dataset, e.g. focal-volume averaged maps")],
    out: Annotated[Path, typer.Option("--out", help="new dataset of derived rows")],
    n: Annotated[int, typer.Option("--n", help="maps to interpolate")] = 500,
    seed: Annotated[int, typer.Option(help="seed of the random (R, I0) points")] = 0,
) -> None:
    """Maps interpolated between the training maps of DATA (Sec. II B): derived rows, only
    ever training data; merge them with DATA (`retroscope merge`)."""
    from retroscope.data.shards import DatasetError
    from retroscope.tasks.pmd.focal import interpolate_training_split

    try:
        manifest = interpolate_training_split(data, out, n, seed)
    except (DatasetError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1)
    console.print(f"{manifest.n} interpolated maps in {out} (derived rows: training only); "
                  f"merge them: retroscope merge {data} {out} --out MERGED")
