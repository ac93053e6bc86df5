"""The exact mask paste inverts the roi_align geometry of Mask R-CNN's training targets."""

import numpy as np
import pytest
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image, project_masks_on_boxes
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from retroscope.models.mask_paste import ExactPasteTransform, centred_targets, paste_masks
from retroscope.models.maskrcnn import build_maskrcnn

M = 28  # torchvision's mask head resolution


def _ellipse(shape, x0, y0, a, b, theta=0.3, margin=1.0):
    """Pixels whose centre (j + 0.5, i + 0.5) lies inside the ellipse; its xyxy box, with a
    ``margin`` in px (with torchvision's targets a tight box cuts the half pixel by which the
    target's window is shifted, see the module doc, and no round trip could be exact)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    c, s = np.cos(theta), np.sin(theta)
    u = (cols - x0) * c + (rows - y0) * s
    v = -(cols - x0) * s + (rows - y0) * c
    hx, hy = np.hypot(a * c, b * s), np.hypot(a * s, b * c)
    m = margin
    return (u / a) ** 2 + (v / b) ** 2 <= 1, [x0 - hx - m, y0 - hy - m, x0 + hx + m, y0 + hy + m]


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


def test_centred_targets_keep_the_object_centred_in_a_tight_box():
    """With a tight box (the label's), torchvision's targets cut the top and left edge of the
    object and the mask comes back shifted down and right; the centred targets new runs train
    on cut only the tips of the pixels that stick out of the box, on all sides alike."""
    rng = np.random.default_rng(2)
    centred_err, legacy_err, centred_lost, legacy_lost = [], [], [], []
    for _ in range(40):
        truth, box = _ellipse((64, 64), *rng.uniform(25, 39, 2), rng.uniform(6, 14),
                              rng.uniform(3, 6), margin=0.0)
        box_t = torch.tensor([box]).float()
        centred = project_masks_on_boxes(centred_targets(torch.as_tensor(truth)[None]), box_t,
                                         torch.zeros(1, dtype=torch.long), M)[:, None]
        new = (paste_masks(centred, box_t, (64, 64), (64, 64), offset_px=0.0)[0, 0]
               >= 0.5).numpy()
        old = (paste_masks(_target(truth, box), box_t, (64, 64), (64, 64))[0, 0] >= 0.5).numpy()
        centred_err.append(_moments(new) - _moments(truth))
        legacy_err.append(_moments(old) - _moments(truth))
        centred_lost.append(truth.sum() - new.sum())
        legacy_lost.append(truth.sum() - old.sum())
    centred_bias, legacy_bias = np.mean(centred_err, 0), np.mean(legacy_err, 0)
    assert np.abs(centred_bias[:2]).max() < 0.03  # px (measured: 0.007)
    assert legacy_bias[0] > 0.1 and legacy_bias[1] > 0.05  # px (0.15, 0.09)
    assert np.mean(centred_lost) < 0.5 * np.mean(legacy_lost)  # pixels (0.9 vs 3.1)


def test_centred_targets_are_the_corner_means():
    masks = torch.zeros(1, 4, 4, dtype=torch.uint8)
    masks[0, 1:3, 1:3] = 1
    out = centred_targets(masks)[0]
    assert out.dtype == torch.float32 and out.shape == (4, 4)
    assert out[1, 1] == 0.25 and out[2, 2] == 1.0 and out[3, 3] == 0.25 and out[2, 1] == 0.5
    assert out[0].sum() == 0 and out[:, 0].sum() == 0
    with pytest.raises(ValueError, match="masks"):
        centred_targets(masks[0])


def test_a_centred_model_trains_on_soft_centred_targets():
    """The centring happens after torchvision's resize, whose byte cast would round the
    corner means (0.25, 0.5, 0.75) away; a roi_align model keeps the binary masks."""
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 20:30, 20:40] = 1
    target = {"boxes": torch.tensor([[20.0, 20.0, 40.0, 30.0]]), "labels": torch.tensor([1]),
              "masks": masks}
    for kind, expected in (("centred", centred_targets(masks)), ("roi_align", masks)):
        model = build_maskrcnn(num_classes=4, image_size=64, fpn_channels=16, representation_size=32,
                               mask_targets=kind).train()
        _, targets = model.transform([torch.rand(1, 64, 64)], [dict(target)])
        assert torch.equal(targets[0]["masks"].float(), expected.float())
        losses = model([torch.rand(1, 64, 64)], [dict(target)])
        assert all(torch.isfinite(v) for v in losses.values())
    assert 0 < targets[0]["masks"].float().mean() < 1


def test_empty_and_malformed_inputs():
    assert paste_masks(torch.zeros(0, 1, M, M), torch.zeros(0, 4), (32, 32),
                       (32, 32)).shape == (0, 1, 32, 32)
    with pytest.raises(ValueError, match="masks"):
        paste_masks(torch.zeros(2, M, M), torch.zeros(2, 4), (32, 32), (32, 32))


def test_the_model_uses_the_exact_paste_by_default():
    model = build_maskrcnn(num_classes=4, image_size=64, fpn_channels=16, representation_size=32)
    assert type(model.transform) is ExactPasteTransform
    assert model.config["mask_paste"] == "exact"
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(1, 64, 64)])[0]
    assert out["masks"].shape[1:] == (1, 64, 64)
    legacy = build_maskrcnn(num_classes=4, image_size=64, fpn_channels=16, representation_size=32,
                            mask_paste="torchvision")
    assert type(legacy.transform) is GeneralizedRCNNTransform
    with pytest.raises(ValueError, match="mask_paste"):
        build_maskrcnn(num_classes=4, image_size=64, mask_paste="nearest")
    assert model.transform.offset_px == 0.5  # torchvision's targets, as runs before session 9
    centred = build_maskrcnn(num_classes=4, image_size=64, fpn_channels=16, representation_size=32,
                             mask_targets="centred")
    assert centred.transform.offset_px == 0.0 and centred.config["mask_targets"] == "centred"
    with pytest.raises(ValueError, match="mask_targets"):
        build_maskrcnn(num_classes=4, image_size=64, mask_targets="aligned")
    with pytest.raises(ValueError, match="needs mask_paste='exact'"):
        build_maskrcnn(num_classes=4, image_size=64, mask_targets="centred", mask_paste="torchvision")
