"""Mask R-CNN (He et al., ICCV 2017) for single-channel optical-depth images.

Hofer et al., Mach. Learn.: Sci. Technol. 2, 045008 (2021) segment absorption images of
ultracold atoms with torchvision's
``maskrcnn_resnet50_fpn``. :func:`build_maskrcnn` builds that architecture (ResNet + FPN
backbone, RPN, box and mask heads) from torchvision's parts
(a torchvision ResNet through ``backbone_utils._resnet_fpn_extractor`` and
``torchvision.models.detection.MaskRCNN``, see
https://pytorch.org/vision/stable/models/mask_rcnn.html) with what torchvision fixes changed:

- one input channel: the stem convolution ``backbone.body.conv1`` takes ``in_channels``
  channels, and ``image_mean`` / ``image_std`` (the optical-depth statistics of the training
  set) have one entry per channel, which ``GeneralizedRCNNTransform.normalize`` accepts;
- no rescaling: torchvision resizes every image so that its short side is ``min_size=800``
  (at most ``max_size=1333`` on the long side); here both equal the image size, so the scale
  factor is 1 and output masks have the input size;
- the normalisation layer of the backbone (``norm=``): ``"group"`` (GroupNorm, Wu & He,
  ECCV 2018; the default, for training from scratch at batch sizes 2-4), ``"frozen"``
  (``FrozenBatchNorm2d``, torchvision's choice for pretrained backbones: with random
  initialisation its statistics are the identity, so it does not normalise at all and deep
  backbones trained from scratch are fragile) or ``"batch"`` (``BatchNorm2d``, torchvision's
  choice without pretraining; noisy at small batch sizes);
- normalised heads (``head_norm=True``, the default): the FPN and the mask head get the same
  normalisation layers as the backbone, as in torchvision's ``maskrcnn_resnet50_fpn_v2`` and
  in He, Girshick & Dollar, "Rethinking ImageNet Pre-training" (ICCV 2019), whose Mask R-CNN
  trains from scratch with GroupNorm in backbone, FPN and heads. Without them the random
  FPN features reach the mask head's un-normalised conv stack with a large scale and the mask
  loss starts near 10 instead of ln 2 (measured); the box head stays torchvision's two-layer
  MLP, since v2's four 3x3 convolutions per region cost too much on a CPU;
- masks pasted into the image at sub-pixel precision (``mask_paste="exact"``, the default,
  :mod:`retroscope.models.mask_paste`): the exact inverse of the ``roi_align`` geometry that
  sets the mask targets in training, instead of torchvision's legacy paste, which truncates
  boxes to whole pixels and shifts every mask by a fraction of a pixel (``"torchvision"``);
  ``mask_targets`` says how the mask targets are made in training (``"roi_align"``,
  torchvision's and the default, cuts half a pixel off the top and left of every object;
  ``"centred"`` does not) and the paste follows it;
- anchors for small images: one size per FPN level, ``(16, 32, 64, 128, 256)`` px by default
  instead of torchvision's ``(32, ..., 512)``, for 256 px frames with objects of 5-80 px
  radius.

No weights are ever downloaded (``weights=None`` throughout).

Registered models: ``maskrcnn_resnet18_fpn`` (the CPU default) and ``maskrcnn_resnet50_fpn``
(the paper's network). They differ from the regression models of
:mod:`retroscope.models.registry`: there is no ``embed``, ``out_dim``, ``feature_dim`` or
``head``; the builders take ``num_classes`` (background included) instead of ``out_dim`` /
``head``, and ``forward`` follows torchvision's detection interface: in training mode
``model(images, targets)`` returns the loss dict (``loss_classifier``, ``loss_box_reg``,
``loss_mask``, ``loss_objectness``, ``loss_rpn_box_reg``), in eval mode ``model(images)``
returns one dict per image with ``boxes`` (N, 4) xyxy, ``labels`` (N,), ``scores`` (N,) and
soft ``masks`` (N, 1, H, W). ``images`` is a list of (C, H, W) tensors. As for every
registered model, ``model.config`` holds the resolved settings, so that
``build_model(name, **model.config)`` rebuilds the architecture.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models import resnet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops import FrozenBatchNorm2d

from retroscope.models.mask_paste import MASK_TARGETS, ExactPasteTransform
from retroscope.models.registry import register_model

BACKBONES: tuple[str, ...] = ("resnet18", "resnet34", "resnet50")
NORMS: tuple[str, ...] = ("group", "frozen", "batch")
MASK_PASTES: tuple[str, ...] = ("exact", "torchvision")
DEFAULT_ANCHOR_SIZES: tuple[tuple[int, ...], ...] = ((16,), (32,), (64,), (128,), (256,))

# scalar settings of torchvision's FasterRCNN / MaskRCNN passed through unchanged
PASSTHROUGH: tuple[str, ...] = (
    "rpn_pre_nms_top_n_train", "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_train",
    "rpn_post_nms_top_n_test", "rpn_nms_thresh", "rpn_fg_iou_thresh", "rpn_bg_iou_thresh",
    "rpn_batch_size_per_image", "rpn_positive_fraction", "rpn_score_thresh",
    "box_score_thresh", "box_nms_thresh", "box_detections_per_img", "box_fg_iou_thresh",
    "box_bg_iou_thresh", "box_batch_size_per_image", "box_positive_fraction",
    "bbox_reg_weights",
)


def group_norm(num_channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm over ``num_channels`` with the largest group count <= ``max_groups`` that
    divides ``num_channels`` (32 groups as in Wu & He, ECCV 2018, where possible)."""
    groups = next(g for g in range(min(max_groups, num_channels), 0, -1) if num_channels % g == 0)
    return nn.GroupNorm(groups, num_channels)


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """The ``norm_layer`` factory (called with the channel count) for ``norm``."""
    layers = {"group": group_norm, "frozen": FrozenBatchNorm2d, "batch": nn.BatchNorm2d}
    if norm not in layers:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return layers[norm]


def _image_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
        raise ValueError(f"image_size must be an int or (height_px, width_px), got {image_size!r}")
    return int(size[0]), int(size[1])


def _per_channel(value: float | Sequence[float], in_channels: int, name: str) -> list[float]:
    values = [float(value)] * in_channels if isinstance(value, (int, float)) else list(value)
    if len(values) != in_channels:
        raise ValueError(f"{name} needs 1 or in_channels={in_channels} entries, got {value!r}")
    if name == "image_std" and any(v <= 0 for v in values):
        raise ValueError(f"image_std must be positive, got {value!r}")
    return [float(v) for v in values]


def _anchor_sizes(anchor_sizes: Sequence) -> tuple[tuple[int, ...], ...]:
    """``((16,), (32,), ...)``, or the flat ``(16, 32, ...)``, one entry per FPN level."""
    sizes = tuple(tuple(s) if isinstance(s, Sequence) else (s,) for s in anchor_sizes)
    if len(sizes) != 5 or any(not s or any(v <= 0 for v in s) for s in sizes):
        raise ValueError(
            "anchor_sizes needs 5 entries (FPN levels P2-P6) of positive sizes, "
            f"got {anchor_sizes!r}"
        )
    return tuple(tuple(int(v) for v in s) for s in sizes)


def build_maskrcnn(
    num_classes: int,
    backbone: str = "resnet18",
    image_size: int | Sequence[int] = 256,
    image_mean: float | Sequence[float] = 0.0,
    image_std: float | Sequence[float] = 1.0,
    norm: str = "group",
    trainable_layers: int = 5,
    in_channels: int = 1,
    anchor_sizes: Sequence = DEFAULT_ANCHOR_SIZES,
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    head_norm: bool = True,
    fpn_channels: int = 256,
    representation_size: int = 1024,
    mask_paste: str = "exact",
    mask_targets: str = "roi_align",
    **kwargs,
) -> MaskRCNN:
    """Build a randomly initialised Mask R-CNN with a ResNet-FPN backbone (see module doc).

    ``backbone``: ``"resnet18"``, ``"resnet34"`` or ``"resnet50"`` (with ``norm="frozen"`` the
    latter is the structure of torchvision's ``maskrcnn_resnet50_fpn(weights=None,
    weights_backbone=None)`` used by Hofer et al. 2021, except the 1-channel stem and the
    normalisation layer; ``norm="batch"`` gives torchvision's exact layers);
    ``num_classes``: classes including the background (e.g. 4 = background and 3 kinds);
    ``image_size``: the frame size in px, int or ``(height, width)``; images are not resized;
    ``image_mean``, ``image_std``: optical-depth statistics of the training set, a scalar or
    one value per channel; ``norm``: ``"group"``, ``"frozen"`` or ``"batch"``;
    ``trainable_layers``: backbone stages that train (0-5, counted from ``layer4``; 5 = all);
    ``in_channels``: image channels (1 for an optical-depth image); ``anchor_sizes``: anchor
    sizes in px per FPN level (5 levels); ``aspect_ratios``: height/width ratios of the anchors
    at every level; ``head_norm``: normalisation layers in the FPN and the mask head too;
    ``fpn_channels``: width of the FPN and of the mask head (torchvision: 256);
    ``representation_size``: width of the box head's two fully connected layers (1024);
    ``mask_paste``: ``"exact"`` (sub-pixel, see module doc) or ``"torchvision"``;
    ``mask_targets``: ``"roi_align"`` or ``"centred"`` (how training makes the mask targets);
    ``kwargs``: scalar torchvision settings (``rpn_*``, ``box_*``,
    ``bbox_reg_weights``, see :data:`PASSTHROUGH`).

    The resolved settings are stored as ``model.config``.
    """
    if "out_dim" in kwargs or "head" in kwargs:
        raise TypeError(
            "Mask R-CNN is a detection model: pass num_classes (background included), not "
            "out_dim / head, and train it with the detection losses it returns"
        )
    unknown = sorted(set(kwargs) - set(PASSTHROUGH))
    if unknown:
        raise TypeError(f"unknown Mask R-CNN settings {unknown}; allowed: {PASSTHROUGH}")
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"num_classes (background included) must be >= 2, got {num_classes}")
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers must be in [0, 5], got {trainable_layers}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels}")
    height, width = _image_size(image_size)
    mean = _per_channel(image_mean, in_channels, "image_mean")
    std = _per_channel(image_std, in_channels, "image_std")
    sizes = _anchor_sizes(anchor_sizes)
    ratios = tuple(float(r) for r in aspect_ratios)
    if not ratios or any(r <= 0 for r in ratios):
        raise ValueError(f"aspect_ratios must be positive, got {aspect_ratios!r}")

    if mask_paste not in MASK_PASTES:
        raise ValueError(f"mask_paste must be one of {MASK_PASTES}, got {mask_paste!r}")
    if mask_targets not in MASK_TARGETS:
        raise ValueError(f"mask_targets must be one of {tuple(MASK_TARGETS)}, got "
                         f"{mask_targets!r}")
    if mask_targets != "roi_align" and mask_paste != "exact":
        raise ValueError(f"mask_targets={mask_targets!r} is made by the exact paste's "
                         "transform: it needs mask_paste='exact'")
    layer = norm_layer(norm)
    fpn = _resnet_fpn(getattr(resnet, backbone)(weights=None, norm_layer=layer),
                      trainable_layers, int(fpn_channels), layer if head_norm else None)
    old = fpn.body.conv1
    fpn.body.conv1 = nn.Conv2d(in_channels, old.out_channels, 7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(fpn.body.conv1.weight, mode="fan_out", nonlinearity="relu")
    fpn.body.conv1.weight.requires_grad_(old.weight.requires_grad)

    channels, classes = int(fpn_channels), int(num_classes)
    model = MaskRCNN(
        fpn,
        num_classes=None,
        min_size=min(height, width),
        max_size=max(height, width),
        image_mean=mean,
        image_std=std,
        rpn_anchor_generator=AnchorGenerator(sizes, (ratios,) * len(sizes)),
        box_head=TwoMLPHead(channels * 7 * 7, int(representation_size)),
        box_predictor=FastRCNNPredictor(int(representation_size), classes),
        mask_head=MaskRCNNHeads(channels, [channels] * 4, 1,
                                norm_layer=layer if head_norm else None),
        mask_predictor=MaskRCNNPredictor(channels, channels, classes),
        **kwargs,
    )
    if mask_paste == "exact":
        old_transform = model.transform
        model.transform = ExactPasteTransform(
            old_transform.min_size, old_transform.max_size, old_transform.image_mean,
            old_transform.image_std, size_divisible=old_transform.size_divisible,
            fixed_size=old_transform.fixed_size, mask_targets=mask_targets)
    model.config = {
        "backbone": backbone,
        "num_classes": int(num_classes),
        "image_size": height if height == width else (height, width),
        "image_mean": mean[0] if len(set(mean)) == 1 else mean,
        "image_std": std[0] if len(set(std)) == 1 else std,
        "norm": norm,
        "trainable_layers": trainable_layers,
        "in_channels": in_channels,
        "anchor_sizes": sizes,
        "aspect_ratios": ratios,
        "head_norm": bool(head_norm),
        "fpn_channels": channels,
        "representation_size": int(representation_size),
        "mask_paste": mask_paste,
        "mask_targets": mask_targets,
        **kwargs,
    }
    return model


def _resnet_fpn(body: resnet.ResNet, trainable_layers: int, channels: int,
                fpn_norm) -> BackboneWithFPN:
    """ResNet stages 1-4 + FPN of ``channels`` (torchvision's ``_resnet_fpn_extractor`` with
    the FPN width as a setting); stages beyond ``trainable_layers`` (from layer4) are frozen."""
    train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        train.append("bn1")
    for name, parameter in body.named_parameters():
        if not any(name.startswith(layer) for layer in train):
            parameter.requires_grad_(False)
    stage2 = body.inplanes // 8
    return BackboneWithFPN(body, {f"layer{k}": str(k - 1) for k in (1, 2, 3, 4)},
                           [stage2 * 2 ** (k - 1) for k in (1, 2, 3, 4)], channels,
                           extra_blocks=LastLevelMaxPool(), norm_layer=fpn_norm)


@register_model("maskrcnn_resnet18_fpn")
def maskrcnn_resnet18_fpn(**cfg) -> MaskRCNN:
    """Mask R-CNN with a ResNet-18-FPN backbone (the CPU default); settings of
    :func:`build_maskrcnn` (``backbone`` defaults to ``"resnet18"``)."""
    return build_maskrcnn(**{"backbone": "resnet18", **cfg})


@register_model("maskrcnn_resnet50_fpn")
def maskrcnn_resnet50_fpn(**cfg) -> MaskRCNN:
    """Mask R-CNN with a ResNet-50-FPN backbone, the network of Hofer et al. 2021; settings
    of :func:`build_maskrcnn` (``backbone`` defaults to ``"resnet50"``)."""
    return build_maskrcnn(**{"backbone": "resnet50", **cfg})
