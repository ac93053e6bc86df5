"""The model registry and the interface every retroscope network shares.

Models are registered by name, in the style of torchvision's ``register_model`` /
``get_model``::

    @register_model("mynet")
    def mynet(*, out_dim: int = 1, head: str = "regression", **kwargs) -> nn.Module: ...

    model = build_model("mynet", out_dim=5, head="heteroscedastic")

Every registered model is an :class:`torch.nn.Module` with

- ``out_dim``: the number of targets (regression) or classes (classification);
- ``feature_dim``: the length of the pooled penultimate feature vector;
- ``embed(x) -> (B, feature_dim)``: those features, used for out-of-distribution scores
  (:class:`retroscope.train.uncertainty.FeatureDensity`);
- ``forward(x)``: the head applied to the features, whose width depends on ``head``
  (see :func:`head_outputs`);
- ``config``: the resolved keyword arguments, so that ``build_model(name, **model.config)``
  rebuilds the same architecture (the run directory stores ``name`` and ``config``).

The heads are

- ``"regression"``: ``(B, out_dim)`` point estimates, trained with a mean-squared error;
- ``"heteroscedastic"``: ``(B, 2 * out_dim)``, the predicted mean in the first ``out_dim``
  columns and the log-variance in the last ``out_dim`` columns (Nix & Weigend 1994;
  Kendall & Gal, NeurIPS 2017), trained with
  :func:`retroscope.train.uncertainty.gaussian_nll`; split them with
  :func:`split_mean_logvar`;
- ``"classification"``: ``(B, out_dim)`` unnormalised logits over ``out_dim`` classes.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

HEADS: tuple[str, ...] = ("regression", "heteroscedastic", "classification")
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model builder under ``name``; raises ``ValueError`` if the name is taken."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is already registered by {_MODELS[name]!r}")
        _MODELS[name] = builder
        return builder

    return decorator


def build_model(name: str, **cfg) -> nn.Module:
    """Build the registered model ``name`` with keyword settings ``cfg`` (random weights)."""
    try:
        builder = _MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered models: {list_models()}") from None
    return builder(**cfg)


def list_models() -> list[str]:
    """The names of all registered models, sorted."""
    return sorted(_MODELS)


def head_outputs(head: str, out_dim: int) -> int:
    """Width of the final linear layer for ``head`` with ``out_dim`` targets or classes."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if out_dim < 1:
        raise ValueError(f"out_dim must be a positive integer, got {out_dim}")
    return 2 * out_dim if head == "heteroscedastic" else out_dim


def split_mean_logvar(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a heteroscedastic output ``(B, 2 * d)`` into mean ``(B, d)`` and log-variance
    ``(B, d)`` (the layout documented in this module)."""
    if y.ndim != 2 or y.shape[1] % 2:
        raise ValueError(
            f"heteroscedastic output must have shape (B, 2*d), got {tuple(y.shape)}"
        )
    d = y.shape[1] // 2
    return y[:, :d], y[:, d:]


def set_activation(module: nn.Module, activation: str) -> nn.Module:
    """Replace every ``nn.ReLU`` submodule of ``module`` by ``activation`` (in place).

    Works for torchvision's blocks because they call their activation through a module
    attribute (``self.relu``). Returns ``module``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    if activation == "relu":
        return module
    for parent in module.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, child_name, ACTIVATIONS[activation]())
    return module


def freeze_blocks(model: nn.Module, k: int) -> list[nn.Module]:
    """Stop training the first ``k`` of ``model.blocks`` (transfer learning, Shvetsov-Shilovski
    & Lein 2023, Sec. IV): their parameters no longer get gradients. Returns those blocks;
    the caller keeps them in eval mode, so that their batch-norm statistics stay as they
    were learned."""
    blocks = list(getattr(model, "blocks", []))
    if not 0 <= k <= len(blocks):
        raise ValueError(f"cannot freeze {k} blocks of a model with {len(blocks)} "
                         f"(model.blocks)")
    for block in blocks[:k]:
        for parameter in block.parameters():
            parameter.requires_grad_(False)
    return blocks[:k]
