"""CIFAR-style ResNet18/34 of paper B (the ITOP code's ``sparselearning/models.py`` layout), with a channel-width
multiplier."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "CifarResNet", "scaled_channels"]


def scaled_channels(c: int, width: float) -> int:
    """``round(c * width)``, at least 1 (ResNet width 1/8 gives 8/16/32/64)."""
    return max(1, int(round(c * width)))


class BasicBlock(nn.Module):
    """conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU.

    The shortcut is the identity, or a 1x1 conv (stride, no bias) + BN when the shape changes.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """3x3 stride-1 stem (no max-pool), four BasicBlock stages (strides 1/2/2/2), global average pooling,
    ``Linear(bias=False)`` and ``log_softmax``.

    Global *adaptive* average pooling equals the references' ``avg_pool2d(4)`` on 32x32 inputs and also accepts
    14x14 (book) or any other input size.  Prunable layers: 21 (ResNet18) / 37 (ResNet34).
    """

    def __init__(self, num_blocks: list[int], num_classes: int = 10, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        widths = [scaled_channels(c, width) for c in (64, 128, 256, 512)]
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._make_layer(widths[0], num_blocks[0], 1)
        self.layer2 = self._make_layer(widths[1], num_blocks[1], 2)
        self.layer3 = self._make_layer(widths[2], num_blocks[2], 2)
        self.layer4 = self._make_layer(widths[3], num_blocks[3], 2)
        self.linear = nn.Linear(widths[3], num_classes, bias=False)

    def _make_layer(self, planes: int, n: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return F.log_softmax(self.linear(out), dim=1)
