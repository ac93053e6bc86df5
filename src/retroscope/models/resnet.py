"""Residual networks (He et al., CVPR 2016) for single-channel detector images.

The blocks and the stage builder are torchvision's own (``BasicBlock``, ``Bottleneck``,
``ResNet._make_layer``); :class:`ConfigurableResNet` only changes what torchvision fixes: the
number of input channels, the stage widths (``base_width`` scales all of them; 64 reproduces
torchvision), the stride of each stage, the stem, the activation and the head. Weights are
always randomly initialised as in torchvision; nothing is downloaded.

Stems (``stem=``):

- ``"imagenet"``: 7x7 convolution with stride 2, then 3x3 max pooling with stride 2
  (torchvision, for inputs of about 128 px and more);
- ``"small"``: 3x3 convolution with stride 1 and no pooling, for small inputs (tens of px);
- ``"stielow"``: 7x7 convolution with stride 2, then 2x2 max pooling with stride 2
  (Stielow et al., Mach. Learn.: Sci. Technol. 2, 025011 (2021), Sec. 3 and Fig. 3).

Registered models: ``resnet18``, ``resnet34``, ``resnet50`` and ``stielow34``. All take the
keyword settings of :func:`build_resnet` except the architecture itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from retroscope.models.registry import head_outputs, register_model, set_activation

STEMS: tuple[str, ...] = ("imagenet", "small", "stielow")


class ConfigurableResNet(ResNet):
    """torchvision's ``ResNet`` with configurable input channels, stage widths and strides,
    stem, activation and head.

    Parameters
    ----------
    block, layers:
        torchvision block class and number of blocks per stage (four stages).
    widths:
        the ``planes`` of each stage; the stem has ``widths[0]`` filters. The pooled feature
        vector has ``widths[-1] * block.expansion`` entries (``feature_dim``).
    strides:
        stride of the first block of each stage; a stage whose stride is not 1 or whose width
        changes gets torchvision's 1x1-convolution projection shortcut.
    in_channels, out_dim, head, stem, activation, dropout:
        see :func:`build_resnet`.
    input_size:
        ``(height_px, width_px)`` the network is meant for; recorded for the run metadata only
        (global average pooling accepts any size the stem and strides do not reduce to zero).
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        *,
        widths: Sequence[int],
        strides: Sequence[int] = (1, 2, 2, 2),
        in_channels: int = 1,
        out_dim: int = 1,
        head: str = "regression",
        stem: str = "imagenet",
        activation: str = "relu",
        dropout: float = 0.0,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        # ResNet.__init__ hard-codes 3 input channels and 64..512 widths, so the attributes
        # that ResNet._make_layer reads are set here instead.
        nn.Module.__init__(self)
        if len(layers) != 4 or len(widths) != 4 or len(strides) != 4:
            raise ValueError(
                f"layers, widths and strides need 4 entries each, got {layers}, {widths}, {strides}"
            )
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels}")
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = widths[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # torchvision's width_per_group; BasicBlock requires 64

        if stem == "small":
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        if stem == "imagenet":
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        elif stem == "stielow":
            self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        else:
            self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(block, widths[0], layers[0], stride=strides[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=strides[1])
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=strides[2])
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=strides[3])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))

        self.feature_dim = widths[3] * block.expansion
        self.out_dim = out_dim
        self.head = head
        self.input_size = input_size
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.feature_dim, head_outputs(head, out_dim))

        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        set_activation(self, activation)

    @property
    def blocks(self) -> list[nn.Module]:
        """The network's stages in order, for transfer learning (freezing the first K): the
        stem (convolution and batch norm), then the four residual stages."""
        return [nn.ModuleList([self.conv1, self.bn1]), self.layer1, self.layer2, self.layer3,
                self.layer4]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features ``(B, feature_dim)`` of images ``(B, C, H, W)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Head output: ``(B, out_dim)``, or ``(B, 2 * out_dim)`` = [mean, log-variance] for
        ``head="heteroscedastic"``."""
        return self.fc(self.dropout(self.embed(x)))


def build_resnet(
    block: type[BasicBlock | Bottleneck],
    layers: Sequence[int],
    strides: Sequence[int],
    *,
    out_dim: int = 1,
    head: str = "regression",
    in_channels: int = 1,
    base_width: int = 64,
    stem: str = "imagenet",
    activation: str = "relu",
    dropout: float = 0.0,
    input_size: int | Sequence[int] | None = None,
) -> ConfigurableResNet:
    """Build a :class:`ConfigurableResNet` with stage widths ``base_width * (1, 2, 4, 8)``.

    ``out_dim``: number of targets (classes for ``head="classification"``); ``head``: one of
    ``"regression"``, ``"heteroscedastic"``, ``"classification"`` (see
    :mod:`retroscope.models.registry`); ``in_channels``: image channels (1 for a detector);
    ``base_width``: width of the stem and first stage (64 = torchvision; 32 gives about a
    quarter of the parameters); ``stem``: ``"imagenet"``, ``"small"`` or ``"stielow"``;
    ``activation``: ``"relu"`` or ``"tanh"`` (every ReLU is replaced); ``dropout``: drop
    probability before the final linear layer; ``input_size``: ``(height_px, width_px)`` or
    one int for square images, recorded as metadata.

    The resolved settings are stored as ``model.config``.
    """
    if base_width < 1:
        raise ValueError(f"base_width must be a positive integer, got {base_width}")
    if input_size is not None:
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
            raise ValueError(f"input_size must be (height_px, width_px), got {input_size!r}")
        input_size = (int(size[0]), int(size[1]))
    model = ConfigurableResNet(
        block,
        layers,
        widths=tuple(base_width * f for f in (1, 2, 4, 8)),
        strides=strides,
        in_channels=in_channels,
        out_dim=out_dim,
        head=head,
        stem=stem,
        activation=activation,
        dropout=dropout,
        input_size=input_size,
    )
    model.config = {
        "out_dim": out_dim,
        "head": head,
        "in_channels": in_channels,
        "base_width": base_width,
        "stem": stem,
        "activation": activation,
        "dropout": dropout,
        "input_size": input_size,
    }
    return model


@register_model("resnet18")
def resnet18(**cfg) -> ConfigurableResNet:
    """ResNet-18 (He et al. 2016): BasicBlocks (2, 2, 2, 2); settings of :func:`build_resnet`."""
    return build_resnet(BasicBlock, (2, 2, 2, 2), (1, 2, 2, 2), **cfg)


@register_model("resnet34")
def resnet34(**cfg) -> ConfigurableResNet:
    """ResNet-34 (He et al. 2016): BasicBlocks (3, 4, 6, 3); settings of :func:`build_resnet`."""
    return build_resnet(BasicBlock, (3, 4, 6, 3), (1, 2, 2, 2), **cfg)


@register_model("resnet50")
def resnet50(**cfg) -> ConfigurableResNet:
    """ResNet-50 (He et al. 2016): Bottlenecks (3, 4, 6, 3), ``feature_dim = 32 * base_width``;
    settings of :func:`build_resnet`."""
    return build_resnet(Bottleneck, (3, 4, 6, 3), (1, 2, 2, 2), **cfg)


@register_model("stielow34")
def stielow34(**cfg) -> ConfigurableResNet:
    """The network of Stielow et al., Mach. Learn.: Sci. Technol. 2, 025011 (2021), Sec. 3,
    Fig. 3, for 128x128 scattering patterns.

    A 7x7 convolution with stride 2 and 64 filters, 2x2 max pooling, four stacks of 3, 4, 6
    and 4 BasicBlocks with 64, 128, 256 and 512 filters whose first convolution has stride 2
    (so every stack starts with a 1x1 projection shortcut), global average pooling to 512
    features and a fully connected layer to the outputs (5 in the paper: a quaternion and the
    radius); all activations tanh. The paper calls it a 34-layer ResNet; the stacks it lists
    give 36 weight layers, and those stacks are what is built here.

    Defaults ``stem="stielow"``, ``activation="tanh"``; every setting of
    :func:`build_resnet` can be overridden (e.g. ``base_width``, ``head``).
    """
    cfg = {"stem": "stielow", "activation": "tanh", **cfg}
    return build_resnet(BasicBlock, (3, 4, 6, 4), (2, 2, 2, 2), **cfg)
