"""retroscope.models: network builders registered by name.

``build_model(name, **cfg)`` builds any registered model (ResNets, the plain CNN and MLP of
:mod:`retroscope.models.plain_cnn`); see
:mod:`retroscope.models.registry` for the interface all models share (``embed``, ``forward``,
``out_dim``, ``feature_dim``, ``config``) and the output layout of each head. The detection
models of :mod:`retroscope.models.maskrcnn` (``maskrcnn_resnet18_fpn``,
``maskrcnn_resnet50_fpn``) take ``num_classes`` instead and follow torchvision's detection
interface. ``ion_transformer`` (:mod:`retroscope.models.ion_transformer`) reads sets of
ions and denoises their positions (a diffusion model).
"""

from retroscope.models.registry import (
    ACTIVATIONS,
    HEADS,
    build_model,
    head_outputs,
    list_models,
    register_model,
    set_activation,
    split_mean_logvar,
)
from retroscope.models.ion_transformer import IonTransformer  # registers ion_transformer
from retroscope.models.maskrcnn import build_maskrcnn  # also registers the Mask R-CNN models
from retroscope.models.plain_cnn import MLP, PlainCNN  # registers plain_cnn and mlp
from retroscope.models.resnet import (
    STEMS,
    ConfigurableResNet,
    build_resnet,
    resnet18,
    resnet34,
    resnet50,
    stielow34,
)

__all__ = [
    "ACTIVATIONS",
    "HEADS",
    "IonTransformer",
    "MLP",
    "PlainCNN",
    "STEMS",
    "ConfigurableResNet",
    "build_maskrcnn",
    "build_model",
    "build_resnet",
    "head_outputs",
    "list_models",
    "register_model",
    "resnet18",
    "resnet34",
    "resnet50",
    "set_activation",
    "split_mean_logvar",
    "stielow34",
]
