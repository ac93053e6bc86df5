"""The crystal task's figures, as JSON (Allsopp et al. 2025 as the reference).

    python benchmarks/crystal.py                          # simulator and inference speed
    python benchmarks/crystal.py --run RUN --data DATA    # + accuracy, baseline, mixed, OOD

* simulator: median seconds of one crystal image (formation + thermal sampling + rendering)
  on one core, for N = 50 ... 1000 Ca+ ions (CCMD: several CPU-hours per image);
* inference: milliseconds per image, batched and one at a time, on this CPU;
* accuracy of a trained run on its test split (RMS and RMS-% error, per-bin statistics of
  Fig. 4, interval coverage, OOD fraction), the outlier gallery (Fig. 5);
* the iterative simulated-image-matching baseline on 20 test images next to the network;
* mixed Ca+/CaF+ and Ca+/ND3+ crystals (150-250 Ca+, 0-100 dark ions; Figs. 6-7) counted by
  the pure-Ca+ network; crystals at V = 400 V (outside the training box, Sec. III C): how
  many are flagged out of distribution and how far off the count is.
Writes benchmarks/results/crystal.json (or --out) and the plots next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def _machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def simulator_speed(sizes=(50, 100, 200, 300, 500, 1000), repeats=5) -> dict:
    """Median seconds per image on one core, per ion number (numba threads = 1)."""
    import numba

    from retroscope.core.registry import get_task

    numba.set_num_threads(1)
    task = get_task("crystal")
    params = {"v_rf": 250.0, "v_end": 2.5, "eta": 0.3, "temperature_mk": 10.0}
    rng = np.random.default_rng(0)
    task.simulate({"n_ca": np.array([20]), **{k: np.array([v]) for k, v in params.items()}},
                  rng)  # compile
    rows = []
    for n in sizes:
        times = []
        for _ in range(repeats if n <= 500 else max(1, repeats // 2)):
            p = {"n_ca": np.array([n]), **{k: np.array([v]) for k, v in params.items()}}
            t0 = time.perf_counter()
            task.simulate(p, rng)
            times.append(time.perf_counter() - t0)
        rows.append({"n_ions": n, "median_s": float(np.median(times)), "repeats": len(times)})
    by_n = {r["n_ions"]: r["median_s"] for r in rows}
    slope = float(np.polyfit(np.log([r["n_ions"] for r in rows]),
                             np.log([r["median_s"] for r in rows]), 1)[0])
    return {"operating_point": params, "trap": task.trap,
            "image": f"{task.imaging.shape[0]}x{task.imaging.shape[1]} px at "
                     f"{task.imaging.pixel_um} um/px", "per_n": rows,
            "n300_median_s": by_n.get(300), "loglog_slope": slope,
            "ccmd_reference": "several CPU-hours per image (paper, Sec. I B)"}


def inference_speed(run: Path | None, batch: int = 64, threads: int = 2) -> dict:
    """Milliseconds per image, batched and one at a time, from the camera frame: with a run,
    the whole prediction of ``Predictor.predict`` (brightness normalisation, the automatic
    crop to the crystal, the network averaged over the task's input flips, interval, OOD
    score); without, the crop and one forward pass of the untrained default network. The
    frames are simulated crystals of 50-350 ions with EMCCD noise."""
    import torch

    from retroscope.core.registry import get_task
    from retroscope.tasks.crystal.camera import EMCCD
    from retroscope.learners.regression.module import Network

    torch.set_num_threads(threads)
    task = get_task("crystal")
    rng = np.random.default_rng(0)
    n_ca = np.linspace(50, 350, 8).astype(int)
    params = {"n_ca": n_ca, "v_rf": np.full(8, 250.0), "v_end": np.full(8, 2.5),
              "eta": np.full(8, 0.3), "temperature_mk": np.full(8, 10.0)}
    clean = task.simulate(params, rng)["image"].astype(np.float32)
    camera, g = EMCCD(), torch.Generator().manual_seed(0)
    frames = []
    for k in range(batch):
        x = torch.from_numpy(task.network_input(clean[k % len(clean)]))
        frames.append(camera(x, g)[0].numpy())
    if run is not None:
        from retroscope.learners.regression.predictor import Predictor

        predictor = Predictor(run, device="cpu")
        config = json.loads((Path(run) / "config.json").read_text())
        model = f"{config['model']} {config['model_kwargs']}"
        flips = len(predictor.flips)
        task = predictor.task

        def call(xs):
            predictor.predict(xs, batch_size=batch)
    else:
        network = Network(task.model.name, task.model.kwargs, task.targets.dim).eval()
        model, flips = f"{task.model.name} {task.model.kwargs} (untrained)", 0

        def call(xs):
            x = np.stack([task.model_input(f) for f in xs])
            with torch.no_grad():
                network.forward_with_features(torch.from_numpy(x))
    call(frames)
    times_b, times_1, times_crop = [], [], []
    for _ in range(5):
        t0 = time.perf_counter()
        call(frames)
        times_b.append(time.perf_counter() - t0)
    for k in range(30):
        t0 = time.perf_counter()
        call(frames[k % batch:k % batch + 1])
        times_1.append(time.perf_counter() - t0)
    for k in range(30):
        t0 = time.perf_counter()
        task.model_input(frames[k % batch])
        times_crop.append(time.perf_counter() - t0)
    h, w = task.input_shape
    return {"ms_per_image_batched": 1e3 * float(np.median(times_b)) / batch, "batch": batch,
            "ms_single_image": 1e3 * float(np.median(times_1)),
            "ms_crop_and_normalise": 1e3 * float(np.median(times_crop)),
            "torch_threads": threads, "flipped_copies_averaged": flips,
            "model": f"{model}, {task.imaging.shape[0]}x{task.imaging.shape[1]} frame "
                     f"cropped to {h}x{w} input"}


def accuracy(run: Path, data: Path, out_dir: Path) -> dict:
    from retroscope.evaluate.report import evaluate

    metrics_path = run / "metrics.json"
    m = (json.loads(metrics_path.read_text()) if metrics_path.exists()
         else evaluate(run, data, "test", progress=False))
    summary = json.loads((run / "train_summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    s = m["task_summary"]["n_ca"]
    return {"n_train": summary["n_train"], "n_val": summary["n_val"],
            "epochs": summary["epochs_run"], "train_minutes": summary["train_seconds"] / 60,
            "device": summary["device"], "augment": config["augment"],
            "model": config["model"], "model_kwargs": config["model_kwargs"],
            "n_test": m["n"], "rms": s["rms"], "rms_percent": s["rms_percent"],
            "mean_abs_percent": s["mean_abs_percent"], "exact_fraction": s["exact_fraction"],
            "coverage_90": m["targets"]["n_ca"]["coverage"],
            "ood_fraction_test": m["ood_fraction"],
            "per_bin": [{k: r[k] for k in ("bin", "n", "mean_error", "std", "std_percent")}
                        for r in s["per_bin"]],
            "rms_percent_by_temperature": s.get("rms_percent_by_temperature"),
            "plots": m.get("plots", [])}


def _test_split(run: Path, data: Path, n: int | None = None):
    from retroscope.data.dataset import ShardDataset
    from retroscope.learners.regression.predictor import Predictor

    predictor = Predictor(run, device="cpu")
    ds = ShardDataset(data, predictor.task, "test", in_memory=True)
    idx = np.arange(len(ds) if n is None else min(n, len(ds)))
    obs = [ds.observable(int(i)) for i in idx]
    params = {k: np.asarray(v)[idx] for k, v in ds.params.items()}
    return predictor, obs, params


def outliers(run: Path, data: Path, out_dir: Path) -> dict:
    from retroscope.tasks.crystal.plots import outlier_gallery

    predictor, obs, params = _test_split(run, data)
    pred = predictor.predict(obs)
    images = [predictor.task.network_input(o)[0] for o in obs]
    path = outlier_gallery(images, params["n_ca"], pred.record["n_ca"],
                           out_dir / "crystal_outliers.png")
    return {"gallery": str(path)}


def baseline(run: Path, data: Path, n: int = 20) -> dict:
    from retroscope.tasks.crystal.baseline import ImageMatching

    predictor, obs, params = _test_split(run, data, n)
    t0 = time.perf_counter()
    pred = predictor.predict(obs, batch_size=1)
    net_s = (time.perf_counter() - t0) / len(obs)
    summary = json.loads((Path(run) / "train_summary.json").read_text())
    result = ImageMatching(predictor.task).compare(
        obs, params, pred.record, Path("."), progress=False,
        network_sims=int(summary["n_train"] + summary["n_val"]))
    result["network_seconds_per_image"] = net_s
    return result


def _simulated_set(task, composition_rows, seed: int) -> tuple[list, dict]:
    rng = np.random.default_rng(seed)
    obs = []
    for row in composition_rows:
        p = {k: np.array([v]) for k, v in row.items() if k not in ("dark", "n_dark")}
        t = task if row.get("dark") is None else task.with_config(dark=row["dark"])
        if row.get("dark") is not None:
            p["n_dark"] = np.array([row["n_dark"]])
        obs.append(t.simulate(p, rng)["image"][0])
    return obs, {k: np.array([r.get(k, 0) for r in composition_rows])
                 for k in ("n_ca", "n_dark")}


def mixed(run: Path, seed: int = 7) -> dict:
    """Figs. 6-7: 36 mixed crystals per dark species, 150-250 Ca+ and 0-100 dark ions, at
    random trap settings inside the training box, counted by the pure-Ca+ network."""
    from retroscope.learners.regression.predictor import Predictor

    predictor = Predictor(run, device="cpu")
    task = predictor.task
    rng = np.random.default_rng(seed)
    out = {}
    for dark in ("CaF+", "ND3+"):
        rows = []
        for n_ca in (150, 170, 190, 210, 230, 250):
            for n_dark in (0, 20, 40, 60, 80, 100):
                rows.append({"n_ca": n_ca, "n_dark": n_dark, "dark": dark,
                             "v_rf": rng.uniform(190, 280), "v_end": rng.uniform(1.8, 3.2),
                             "eta": rng.uniform(0.25, 0.34), "temperature_mk": 10.0})
        obs, truth = _simulated_set(task, rows, seed)
        pred = predictor.predict(obs).record["n_ca"]
        err = pred - truth["n_ca"]
        by_dark = {int(d): float(np.mean(err[truth["n_dark"] == d])) for d in np.unique(
            truth["n_dark"])}
        out[dark] = {"n_images": len(rows), "rms": float(np.sqrt(np.mean(err**2))),
                     "rms_percent": float(100 * np.sqrt(np.mean((err / truth["n_ca"]) ** 2))),
                     "mean_error_by_n_dark": by_dark,
                     "ood_fraction": float(np.mean(predictor.predict(obs).ood_flag)),
                     "paper_rms_percent": {"CaF+": 3.1, "ND3+": 11.0}[dark]}
    return out


def out_of_range(run: Path, seed: int = 8, n: int = 20) -> dict:
    """Sec. III C: V = 400 V lies outside the training box (170-300 V)."""
    from retroscope.learners.regression.predictor import Predictor

    predictor = Predictor(run, device="cpu")
    task = predictor.task.with_config(v_rf=(170.0, 400.0))
    rng = np.random.default_rng(seed)
    rows = [{"n_ca": int(rng.integers(100, 351)), "v_rf": 400.0,
             "v_end": float(rng.uniform(1.5, 3.5)), "eta": float(rng.uniform(0.24, 0.355)),
             "temperature_mk": 10.0} for _ in range(n)]
    obs, truth = _simulated_set(task, rows, seed)
    pred = predictor.predict(obs)
    inside_rows = [{**r, "v_rf": float(rng.uniform(170, 300))} for r in rows]
    obs_in, _ = _simulated_set(task, inside_rows, seed)
    pred_in = predictor.predict(obs_in)
    err = pred.record["n_ca"] - truth["n_ca"]
    return {"v_rf": 400.0, "n_images": n, "ood_fraction": float(np.mean(pred.ood_flag)),
            "ood_fraction_same_n_inside_box": float(np.mean(pred_in.ood_flag)),
            "mean_error": float(np.mean(err)),
            "rms_percent": float(100 * np.sqrt(np.mean((err / truth["n_ca"]) ** 2)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--out", type=Path, default=RESULTS / "crystal.json")
    ap.add_argument("--baseline-n", type=int, default=20)
    ap.add_argument("--skip", nargs="*", default=[],
                    help="parts to skip: simulator inference accuracy outliers baseline mixed ood")
    args = ap.parse_args()
    out_dir = args.out.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["machine"] = _machine()

    def step(name, fn):
        if name in args.skip:
            return
        t0 = time.perf_counter()
        result[name] = fn()
        result[name]["benchmark_seconds"] = time.perf_counter() - t0
        args.out.write_text(json.dumps(result, indent=2))  # after every part: nothing lost
        print(f"{name}: done in {time.perf_counter() - t0:.0f} s", flush=True)

    step("simulator", simulator_speed)
    step("inference", lambda: inference_speed(args.run))
    if args.run is not None:
        step("accuracy", lambda: accuracy(args.run, args.data, out_dir))
        step("outliers", lambda: outliers(args.run, args.data, out_dir))
        step("baseline", lambda: baseline(args.run, args.data, args.baseline_n))
        step("mixed", lambda: mixed(args.run))
        step("ood", lambda: out_of_range(args.run))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
