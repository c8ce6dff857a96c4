"""VGG16-D, the variant of the SNIP paper (Lee et al., ICLR 2019) that the ITOP code and paper B use."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import scaled_channels

__all__ = ["VGG16D", "VGG16_CONFIG"]

VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16D(nn.Module):
    """13 conv3x3 (padding 1, **with bias**) + BN + ReLU with five max-pools, then
    Linear(512,512) -> ReLU -> BN1d -> Linear(512,512) -> ReLU -> BN1d -> Linear(512,C) -> log_softmax.

    No dropout.  16 prunable layers.  The five 2x2 max-pools need inputs of at least 32x32; a global average pool
    after the last one makes larger inputs work as well (it is the identity at 32x32).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for v in VGG16_CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                c = scaled_channels(int(v), width)
                layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=True), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
                c_in = c
        self.features = nn.Sequential(*layers)
        h = scaled_channels(512, width)
        self.classifier = nn.Sequential(
            nn.Linear(c_in, h), nn.ReLU(inplace=True), nn.BatchNorm1d(h),
            nn.Linear(h, h), nn.ReLU(inplace=True), nn.BatchNorm1d(h),
            nn.Linear(h, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < 32 or x.shape[-2] < 32:
            raise ValueError(f"VGG16-D needs inputs of at least 32x32 (five 2x2 max-pools); got {tuple(x.shape[-2:])}")
        out = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return F.log_softmax(self.classifier(out), dim=1)
