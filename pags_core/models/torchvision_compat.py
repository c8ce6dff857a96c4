"""The ICLR-2023 compatibility models: torchvision ``resnet34`` and ``vgg16_bn`` with log-softmax appended.

This module imports torchvision at import time; :mod:`pags_core.models` imports it only when one of these models is
built, so torchvision stays an optional dependency.  Parameter names follow torchvision exactly (``conv1``,
``layer1.0.conv1``, ``features.40``, ``classifier.6``) because the output is added by subclassing, not wrapping.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet as _tv_resnet
from torchvision.models import vgg as _tv_vgg

__all__ = ["TVResNet34", "TVVGG16BN"]


class TVResNet34(_tv_resnet.ResNet):
    """torchvision ResNet34 (ImageNet stem: 7x7 stride-2 conv + max-pool) whose forward returns log-probabilities.
    37 prunable layers (conv1, 32 block convs, 3 downsample convs, fc)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__(_tv_resnet.BasicBlock, [3, 4, 6, 3], num_classes=num_classes)
        if in_channels != 3:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(super().forward(x), dim=1)


class TVVGG16BN(_tv_vgg.VGG):
    """torchvision ``vgg16_bn`` (13 conv + 25088->4096->4096->C classifier with dropout) returning log-probabilities.
    16 prunable layers.  On 32x32 inputs the adaptive 7x7 pool replicates the 1x1 feature map, as in the references."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__(_tv_vgg.make_layers(_tv_vgg.cfgs["D"], batch_norm=True), num_classes=num_classes)
        if in_channels != 3:
            self.features[0] = nn.Conv2d(in_channels, 64, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(super().forward(x), dim=1)
