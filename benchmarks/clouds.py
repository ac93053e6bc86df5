"""The clouds task's figures, as JSON (Hofer et al. 2021 as the reference).

    python benchmarks/clouds.py --run RUN --data DATA [--tuning STUDY] [--out FILE]
        [--compare-runs RUN ...] [--skip STEP ...]

* accuracy of a trained run on its test split: COCO box and mask mAP (0.50:0.95, AP50, AP75,
  per class) of the network's detections and of the refined ones (joint fit), recall,
  interval coverage; Gaussian parameters from the masks (and from the joint fit) against the
  conventional ROI moments (RMSE per parameter, Fig. 7h) and seeded against unseeded 2D fits;
* mask paste: the network's own masks on 600 test shots pasted into the frame by
  torchvision's legacy recipe and by retroscope's exact inverse of the training geometry
  (:mod:`retroscope.models.mask_paste`), same weights, same run: COCO mask mAP and the bias
  of the masks' centres and widths;
* mask moments by training length (``--compare-runs``): the masks' own Gaussian parameters
  against the conventional ROI moments (RMSE ratio, in all and apart for isolated and
  overlapping clouds) for several runs on the same 600 test shots, to see what more training
  of the network buys;
* inference: milliseconds per 256x256 OD frame on this CPU (binning to the network's size,
  Mask R-CNN, mask moments and intervals; and with the joint fit of all clouds seeded by the
  masks), one frame at a time, median of 30;
* real frames (../shared/data/clouds/probe-reconstruction, if present): OD from the triplets,
  the OD noise in atom-free regions with and without fringe removal, and what the run finds
  per frame (count of distinct objects, class, score, calibrated confidence, repeats, whether
  the joint fit confirmed it, whether the shape is unlike the training clouds);
* a tuning study's result (``--tuning``): trials, best value and parameters.
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
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "clouds" / "probe-reconstruction"


def _machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def accuracy(run: Path, data: Path) -> dict:
    from retroscope.learners.detection.evaluation import evaluate_detection

    return evaluate_detection(run, data, "test", out=RESULTS / "clouds_run")


def _test_shots(task, data: Path, n: int):
    """The first ``n`` test shots of ``data``: OD images, label rows, true objects."""
    from retroscope.data.dataset import ShardDataset

    dataset = ShardDataset(data, task, "test", in_memory=True, limit=n)
    images = [dataset[i][0].numpy() for i in range(len(dataset))]
    labels = [dataset.labels_row(i) for i in range(len(dataset))]
    truths = [task.true_objects(label, image) for label, image in zip(labels, images)]
    return images, labels, truths


def mask_paste(run: Path, data: Path, n: int = 600) -> dict:
    """Network-only masks with torchvision's paste and with the exact one (same weights);
    torchvision's paste assumes its own mask targets, so a run trained on centred targets
    gets the exact paste only."""
    import torch
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    from retroscope.learners.detection.coco import detection_map
    from retroscope.learners.detection.evaluation import match_all
    from retroscope.learners.detection.module import run_detector
    from retroscope.learners.detection.predictor import DetectionPredictor

    predictor = DetectionPredictor(run, device="cpu", refine=False)
    task, exact = predictor.task, predictor.model.transform
    images, labels, truths = _test_shots(task, data, n)
    targets = [{k: torch.as_tensor(v) for k, v in task.detection_target(label).items()}
               for label in labels]
    legacy = GeneralizedRCNNTransform(exact.min_size, exact.max_size, exact.image_mean,
                                      exact.image_std, size_divisible=exact.size_divisible,
                                      fixed_size=exact.fixed_size)
    out = {"shots": len(images)}
    pastes = [("exact", exact)]
    if getattr(exact, "mask_targets", "roi_align") == "roi_align":
        pastes.insert(0, ("torchvision", legacy))
    for name, transform in pastes:
        predictor.model.transform = transform
        dets = run_detector(predictor.model, images, 8, "cpu")
        preds = [{"boxes": torch.as_tensor(d["boxes"]), "scores": torch.as_tensor(d["scores"]),
                  "labels": torch.as_tensor(d["labels"]).long(),
                  "masks": torch.as_tensor(d["masks"] >= 0.5)} for d in dets]
        coco = detection_map(preds, targets, class_names=task.classes)
        objects = predictor.describe(images, dets, refine=False)
        shifts = []
        for truth, objs, pairs in zip(truths, objects, match_all(objects, truths,
                                                                  images[0].shape[1:])):
            for p, q, _ in pairs:
                if truth[q]["class"] in ("MOT", "ODT") and np.isfinite(objs[p]["wx"]):
                    g = truth[q]["gaussian"]
                    shifts.append((objs[p]["x0"] - g.x0, objs[p]["y0"] - g.y0,
                                   objs[p]["wx"] - g.wx, objs[p]["wy"] - g.wy))
        median = np.median(shifts, axis=0) if shifts else [None] * 4
        out[name] = {"mask_map": float(coco["mask_map"]),
                     "mask_map_75": float(coco["mask_map_75"]),
                     "box_map": float(coco["box_map"]), "thermal_clouds": len(shifts),
                     "median_error_px": dict(zip(("x0", "y0", "wx", "wy"),
                                                 map(float, median)))}
    predictor.model.transform = exact
    return out


def mask_moments_by_run(runs: list[Path], data: Path, n: int = 600) -> dict:
    """The masks' own Gaussian parameters (network only, no joint fit) against the
    conventional ROI moments, per run, on the same first ``n`` test shots of ``data``."""
    from retroscope.learners.detection.evaluation import match_all
    from retroscope.learners.detection.module import run_detector
    from retroscope.learners.detection.predictor import DetectionPredictor
    from retroscope.tasks.clouds.evaluation import gaussian_comparison

    out = {"shots": None, "runs": []}
    for run in runs:
        predictor = DetectionPredictor(run, device="cpu", refine=False)
        images, _, truths = _test_shots(predictor.task, data, n)
        objects = predictor.describe(images, run_detector(predictor.model, images, 8, "cpu"),
                                     refine=False)
        matches = match_all(objects, truths, images[0].shape[1:])
        comparison = gaussian_comparison(images, truths, objects, matches, max_fits=0)
        summary = json.loads((run / "train_summary.json").read_text())
        out["shots"] = len(images)
        out["runs"].append({
            "run": str(run), "train_minutes": summary["train_seconds"] / 60,
            "epochs_run": summary["epochs_run"], "thermal_clouds": comparison["clouds"],
            "mask_over_conventional": comparison["mask_over_conventional"]["truth"],
            "by_overlap": {name: {"clouds": sub["clouds"],
                                  "mask_over_conventional": sub["mask_over_conventional"]}
                           for name, sub in comparison["by_overlap"].items()}})
    return out


def inference_speed(run: Path, data: Path, n: int = 30) -> dict:
    """A 256x256 frame (the test split's frames upsampled x2, as a finer camera would see the
    same clouds) through binning, the network and the per-object description, with the masks'
    own parameters and with the joint fit (refined), one frame at a time."""
    from retroscope.data.dataset import ShardDataset
    from retroscope.learners.detection.predictor import DetectionPredictor
    from retroscope.tasks.clouds.lab import _bin

    predictor = DetectionPredictor(run, device="cpu")
    shape = predictor.input_shape[-2:]
    dataset = ShardDataset(data, predictor.task, "test", in_memory=True)
    frames = [np.kron(dataset.observable(i), np.ones((2, 2), np.float32))
              for i in range(min(n, len(dataset)))]
    predictor.predict([_bin(frames[0], shape, "auto", "warm-up")[0]])
    out = {"frame": f"{frames[0].shape[0]}x{frames[0].shape[1]} binned to "
                    f"{shape[0]}x{shape[1]}", "frames": len(frames), "target_ms": 300}
    modes = [("masks", False)] + ([("refined", True)] if predictor.refine else [])
    for name, refine in modes:
        predictor.refine = refine
        times = []
        for frame in frames:
            t0 = time.perf_counter()
            binned, _ = _bin(frame, shape, "auto", "frame")
            predictor.predict([binned])
            times.append(time.perf_counter() - t0)
        out[name] = {"ms_per_frame_median": 1e3 * float(np.median(times)),
                     "ms_per_frame_p90": 1e3 * float(np.percentile(times, 90))}
    return out


def ring_photometry(shots, ods, template_frames: int = 3) -> dict:
    """How much ring each frame holds (:mod:`retroscope.tasks.clouds.photometry`): the mean
    fringe-removed OD inside the ring of the last ``template_frames`` frames minus that of the
    same area shifted to the 56 places of a 50-px grid at least 150 px away, and the spread of
    those (the noise of such a mean, fringes included)."""
    from retroscope.tasks.clouds.photometry import template_photometry, template_region

    ring = template_region(ods[-template_frames:])
    rows, cols = np.nonzero(ring)
    out = []
    for shot, od in zip(shots, ods):
        p = template_photometry(od, ring)
        out.append({"shot": shot.id, "ring_minus_away": p["excess"],
                    "spread_away": p["spread"], "significance": p["significance"]})
    return {"ring_pixels": int(ring.sum()),
            "ring_extent_px": [int(cols.min()), int(rows.min()), int(cols.max()),
                               int(rows.max())], "per_shot": out}


def real_frames(run: Path | None) -> dict:
    from retroscope.tasks.clouds.fringes import atom_free_mask, od_with_fringe_removal
    from retroscope.tasks.clouds.optical_depth import optical_depth
    from retroscope.tasks.clouds.shots import find_triplets, load_shot

    if not REAL.is_dir():
        return {"available": False, "reason": f"{REAL} absent"}
    shots, problems = find_triplets(REAL)
    frames = [load_shot(s) for s in shots]
    rows, cleaned_ods = [], []
    for k, f in enumerate(frames):
        own, _ = optical_depth(**f)
        free = atom_free_mask(own)
        others = np.stack([g["probe"] for j, g in enumerate(frames) if j != k])
        cleaned, _ = od_with_fringe_removal(f["atoms"], others, f["dark"], free)
        cleaned_ods.append(cleaned)
        rows.append({"shot": shots[k].id, "od_p999": float(np.percentile(own, 99.9)),
                     "atom_free_fraction": float(free.mean()),
                     "od_std_free": float(own[free].std()),
                     "od_std_free_fringe_removed": float(cleaned[free].std())})
    factors = [r["od_std_free"] / r["od_std_free_fringe_removed"] for r in rows]
    out = {"available": True, "shots": len(shots), "problems": problems,
           "fringe_removal": "leave-one-out least squares (Ockeloen 2010), 11 probe frames",
           "od_noise_reduction_mean": float(np.mean(factors)),
           "od_noise_reduction_range": [float(min(factors)), float(max(factors))],
           "per_shot": rows, "ring_photometry": ring_photometry(shots, cleaned_ods)}
    if run is not None:
        from retroscope.infer.batch import predict_files

        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            settings = Path(tmp) / "real.json"
            settings.write_text(json.dumps({"fringe_removal": True}))
            objs, failures = predict_files(run, [REAL], settings=settings)
        per_frame = {}
        for row in objs:
            per_frame.setdefault(row["input"], []).append(row)
        counts = [rows_[0]["n_objects"] for rows_ in per_frame.values()]  # repeats not counted
        found = [r for r in objs if r["n_objects"] and r["duplicate_of"] < 0]
        confident = [r for r in found if r["confidence"] >= 0.5]
        out["detections"] = {
            "frames": len(per_frame), "failures": failures,
            "objects_per_frame": counts,
            "frames_with_exactly_one": int(sum(c == 1 for c in counts)),
            "confident_objects_per_frame": [
                sum(r["confidence"] >= 0.5 for r in rows_ if r["n_objects"]
                    and r["duplicate_of"] < 0) for rows_ in per_frame.values()],
            "confident_gaussian_class_objects": sum(r["class"] != "other" for r in confident),
            "objects": [{k: r.get(k) for k in ("input", "class", "score", "confidence",
                                                "duplicate_of", "refined", "shape_score",
                                                "unlike_training", "x0", "y0", "wx", "wy")}
                        for r in objs if r["n_objects"]]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--tuning", type=Path)
    parser.add_argument("--out", type=Path, default=RESULTS / "clouds.json")
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument("--compare-runs", nargs="*", type=Path, default=[])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["machine"] = _machine()

    def step(name, fn):
        if name in args.skip:
            return
        t0 = time.perf_counter()
        result[name] = fn()
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)

    if args.run is not None and args.data is not None:
        summary = json.loads((args.run / "train_summary.json").read_text())
        config = json.loads((args.run / "config.json").read_text())
        result["training"] = {**summary, "config": config}
        step("accuracy", lambda: accuracy(args.run, args.data))
        step("mask_paste", lambda: mask_paste(args.run, args.data))
        step("inference", lambda: inference_speed(args.run, args.data))
    if args.compare_runs and args.data is not None:
        step("mask_moments_by_run", lambda: mask_moments_by_run(args.compare_runs, args.data))
    step("real_frames", lambda: real_frames(args.run))
    if args.tuning is not None:
        result["tuning"] = json.loads((args.tuning / "tuning.json").read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "accuracy"}, indent=1,
                     default=str)[:4000])


if __name__ == "__main__":
    main()
