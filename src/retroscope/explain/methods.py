"""Attribution maps of one scalar network output over its image input, with captum 0.9.

Every method takes ``model``, an ``nn.Module`` that maps images ``(N, C, H, W)`` to one scalar
per image ``(N,)`` (captum's ``target=None``), and returns maps ``(N, H, W)``: for occlusion and
LIME in units of that output, for Grad-CAM a gradient-weighted activation. A map is the same in
every channel (a window, a superpixel or the interpolated layer map covers all channels), so
the channel mean is returned.

- ``occlusion``: ``captum.attr.Occlusion`` (Zeiler & Fergus, ECCV 2014): the drop of the output
  when a window of the input is set to ``baseline``, averaged over the windows covering each
  pixel. The window and stride scale with the input (:func:`occlusion_window`): 32 x 16 px
  and 16 x 8 px on a 256 x 128 input.
- ``gradcam``: ``captum.attr.LayerGradCam`` (Selvaraju et al., ICCV 2017) on the last
  ``nn.Conv2d`` of the model (:func:`last_conv`), signed (captum's ``relu_attributions=False``:
  for a regression, pushing the output down is as informative as pushing it up), upsampled to
  the input with ``LayerAttribution.interpolate`` (bilinear).
- ``lime``: ``captum.attr.Lime`` (Ribeiro et al., KDD 2016) with a ridge regression
  (``SkLearnRidge``) as the interpretable model on a regular grid of superpixels
  (:func:`superpixels`). captum's default interpretable model, a Lasso with alpha 0.01,
  sets a coefficient to zero below about 4 alpha (binary features of variance 1/4), more than
  a regressor's output usually moves per superpixel: the map is all zeros (captum issues #679
  and #1008). A ridge only shrinks them. The binary samples are drawn from a
  ``torch.Generator`` seeded per image, so a map does not depend on the other images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr import LayerAttribution, LayerGradCam, Lime, Occlusion
from torch import nn

METHODS: tuple[str, ...] = ("occlusion", "gradcam", "lime")

#: the occlusion window and the LIME superpixel are this fraction of each side of the input
WINDOW_FRACTION = 8
#: the occlusion stride is this fraction of each side (half the window)
STRIDE_FRACTION = 16


def occlusion_window(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The occlusion window and stride (rows, columns) for an input of ``height`` x ``width``
    px: the window is 1/8 of each side and the stride 1/16 (half the window), rounded, at least
    1 px; 32 x 16 and 16 x 8 on a 256 x 128 input."""
    window = (max(1, round(height / WINDOW_FRACTION)), max(1, round(width / WINDOW_FRACTION)))
    stride = (max(1, round(height / STRIDE_FRACTION)), max(1, round(width / STRIDE_FRACTION)))
    return window, stride


def superpixels(height: int, width: int, grid: tuple[int, int] = (8, 8)) -> torch.Tensor:
    """Labels ``(H, W)`` of a ``grid`` (rows, columns) of regular blocks covering the input,
    numbered row by row from 0: LIME's feature mask. With the default 8 x 8 grid a block is
    the occlusion window (32 x 16 px on a 256 x 128 input). A side shorter than the grid gets
    one block per pixel."""
    rows, cols = min(grid[0], height), min(grid[1], width)
    if rows < 1 or cols < 1:
        raise ValueError(f"grid must be at least 1 x 1, got {grid}")
    row = torch.arange(height) * rows // height
    col = torch.arange(width) * cols // width
    return row[:, None] * cols + col[None, :]


def last_conv(model: nn.Module) -> nn.Conv2d:
    """The model's last ``nn.Conv2d`` in module order (for a sequential network, the one
    nearest the output): the layer Grad-CAM reads."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer for Grad-CAM")
    return convs[-1]


def occlusion(model: nn.Module, x: torch.Tensor, window: tuple[int, int] | None = None,
              stride: tuple[int, int] | None = None, baseline: float = 0.0,
              batch: int = 64) -> torch.Tensor:
    """``Occlusion.attribute`` with a window over all channels (default:
    :func:`occlusion_window`), ``batch`` occluded images per forward pass."""
    channels, height, width = x.shape[1:]
    default_window, default_stride = occlusion_window(height, width)
    window, stride = window or default_window, stride or default_stride
    with torch.no_grad():
        maps = Occlusion(model).attribute(x, sliding_window_shapes=(channels, *window),
                                          strides=(channels, *stride), baselines=baseline,
                                          perturbations_per_eval=batch)
    return maps.mean(dim=1)


def gradcam(model: nn.Module, x: torch.Tensor, layer: nn.Module | None = None) -> torch.Tensor:
    """``LayerGradCam.attribute`` on ``layer`` (default: :func:`last_conv`), then
    ``LayerAttribution.interpolate`` to the input's size."""
    cam = LayerGradCam(model, layer or last_conv(model)).attribute(x)
    return LayerAttribution.interpolate(cam, tuple(x.shape[2:]), "bilinear").mean(dim=1)


def lime(model: nn.Module, x: torch.Tensor, n_samples: int = 200,
         grid: tuple[int, int] = (8, 8), alpha: float = 1.0, baseline: float = 0.0,
         seed: int = 0, batch: int = 50) -> torch.Tensor:
    """``Lime.attribute`` image by image, with ``SkLearnRidge(alpha=alpha)`` on the
    :func:`superpixels` of ``grid``; ``n_samples`` random subsets of superpixels kept (the
    others set to ``baseline``), ``batch`` per forward pass, drawn from a generator seeded with
    ``seed`` for each image."""
    mask = superpixels(*x.shape[2:], grid=grid).to(x.device)[None, None]
    maps = []
    for image in x.split(1):
        explainer = Lime(model, interpretable_model=SkLearnRidge(alpha=alpha),
                         perturb_func=_coin_flips(seed))
        with torch.no_grad():
            maps.append(explainer.attribute(image, baselines=baseline, feature_mask=mask,
                                            n_samples=n_samples, perturbations_per_eval=batch))
    return torch.cat(maps).mean(dim=1)


def _coin_flips(seed: int) -> Callable[..., torch.Tensor]:
    """LIME's sampling in the interpretable space (captum's ``default_perturb_func``: each
    superpixel kept with probability 1/2), from a seeded ``torch.Generator``."""
    generator = torch.Generator().manual_seed(seed)

    def perturb(original: torch.Tensor, **kwargs) -> torch.Tensor:
        probs = torch.full((1, int(kwargs["num_interp_features"])), 0.5)
        return torch.bernoulli(probs, generator=generator).long().to(original.device)

    return perturb


_ATTRIBUTE = {"occlusion": occlusion, "gradcam": gradcam, "lime": lime}


def attribute_model(model: nn.Module, inputs: np.ndarray, method: str = "occlusion",
                    **options) -> np.ndarray:
    """Maps ``(N, H, W)`` float32 of ``model`` (eval mode, one scalar per image) on ``inputs``
    ``(N, C, H, W)`` by ``method`` (one of :data:`METHODS`); ``options`` are the method's own
    keyword arguments (e.g. ``window``, ``n_samples``)."""
    if method not in _ATTRIBUTE:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    inputs = np.asarray(inputs, dtype=np.float32)
    if inputs.ndim != 4:
        raise ValueError(f"inputs must be (N, C, H, W), got shape {inputs.shape}")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    maps = _ATTRIBUTE[method](model.eval(), torch.from_numpy(inputs).to(device), **options)
    return maps.detach().cpu().numpy().astype(np.float32)
