"""COCO box and mask mAP: exact cases, empty images, per-class None, pycocotools agreement."""

import numpy as np
import pytest
import torch

from retroscope.learners.detection.coco import detection_map, pycocotools_map

H, W = 48, 64
CLASSES = ("MOT", "ODT", "BEC")  # three kinds of object, labels 1-3


def box_mask(box, size=(H, W)):
    x0, y0, x1, y1 = (int(v) for v in box)
    m = torch.zeros(size, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def target(boxes, labels):
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    masks = torch.stack([box_mask(b) for b in boxes]) if len(boxes) else torch.zeros(0, H, W)
    return {"boxes": boxes, "labels": torch.as_tensor(labels, dtype=torch.long),
            "masks": masks.bool()}


def pred(boxes, labels, scores, masks=None):
    t = target(boxes, labels)
    t["scores"] = torch.tensor(scores, dtype=torch.float32)
    if masks is not None:
        t["masks"] = masks
    return t


def empty_pred():
    return pred([], [], [])


def test_perfect_predictions_score_one_with_soft_masks():
    targets = [target([[4, 4, 20, 16], [30, 10, 60, 40]], [1, 3]), target([[10, 5, 25, 25]], [2])]
    preds = []
    for t in targets:  # soft (N, 1, H, W) masks, thresholded at 0.5
        soft = t["masks"][:, None].float() * 0.8 + 0.1
        preds.append(pred(t["boxes"], t["labels"], [0.9] * len(t["labels"]), masks=soft))
    r = detection_map(preds, targets, CLASSES)
    for key in ("box_map", "box_map_50", "box_map_75", "mask_map", "mask_map_50", "mask_map_75",
                "mean_map", "mar_100", "box_mar_100", "mask_mar_100"):
        assert r[key] == pytest.approx(1.0), key
    for name in ("MOT", "ODT", "BEC"):
        assert r[f"box_map_{name}"] == pytest.approx(1.0)
        assert r[f"mask_map_{name}"] == pytest.approx(1.0)
    assert r["n_images"] == 2 and r["n_objects"] == 3


@pytest.mark.parametrize("shift, expected", [(2, 0.7), (4, 0.4)])
def test_shifted_box_lowers_box_map_only(shift, expected):
    # a 20x20 box shifted by s px has IoU (20 - s) / (20 + s): 0.82 matches the thresholds
    # 0.50..0.80 (7 of 10), 0.67 matches 0.50..0.65 (4 of 10)
    t = target([[10, 10, 30, 30]], [1])
    p = pred([[10 + shift, 10, 30 + shift, 30]], [1], [0.9], masks=t["masks"])
    r = detection_map([p], [t], CLASSES)
    assert r["box_map"] == pytest.approx(expected)
    assert r["box_map_50"] == pytest.approx(1.0)
    assert r["box_map_75"] == pytest.approx(1.0 if shift == 2 else 0.0)
    assert r["mask_map"] == pytest.approx(1.0)
    assert r["mean_map"] == pytest.approx((expected + 1.0) / 2)


def random_set(seed=0, n_images=6):
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for i in range(n_images):
        n = int(rng.integers(0, 4))
        xy = rng.uniform(0, 30, (n, 2))
        wh = rng.uniform(6, 18, (n, 2))
        boxes = np.round(np.concatenate([xy, xy + wh], 1))
        labels = rng.integers(1, 4, n).tolist()
        targets.append(target(boxes.tolist(), labels))
        if i == 1:
            preds.append(empty_pred())  # truth, no detections
            continue
        keep = rng.random(n) < 0.8
        noisy = boxes[keep] + np.round(rng.normal(0, 1.5, (keep.sum(), 4)))
        labels_p = [lab if rng.random() < 0.85 else int(rng.integers(1, 4))
                    for lab, k in zip(labels, keep) if k]
        n_fp = int(rng.integers(0, 3))  # false positives, also on images without truth
        fp_xy = rng.uniform(0, 40, (n_fp, 2))
        fp = np.round(np.concatenate([fp_xy, fp_xy + 8], 1))
        all_boxes = np.concatenate([noisy, fp]).clip(0, [W, H, W, H])
        all_labels = labels_p + rng.integers(1, 4, n_fp).tolist()
        scores = rng.uniform(0.05, 1.0, len(all_boxes)).round(3).tolist()
        # soft masks of independently jittered boxes, so that box and mask mAP differ
        mask_boxes = (all_boxes + np.round(rng.normal(0, 1.5, all_boxes.shape))).clip(0, W)
        soft = torch.zeros(len(all_boxes), 1, H, W)
        for j, b in enumerate(mask_boxes):
            soft[j, 0] = box_mask(b).float() * 0.7 + 0.2 + 0.15 * torch.rand(H, W, generator=gen)
        preds.append(pred(all_boxes.tolist(), all_labels, scores, masks=soft))
    return preds, targets


@pytest.mark.parametrize("seed", [0, 1])
def test_torchmetrics_agrees_with_pycocotools(seed):
    preds, targets = random_set(seed)
    ours = detection_map(preds, targets, CLASSES)
    ref = pycocotools_map(preds, targets, CLASSES)
    assert ours.keys() == ref.keys()
    assert 0.0 < ours["box_map"] < 1.0 and 0.0 < ours["mask_map"] < 1.0
    assert ours["box_map"] != pytest.approx(ours["mask_map"])
    for key, value in ours.items():
        if value is None:
            assert ref[key] is None, key
        else:
            assert ref[key] == pytest.approx(value, abs=1e-6), key


def test_no_predictions_scores_zero_and_no_targets_gives_none():
    targets = [target([[4, 4, 20, 16]], [1]), target([], [])]
    for fn in (detection_map, pycocotools_map):
        r = fn([empty_pred(), empty_pred()], targets, CLASSES)
        assert r["box_map"] == 0.0 and r["mask_map"] == 0.0 and r["mean_map"] == 0.0
        assert r["box_map_MOT"] == 0.0 and r["box_map_ODT"] is None
    preds = [pred([[4, 4, 20, 16]], [2], [0.5]), empty_pred()]
    r = detection_map(preds, [target([], []), target([], [])], CLASSES)
    assert r["n_objects"] == 0
    assert all(v is None for k, v in r.items() if k not in ("n_images", "n_objects"))


def test_absent_classes_are_none_and_false_positives_on_empty_images_count():
    t = target([[5, 5, 15, 15]], [1])
    preds = [pred([[5, 5, 15, 15]], [1], [0.5]), pred([[5, 5, 15, 15]], [3], [0.9])]
    targets = [t, target([], [])]
    r = detection_map(preds, targets, CLASSES)
    assert r["box_map_ODT"] is None and r["box_map_BEC"] is None
    assert r["mask_map_ODT"] is None and r["mask_map_BEC"] is None
    assert r["box_map_MOT"] == pytest.approx(1.0)  # the BEC false positive is another class
    # a MOT false positive with a higher score on an image without truth halves the AP, also
    # for segm alone (torchmetrics alone would drop that image from the segm evaluation)
    preds[1]["labels"] = torch.tensor([1])
    for types in (("bbox", "segm"), ("segm",)):
        r = detection_map(preds, targets, CLASSES, iou_types=types)
        assert r["mask_map"] == pytest.approx(0.5)
        ref = pycocotools_map(preds, targets, CLASSES, iou_types=types)
        assert ref["mask_map"] == pytest.approx(0.5)
    assert r["box_map"] is None and r["mean_map"] == pytest.approx(0.5)


def test_bbox_only_needs_no_masks_and_errors_are_clear():
    t = {"boxes": torch.tensor([[1.0, 1, 9, 9]]), "labels": torch.tensor([2])}
    p = {**t, "scores": torch.tensor([0.7])}
    r = detection_map([p], [t], CLASSES, iou_types=("bbox",))
    assert r["box_map"] == pytest.approx(1.0) and r["mask_map"] is None
    with pytest.raises(ValueError, match="masks"):
        detection_map([p], [t], CLASSES)
    with pytest.raises(ValueError, match="target images"):
        detection_map([p, p], [t], CLASSES)
    with pytest.raises(ValueError, match="iou_types"):
        detection_map([p], [t], CLASSES, iou_types=("keypoints",))
