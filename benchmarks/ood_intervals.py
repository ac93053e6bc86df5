"""How a regression run's intervals behave where its OOD flag is raised, as JSON.

    python benchmarks/ood_intervals.py --run RUN --data DATA [--n 48] [--radius 165 230]

Three sets, all with their truth known:

* the run's own test split (in distribution): coverage of the calibrated intervals on the
  unflagged and on the flagged inputs;
* diffraction patterns of clusters larger than the training range (``--radius``, nm; the
  simulator and everything else unchanged), simulated here: how many are flagged, how many
  answers are marked ``out_of_range``, and how often the stated interval holds the truth;
* the same patterns read with a wrong scale (linear intensities read as log10), the trap a
  user falls into with an unlabelled file.

A calibrated interval promises its coverage only on inputs like the validation split; this
measures what it does elsewhere, so the README can say it.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np


def coverage(pred, targets, truth: dict, mask: np.ndarray) -> dict:
    """Fraction of each target's interval holding the (symmetry-aligned) truth on ``mask``,
    and the median interval half-width there, in the target's unit."""
    inside = pred.covers(targets, truth)
    if not mask.any():
        return {"n": 0}
    return {"n": int(mask.sum()),
            "coverage": {c: float(inside[mask, j].mean()) for j, c in enumerate(targets.columns)},
            "median_half_width": {c: float(np.median(pred.half_width[mask, j]))
                                  for j, c in enumerate(targets.columns)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--radius", type=float, nargs=2, default=(165.0, 230.0))
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    from retroscope.data.dataset import ShardDataset
    from retroscope.learners.regression.predictor import Predictor, out_of_range

    predictor = Predictor(args.run, device="cpu")
    task = predictor.task
    targets = task.targets
    out: dict = {"run": str(args.run), "machine": f"{platform.machine()}, "
                 f"{platform.processor() or 'cpu'}", "nominal": predictor.calibrator.level}

    test = ShardDataset(args.data, task, "test", in_memory=True)
    x = np.stack([test[i][0].numpy() for i in range(len(test))])
    pred = predictor.predict_inputs(x)
    out["test"] = {"flagged_fraction": float(pred.ood_flag.mean()),
                   "unflagged": coverage(pred, targets, test.params, ~pred.ood_flag),
                   "flagged": coverage(pred, targets, test.params, pred.ood_flag)}
    test.close()

    rng = np.random.default_rng(args.seed)
    larger = task.with_config(radius_nm=tuple(args.radius))
    params = larger.space.sample_uniform(args.n, rng)
    stored = larger.simulate(params, rng)[task.observable]
    for name, observables in (
            ("larger_clusters", [np.asarray(s, np.float32) for s in stored]),
            ("wrong_scale", [task.preprocess(10.0 ** np.asarray(s, np.float64),
                                             {"scale": "log10"}) for s in stored])):
        pred = predictor.predict(observables)
        ranges = [out_of_range(task.space, pred.columns, v) for v in pred.value]
        flagged = pred.ood_flag
        out[name] = {
            "n": args.n, "true_radius_nm": list(args.radius),
            "flagged_fraction": float(flagged.mean()),
            "out_of_range_fraction": float(np.mean([bool(r) for r in ranges])),
            "flagged_or_out_of_range_fraction": float(np.mean(
                [bool(r) or bool(f) for r, f in zip(ranges, flagged)])),
            "median_radius_nm": float(np.median(pred.record["radius_nm"])),
            "flagged": coverage(pred, targets, params, flagged),
            "unflagged": coverage(pred, targets, params, ~flagged)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
