"""The network every image learner trains: input normalisation, then a registered model.

:class:`NormalisedNetwork` holds the input normalisation (training-set statistics stored with
the weights) and the model built with the learner's head (``"heteroscedastic"`` for a
regression, ``"classification"`` for a classifier). :func:`prepare_network` starts it the way
a run asks: from another run's weights and normalisation (``init_from``, transfer learning)
or with the training split's statistics, and freezes its first ``freeze`` blocks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class InputNormalization(nn.Module):
    """(x - mean) / std with the training-set statistics stored as buffers."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class NormalisedNetwork(nn.Module):
    """Input normalisation (``norm``) followed by a registered model (``body``) with the head
    ``head`` and ``out_dim`` outputs (targets or classes); subclasses define ``forward``."""

    def __init__(self, model_name: str, model_kwargs: dict, out_dim: int, head: str) -> None:
        super().__init__()
        from retroscope.models import build_model

        self.norm = InputNormalization()
        # channels-last: 2D convolutions train ~1.5x faster on a CPU (measured, one thread,
        # the 256 x 128 plain_cnn); weights of other ranks are left as they are
        self.body = build_model(model_name, out_dim=out_dim, head=head,
                                **model_kwargs).to(memory_format=torch.channels_last)
        self.out_dim = out_dim
        self.frozen: list[nn.Module] = []

    def normalised(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised input, in channels-last memory order if it is a batch of images
        (the values and their indexing are unchanged)."""
        x = self.norm(x)
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    def freeze(self, k: int) -> None:
        """Freeze the body's first ``k`` blocks (``models.registry.freeze_blocks``)."""
        from retroscope.models.registry import freeze_blocks

        self.frozen = freeze_blocks(self.body, k)
        self.train(self.training)

    def train(self, mode: bool = True):
        """As ``nn.Module.train``, but frozen blocks stay in eval mode: their batch-norm
        statistics are part of what is transferred."""
        super().train(mode)
        for block in self.frozen:
            block.eval()
        return self


def transfer_weights(network: nn.Module, run_dir) -> None:
    """Load the weights of the finished run ``run_dir`` (normalisation included) into
    ``network``; the two must have the same architecture and outputs."""
    from retroscope.runs import open_run

    run = open_run(run_dir)
    try:
        network.load_state_dict(run.state_dict())
    except RuntimeError as exc:
        raise ValueError(f"--init-from {run_dir}: its network does not match this one "
                         f"({str(exc).splitlines()[0]})") from exc


def prepare_network(network: NormalisedNetwork, cfg, train_set) -> NormalisedNetwork:
    """``network`` ready to train as ``cfg`` asks: channels-last under bfloat16 (oneDNN's
    bfloat16 convolutions run fastest on NHWC tensors); the weights and input normalisation
    of ``cfg.init_from`` (transfer learning), else the input statistics of ``train_set``;
    its first ``cfg.freeze`` blocks frozen."""
    from retroscope.train.trainer import input_statistics

    if cfg.precision.startswith("bf16"):
        network = network.to(memory_format=torch.channels_last)
    if cfg.init_from:
        transfer_weights(network, cfg.init_from)
    else:
        mean, std = input_statistics(train_set)
        network.norm.mean.fill_(mean)
        network.norm.std.fill_(std)
    network.freeze(cfg.freeze)
    return network


def symmetrised_batches(inputs, batch_size: int, device: str,
                        flips: tuple[tuple[int, ...], ...] = ()):
    """Batches of an (n, C, H, W) array or a Dataset (its items' first element) as float32
    tensors on ``device``, each followed by every copy flipped along ``flips`` (the task's
    input symmetries) in one tensor: yields (x, k) with k copies of the batch; average a
    network's outputs over the copies with :func:`mean_over_copies`."""
    n = len(inputs)
    views = [()] + [tuple(f) for f in flips]
    for start in range(0, n, batch_size):
        if isinstance(inputs, np.ndarray):
            x = torch.from_numpy(inputs[start:start + batch_size])
        else:
            x = torch.stack([inputs[i][0] for i in range(start, min(n, start + batch_size))])
        x = x.to(device=device, dtype=torch.float32)
        if len(views) > 1:  # all views in one forward pass
            x = torch.cat([torch.flip(x, dims) if dims else x for dims in views])
        yield x, len(views)


def mean_over_copies(t: torch.Tensor, k: int) -> torch.Tensor:
    """(k * b, d) outputs of k copies of a batch -> their mean per input, (b, d)."""
    return t.reshape(k, -1, t.shape[-1]).mean(0)
