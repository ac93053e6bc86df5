"""Every plot retroscope draws, rendered at small size from synthetic numbers: every visible
panel names both axes (units as words: "dimensionless", never "[1]"), every colour bar says what
it shows, tick labels do not collide, and no plot-writing function escapes this test."""

import ast
import types
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from retroscope.core.registry import get_task

SRC = Path(__file__).resolve().parents[1] / "src" / "retroscope"


@pytest.fixture
def saved(monkeypatch):
    """Every figure written during the test, in order."""
    figures = []
    original = Figure.savefig

    def record(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return figures


def _diffraction(tmp, rng):
    task = get_task("diffraction")
    true = task.space.sample_uniform(40, rng)
    pred = {"radius_nm": true["radius_nm"] + rng.normal(0, 3, 40),
            "orientation": task.space.sample_uniform(40, rng)["orientation"]}
    guess = task.reference_prediction(true, 40)
    task.plots(true, pred, tmp, task.metrics(true, pred), reference=task.metrics(true, guess))


def _crystal(tmp, rng):
    from retroscope.tasks.crystal.plots import outlier_gallery

    task = get_task("crystal")
    true = {"n_ca": rng.integers(30, 350, 60).astype(float)}
    pred = {"n_ca": true["n_ca"] * rng.normal(1, 0.05, 60)}
    task.plots(true, pred, tmp, task.metrics(true, pred))
    outlier_gallery(rng.random((8, 24, 16)), true["n_ca"][:8], pred["n_ca"][:8],
                    tmp / "outliers.png", n=4)


def _shared(tmp, rng):
    from retroscope import plots

    true = rng.uniform(-1, 1, (30, 2))
    pred = true + rng.normal(0, 0.1, (30, 2))
    plots.predicted_vs_true(true, pred, ["q_x", "radius_nm"], ["1", "nm"], tmp / "pvt.png",
                            low=pred - 0.3, high=pred + 0.3,
                            limits=np.array([[-1, 1], [0, np.inf]]))
    plots.error_histograms({"mean": rng.lognormal(0, 1, 50)}, tmp / "h.png", "error (%)",
                           unit="%", reference={"guessing": 20.0})
    curve = np.geomspace(30, 1, 10)
    plots.accuracy_vs_compute({"n_simulations": np.arange(1, 11) * 10, "median": curve,
                               "q05": curve / 2, "q95": curve * 2, "n_patterns": 2},
                              [{"n_simulations": 2000, "median": 5.0, "q05": 1.0, "q95": 20.0,
                                "label": "network", "n": 276}], tmp / "avc.png")
    plots.image_grid(rng.random((2, 16, 16)), ["a", "b"], tmp / "grid.png",
                     colorbar="intensity (counts)")


def _clouds(tmp, rng):
    from retroscope.learners.detection.evaluation import example_plot
    from retroscope.tasks.clouds.evaluation import PARAMETERS, rmse_bar_plot

    values = {p: float(v) for p, v in zip(PARAMETERS, rng.uniform(0.01, 0.5, len(PARAMETERS)))}
    comparison = {"clouds": 12, "rmse": {"mask": {"truth": values},
                                         "conventional": {"truth": values}},
                  "joint_fit": {"rmse": values}}
    rmse_bar_plot(comparison, tmp / "rmse.png")
    mask = np.zeros((32, 32), bool)
    mask[8:16, 10:20] = True
    obj = {"mask": mask, "box": [10, 8, 20, 16], "class": "MOT", "score": 0.9}
    example_plot(rng.random((2, 1, 32, 32)), [[obj, {**obj, "duplicate_of": 0}], []],
                 [[{"mask": mask}], []], tmp / "det.png", image_label="optical depth")


def _tuning(tmp, rng):
    from retroscope.train.tune import Hyperparameter, best_so_far_plot, slices_plot

    space = (Hyperparameter("lr", 1e-4, 1e-2, log=True), Hyperparameter("momentum", 0.8, 0.99))
    trials = [types.SimpleNamespace(params={"lr": 10 ** rng.uniform(-4, -2),
                                            "momentum": rng.uniform(0.8, 0.99)},
                                    value=float(rng.random())) for _ in range(8)]
    best_so_far_plot(np.array([t.value for t in trials]), tmp / "best.png")
    slices_plot(trials, space, trials[0].params, tmp / "slices.png", n=8)


def _explain(tmp, rng):
    from retroscope.explain.figure import attribution_plot

    attribution_plot(rng.random((1, 64, 32)), rng.normal(size=(64, 32)), tmp / "map.png",
                     title="spot.npy: occlusion attribution to x0_px",
                     attribution_label="x0_px attribution (encoded output)")
    attribution_plot(rng.random((2, 32, 96)), np.zeros((32, 96)), tmp / "flat.png")


def _classification(tmp, rng):
    from retroscope.learners.classification.evaluation import confusion_plot

    matrix = rng.integers(0, 30, (7, 7)) + np.diag(rng.integers(50, 100, 7))
    confusion_plot(matrix, np.arange(1.0, 9.0), "r_bohr", "bohr", tmp / "confusion.png",
                   title="test split, n = 900")
    confusion_plot(matrix[:3, :3], np.array([0.25, 0.5, 0.75, 1.0]), "fraction", "1",
                   tmp / "confusion_dimensionless.png")


def _pmd_studies(tmp, rng):
    from retroscope.tasks.pmd.studies import PAPER, _learning_curve, _table_figure

    rows = [{"n_train": n, "mae_r_bohr": 3 * n ** -0.5 + 0.1} for n in (100, 300, 900)]
    _learning_curve({"rows": rows, "fit": {"a": 3.0, "b": -0.5, "c": 0.1}}, tmp / "lc.png")
    _learning_curve({"rows": rows[:1]}, tmp / "one.png")
    columns = {name: {key: {"mae_r_bohr": float(v)} for key, v in
                      zip(("cnn", "cnn_tl", "new_cnn", "dc_mse"), rng.uniform(0.05, 3, 4))}
               for name in ("r_8_12", "heh", "elsewhere")}
    _table_figure({"columns": columns, "paper": PAPER["table_1"]}, tmp / "table.png")


def _explosion(tmp, rng):
    from retroscope.tasks.explosion import TASK, molecule

    _, pos = molecule("CH3CH2OH")
    tokens = np.zeros((3, 10, 5))
    tokens[:, :9, 0] = [6, 6, 8, 1, 1, 1, 1, 1, 1]
    tokens[:, :9, 1] = 1
    true = np.zeros((3, 10, 3))
    true[:, :9] = pos
    pred = true + rng.normal(scale=0.1, size=true.shape)
    TASK.plots({"tokens": tokens, "position": true}, {"tokens": tokens, "position": pred},
               tmp, {})
    from retroscope.tasks.explosion.explain import occlusion_plot

    occlusion_plot(rng.random((8, 9)), ["C", "C", "O"] + ["H"] * 6, list(range(8)),
                   tmp / "occlusion.png", title="events.csv::3")


def _live(tmp, rng):
    from retroscope.live.server import LiveState, history_png
    from retroscope.live.store import ResultStore

    store = ResultStore(tmp / "results.sqlite")
    for i, n in enumerate(300 * np.exp(-np.arange(8) / 4) + rng.normal(0, 5, 8)):
        store.add(f"shot_{i}.png", int(i * 60e9), 1, 0.0,
                  [{"n_ca": n, "n_ca_low": n - 10, "n_ca_high": n + 10, "ood": False}])
    history_png(LiveState(store, tmp, get_task("crystal"), ["n_ca", "ood"], "live"))


DRAWERS = {
    # what each drawer renders: the names of the functions that write a plot
    _diffraction: {"plots", "error_histograms"},
    _crystal: {"plots", "count_by_bin", "outlier_gallery"},
    _shared: {"predicted_vs_true", "error_histograms", "accuracy_vs_compute", "image_grid"},
    _clouds: {"rmse_bar_plot", "example_plot"},
    _tuning: {"best_so_far_plot", "slices_plot"},
    _explain: {"attribution_plot"},
    _classification: {"confusion_plot"},
    _pmd_studies: {"_learning_curve", "_table_figure"},
    _explosion: {"plots", "occlusion_plot"},
    _live: {"history_png"},
}


def _overlaps(boxes) -> bool:
    boxes = sorted(boxes, key=lambda b: b.x0)
    return any(a.x1 > b.x0 + 1 for a, b in zip(boxes, boxes[1:]))


def _check(fig) -> list[str]:
    problems = []
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    from matplotlib.text import Text

    texts = [t.get_text() for t in fig.findobj(Text)]
    problems += [f"'[1]' in {t!r}" for t in texts if "[1]" in t or t.endswith(" 1")]
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        colorbar = getattr(ax, "_colorbar", None)
        if colorbar is not None:
            if not (ax.get_ylabel() or ax.get_xlabel()):
                problems.append("a colour bar without a label")
            continue
        if ax.images and not ax.get_xticks().size:
            continue  # an image panel without axes: its title or the colour bar says it
        for which in ("x", "y"):
            if not getattr(ax, f"get_{which}label")():
                problems.append(f"an unlabelled {which} axis (panel {ax.get_title()!r})")
        ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels()
                 if t.get_visible() and t.get_text()]
        if _overlaps(ticks):
            problems.append(f"colliding x tick labels (panel {ax.get_ylabel()!r})")
    return problems


@pytest.mark.parametrize("draw", DRAWERS, ids=lambda f: f.__name__.strip("_"))
def test_every_panel_is_labelled(draw, saved, tmp_path):
    draw(tmp_path, np.random.default_rng(0))
    assert saved, "nothing was drawn"
    problems = {str(i): _check(fig) for i, fig in enumerate(saved)}
    assert not any(problems.values()), problems


def test_no_plot_escapes_this_test():
    """Every function under src/ that writes a figure (calls ``save`` or ``savefig``) is one
    a drawer above renders: a new plot must be added here to be checked."""
    covered = set().union(*DRAWERS.values()) | {"save"}
    writers = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                calls = {("." if isinstance(c.func, ast.Attribute) else "")
                         + (c.func.attr if isinstance(c.func, ast.Attribute) else
                            getattr(c.func, "id", "")) for c in ast.walk(node)
                         if isinstance(c, ast.Call)}
                if {"save", ".savefig"} & calls:  # retroscope.plots.save, Figure.savefig
                    writers.add(node.name)
    assert writers, "found no plot-writing functions"
    assert writers <= covered, f"plots not rendered by this test: {sorted(writers - covered)}"
