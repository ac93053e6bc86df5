"""The classical method: iterative simulated-image matching, automated.

Allsopp et al. (2025), Sec. I B: the ion number of a lab image is found by simulating crystals
at the known trap settings and adjusting the ion number (and, within bounds, the imperfectly
known trap parameters) until the simulated image matches the lab image; the paper's groups did
this by eye. Here the match is scored by the mean squared difference of the two images after
brightness normalisation and a Gaussian blur of ``smooth_px`` pixels (a near-degenerate crystal
structure should not beat the right envelope and density), and the ion number is searched
coarse to fine: a grid over the whole range, then finer grids around the best value, the
simulator in the loop at every step. Parameters the lab knows (by default V, U and eta; the
temperature is not known and set to 10 mK) are taken from the truth of each test image; ``search_eta`` adds a coarse search
of eta within its bounds at the best ion number, followed by a final refinement of N.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from retroscope.tasks.crystal.formation import DEFAULT_TEMPERATURE_MK
from retroscope.tasks.crystal.render import brightness_normalise


@dataclass
class MatchResult:
    n_ca: int
    eta: float
    misfit: float
    n_simulations: int
    seconds: float
    history: list = field(default_factory=list)  # (n_ca, eta, misfit) per simulation


class ImageMatching:
    """Coarse-to-fine search of the Ca+ number whose simulated image best matches an image.

    steps: the ion-number grid spacings, coarse to fine (each finer grid spans +-2 coarse
    steps around the best value so far); known: parameters taken from the image's metadata
    (the lab's trap settings); search_eta: number of eta values tried within its bounds.
    """

    def __init__(self, task, steps: tuple[int, ...] = (32, 8, 2, 1), smooth_px: float = 1.5,
                 known: tuple[str, ...] = ("v_rf", "v_end", "eta"),
                 search_eta: int = 0, seed: int = 0, max_sims: int | None = None) -> None:
        self.task = task
        self.steps = tuple(int(s) for s in steps)
        self.smooth_px = float(smooth_px)
        self.known = tuple(known)
        self.search_eta = int(search_eta)
        self.seed = seed
        self.max_sims = max_sims
        self.n_low, self.n_high = (int(v) for v in task.ranges["n_ca"])

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        x = brightness_normalise(np.asarray(image, dtype=np.float32))
        return gaussian_filter(x, self.smooth_px) if self.smooth_px > 0 else x

    def _simulate(self, n_ca: int, settings: dict) -> np.ndarray:
        params = {"n_ca": np.array([n_ca]), **{k: np.array([v]) for k, v in settings.items()}}
        rng = np.random.default_rng([self.seed, n_ca])
        return self.task.simulate(params, rng)["image"][0]

    def fit(self, image: np.ndarray, settings: dict) -> MatchResult:
        """Match one image (stored form, H x W) given the known trap ``settings``."""
        target = self._prepare(image)
        settings = {"v_rf": settings["v_rf"], "v_end": settings["v_end"],
                    "eta": settings.get("eta", float(np.mean(self.task.ranges["eta"]))),
                    "temperature_mk": settings.get("temperature_mk", DEFAULT_TEMPERATURE_MK)}
        cache: dict[tuple[int, float], float] = {}
        history = []
        t0 = time.perf_counter()

        def misfit(n: int, eta: float) -> float:
            key = (n, round(eta, 6))
            if key not in cache:
                if self.max_sims is not None and len(cache) >= self.max_sims:
                    return np.inf
                sim = self._prepare(self._simulate(n, {**settings, "eta": eta}))
                cache[key] = float(np.mean((sim - target) ** 2))
                history.append((n, eta, cache[key]))
            return cache[key]

        def refine_n(eta: float, best_n: int | None) -> int:
            lo, hi = self.n_low, self.n_high
            for i, step in enumerate(self.steps):
                if best_n is not None and i > 0:
                    prev = self.steps[i - 1]
                    lo = max(self.n_low, best_n - 2 * prev)
                    hi = min(self.n_high, best_n + 2 * prev)
                elif best_n is not None:  # coarse pass around a previous answer
                    lo = max(self.n_low, best_n - 2 * step)
                    hi = min(self.n_high, best_n + 2 * step)
                grid = np.unique(np.clip(np.arange(lo, hi + step, step), lo, hi)).astype(int)
                scores = [misfit(int(n), eta) for n in grid]
                best_n = int(grid[int(np.argmin(scores))])
            return best_n

        eta = settings["eta"]
        best_n = refine_n(eta, None)
        if self.search_eta > 1:
            etas = np.linspace(*self.task.ranges["eta"], self.search_eta)
            eta = float(etas[int(np.argmin([misfit(best_n, float(e)) for e in etas]))])
            best_n = refine_n(eta, best_n)
        return MatchResult(best_n, eta, cache[(best_n, round(eta, 6))], len(cache),
                           time.perf_counter() - t0, history)

    def compare(self, observables, truth: dict, pred_record: dict, plot_dir: Path,
                progress: bool = True, network_sims: int | None = None,
                executor=None) -> dict:
        """Match each observable; the errors and seconds per image next to the network's."""
        from rich.progress import Progress

        rows = []
        with Progress(disable=not progress) as bar:
            tid = bar.add_task("image matching", total=len(observables))
            for i, obs in enumerate(observables):
                settings = {k: float(np.asarray(truth[k])[i]) for k in self.known if k in truth}
                res = self.fit(np.asarray(obs), settings)
                rows.append({"true": int(np.asarray(truth["n_ca"])[i]), "matched": res.n_ca,
                             "network": float(np.asarray(pred_record["n_ca"])[i]),
                             "seconds": res.seconds, "simulations": res.n_simulations})
                bar.advance(tid)
        true = np.array([r["true"] for r in rows], dtype=np.float64)
        matched = np.array([r["matched"] for r in rows], dtype=np.float64)
        net = np.array([r["network"] for r in rows], dtype=np.float64)
        return {
            "method": "iterative simulated-image matching (coarse-to-fine grid over N, "
                      "simulator in the loop; known: " + ", ".join(self.known) + ")",
            "n_images": len(rows), "steps": list(self.steps), "smooth_px": self.smooth_px,
            "baseline_rms": float(np.sqrt(np.mean((matched - true) ** 2))),
            "baseline_rms_percent": float(100 * np.sqrt(np.mean(((matched - true) / true) ** 2))),
            "network_rms": float(np.sqrt(np.mean((net - true) ** 2))),
            "network_rms_percent": float(100 * np.sqrt(np.mean(((net - true) / true) ** 2))),
            "baseline_seconds_per_image": float(np.median([r["seconds"] for r in rows])),
            "baseline_simulations_per_image": float(np.median([r["simulations"] for r in rows])),
            "network_training_simulations": network_sims,
            "rows": rows,
        }
