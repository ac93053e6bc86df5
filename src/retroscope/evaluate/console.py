"""What the command line and the demo print: metrics as the run's learner reports them, and
tables of prediction rows."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_metrics(console: Console, learner, metrics: dict) -> None:
    """Print ``metrics`` the way ``learner`` reports them."""
    for item in learner.report(metrics):
        console.print(item)


#: the mark of an interval that is not calibrated (its input is flagged out of distribution)
UNCALIBRATED = "*"
#: CSV columns shown inside another one's cell, never as their own
_SUFFIXES = ("_low", "_high", "_calibrated")


def _cell(row: dict, column: str) -> str:
    value = row.get(column, "")
    if not isinstance(value, float):
        return str(value)
    text = f"{value:.4g}"
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    if isinstance(low, float) and isinstance(high, float):
        text += f" [{low:.4g}, {high:.4g}]"
        if row.get(f"{column}_calibrated") is False:
            text += UNCALIBRATED
    return text


def rows_table(rows: list[dict], title: str, skip=("file",),
               columns: list[str] | None = None) -> Table:
    """A table of result rows: the input and ``columns`` (default: every column of any row
    except ``skip``); a value with an interval (columns ``*_low``, ``*_high``, kept apart in
    the CSV) shows it in brackets, marked ``*`` where the row says it is not calibrated
    (``*_calibrated`` False: an out-of-distribution input), with a caption saying so;
    floats to 4 significant digits."""
    present = list(dict.fromkeys(k for row in rows for k in row))
    if columns is None:
        columns = [k for k in present if k not in skip and not k.endswith(_SUFFIXES)]
    else:
        columns = ["input"] + [c for c in columns if c in present and c != "input"]
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    cells = [[_cell(row, c) for c in columns] for row in rows]
    for line in cells:
        table.add_row(*line)
    if any(cell.endswith(UNCALIBRATED) for line in cells for cell in line):
        table.caption = (f"{UNCALIBRATED} input flagged out of distribution: the interval is "
                         f"calibrated only on inputs like the training data; do not read it as "
                         f"a measurement error")
    return table


def print_failures(console: Console, failures: list[tuple[str, str]]) -> None:
    """One line per input that could not be answered, with the reason."""
    for label, reason in failures:
        # a reader's error already starts with the file it names
        text = reason if reason.startswith(label) else f"{label}: {reason}"
        console.print(f"[red]failed:[/] {text}")
