"""Mask R-CNN builders: offline construction, 1-channel input, no resizing, norms, losses."""

import json
import socket

import pytest
import torch
import torch.hub
import torchvision.models._api
from torch import nn
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.ops import FrozenBatchNorm2d

from retroscope.models import build_model, list_models
from retroscope.models.maskrcnn import DEFAULT_ANCHOR_SIZES, build_maskrcnn, group_norm

# small proposal and detection budgets keep CPU forward passes well under a second
FAST = dict(rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=50, rpn_pre_nms_top_n_test=100,
            rpn_post_nms_top_n_test=50, box_batch_size_per_image=32, box_detections_per_img=5)


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to fetch weights or open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_offline_guard_catches_torchvision_default_download(offline):
    # torchvision's default weights_backbone=IMAGENET1K_V1 would download (the notes' pitfall)
    with pytest.raises(AssertionError, match="network access"):
        maskrcnn_resnet50_fpn(weights=None, num_classes=4)


def batch(size=(64, 64), n=2):
    torch.manual_seed(0)
    images = [torch.rand(1, *size) for _ in range(n)]
    targets = []
    for k in range(n):
        masks = torch.zeros(2, *size, dtype=torch.uint8)
        masks[0, 8:28, 10:30] = 1
        masks[1, 30 + k:50, 36:60] = 1
        boxes = torch.tensor([[10.0, 8, 30, 28], [36, 30 + k, 60, 50]])
        targets.append({"boxes": boxes, "labels": torch.tensor([1, 3]), "masks": masks})
    return images, targets


@pytest.mark.parametrize("name", ["maskrcnn_resnet18_fpn", "maskrcnn_resnet50_fpn"])
def test_registered_models_build_offline_for_one_channel(name, offline):
    assert name in list_models()
    model = build_model(name, num_classes=4, image_size=64, image_mean=0.3, image_std=0.7, **FAST)
    conv1 = model.backbone.body.conv1
    assert conv1.in_channels == 1 and conv1.out_channels == 64
    assert model.transform.image_mean == [0.3] and model.transform.image_std == [0.7]
    assert model.config["backbone"] == name.split("_")[1]
    assert model.config["num_classes"] == 4 and model.config["norm"] == "group"
    assert model.roi_heads.box_predictor.cls_score.out_features == 4
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 4
    assert model.rpn.anchor_generator.sizes == DEFAULT_ANCHOR_SIZES
    assert all(p.requires_grad for p in model.parameters())  # trainable_layers=5
    if name.endswith("50_fpn"):  # one eval forward; the training step is tested on resnet18
        model.eval()
        with torch.no_grad():
            (out,) = model(batch(n=1)[0])
        assert out["masks"].shape[1:] == (1, 64, 64)


def test_training_step_returns_finite_losses():
    model = build_model("maskrcnn_resnet18_fpn", num_classes=4, image_size=64, **FAST)
    model.train()
    images, targets = batch()
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
                           "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    grad = model.backbone.body.conv1.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("size", [64, (48, 64)])
def test_eval_outputs_keep_the_input_size(size):
    model = build_model("maskrcnn_resnet18_fpn", num_classes=4, image_size=size, **FAST).eval()
    h, w = (size, size) if isinstance(size, int) else size
    assert model.transform.min_size == (min(h, w),) and model.transform.max_size == max(h, w)
    images, _ = batch((h, w))
    with torch.no_grad():
        transformed, _ = model.transform(images)
        assert transformed.image_sizes == [(h, w)] * 2  # scale factor 1: no resizing
        outputs = model(images)
    for out in outputs:
        n = len(out["boxes"])
        assert out["boxes"].shape == (n, 4) and out["scores"].shape == out["labels"].shape == (n,)
        assert out["masks"].shape == (n, 1, h, w)
        assert ((out["masks"] >= 0) & (out["masks"] <= 1)).all()


def test_norm_layers():
    assert group_norm(256).num_groups == 32 and group_norm(48).num_groups == 24
    assert group_norm(7).num_groups == 7
    for norm, layer in (("group", nn.GroupNorm), ("frozen", FrozenBatchNorm2d),
                        ("batch", nn.BatchNorm2d)):
        body = build_maskrcnn(num_classes=4, norm=norm, image_size=64).backbone.body
        norms = [m for m in body.modules() if isinstance(m, (nn.GroupNorm, FrozenBatchNorm2d,
                                                              nn.BatchNorm2d))]
        assert len(norms) == 20 and all(type(m) is layer for m in norms)  # 1 + 8 x 2 + 3
    # normalised heads: 4 FPN inner + 4 FPN layer convs and 4 mask-head convs
    model = build_maskrcnn(num_classes=4, norm="group", image_size=64)
    heads = [m for m in (*model.backbone.fpn.modules(), *model.roi_heads.mask_head.modules())
             if isinstance(m, nn.GroupNorm)]
    assert len(heads) == 12
    plain = build_maskrcnn(num_classes=4, norm="group", image_size=64, head_norm=False)
    assert not any(isinstance(m, nn.GroupNorm) for m in plain.backbone.fpn.modules())


def test_resnet50_matches_torchvision_maskrcnn_resnet50_fpn(offline):
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=4)
    ref_shapes = {k: v.shape for k, v in reference.state_dict().items()}
    ours = build_model("maskrcnn_resnet50_fpn", num_classes=4,
                       norm="batch", head_norm=False).state_dict()  # torchvision's layers
    assert set(ours) == set(ref_shapes)
    differ = {k for k, v in ours.items() if v.shape != ref_shapes[k]}
    assert differ == {"backbone.body.conv1.weight"}  # 1 input channel instead of 3
    frozen = build_model("maskrcnn_resnet50_fpn", num_classes=4, norm="frozen",
                         head_norm=False).state_dict()
    assert set(frozen) == {k for k in ref_shapes if not k.endswith("num_batches_tracked")}


def test_config_rebuilds_the_same_architecture():
    model = build_model("maskrcnn_resnet18_fpn", num_classes=4, image_size=(48, 64),
                        image_mean=0.1, norm="frozen", trainable_layers=3, anchor_sizes=(8, 16, 32, 64, 128),
                        box_detections_per_img=20)
    config = json.loads(json.dumps(model.config))  # as stored in a run directory
    rebuilt = build_model("maskrcnn_resnet18_fpn", **config)
    a, b = model.state_dict(), rebuilt.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    assert rebuilt.config == build_model("maskrcnn_resnet18_fpn", **model.config).config
    assert rebuilt.rpn.anchor_generator.sizes == ((8,), (16,), (32,), (64,), (128,))
    assert rebuilt.roi_heads.detections_per_img == 20
    assert not rebuilt.backbone.body.conv1.weight.requires_grad  # only layer2-4 train
    assert rebuilt.backbone.body.layer2[0].conv1.weight.requires_grad


def test_clear_errors():
    with pytest.raises(TypeError, match="num_classes"):
        build_model("maskrcnn_resnet18_fpn", num_classes=4, out_dim=3, head="regression")
    with pytest.raises(TypeError, match="unknown Mask R-CNN settings"):
        build_maskrcnn(num_classes=4, min_size=800)
    with pytest.raises(ValueError, match="norm"):
        build_maskrcnn(num_classes=4, norm="layer")
    with pytest.raises(ValueError, match="backbone"):
        build_maskrcnn(num_classes=4, backbone="resnet101")
    with pytest.raises(ValueError, match="image_size"):
        build_maskrcnn(num_classes=4, image_size=(64, 64, 3))
    with pytest.raises(ValueError, match="image_mean"):
        build_maskrcnn(num_classes=4, image_mean=[0.0, 0.0, 0.0])
