"""The models of the chapter "Adapting to a new architecture": a reader's own module, importable by every worker.

A chapter builds a model that is not in :data:`pags_core.MODELS` from an import path given as one parameter,
``-p model_factory book_models:SmallConvNet``; the factory is called as ``factory(num_classes, in_channels, width)``
and must return a module whose ``forward`` gives log-probabilities.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

__all__ = ["SmallConvNet", "mobilenet_v2"]


class SmallConvNet(nn.Module):
    """Four convolutions (3x3, 3x3 stride 2, 1x1, 3x3 stride 2), global average pooling and a linear classifier."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 1.0):
        super().__init__()
        c1, c2, c3 = (max(1, round(c * width)) for c in (32, 64, 128))

        def block(cin, cout, k, stride):
            return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU()]

        self.features = nn.Sequential(
            *block(in_channels, c1, 3, 1), *block(c1, c2, 3, 2), *block(c2, c2, 1, 1), *block(c2, c3, 3, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(c3, num_classes)

    def forward(self, x):
        return F.log_softmax(self.classifier(self.features(x)), dim=1)


def mobilenet_v2(num_classes: int, in_channels: int, width: float) -> nn.Module:
    """torchvision's MobileNetV2 (inverted residual blocks whose 3x3 convolutions are depthwise: ``groups`` equal to
    the channels) at ``width_mult=width``, with an ``in_channels`` stem, returning log-probabilities."""
    from torchvision.models import mobilenet_v2 as tv_mobilenet_v2

    from pags_core.models import add_log_softmax

    model = tv_mobilenet_v2(width_mult=width, num_classes=num_classes)
    if in_channels != 3:
        first = model.features[0][0]
        model.features[0][0] = nn.Conv2d(in_channels, first.out_channels, first.kernel_size, first.stride,
                                         first.padding, bias=False)
    return add_log_softmax(model)
