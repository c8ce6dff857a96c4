"""Models: CIFAR ResNet18/34, VGG16-D, the torchvision-compatible ICLR models, ``init_random`` and what is
prunable in any model (:mod:`~pags_core.models.prunable`).  Every registered model returns log-probabilities (use
NLL loss)."""
from __future__ import annotations

from torch import nn

from ..registry import Registry
from .geometry import LayerGeometry, layer_geometry
from .init import init_random
from .prunable import (SUPPORTED_LAYERS, PrunableWeight, find_prunable, prunable_layers, prunable_parameters,
                       require_prunable, unsupported_layers)
from .resnet import BasicBlock, CifarResNet
from .vgg import VGG16D

__all__ = ["MODELS", "make_model", "prunable_layers", "prunable_parameters", "find_prunable", "unsupported_layers",
           "require_prunable", "PrunableWeight", "SUPPORTED_LAYERS", "init_random", "add_log_softmax",
           "CifarResNet", "VGG16D", "LayerGeometry", "layer_geometry"]

#: name -> factory(num_classes, in_channels, width) -> nn.Module (PyTorch default init; ``make_model`` applies ``init``).
MODELS: Registry = Registry("model")


@MODELS.register("resnet18")
def _resnet18(num_classes: int, in_channels: int, width: float) -> nn.Module:
    return CifarResNet([2, 2, 2, 2], num_classes, in_channels, width)


@MODELS.register("resnet34")
def _resnet34(num_classes: int, in_channels: int, width: float) -> nn.Module:
    return CifarResNet([3, 4, 6, 3], num_classes, in_channels, width)


@MODELS.register("vgg16")
def _vgg16(num_classes: int, in_channels: int, width: float) -> nn.Module:
    return VGG16D(num_classes, in_channels, width)


def _no_width(name: str, width: float) -> None:
    if width != 1.0:
        raise ValueError(f"model {name!r} is a fixed torchvision architecture and supports only width=1.0, got width={width!r}")


@MODELS.register("resnet34_tv")
def _resnet34_tv(num_classes: int, in_channels: int, width: float) -> nn.Module:
    _no_width("resnet34_tv", width)
    from .torchvision_compat import TVResNet34  # lazy: torchvision is optional
    return TVResNet34(num_classes, in_channels)


@MODELS.register("vgg16_bn_tv")
def _vgg16_bn_tv(num_classes: int, in_channels: int, width: float) -> nn.Module:
    _no_width("vgg16_bn_tv", width)
    from .torchvision_compat import TVVGG16BN
    return TVVGG16BN(num_classes, in_channels)


_INITS = ("paper", "default")


def make_model(name: str, *, num_classes: int, in_channels: int = 3, width: float = 1.0, init: str = "paper") -> nn.Module:
    """Build a registered model (names in :data:`MODELS`, case-insensitive).

    ``width`` multiplies every channel count (ResNet width 1/8 -> 8/16/32/64).  ``init="paper"`` applies
    :func:`init_random` (both papers') using the global torch RNG (call ``torch.manual_seed`` first for a fixed θ0);
    ``init="default"`` keeps PyTorch's default initialisation.
    """
    factory = MODELS[name]
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"width must be a positive number, got {width!r}")
    if not isinstance(init, str) or init.lower() not in _INITS:
        raise ValueError(f"unknown init {init!r}; valid choices: {', '.join(_INITS)}")
    model = factory(num_classes, in_channels, float(width))
    if init.lower() == "paper":
        init_random(model)
    return model


def _log_softmax_hook(module: nn.Module, inputs, output):
    return nn.functional.log_softmax(output, dim=1)


def add_log_softmax(model: nn.Module) -> nn.Module:
    """Make a model that returns logits (e.g. a stock torchvision model) return log-probabilities, in place, without
    renaming any parameter (a forward hook, so masks keep torchvision's names).  pags_core's generators and
    training loop use NLL loss and therefore expect log-probabilities.  Returns the model."""
    if not getattr(model, "_pags_log_softmax", False):
        model.register_forward_hook(_log_softmax_hook)
        model._pags_log_softmax = True
    return model
