"""Calibration of a detection run: what each object's interval, flag and confidence mean.

Per-object parameters come from the task (``DetectionTask.describe_objects``: e.g. the Gaussian
parameters of Hofer et al. 2021, Sec. 5, read from each mask, and an atom number). Their
intervals are split-conformal (Angelopoulos & Bates 2021): on the validation split every
detection is matched to the true object it overlaps most (mask IoU >= 0.5), the absolute error
of each parameter divided by the task's scale for it (e.g. a centre error in units of the
object's radius, as in the paper's Fig. 7) is collected, and the ``coverage`` quantile of those
ratios becomes the interval half-width in the same units, per class where the class has at
least 20 matched validation objects and pooled otherwise. The task's ``shape_score`` (how far
the image inside the mask is from the model built from the object's parameters) gets a
threshold at the 99th percentile of matched validation objects (per class likewise); objects
above it are flagged as unlike anything seen in training, as the regression learner's OOD flag
does for whole inputs.

A network's score is not a probability. Each object also gets a ``confidence``: the fraction
of validation detections of its evidence group (score bin; refined by the task's fit or not;
a repeat of a higher-scoring detection, ``duplicate_of``) that match a true object. On
simulated atom-cloud shots (600 validation shots, measured), refined detections scored >= 0.95
matched a true object 99.9% of the time, unrefined ones scored 0.8-0.95 only 19%.

A task may refine the network's detections with a physics fit seeded by them
(``DetectionTask.refine``, e.g. a joint 2D fit of all objects seeded by the masks). Refined
detections state other numbers, so calibration.json holds a second set of intervals and
thresholds under ``"refined"``, made the same way from the refined validation detections; a
:class:`~.predictor.DetectionPredictor` refines by default where the run has them
(``refine=False`` for the network's own masks), and ``retroscope calibrate RUN`` adds them to a
run calibrated before.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from retroscope.io.atomic import write_json_atomic
from retroscope.runs import CALIBRATION, save_weights

MATCH_IOU = 0.5
ALL = "all"
MIN_PER_CLASS = 20
#: score bins of the calibrated precision (lower edges; the first is the score threshold)
SCORE_BINS = (0.8, 0.95)
#: fewest validation objects that give a precision of their own
MIN_FOR_PRECISION = 10
#: a detection whose mask lies this much inside a higher-scoring one of its class repeats it
CONTAINED = 0.8


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) IoU between boolean masks a (n, H, W) and b (m, H, W)."""
    a = a.reshape(len(a), -1).astype(np.float32)
    b = b.reshape(len(b), -1).astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def match(pred_masks: np.ndarray, true_masks: np.ndarray, threshold: float = MATCH_IOU):
    """Greedy one-to-one matching by mask IoU: list of (pred index, true index, IoU)."""
    if len(pred_masks) == 0 or len(true_masks) == 0:
        return []
    iou = mask_iou(pred_masks, true_masks)
    pairs = []
    while True:
        i, j = np.unravel_index(np.argmax(iou), iou.shape)
        if iou[i, j] < threshold:
            return pairs
        pairs.append((int(i), int(j), float(iou[i, j])))
        iou[i, :] = -1.0
        iou[:, j] = -1.0


def keep_scored(det: dict, score_threshold: float) -> dict:
    keep = det["scores"] >= score_threshold
    return {k: [x for x, kept in zip(v, keep) if kept] if isinstance(v, list) else v[keep]
            for k, v in det.items()}


def mark_duplicates(objects: list[dict]) -> list[dict]:
    """Set ``duplicate_of`` on each object: the index of a higher-scoring object that it
    repeats (the same mask, as two detections refined by one fit have, or a mask lying at
    least :data:`CONTAINED` inside a higher-scoring mask of the same class), else -1."""
    primaries: list[int] = []
    for k in sorted(range(len(objects)), key=lambda i: -objects[i]["score"]):
        obj = objects[k]
        area = np.count_nonzero(obj["mask"])
        obj["duplicate_of"] = next(
            (j for j in primaries
             if np.array_equal(obj["mask"], objects[j]["mask"])
             or (objects[j]["class"] == obj["class"] and area
                 and np.count_nonzero(obj["mask"] & objects[j]["mask"]) >= CONTAINED * area)),
            -1)
        if obj["duplicate_of"] < 0:
            primaries.append(k)
    return objects


def evidence(obj: dict, refined: bool) -> str:
    """The group whose validation precision is an object's ``confidence``: a duplicate; or
    refined or not (where the predictor refines) and the score bin."""
    if obj.get("duplicate_of", -1) >= 0:
        return "duplicate"
    status = ("refined" if obj.get("refined") else "unrefined") if refined else "network"
    edge = max([0.0] + [b for b in SCORE_BINS if obj["score"] >= b])
    return f"{status}, score >= {edge:g}" if edge else f"{status}, score < {SCORE_BINS[0]:g}"


def precision_table(groups: dict[str, list[bool]]) -> dict[str, dict]:
    """Per evidence group: the fraction of validation objects matched to a true one, with
    the count; None for groups with fewer than :data:`MIN_FOR_PRECISION` objects. Pooled
    groups are added for :func:`confidence`'s fallback: each status over all scores
    ("refined, any score") and every non-duplicate object ("any")."""
    pooled: dict[str, list[bool]] = {}
    for g, v in groups.items():
        if g != "duplicate":
            pooled.setdefault(f"{g.split(',')[0]}, any score", []).extend(v)
            pooled.setdefault("any", []).extend(v)
    return {g: {"precision": (float(np.mean(v)) if len(v) >= MIN_FOR_PRECISION else None),
                "objects": len(v)} for g, v in sorted({**groups, **pooled}.items())}


def confidence(obj: dict, refined: bool, precision: dict) -> float:
    """An object's calibrated confidence: the validation precision of its evidence group
    (:func:`evidence`), else of the same status over all scores, else of every object, when
    that group was too rare on the validation split; NaN where the run has no precision (it
    was calibrated before they existed) or a duplicate's group was too rare."""
    group = evidence(obj, refined)
    fallbacks = [group] if group == "duplicate" else [
        group, f"{group.split(',')[0]}, any score", "any"]
    for name in fallbacks:
        stated = precision.get(name, {}).get("precision")
        if stated is not None:
            return float(stated)
    return float("nan")


def calibrate_detections(task, images, dets, labels, coverage: float,
                         score_threshold: float, refine: bool = False) -> dict:
    """Split-conformal half-widths per class and parameter, and the shape-score thresholds,
    from the validation ``images``, their raw detections ``dets`` and stored ``labels`` rows;
    with ``refine`` the detections are first refined by the task (:meth:`DetectionTask.refine`)
    so that the intervals describe what a refined prediction states. ``precision``: per
    evidence group (:func:`evidence`) the fraction of detections that match a true object,
    which the predictor states as each object's ``confidence``."""
    ratios: dict[tuple[str, str], list[float]] = {}
    groups: dict[str, list[bool]] = {}
    shapes: dict[str, list[float]] = {}
    n_true, n_matched = 0, 0
    for image, det, row in zip(images, dets, labels):
        det = keep_scored(det, score_threshold)
        if refine:
            det = task.refine(image, det, score_threshold)
        truth = task.true_objects(row, image)
        n_true += len(truth)
        objects = mark_duplicates(task.describe_objects(image, det))
        pred_masks = np.stack([o["mask"] for o in objects]) if objects else np.zeros((0, 1, 1))
        true_masks = np.stack([t["mask"] for t in truth]) if truth else np.zeros((0, 1, 1))
        pairs = match(pred_masks, true_masks)
        matched = {p for p, _, _ in pairs}
        for p, obj in enumerate(objects):
            groups.setdefault(evidence(obj, refine), []).append(p in matched)
        for p, t, _ in pairs:
            n_matched += 1
            obj = objects[p]
            for cls in (obj["class"], ALL):
                shapes.setdefault(cls, []).append(obj["shape_score"])
            # the parameters both carry (a ring matched to a Gaussian shares only the centre
            # and the atom number); undefined ones (NaN) calibrate nothing
            stated = task.interval_scales(obj)
            for name, scale in task.interval_scales(truth[t]).items():
                if name not in stated:
                    continue
                ratio = abs(task.parameter_error(name, obj[name], truth[t][name])) / scale
                if not np.isfinite(ratio):
                    continue
                for cls in (obj["class"], ALL):
                    ratios.setdefault((cls, name), []).append(ratio)
    conformal: dict[str, dict[str, float]] = {}
    for (cls, name), r in ratios.items():
        if cls != ALL and len(r) < MIN_PER_CLASS:
            continue  # too few for its own quantile: the class uses the pooled one
        r = np.sort(np.asarray(r))
        k = min(len(r) - 1, int(np.ceil((len(r) + 1) * coverage)) - 1)
        conformal.setdefault(cls, {})[name] = float(r[max(k, 0)])
    shape_threshold = {cls: float(np.percentile(v, 99)) for cls, v in shapes.items()
                       if cls == ALL or len(v) >= MIN_PER_CLASS}
    return {"conformal_half_width": conformal,
            "interval_units": {name: task.interval_unit(name) for name in conformal.get(ALL, {})},
            "shape_score_threshold": shape_threshold, "precision": precision_table(groups),
            "matched_objects": n_matched, "true_objects": n_true}


def calibration_record(task, model, val_set, coverage: float,
                       score_threshold: float = 0.5) -> dict:
    """The contents of calibration.json for ``model`` on the validation set ``val_set``: the
    network's own detections, and (for a task that refines them) the refined ones under
    ``"refined"``."""
    images = [task.model_input(val_set.observable(i)) for i in range(len(val_set))]
    labels = [val_set.labels_row(i) for i in range(len(val_set))]
    from retroscope.learners.detection.module import run_detector

    dets = run_detector(model, images)
    record = {"score_threshold": score_threshold, "coverage": coverage,
              **calibrate_detections(task, images, dets, labels, coverage, score_threshold),
              "per_class": f"classes with >= {MIN_PER_CLASS} matched validation objects get "
                           f"their own quantiles, the others the pooled ones ({ALL!r})",
              "match": f"mask IoU >= {MATCH_IOU}", "n_val": len(images)}
    if task.refines:
        record["refined"] = calibrate_detections(task, images, dets, labels, coverage,
                                                 score_threshold, refine=True)
    return record


def calibrate_and_save(task, model, cfg, model_kwargs: dict, out: Path, val_set,
                       score_threshold: float = 0.5) -> dict:
    """Fit the per-object parameter intervals and the shape-score threshold on the validation
    split, then write the weights (with metadata) and calibration.json."""
    out = Path(out)
    record = calibration_record(task, model, val_set, cfg.coverage, score_threshold)
    save_weights(out, model.state_dict(), task, {
        "learner": cfg.learner, "model": cfg.model, "model_kwargs": json.dumps(model_kwargs),
        "input_shape": json.dumps(list(task.model_input(val_set.observable(0)).shape)),
        "classes": json.dumps(list(task.classes))})
    write_json_atomic(out / "normalization.json", {
        "input_mean": float(model_kwargs["image_mean"]),
        "input_std": float(model_kwargs["image_std"]), "classes": list(task.classes)})
    write_json_atomic(out / CALIBRATION, record)
    n_true = record["true_objects"]
    return {"val_recall_at_iou50": record["matched_objects"] / n_true if n_true else None,
            "val_objects": n_true}
