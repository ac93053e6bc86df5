"""Small plain networks for 1D and 2D maps: the CNN of Shvetsov-Shilovski & Lein (PRA 107,
033106 (2023), Sec. II A, Fig. 1) and a fully connected network for curves.

``plain_cnn``: ``n_blocks`` x [3 x 3 convolution ("same" padding, ``width`` filters), batch
normalisation, ReLU, 2 x 2 average pooling], dropout, and one fully connected layer on the
flattened last feature maps (not a global pooling: where a feature sits in the map is the
information). With the paper's sizes (1 x 256 x 128 input, 5 blocks of 32 filters, dropout
0.2, one output) it has 38 657 parameters: 37 312 in the convolutions (biases included),
320 in the batch normalisations and 1 025 in the final layer on 8 x 4 x 32 = 1 024
features. (The paper quotes 37 857, which leaves out the convolution biases and has a
384-weight final layer that a 256 x 128 input cannot give.) ``dims=1`` builds the same on
curves (1 x L input, kernels of 3, pooling by 2).

``mlp``: ``depth`` fully connected layers of ``width`` units with batch normalisation and
ReLU on a flattened input, then dropout and the head (the paper's 4-layer perceptron for
dP/dk_x: three hidden layers of 512).

Both follow the interface of :mod:`retroscope.models.registry` (``embed``, ``dropout``,
``fc``, ``feature_dim``, ``out_dim``, ``config``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from retroscope.models.registry import head_outputs, register_model


class PlainCNN(nn.Module):
    """See the module docstring."""

    def __init__(self, *, input_size: Sequence[int] = (256, 128), in_channels: int = 1,
                 width: int = 32, n_blocks: int = 5, dropout: float = 0.2, dims: int = 2,
                 out_dim: int = 1, head: str = "regression") -> None:
        super().__init__()
        if dims not in (1, 2) or len(input_size) != dims:
            raise ValueError(f"dims must be 1 or 2 with an input_size of that length, got "
                             f"dims={dims}, input_size={tuple(input_size)}")
        final = [s // 2 ** n_blocks for s in input_size]
        if min(final) < 1 or any(s % 2 ** n_blocks for s in input_size):
            raise ValueError(f"an input of {tuple(input_size)} does not halve {n_blocks} times")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        conv, norm, pool = ((nn.Conv2d, nn.BatchNorm2d, nn.AvgPool2d) if dims == 2 else
                            (nn.Conv1d, nn.BatchNorm1d, nn.AvgPool1d))
        layers, channels = [], in_channels
        for _ in range(n_blocks):
            layers.append(nn.Sequential(conv(channels, width, 3, padding=1), norm(width),
                                        nn.ReLU(inplace=True), pool(2)))
            channels = width
        self.blocks = nn.Sequential(*layers)
        self.feature_dim = width * math.prod(final)
        self.out_dim, self.head = out_dim, head
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.feature_dim, head_outputs(head, out_dim))
        self.config = {"input_size": list(input_size), "in_channels": in_channels,
                       "width": width, "n_blocks": n_blocks, "dropout": dropout, "dims": dims}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened last feature maps ``(B, feature_dim)``."""
        return torch.flatten(self.blocks(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.embed(x)))


class MLP(nn.Module):
    """See the module docstring."""

    def __init__(self, *, input_size: Sequence[int] = (256,), in_channels: int = 1,
                 width: int = 512, depth: int = 3, dropout: float = 0.0, out_dim: int = 1,
                 head: str = "regression") -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"need depth >= 1 and width >= 1, got {depth}, {width}")
        n_in = in_channels * math.prod(input_size)
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(n_in, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            n_in = width
        self.hidden = nn.Sequential(*layers)
        self.feature_dim = width
        self.out_dim, self.head = out_dim, head
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width, head_outputs(head, out_dim))
        self.config = {"input_size": list(input_size), "in_channels": in_channels,
                       "width": width, "depth": depth, "dropout": dropout}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(torch.flatten(x, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.embed(x)))


@register_model("plain_cnn")
def plain_cnn(**kwargs) -> PlainCNN:
    return PlainCNN(**kwargs)


@register_model("mlp")
def mlp(**kwargs) -> MLP:
    return MLP(**kwargs)
