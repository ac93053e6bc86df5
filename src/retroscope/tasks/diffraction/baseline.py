"""The classical method: Monte-Carlo-simplex forward fitting of a scattering pattern.

As in Langbehn et al., PRL 121, 255301 (2018) and Stielow et al. (2020), Sec. 3 and Fig. 4b:
many optimisation trajectories start from random points of parameter space (radius uniform in
its range, orientation uniform in the fundamental domain); each runs the Nelder–Mead simplex
on the misfit between the measured pattern and a forward MSFT simulation, the simulator in the
loop. The answer is the best fit over all trajectories. Its accuracy is recorded against the
number of forward simulations spent, which is what the network is compared with.

Parametrisation of a trajectory: (radius / 100 nm, rotation vector in rad), so that the simplex
steps are of similar size in every direction. The misfit is the mean squared difference of the
network-scale log-intensity images over the unmasked detector.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from retroscope.tasks.diffraction import symmetry


@dataclass
class FitTrace:
    """The best-so-far parameters after every forward simulation of one fit."""

    radius_nm: list = field(default_factory=list)
    quat: list = field(default_factory=list)
    misfit: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_simulations(self) -> int:
        return len(self.misfit)


class SimplexFit:
    """Monte-Carlo simplex fit with ``n_starts`` trajectories of ``max_evals_per_start`` sims."""

    def __init__(self, task, n_starts: int = 50, max_evals_per_start: int = 200,
                 seed: int = 0) -> None:
        self.task = task
        self.n_starts = n_starts
        self.max_evals = max_evals_per_start
        self.seed = seed
        space = task.space
        self.r_low, self.r_high = space["radius_nm"].low, space["radius_nm"].high
        self.group = space["orientation"].group
        self.mask = task.detector_mask()

    def _render(self, radius_nm: float, quat) -> np.ndarray:
        params = {"radius_nm": np.array([radius_nm]), "orientation": np.asarray(quat)[None]}
        image = self.task.simulate(params, np.random.default_rng(0))[self.task.observable][0]
        return self.task.network_input(image)[0]

    def fit(self, image01: np.ndarray) -> FitTrace:
        """Fit one network-scale image (H, W) in [0, 1]; returns the best-so-far trace."""
        rng = np.random.default_rng(self.seed)
        target = np.asarray(image01, dtype=np.float64)[self.mask]
        trace = FitTrace()
        best = [np.inf, None, None]
        t0 = time.perf_counter()

        def misfit(x: np.ndarray) -> float:
            radius = 100.0 * x[0]
            rot = Rotation.from_rotvec(x[1:])
            penalty = 0.0
            if not self.r_low <= radius <= self.r_high:
                penalty = (min(abs(radius - self.r_low), abs(radius - self.r_high)) / 10.0) ** 2
                radius = float(np.clip(radius, self.r_low, self.r_high))
            q = rot.as_quat()
            value = float(np.mean((self._render(radius, q)[self.mask] - target) ** 2)) + penalty
            if value < best[0]:
                best[:] = [value, radius, q]
            trace.misfit.append(best[0])
            trace.radius_nm.append(best[1])
            trace.quat.append(best[2])
            return value

        for _ in range(self.n_starts):
            radius0 = rng.uniform(self.r_low, self.r_high)
            q0 = symmetry.sample_fundamental(1, rng, self.group)[0]
            x0 = np.concatenate([[radius0 / 100.0], Rotation.from_quat(q0).as_rotvec()])
            simplex = [x0] + [x0 + step for step in np.diag([0.15, 0.2, 0.2, 0.2])]
            minimize(misfit, x0, method="Nelder-Mead",
                     options={"maxfev": self.max_evals, "initial_simplex": np.array(simplex),
                              "xatol": 1e-4, "fatol": 1e-7})
        trace.seconds = time.perf_counter() - t0
        return trace

    def errors_along(self, trace: FitTrace, truth: dict, checkpoints: np.ndarray) -> np.ndarray:
        """Mean relative error (App. C, %) of the best-so-far fit at each checkpoint."""
        from retroscope.tasks.diffraction.targets import diffraction_errors

        idx = np.minimum(checkpoints, trace.n_simulations) - 1
        pred = {"radius_nm": np.asarray(trace.radius_nm)[idx],
                "orientation": np.asarray(trace.quat)[idx]}
        true = {k: np.repeat(np.asarray(v)[None], len(idx), axis=0) for k, v in truth.items()}
        return diffraction_errors(self.task.targets, true, pred)["mean_rel_error_percent"]

    def compare(self, observables, truth: dict, pred_record: dict, plot_dir: Path,
                progress: bool = True, network_sims: int | None = None,
                executor=None) -> dict:
        """Fit each observable and compare accuracy vs simulations with the network's errors.

        ``executor`` (see :mod:`retroscope.compute.executors`) runs the fits in parallel;
        by default they run one after the other in this process.
        """
        from rich.progress import Progress

        from retroscope.compute.executors import InProcess
        from retroscope.tasks.diffraction.targets import diffraction_errors

        checkpoints = self.checkpoints()
        kwargs = {"n_starts": self.n_starts, "max_evals_per_start": self.max_evals,
                  "seed": self.seed}
        jobs = [(self.task, kwargs, i, np.asarray(observables[i]),
                 {k: np.asarray(v)[i] for k, v in truth.items()}, checkpoints)
                for i in range(len(observables))]
        results = []
        with Progress(disable=not progress) as bar:
            tid = bar.add_task("simplex baseline", total=len(jobs))
            for result in (executor or InProcess()).map(fit_job, jobs):
                results.append(result)
                bar.advance(tid)
        results.sort(key=lambda r: r[0])
        summary = summarise_fits(results, checkpoints, kwargs)
        net = diffraction_errors(self.task.targets, truth, pred_record)["mean_rel_error_percent"]
        summary["network_median_mean_rel_error_percent"] = float(np.median(net))
        from retroscope.plots import accuracy_vs_compute

        summary["label"] = "simplex fit (median)"
        network = [{"n_simulations": network_sims or 1, "median": float(np.median(net)),
                    "q05": float(np.percentile(net, 5)), "q95": float(np.percentile(net, 95)),
                    "label": "network on the same patterns", "n": len(net)}]
        summary["plot"] = str(accuracy_vs_compute(summary, network,
                                                  Path(plot_dir) / "accuracy_vs_compute.png"))
        return summary

    def checkpoints(self) -> np.ndarray:
        """Simulation counts at which the best-so-far error is recorded (log-spaced)."""
        return np.unique(np.geomspace(1, self.n_starts * self.max_evals, 40).astype(int))


def fit_job(task, fit_kwargs: dict, index: int, observable: np.ndarray, truth_row: dict,
            checkpoints: np.ndarray):
    """Worker job: fit one stored pattern with ``task``'s simulator (the task object travels
    to the worker); returns (index, error curve, s/simulation, sims)."""
    fit = SimplexFit(task, **fit_kwargs)
    trace = fit.fit(task.network_input(observable)[0])
    curve = fit.errors_along(trace, truth_row, checkpoints)
    return index, curve, trace.seconds / max(trace.n_simulations, 1), trace.n_simulations


def summarise_fits(results, checkpoints: np.ndarray, fit_kwargs: dict) -> dict:
    """Median and 5-95% band of the best-so-far error over patterns, per simulation count."""
    curves = np.array([r[1] for r in results])
    return {
        "method": "Monte-Carlo simplex (Nelder-Mead), simulator in the loop",
        "n_patterns": len(results), "n_starts": fit_kwargs["n_starts"],
        "max_evals_per_start": fit_kwargs["max_evals_per_start"],
        "seconds_per_simulation": float(np.median([r[2] for r in results])),
        "simulations_per_fit": float(np.median([r[3] for r in results])),
        "n_simulations": np.asarray(checkpoints).tolist(),
        "median": np.median(curves, axis=0).tolist(),
        "q05": np.percentile(curves, 5, axis=0).tolist(),
        "q95": np.percentile(curves, 95, axis=0).tolist(),
        "final_median_mean_rel_error_percent": float(np.median(curves[:, -1])),
        "final_p90_mean_rel_error_percent": float(np.percentile(curves[:, -1], 90)),
    }
