"""``retroscope tune``: Bayesian optimisation of training hyperparameters, for any task.

What is searched is the task's space (``Task.tuning_space``, e.g. a paper's table) or else its
learner's; what is maximised is the learner's ``objective`` of each trial's training summary.

Hofer et al., Mach. Learn.: Sci. Technol. 2, 045008 (2021), Sec. 4: a Gaussian-process model
of the validation score over the hyperparameters, warm-started with five quasi-random (Sobol)
trials, then trials chosen by expected improvement. Here Optuna's ``GPSampler`` (Matérn-5/2
GP, log expected improvement, q-batch with running trials) after five scrambled Sobol points
(scipy) queued when the study is created. Each trial is a short training run (``TrainConfig`` with the trial's values and a
small budget) executed through the campaign executors (in-process, Dask LocalCluster or an
existing Dask scheduler), ``parallel`` trials at a time.

The study lives in ``OUT/study.journal`` (Optuna's journal file storage, safe for several
processes), or with ``storage`` in a database (Optuna's RDB storage: ``sqlite:///path.db``
on one machine, any SQLAlchemy URL such as ``postgresql://host/db`` for a cluster; the study
is named after the absolute path of ``OUT``). A tuning run that is stopped can be continued
with the same command: trials that were running when it stopped are marked failed and queued
again with the same values. One ``tune`` process drives a study (its trials run wherever the
executor sends them); two at once would re-queue each other's running trials.
Writes ``OUT/tuning.json`` (best values, every trial, the best-so-far trace) and the plots
``OUT/plots/best_so_far.png`` (the paper's Fig. 5g) and ``OUT/plots/slices.png`` (Fig. 5a-f:
2D slices of the GP's mean through the best point, trials overlaid).
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from retroscope.core.registry import learner_of
from retroscope.io.atomic import write_json_atomic

STUDY_FILE = "study.journal"


@dataclass(frozen=True)
class Hyperparameter:
    """One tuned ``TrainConfig`` field on [low, high] (log scale and integer as asked)."""

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def suggest(self, trial):
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def unit(self, value: np.ndarray) -> np.ndarray:
        """Map values onto [0, 1] (through the log for log-scaled parameters)."""
        v = np.log(value) if self.log else np.asarray(value, float)
        lo, hi = (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)
        return (v - lo) / (hi - lo)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        lo, hi = (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)
        v = lo + np.asarray(u) * (hi - lo)
        return np.exp(v) if self.log else v


def run_trial(task_name: str, cfg: dict, out: str) -> dict:
    """Worker job: train one configuration from scratch into ``out``; return its summary."""
    from retroscope.core.registry import get_task
    from retroscope.train.config import TrainConfig
    from retroscope.train.fit import train

    return train(get_task(task_name), TrainConfig(**cfg), Path(out), overwrite=True,
                 progress=False)


N_SOBOL = 5


def study_storage(out: Path, storage: str | None = None):
    """(Optuna storage, study name): the journal file in ``out``, or the database at the
    SQLAlchemy URL ``storage`` with the study named after ``out``'s absolute path."""
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if storage is None:
        return JournalStorage(JournalFileBackend(str(out / STUDY_FILE))), "retroscope"
    try:
        return RDBStorage(storage), f"retroscope:{Path(out).resolve()}"
    except Exception as exc:  # a bad URL, a missing driver, an unreachable server
        raise ValueError(f"study storage {storage!r}: {exc}") from exc


def _study(out: Path, seed: int, space: tuple[Hyperparameter, ...] | None = None,
           storage: str | None = None):
    """The study of ``out`` (created, or loaded to continue), in ``storage`` (see
    :func:`study_storage`). A new study gets the five Sobol points of the warm start queued
    at once, so a restarted run neither repeats nor skips them (a QMC sampler would restart
    its sequence with the process)."""
    import optuna
    from optuna.samplers import GPSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    backend, name = study_storage(out, storage)
    sampler = GPSampler(seed=seed, n_startup_trials=N_SOBOL, warn_independent_sampling=False)
    study = optuna.create_study(study_name=name, storage=backend, sampler=sampler,
                                direction="maximize", load_if_exists=True)
    if space and not study.get_trials(deepcopy=False):
        from scipy.stats import qmc

        points = qmc.Sobol(len(space), scramble=True, rng=np.random.default_rng(seed))
        # draw the next power of two (Sobol points balance only in such blocks) and keep the
        # first N_SOBOL of them
        for u in points.random_base2(math.ceil(math.log2(N_SOBOL)))[:N_SOBOL]:
            values = {}
            for h, v in zip(space, u):
                value = float(h.from_unit(v))
                values[h.name] = int(round(value)) if h.integer else value
            study.enqueue_trial(values)
    return study


def _requeue_interrupted(study) -> int:
    """Trials left running by an interrupted tuning run: mark failed, queue their values."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(t.params)
    return len(stale)


def tune(task, base, out: Path, n_trials: int = 12, parallel: int = 1, executor=None,
         space: tuple[Hyperparameter, ...] | None = None, seed: int = 0,
         console=None, storage: str | None = None) -> dict:
    """Run (or continue) a study until ``n_trials`` trials have completed.

    ``base`` is the ``TrainConfig`` of every trial (data, model, small budget: epochs,
    max_minutes, limit_train); the trial's values replace its fields named in ``space``.
    ``storage``: an SQLAlchemy URL of the study's database (default: a journal file in
    ``out``); trials, plots and ``tuning.json`` stay in ``out``.
    """
    from optuna.trial import TrialState

    from retroscope.compute.executors import InProcess

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    learner = learner_of(task)
    space = tuple(space or learner.tuning_space(task))
    fields = set(asdict(base))
    unknown = [h.name for h in space if h.name not in fields]
    if unknown:
        raise ValueError(f"tuned names {unknown} are not training settings ({sorted(fields)})")
    settings = {"task": task.name, "base": asdict(base), "space": [asdict(h) for h in space],
                "seed": seed}
    settings_file = out / "tuning_settings.json"
    if settings_file.exists():
        stored = json.loads(settings_file.read_text())
        if stored != json.loads(json.dumps(settings)):
            raise ValueError(f"{out} holds a study with other settings; use another --out")
    else:
        write_json_atomic(settings_file, settings)
    study = _study(out, seed, space, storage)
    requeued = _requeue_interrupted(study)
    if requeued and console:
        console.print(f"re-queued {requeued} trial(s) interrupted by the last run")
    executor = executor or InProcess()
    while True:
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if done >= n_trials:
            break
        trials = [study.ask() for _ in range(min(parallel, n_trials - done))]
        jobs = []
        for trial in trials:
            values = {h.name: h.suggest(trial) for h in space}
            trial_dir = out / "trials" / f"{trial.number:04d}"
            cfg = replace(base, **values)
            jobs.append((task.name, asdict(cfg), str(trial_dir)))
        by_dir = {job[2]: trial for job, trial in zip(jobs, trials)}
        for summary in executor.map(_run_trial_safely, jobs):
            trial = by_dir[summary["out"]]
            try:
                value = learner.objective(summary)
            except RuntimeError as exc:
                study.tell(trial, state=TrialState.FAIL)
                if console:
                    console.print(f"trial {trial.number} failed: {summary.get('error', exc)}")
                continue
            study.tell(trial, value)
            shutil.rmtree(Path(summary["out"]) / "checkpoints", ignore_errors=True)
            if console:
                console.print(f"trial {trial.number}: {value:.4f}  {trial.params}")
    return report(study, space, out, learner.objective_name)


def _run_trial_safely(task_name: str, cfg: dict, out: str) -> dict:
    try:
        summary = run_trial(task_name, cfg, out)
    except Exception as exc:  # a diverging trial is a failed trial, not a failed study
        return {"out": out, "error": f"{type(exc).__name__}: {exc}"}
    return {**summary, "out": out}


def report(study, space, out: Path, objective: str) -> dict:
    """tuning.json and the two plots from the completed trials of a study."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not trials:
        raise RuntimeError("no completed trials")
    trials = sorted(trials, key=lambda t: t.number)
    values = np.array([t.value for t in trials])
    best = trials[int(np.argmax(values))]
    result = {
        "objective": objective,
        "best_value": best.value, "best_params": best.params, "best_trial": best.number,
        "n_complete": len(trials),
        "n_failed": len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))),
        "trace_best_so_far": np.maximum.accumulate(values).tolist(),
        "trials": [{"number": t.number, "value": t.value, "params": t.params}
                   for t in trials],
    }
    plot_dir = out / "plots"
    plot_dir.mkdir(exist_ok=True)
    result["plots"] = [str(best_so_far_plot(values, plot_dir / "best_so_far.png")),
                       str(slices_plot(trials, space, best.params, plot_dir / "slices.png"))]
    write_json_atomic(out / "tuning.json", result)
    return result


def best_so_far_plot(values: np.ndarray, path: Path, n_startup: int = 5,
                     score: str = "validation score (dimensionless)") -> Path:
    """The best score so far against the trial number, Sobol warm start shaded (Fig. 5g)."""
    from retroscope.plots import figure, save

    fig, (ax,) = figure(1, 1, (4.5, 3.2))
    x = np.arange(1, len(values) + 1)
    ax.axvspan(0.5, min(n_startup, len(values)) + 0.5, color="0.85", label="Sobol warm start")
    ax.plot(x, values, "o", color="tab:red", ms=4, label="trial")
    ax.step(x, np.maximum.accumulate(values), where="post", color="k", label="best so far")
    ax.set_xlabel("trial number")
    ax.set_ylabel(score)
    ax.legend(fontsize=7)
    return save(fig, path)


def gp_posterior_mean(x: np.ndarray, y: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """Mean of a Matérn-5/2 GP on unit-cube inputs, length scale and noise chosen by the
    marginal likelihood over a small grid (for the slice plots only; the sampler has its
    own GP)."""
    mu, sd = y.mean(), y.std() + 1e-12
    t = (y - mu) / sd

    def kernel(a, b, ell):
        d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)) / ell
        return (1 + math.sqrt(5) * d + 5 / 3 * d ** 2) * np.exp(-math.sqrt(5) * d)

    best = None
    for ell in (0.1, 0.2, 0.35, 0.6, 1.0, 2.0):
        for noise in (1e-4, 1e-2, 1e-1):
            k = kernel(x, x, ell) + noise * np.eye(len(x))
            try:
                c = np.linalg.cholesky(k)
            except np.linalg.LinAlgError:
                continue
            alpha = np.linalg.solve(c.T, np.linalg.solve(c, t))
            lml = -0.5 * t @ alpha - np.log(np.diag(c)).sum()
            if best is None or lml > best[0]:
                best = (lml, ell, alpha)
    _, ell, alpha = best
    return mu + sd * kernel(xq, x, ell) @ alpha


def slices_plot(trials, space, best_params: dict, path: Path, n: int = 40,
                score: str = "validation score (dimensionless)") -> Path:
    """2D slices of the GP mean through the best point for every pair of hyperparameters,
    the first five (Sobol) trials as black squares, later trials as red dots growing with the
    trial number, the best as a star (the paper's Fig. 5a-f); colour bars show ``score``."""
    import itertools

    from matplotlib.lines import Line2D

    from retroscope.plots import figure, save

    names = [h.name for h in space]
    x = np.stack([[h.unit(t.params[h.name]) for h in space] for t in trials])
    y = np.array([t.value for t in trials])
    centre = np.array([h.unit(best_params[h.name]) for h in space])
    pairs = list(itertools.combinations(range(len(space)), 2))
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig, axes = figure(rows, cols, (3.6, 3.0))
    grid = np.linspace(0, 1, n)
    for ax, (i, j) in zip(axes, pairs):
        gi, gj = np.meshgrid(grid, grid, indexing="xy")
        q = np.tile(centre, (n * n, 1))
        q[:, i], q[:, j] = gi.ravel(), gj.ravel()
        mean = gp_posterior_mean(x, y, q).reshape(n, n) if len(y) > 1 else np.full((n, n), y[0])
        xi, xj = space[i].from_unit(grid), space[j].from_unit(grid)
        im = ax.pcolormesh(xi, xj, mean, shading="auto", cmap="viridis")
        fig.colorbar(im, ax=ax, fraction=0.046).set_label(f"GP mean of the {score}",
                                                          fontsize=7)
        pi, pj = space[i].from_unit(x[:, i]), space[j].from_unit(x[:, j])
        ax.scatter(pi[:5], pj[:5], marker="s", c="k", s=18)
        ax.scatter(pi[5:], pj[5:], c="tab:red", s=8 + 4 * np.arange(len(pi[5:])),
                   edgecolors="w", linewidths=0.5)
        ax.scatter([space[i].from_unit(centre[i])], [space[j].from_unit(centre[j])],
                   marker="*", c="yellow", s=120, edgecolors="k")
        for axis, h in (("x", space[i]), ("y", space[j])):
            if h.log:
                getattr(ax, f"set_{axis}scale")("log")
        ax.set_xlabel(f"{names[i]} (hyperparameter)")
        ax.set_ylabel(f"{names[j]} (hyperparameter)")
    for ax in axes[len(pairs):]:
        ax.set_axis_off()
    fig.legend(handles=[
        Line2D([], [], ls="none", marker="s", color="k"),
        Line2D([], [], ls="none", marker="o", color="tab:red"),
        Line2D([], [], ls="none", marker="*", color="yellow", mec="k", ms=10)],
        labels=["Sobol warm start", "GP-proposed trial (larger: later)", "best trial"],
        loc="outside lower center", ncols=3, fontsize=8)
    return save(fig, path)
