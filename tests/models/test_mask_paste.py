"""The exact mask paste inverts the roi_align geometry of Mask R-CNN's training targets."""

import numpy as np
import pytest
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image, project_masks_on_boxes
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from retroscope.models.mask_paste import ExactPasteTransform, paste_masks
from retroscope.models.maskrcnn import build_maskrcnn

M = 28  # torchvision's mask head resolution


def _ellipse(shape, x0, y0, a, b, theta=0.3):
    """Pixels whose centre (j + 0.5, i + 0.5) lies inside the ellipse; its xyxy box, with a
    margin of 1 px (a tight box would cut the half pixel by which the training target's
    window is shifted, see the module doc, and the round trip could not be exact)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    c, s = np.cos(theta), np.sin(theta)
    u = (cols - x0) * c + (rows - y0) * s
    v = -(cols - x0) * s + (rows - y0) * c
    hx, hy = np.hypot(a * c, b * s), np.hypot(a * s, b * c)
    return (u / a) ** 2 + (v / b) ** 2 <= 1, [x0 - hx - 1, y0 - hy - 1, x0 + hx + 1, y0 + hy + 1]


def _moments(mask):
    rows, cols = np.nonzero(mask)
    x, y = cols + 0.5, rows + 0.5
    return np.array([x.mean(), y.mean(), 2 * np.sqrt(np.var(x)), 2 * np.sqrt(np.var(y))])


def _target(mask, box):
    """The M x M training target torchvision derives from a ground-truth mask and box."""
    return project_masks_on_boxes(torch.as_tensor(mask)[None], torch.tensor([box]).float(),
                                  torch.zeros(1, dtype=torch.long), M)[:, None]


def test_round_trip_through_the_training_target_keeps_the_mask_in_place():
    rng = np.random.default_rng(0)
    exact, legacy = [], []
    for _ in range(20):
        x0, y0 = rng.uniform(25, 39, 2)
        truth, box = _ellipse((64, 64), x0, y0, rng.uniform(6, 14), rng.uniform(3, 6))
        target = _target(truth, box)
        box_t = torch.tensor([box]).float()
        pasted = paste_masks(target, box_t, (64, 64), (64, 64))[0, 0].numpy() >= 0.5
        old = paste_masks_in_image(target, box_t, (64, 64))[0, 0].numpy() >= 0.5
        exact.append(_moments(pasted) - _moments(truth))
        legacy.append(_moments(old) - _moments(truth))
    exact, legacy = np.abs(exact), np.abs(legacy)
    assert exact.max() < 0.02  # centres and widths (2 sd), px: the very same pixels
    assert legacy[:, :2].max() > 0.5  # torchvision's paste lands up to a pixel off


def test_paste_into_an_image_of_another_size():
    """Network frame 128 px, original image 64 px: the pasted soft mask's centroid is that of
    the 128-px mask, halved (a half-pixel slip in the 128-px frame would move it 0.25 px)."""
    rows, cols = np.mgrid[0:64, 0:64] + 0.5
    for x0, y0 in ((61.3, 66.8), (60.0, 64.0), (62.7, 63.1)):
        big, box = _ellipse((128, 128), x0, y0, 22.0, 9.0)
        pasted = paste_masks(_target(big, box), torch.tensor([box]).float(), (128, 128),
                             (64, 64))[0, 0].numpy()
        centre = np.array([(pasted * cols).sum(), (pasted * rows).sum()]) / pasted.sum()
        assert np.abs(centre - _moments(big)[:2] / 2).max() < 0.03
        assert pasted.sum() == pytest.approx(big.sum() / 4, rel=0.02)


def test_empty_and_malformed_inputs():
    assert paste_masks(torch.zeros(0, 1, M, M), torch.zeros(0, 4), (32, 32),
                       (32, 32)).shape == (0, 1, 32, 32)
    with pytest.raises(ValueError, match="masks"):
        paste_masks(torch.zeros(2, M, M), torch.zeros(2, 4), (32, 32), (32, 32))


def test_the_model_uses_the_exact_paste_by_default():
    model = build_maskrcnn(image_size=64, fpn_channels=16, representation_size=32)
    assert type(model.transform) is ExactPasteTransform
    assert model.config["mask_paste"] == "exact"
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(1, 64, 64)])[0]
    assert out["masks"].shape[1:] == (1, 64, 64)
    legacy = build_maskrcnn(image_size=64, fpn_channels=16, representation_size=32,
                            mask_paste="torchvision")
    assert type(legacy.transform) is GeneralizedRCNNTransform
    with pytest.raises(ValueError, match="mask_paste"):
        build_maskrcnn(image_size=64, mask_paste="nearest")
