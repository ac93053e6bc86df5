"""Sub-pixel exact pasting of Mask R-CNN's box-relative masks into the image.

Mask R-CNN predicts, per detection, an M x M mask (M = 28) in the frame of its box. Training
sets its target with ``roi_align(gt_masks, boxes, (M, M), 1.0)`` (torchvision's
``roi_heads.project_masks_on_boxes``, ``aligned=False``): bin i of the target is the average of
the ground-truth mask over the box-relative interval [x1 + i bw / M, x1 + (i + 1) bw / M] in
the coordinates of ``roi_align``, where pixel k sits at k. Boxes, however, are in image
coordinates whose pixel k covers [k, k + 1] (centre k + 0.5), so bin i holds the mask around
x1 + (i + 0.5) bw / M + 0.5: the learnt mask is the image seen half a pixel to the right
(and below) of its box. (With a tight box, the target's window therefore misses the left and
top half pixel of the object and takes half a pixel of nothing on the other sides, which no
paste can restore. On simulated atom-cloud shots this is not what makes the network's masks
narrow: 12-minute runs with either kind of target give widths 1.4-1.6 px short.)

torchvision's inference paste (``paste_masks_in_image``, the legacy Detectron recipe) does
not undo this; it also truncates the box corners to whole pixels and stretches the mask over
int(width + 1) pixels, so every mask lands shifted by a random fraction of a pixel and about
one pixel too wide. On 600 simulated atom-cloud shots (128 px) that recipe gave
mask centres a median bias of -0.13 px and a network-only mask mAP of 0.63; this paste, the
exact inverse of the training geometry, gives a bias of +0.02 px and a mask mAP of 0.70 with
the same weights.

:func:`paste_masks` samples the M x M mask bilinearly (zero outside, as torchvision's padding
by one bin does) at the location each image pixel centre has in that training frame;
:class:`ExactPasteTransform` is torchvision's ``GeneralizedRCNNTransform`` with it in
``postprocess``.

A model built with ``mask_targets="centred"`` avoids the half-pixel loss altogether: in
training, its transform resamples each ground-truth mask at the pixel corners
(:func:`centred_targets`, the mean of the 2 x 2 pixels around each corner) after torchvision's
resize (which casts masks to bytes and would round those means away), so that ``roi_align``'s
pixel k at coordinate k is the image's location k and its window is the box itself; the paste
then takes no half-pixel offset. ``"roi_align"`` (torchvision's targets) is the default, the
way every measured run so far was trained, and is pasted with the offset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes

__all__ = ["MASK_TARGETS", "ExactPasteTransform", "centred_targets", "paste_masks"]

# how the mask targets were made in training -> where roi_align's coordinate x lies in the image
MASK_TARGETS: dict[str, float] = {"roi_align": 0.5, "centred": 0.0}  # offset, px


def centred_targets(masks: Tensor) -> Tensor:
    """(N, H, W) float masks whose pixel (i, j) is the mean of ``masks`` over the 2 x 2
    pixels around the corner (j, i) (zero beyond the image): ``masks`` sampled at the
    locations that ``roi_align`` (pixel k at coordinate k) reads as whole pixels."""
    if masks.ndim != 3:
        raise ValueError(f"masks: expected (N, H, W), got {tuple(masks.shape)}")
    padded = F.pad(masks.to(torch.float32)[:, None], (1, 0, 1, 0))
    return F.avg_pool2d(padded, 2, stride=1)[:, 0]


def paste_masks(masks: Tensor, boxes: Tensor, network_size: tuple[int, int],
                image_size: tuple[int, int], offset_px: float = 0.5) -> Tensor:
    """(N, 1, H, W) image masks from (N, 1, M, M) box-relative ``masks``.

    ``boxes``: (N, 4) xyxy in the network's frame (the transform's resized image of
    ``network_size`` = (height, width)); ``image_size``: (H, W) of the original image;
    ``offset_px``: where roi_align's coordinate 0 lies in the network's frame
    (:data:`MASK_TARGETS`: 0.5 for torchvision's targets, 0 for :func:`centred_targets`).
    Original pixel (r, c) has its centre at ((c + 0.5) sx, (r + 0.5) sy) in the network's
    frame (s = network / original size), i.e. at roi_align coordinate
    x = (c + 0.5) sx - offset_px, which lies at the normalised grid position
    2 (x - x1) / max(bw, 1) - 1 of the mask (``grid_sample`` with ``align_corners=False``;
    ``roi_align`` clamps box sides to >= 1).
    """
    height, width = int(image_size[0]), int(image_size[1])
    n = masks.shape[0]
    if n == 0:
        return masks.new_zeros((0, 1, height, width))
    if masks.ndim != 4 or masks.shape[1] != 1 or boxes.shape != (n, 4):
        raise ValueError(f"masks: expected (N, 1, M, M) with boxes (N, 4), got "
                         f"{tuple(masks.shape)} and {tuple(boxes.shape)}")
    sy = network_size[0] / height
    sx = network_size[1] / width
    x1, y1, x2, y2 = boxes.to(masks.dtype).unbind(1)
    cols = (torch.arange(width, dtype=masks.dtype, device=masks.device) + 0.5) * sx - offset_px
    rows = (torch.arange(height, dtype=masks.dtype, device=masks.device) + 0.5) * sy - offset_px
    gx = 2 * (cols[None, :] - x1[:, None]) / (x2 - x1).clamp(min=1.0)[:, None] - 1
    gy = 2 * (rows[None, :] - y1[:, None]) / (y2 - y1).clamp(min=1.0)[:, None] - 1
    grid = torch.stack([gx[:, None, :].expand(n, height, width),
                        gy[:, :, None].expand(n, height, width)], dim=-1)
    return F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


class ExactPasteTransform(GeneralizedRCNNTransform):
    """``GeneralizedRCNNTransform`` whose ``postprocess`` pastes masks with
    :func:`paste_masks` (boxes are rescaled to the original image as torchvision does);
    ``mask_targets``: how the network's mask targets are made (:data:`MASK_TARGETS`); with
    ``"centred"``, ``resize`` turns the training targets' masks into :func:`centred_targets`."""

    def __init__(self, *args, mask_targets: str = "roi_align", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if mask_targets not in MASK_TARGETS:
            raise ValueError(f"mask_targets must be one of {tuple(MASK_TARGETS)}, got "
                             f"{mask_targets!r}")
        self.mask_targets = mask_targets
        self.offset_px = MASK_TARGETS[mask_targets]

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None):
        image, target = super().resize(image, target)
        if (self.training and self.mask_targets == "centred" and target is not None
                and "masks" in target):
            target["masks"] = centred_targets(target["masks"])
        return image, target

    def postprocess(self, result: list[dict[str, Tensor]],
                    image_shapes: list[tuple[int, int]],
                    original_image_sizes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        if self.training:
            return result
        for pred, network_size, image_size in zip(result, image_shapes, original_image_sizes):
            if "masks" in pred:
                pred["masks"] = paste_masks(pred["masks"], pred["boxes"], network_size,
                                            image_size, self.offset_px)
            pred["boxes"] = resize_boxes(pred["boxes"], network_size, image_size)
            if "keypoints" in pred:
                raise NotImplementedError("keypoints are not used by retroscope's Mask R-CNN")
        return result
