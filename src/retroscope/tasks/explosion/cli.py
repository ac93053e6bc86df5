"""``retroscope explosion ...``: the experiments of the explosion task (entry-point group
``retroscope.cli``; :mod:`retroscope.tasks.explosion.studies`).

``retroscope explosion study missing-ions RUN DATA --out DIR`` scores a run on test events
with ions missed on purpose (and the momentum-conservation fill with a complete-event run);
``retroscope explosion study two-step CHEAP PRECISE --out DIR`` pretrains on cheap events,
fine-tunes on precise ones and compares with the precise ones alone.
``retroscope explosion explain RUN FILES --out DIR``: ion occlusion of every event. Make the data sets with
``retroscope simulate explosion --config '{"mode": "precise", ...}'`` first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True, help="Tools of the explosion task (ion momenta).")
study = typer.Typer(no_args_is_help=True, help="Two-step training and missed ions: JSON in --out.")
app.add_typer(study, name="study")
console = Console()

Out = Annotated[Path, typer.Option("--out", help="study folder (runs, JSON)")]


@study.command("missing-ions")
def missing_ions(
    run: Annotated[Path, typer.Argument(help="run trained with missed ions (--view)")],
    data: Annotated[Path, typer.Argument(help="dataset whose test split is scored")],
    out: Out,
    events: Annotated[int, typer.Option(help="test events per scenario (at most)")] = 600,
    complete_run: Annotated[Optional[Path], typer.Option(
        help="run trained on complete events, for the momentum-conservation fill")] = None,
    baseline: Annotated[int, typer.Option(
        help="events per scenario for the forward fit (0: none)")] = 0,
) -> None:
    """MAE of detected and missed atoms with 0, 1, 2 hydrogens or one heavy atom missed."""
    from retroscope.tasks.explosion.studies import missing_ions as study_run

    console.print_json(json.dumps(study_run(run, data, out, events, complete_run,
                                            baseline_n=baseline)))


@study.command("two-step")
def two_step(
    cheap: Annotated[Path, typer.Argument(help="dataset of cheap (instant-charging) events")],
    precise: Annotated[Path, typer.Argument(help="dataset of precise (charge-up) events")],
    out: Out,
    minutes: Annotated[float, typer.Option(help="pretraining minutes")] = 20.0,
    fine_tune_minutes: Annotated[Optional[float], typer.Option(
        help="fine-tuning minutes (default: as --minutes)")] = None,
    precise_events: Annotated[Optional[int], typer.Option(
        help="train on the first N precise training events only (the set-size ratio)")] = None,
) -> None:
    """Pretrain on cheap, fine-tune on precise, against precise alone (same test split)."""
    from retroscope.tasks.explosion.studies import two_step as study_run

    console.print_json(json.dumps(study_run(cheap, precise, out, minutes, fine_tune_minutes,
                                            precise_events=precise_events)))


@app.command()
def explain(
    run: Annotated[Path, typer.Argument(help="run directory")],
    files: Annotated[list[Path], typer.Argument(help="CSV or HDF5 event files")],
    out: Out,
    settings: Annotated[Optional[Path], typer.Option(help="TOML/JSON reading settings")] = None,
) -> None:
    """Ion occlusion: drop each detected ion, record every atom's shift (CSV, heat maps)."""
    from retroscope.infer.batch import load_settings
    from retroscope.tasks.explosion.explain import explain_events

    rows = explain_events(run, files, out, load_settings(settings))
    console.print(f"{len(rows)} rows in {out / 'occlusion.csv'}; heat maps in {out}")
