"""The Monte-Carlo-simplex baseline on random test patterns: accuracy vs forward simulations.

Simulates ``--patterns`` icosahedra (seed 2, the same distribution as the training sets),
fits each with ``--starts`` Nelder-Mead trajectories of ``--evals`` simulations, in parallel
over patterns, and prints the JSON curve (median and 5-95% band of the mean relative error of
Stielow et al. App. C against the number of simulations), as in their Fig. 4b.

    python benchmarks/diffraction_baseline.py --patterns 16 --starts 30 --evals 100 --workers 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patterns", type=int, default=8)
    ap.add_argument("--starts", type=int, default=20)
    ap.add_argument("--evals", type=int, default=100)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--partial", type=Path, default=None, help="append each fit as JSON lines")
    args = ap.parse_args()
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # numpy MSFT in every worker

    from retroscope.compute.executors import ProcessPool
    from retroscope.core.registry import get_task
    from retroscope.tasks.diffraction.baseline import SimplexFit, fit_job, summarise_fits

    task = get_task("diffraction")
    truth = task.space.sample_uniform(args.patterns, np.random.default_rng(2))
    images = task.simulate(truth, None)["image"]
    fit = SimplexFit(task, n_starts=args.starts, max_evals_per_start=args.evals)
    kwargs = {"n_starts": args.starts, "max_evals_per_start": args.evals, "seed": 0}
    checkpoints = fit.checkpoints()
    jobs = [(task, kwargs, i, images[i], {k: v[i] for k, v in truth.items()},
             checkpoints) for i in range(args.patterns)]
    t0 = time.perf_counter()
    pool = ProcessPool(args.workers)
    try:
        results = []
        for r in pool.map(fit_job, jobs):
            results.append(r)
            if args.partial:
                with open(args.partial, "a") as f:
                    f.write(json.dumps([r[0], np.asarray(r[1]).tolist(), r[2], r[3]]) + "\n")
        results.sort(key=lambda r: r[0])
    finally:
        pool.close()
    summary = summarise_fits(results, checkpoints, kwargs)
    summary.update({"wall_s": time.perf_counter() - t0, "workers": args.workers,
                    "machine": f"{platform.machine()} {os.cpu_count()} cores",
                    "curves": [np.asarray(r[1]).tolist() for r in results]})
    text = json.dumps(summary, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
