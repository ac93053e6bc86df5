"""The diffraction task's figures, as JSON: simulator speed, inference speed, accuracy of a
trained run, and the network against the Monte-Carlo-simplex baseline (Stielow et al. Fig. 4b).

    python benchmarks/diffraction.py                       # speeds only
    python benchmarks/diffraction.py --run RUN --data DATA \
        --baseline-fits benchmarks/results/diffraction_baseline_fits.jsonl

Speeds are medians over repeated calls, measured in this run next to a reference measured in
the same run (the one-core forward simulation), so a busy machine shows up in both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def simulator_speed(n: int = 30) -> dict:
    """Median seconds of one 128 x 128 pattern (voxelise + MSFT) on one core."""
    import torch
    from scipy.spatial.transform import Rotation

    from retroscope.tasks.diffraction.msft import MSFTConfig, pattern
    from retroscope.tasks.diffraction.shapes import density

    torch.set_num_threads(1)
    cfg = MSFTConfig()
    rng = np.random.default_rng(0)
    radii, quats = rng.uniform(30, 160, n), Rotation.random(n, rng=rng).as_quat()
    pattern(density("icosahedron", 100.0, quats[0], cfg.grid), cfg)  # cache the geometry
    times = []
    for r, q in zip(radii, quats):
        t0 = time.perf_counter()
        pattern(density("icosahedron", r, q, cfg.grid), cfg)
        times.append(time.perf_counter() - t0)
    return {"pattern_median_s": float(np.median(times)), "n": n,
            "grid": f"{cfg.n_xy}x{cfg.n_xy} lateral x {cfg.n_z} slices, padded to {cfg.pad_to}",
            "density_voxels": cfg.n_xy * cfg.n_xy * cfg.n_z, "detector_px": cfg.detector_px,
            "paper_s": 2.5, "paper_machine": "hexa-core Intel Xeon E5"}


def inference_speed(run: Path | None, batch: int = 256, threads: int = 2) -> dict:
    """Median milliseconds per pattern of batched inference on the CPU."""
    import torch

    from retroscope.core.registry import get_task
    from retroscope.learners.regression.module import Network

    torch.set_num_threads(threads)
    if run is not None:
        from retroscope.learners.regression.predictor import Predictor

        network = Predictor(run, device="cpu").network
    else:
        task = get_task("diffraction")
        network = Network(task.model.name, task.model.kwargs, task.targets.dim).eval()
    x = torch.rand(batch, 1, 128, 128)
    with torch.no_grad():
        network.forward_with_features(x)
        seconds = _median_s(lambda: network.forward_with_features(x), 5)
    return {"ms_per_pattern": 1e3 * seconds / batch, "batch": batch, "torch_threads": threads,
            "model": "resnet18, base_width 32, 128x128 input, heteroscedastic head + features"}


def accuracy(run: Path, data: Path) -> dict:
    from retroscope.evaluate.report import evaluate

    metrics_path = run / "metrics.json"
    m = (json.loads(metrics_path.read_text()) if metrics_path.exists()
         else evaluate(run, data, "test", progress=False))
    summary = json.loads((run / "train_summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    tm = m["task_metrics"]
    return {
        "n_train": summary["n_train"], "n_val": summary["n_val"],
        "epochs": summary["epochs_run"], "train_minutes": summary["train_seconds"] / 60,
        "device": summary["device"], "augment": config["augment"],
        "n_test": m["n"],
        "median_mean_rel_error_percent": tm["mean_rel_error_percent"]["median"],
        "p90_mean_rel_error_percent": tm["mean_rel_error_percent"]["p90"],
        "median_max_rel_error_percent": tm["max_rel_error_percent"]["median"],
        "median_orientation_error_deg": tm["orientation_error_deg"]["median"],
        "p90_orientation_error_deg": tm["orientation_error_deg"]["p90"],
        "median_radius_error_nm": tm["radius_error_nm"]["median"],
        "coverage_90_mean": m["coverage_mean"],
        "coverage_90_per_target": {k: v["coverage"] for k, v in m["targets"].items()},
        "ood_fraction_test": m["ood_fraction"],
        "p05_mean_rel_error_percent": tm["mean_rel_error_percent"].get("p05"),
        "p95_mean_rel_error_percent": tm["mean_rel_error_percent"].get("p95"),
    }


def against_baseline(fits: Path, acc: dict, sim_s: float, infer_ms: float,
                     out_dir: Path) -> dict:
    """Accuracy per unit of compute, network vs Monte-Carlo simplex (Stielow Fig. 4b)."""
    from retroscope.core.registry import get_task
    from retroscope.plots import accuracy_vs_compute
    from retroscope.tasks.diffraction.baseline import SimplexFit, summarise_fits

    rows = [json.loads(line) for line in fits.read_text().splitlines() if line.strip()]
    starts = int(os.environ.get("BASELINE_STARTS", 40))
    evals = int(os.environ.get("BASELINE_EVALS", 150))
    checkpoints = SimplexFit(get_task("diffraction"), n_starts=starts,
                             max_evals_per_start=evals).checkpoints()
    base = summarise_fits([tuple(r) for r in rows], checkpoints,
                          {"n_starts": starts, "max_evals_per_start": evals})
    median = np.asarray(base["median"])
    reach = np.flatnonzero(median <= acc["median_mean_rel_error_percent"])
    sims_to_match = int(checkpoints[reach[0]]) if len(reach) else None
    train_sims = acc["n_train"] + acc["n_val"]
    train_equiv = acc["train_minutes"] * 60 / sim_s  # training time in simulations
    network = [{"n_simulations": train_sims, "training_simulations": train_equiv,
                "median": acc["median_mean_rel_error_percent"],
                "q05": acc["p05_mean_rel_error_percent"],
                "q95": acc["p95_mean_rel_error_percent"],
                "label": f"network ({acc['n_train']} patterns, {acc['train_minutes']:.0f} min)"}]
    plot = accuracy_vs_compute(base, network, out_dir / "diffraction_accuracy_vs_compute.png")
    rows_at = sorted({int(np.argmin(np.abs(checkpoints - c)))
                      for c in (10, 30, 100, 300, 1000, 3000, checkpoints[-1])})
    table = [{"simulations": int(checkpoints[i]), "baseline_median_percent": float(median[i]),
              "baseline_p95_percent": float(base["q95"][i]),
              "baseline_seconds_per_pattern": float(checkpoints[i] * sim_s)} for i in rows_at]
    cost_network = train_sims + train_equiv
    return {
        "baseline": {k: base[k] for k in ("n_patterns", "n_starts", "max_evals_per_start",
                                          "final_median_mean_rel_error_percent",
                                          "final_p90_mean_rel_error_percent")},
        "table": table,
        "network_median_percent": acc["median_mean_rel_error_percent"],
        "baseline_simulations_to_match_network": sims_to_match,
        "network_cost_in_simulations": cost_network,
        "break_even_patterns": (cost_network / sims_to_match) if sims_to_match else None,
        "network_seconds_per_pattern": infer_ms / 1e3,
        "plot": str(plot),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--baseline-fits", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor()}"}
    result["simulator"] = simulator_speed()
    result["inference"] = inference_speed(args.run)
    result["inference"]["speedup_vs_one_simulation"] = (
        result["simulator"]["pattern_median_s"] * 1e3 / result["inference"]["ms_per_pattern"])
    if args.run is not None:
        result["accuracy"] = accuracy(args.run, args.data)
        if args.baseline_fits is not None:
            result["vs_baseline"] = against_baseline(
                args.baseline_fits, result["accuracy"], result["simulator"]["pattern_median_s"],
                result["inference"]["ms_per_pattern"], args.out)
    text = json.dumps(result, indent=2)
    (args.out / "diffraction.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
