"""Try training recipes for the diffraction task at a fixed budget of sample passes.

Used to choose the CPU defaults on a GPU machine: the same recipe (data size, epochs, batch,
model, augmentation) gives the same model on a GPU, only sooner. Simulates with a local
process pool (numpy MSFT), trains each variant, evaluates on the test split, prints JSON.

    python benchmarks/diffraction_recipe.py --n 24000 --epochs 22 --augment 0 0.5 --out /tmp/r
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24000)
    ap.add_argument("--epochs", type=int, default=22)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--augment", type=float, nargs="+", default=[0.0])
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--max-minutes", type=float, default=None)
    args = ap.parse_args()

    from retroscope.compute.campaign import generate
    from retroscope.compute.executors import ProcessPool
    from retroscope.core.registry import get_task
    from retroscope.evaluate.report import evaluate
    from retroscope.train.config import TrainConfig
    from retroscope.train.fit import train

    task = get_task("diffraction")
    data = args.data or args.out / "data"
    t0 = time.perf_counter()
    os.environ["CUDA_VISIBLE_DEVICES_SAVED"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # simulation workers: numpy MSFT on the CPU
    pool = ProcessPool(args.workers)
    try:
        generate(task, data, args.n, shard_size=250, seed=1, executor=pool, progress=False)
    finally:
        pool.close()
        os.environ["CUDA_VISIBLE_DEVICES"] = os.environ.pop("CUDA_VISIBLE_DEVICES_SAVED")
    results = {"n": args.n, "simulate_s": time.perf_counter() - t0, "variants": []}
    print(json.dumps(results), flush=True)
    for aug in args.augment:
        run = args.out / f"run-aug{aug}"
        cfg = TrainConfig(task="diffraction", data=str(data), model=args.model,
                          model_kwargs={"base_width": args.width, "stem": "imagenet"},
                          epochs=args.epochs, batch_size=args.batch, lr=args.lr, augment=aug,
                          num_workers=min(8, args.workers), patience=100,
                          max_minutes=args.max_minutes)
        summary = train(task, cfg, run, overwrite=True, progress=False)
        m = evaluate(run, data, "test", progress=False)
        tm = m["task_metrics"]
        row = {"augment": aug, "train_s": summary["train_seconds"],
               "epochs": summary["epochs_run"], "n_train": summary["n_train"],
               "median_mean_rel_error_percent": tm["mean_rel_error_percent"]["median"],
               "p90_mean_rel_error_percent": tm["mean_rel_error_percent"]["p90"],
               "median_orientation_error_deg": tm["orientation_error_deg"]["median"],
               "median_radius_error_nm": tm["radius_error_nm"]["median"],
               "coverage_mean": m["coverage_mean"], "ood_fraction": m["ood_fraction"]}
        results["variants"].append(row)
        print(json.dumps(row), flush=True)
    (args.out / "recipe.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
