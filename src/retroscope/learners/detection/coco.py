"""COCO mean average precision of instance segmentations.

Hofer et al., Mach. Learn.: Sci. Technol. 2, 045008 (2021) score Mask R-CNN by the COCO box
and mask mAP (IoU thresholds 0.50:0.05:0.95, up to 100 detections per image) and their mean,
the "average mAP". :func:`detection_map` computes them with torchmetrics'
``MeanAveragePrecision``
(https://lightning.ai/docs/torchmetrics/stable/detection/mean_average_precision.html);
:func:`pycocotools_map` computes the same figures with pycocotools' ``COCOeval`` directly and
serves as an independent check.

Inputs, one dict per image (torchvision's detection format):

- ``preds``: ``boxes`` (N, 4) xyxy in px, ``scores`` (N,), ``labels`` (N,) integers and, for
  masks, ``masks`` (N, 1, H, W) or (N, H, W), soft (thresholded at ``mask_threshold``) or bool;
- ``targets``: ``boxes``, ``labels`` and ``masks`` (N, H, W) bool (or 0/1).

Labels are 1-based: label ``k`` is ``class_names[k - 1]`` (0 is Mask R-CNN's background).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
import torch

IOU_TYPES: tuple[str, ...] = ("bbox", "segm")
_PREFIX = {"bbox": "box", "segm": "mask"}


def _as_masks(masks: torch.Tensor | None, n: int, size: tuple[int, int], threshold: float,
              where: str) -> torch.Tensor:
    """Bool masks (n, H, W) from (n, 1, H, W) / (n, H, W) soft, integer or bool masks."""
    if masks is None:
        raise ValueError(f"{where} has no 'masks' but segm mAP was requested")
    masks = torch.as_tensor(masks).detach().cpu()
    if masks.numel() == 0:
        return torch.zeros((0, *size), dtype=torch.bool)
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3 or masks.shape[0] != n:
        raise ValueError(f"{where}: masks must be ({n}, H, W) or ({n}, 1, H, W), got "
                         f"{tuple(masks.shape)}")
    if masks.dtype == torch.bool:
        return masks
    if masks.is_floating_point():
        return masks >= threshold
    return masks != 0


def _mask_size(*items: dict) -> tuple[int, int]:
    """(H, W) of the first non-empty mask tensor among ``items``; (1, 1) if there is none."""
    for item in items:
        m = item.get("masks")
        if m is not None and torch.as_tensor(m).ndim >= 3:
            return tuple(int(s) for s in torch.as_tensor(m).shape[-2:])
    return (1, 1)


def _clean(preds: Sequence[dict], targets: Sequence[dict], segm: bool,
           threshold: float) -> tuple[list[dict], list[dict]]:
    """Validated CPU copies with boxes (N, 4) float, labels int64, scores float, bool masks."""
    if len(preds) != len(targets):
        raise ValueError(f"got {len(preds)} predictions for {len(targets)} target images")
    if not preds:
        raise ValueError("need at least one image")
    out_p, out_t = [], []
    for i, (p, t) in enumerate(zip(preds, targets)):
        size = _mask_size(p, t)
        pair = []
        for item, kind in ((p, "prediction"), (t, "target")):
            where = f"{kind} {i}"
            for key in ("boxes", "labels") + (("scores",) if kind == "prediction" else ()):
                if key not in item:
                    raise ValueError(f"{where} has no {key!r}")
            boxes = torch.as_tensor(item["boxes"]).detach().cpu().float().reshape(-1, 4)
            labels = torch.as_tensor(item["labels"]).detach().cpu().long().reshape(-1)
            clean = {"boxes": boxes, "labels": labels}
            if kind == "prediction":
                clean["scores"] = torch.as_tensor(item["scores"]).detach().cpu().float().reshape(-1)
            if any(len(v) != len(boxes) for v in clean.values()):
                raise ValueError(f"{where}: boxes, labels and scores differ in length: "
                                 f"{ {k: len(v) for k, v in clean.items()} }")
            if segm:
                clean["masks"] = _as_masks(item.get("masks"), len(boxes), size, threshold, where)
            pair.append(clean)
        out_p.append(pair[0])
        out_t.append(pair[1])
    return out_p, out_t


def _value(x) -> float | None:
    """A COCO figure as a float, or None for COCO's -1 (no ground truth to score against)."""
    x = float(x)
    return None if x < 0 else x


def _summary(figures: dict[str, dict], class_names: Sequence[str], targets: list[dict],
             iou_types: Sequence[str]) -> dict:
    """The flat result dict from per-IoU-type figures ``{"bbox": {"map": ..., ...}}`` with
    ``per_class`` = {label: map} (see :func:`detection_map`)."""
    result: dict = {}
    for iou in IOU_TYPES:
        f = figures.get(iou, {})
        for key in ("map", "map_50", "map_75", "mar_100"):
            result[f"{_PREFIX[iou]}_{key}"] = _value(f[key]) if iou in iou_types else None
    present = {int(label) for t in targets for label in t["labels"].tolist()}
    for iou in IOU_TYPES:
        per_class = figures.get(iou, {}).get("per_class", {})
        for k, name in enumerate(class_names, start=1):
            value = per_class.get(k) if iou in iou_types and k in present else None
            result[f"{_PREFIX[iou]}_map_{name}"] = None if value is None else _value(value)
    for key in ("map", "mar_100"):
        values = [result[f"{_PREFIX[iou]}_{key}"] for iou in iou_types]
        values = [v for v in values if v is not None]
        result["mean_map" if key == "map" else key] = float(np.mean(values)) if values else None
    result["n_images"] = len(targets)
    result["n_objects"] = int(sum(len(t["labels"]) for t in targets))
    return result


def _check_iou_types(iou_types: Sequence[str]) -> tuple[str, ...]:
    iou_types = (iou_types,) if isinstance(iou_types, str) else tuple(iou_types)
    if not iou_types or any(t not in IOU_TYPES for t in iou_types):
        raise ValueError(f"iou_types must be a non-empty subset of {IOU_TYPES}, got {iou_types}")
    return tuple(t for t in IOU_TYPES if t in iou_types)


def detection_map(
    preds: Sequence[dict],
    targets: Sequence[dict],
    class_names: Sequence[str],
    iou_types: Sequence[str] = ("bbox", "segm"),
    mask_threshold: float = 0.5,
    backend: str = "faster_coco_eval",
) -> dict:
    """COCO box and mask mAP of ``preds`` against ``targets`` (formats: module docstring).

    Uses ``torchmetrics.detection.MeanAveragePrecision(iou_type=..., backend=backend,
    class_metrics=True)``. Soft predicted masks are thresholded at ``mask_threshold``
    (``mask >= mask_threshold``). Returns a flat JSON-able dict:

    - ``box_map``, ``box_map_50``, ``box_map_75``, ``box_mar_100`` and the ``mask_*`` ones
      (None for an IoU type not requested);
    - ``mean_map``: mean of the requested box and mask mAP (the paper's "average mAP");
      ``mar_100``: likewise the mean of the requested mean average recalls at 100 detections;
    - ``box_map_<class>``, ``mask_map_<class>`` per class name; None for a class absent from
      the targets (COCO's -1);
    - ``n_images``, ``n_objects`` (ground-truth objects).

    Every figure is None where there is no ground truth at all. Images without targets or
    without predictions are allowed (empty ``boxes`` (0, 4), ``masks`` (0, H, W)); predictions
    on images without targets count as false positives.
    """
    from torchmetrics.detection import MeanAveragePrecision

    iou_types = _check_iou_types(iou_types)
    segm = "segm" in iou_types
    p, t = _clean(preds, targets, segm, mask_threshold)
    # with iou_type="segm" alone torchmetrics drops images without ground-truth masks, and
    # with them their false positives; evaluating boxes alongside keeps every image
    computed = ("bbox", "segm") if segm else ("bbox",)
    metric = MeanAveragePrecision(iou_type=computed, backend=backend, class_metrics=True)
    metric.update(p, t)
    raw = metric.compute()
    figures = {}
    for iou in computed:
        prefix = f"{iou}_" if len(computed) > 1 else ""
        f = {key: raw[prefix + key] for key in ("map", "map_50", "map_75", "mar_100")}
        classes = raw["classes"].reshape(-1).tolist()
        per_class = raw[prefix + "map_per_class"].reshape(-1).tolist()
        f["per_class"] = dict(zip((int(c) for c in classes), per_class))
        figures[iou] = f
    return _summary(figures, class_names, t, iou_types)


def pycocotools_map(
    preds: Sequence[dict],
    targets: Sequence[dict],
    class_names: Sequence[str],
    iou_types: Sequence[str] = ("bbox", "segm"),
    mask_threshold: float = 0.5,
) -> dict:
    """The figures of :func:`detection_map`, computed with pycocotools' ``COCO`` / ``COCOeval``
    on ground-truth and result JSON built in memory (a cross-check; pycocotools is optional).

    Ground-truth areas are box areas for ``bbox`` and mask areas for ``segm`` (as torchmetrics
    does); masks are run-length encoded with ``pycocotools.mask.encode`` on Fortran-ordered
    uint8 arrays; image, annotation and category ids are integers starting at 1.
    """
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    iou_types = _check_iou_types(iou_types)
    segm = "segm" in iou_types
    p, t = _clean(preds, targets, segm, mask_threshold)

    def rles(masks: torch.Tensor) -> list[dict]:
        arr = np.asfortranarray(masks.numpy().astype(np.uint8).transpose(1, 2, 0))
        return mask_utils.encode(arr) if len(masks) else []

    def xywh(boxes: torch.Tensor) -> list[list[float]]:
        b = boxes.double().numpy()
        return [[x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in b.tolist()]

    categories = [{"id": k, "name": str(n)} for k, n in enumerate(class_names, start=1)]
    figures = {}
    for iou in iou_types:
        images, gts, dets = [], [], []
        for image_id, (pi, ti) in enumerate(zip(p, t), start=1):
            h, w = ti["masks"].shape[-2:] if segm else (1, 1)
            images.append({"id": image_id, "height": int(h), "width": int(w)})
            g_rle = rles(ti["masks"]) if iou == "segm" else [None] * len(ti["labels"])
            for box, label, rle in zip(xywh(ti["boxes"]), ti["labels"].tolist(), g_rle):
                area = float(mask_utils.area(rle)) if iou == "segm" else box[2] * box[3]
                ann = {"id": len(gts) + 1, "image_id": image_id, "category_id": int(label),
                       "bbox": box, "area": area, "iscrowd": 0}
                if iou == "segm":
                    ann["segmentation"] = rle
                gts.append(ann)
            d_rle = rles(pi["masks"]) if iou == "segm" else [None] * len(pi["labels"])
            for box, label, score, rle in zip(xywh(pi["boxes"]), pi["labels"].tolist(),
                                              pi["scores"].tolist(), d_rle):
                det = {"image_id": image_id, "category_id": int(label), "score": float(score)}
                det.update({"segmentation": rle} if iou == "segm" else {"bbox": box})
                dets.append(det)
        coco_gt = COCO()
        coco_gt.dataset = {"info": {}, "images": images, "annotations": gts,
                           "categories": categories}
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(dets)
        else:  # loadRes([]) raises; an empty result set scores 0 wherever there is truth
            coco_dt = COCO()
            coco_dt.dataset = {"info": {}, "images": images, "annotations": [],
                               "categories": categories}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType=iou)
        ev.params.imgIds = [im["id"] for im in images]
        with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        f = dict(zip(("map", "map_50", "map_75"), ev.stats[:3]))
        f["mar_100"] = ev.stats[8]
        precision = ev.eval["precision"]  # (iou thresholds, recall, class, area, max dets)
        per_class = {}
        for k_idx, cat_id in enumerate(ev.params.catIds):
            pr = precision[:, :, k_idx, 0, -1]
            pr = pr[pr > -1]
            per_class[cat_id] = float(pr.mean()) if pr.size else -1.0
        f["per_class"] = per_class
        figures[iou] = f
    return _summary(figures, class_names, t, iou_types)
