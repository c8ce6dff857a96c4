"""``init_random``: the weight initialisation shared by both papers' codebases."""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["init_random"]


@torch.no_grad()
def init_random(model: nn.Module, *, generator: torch.Generator | None = None) -> nn.Module:
    """Initialise ``model`` in place the way both reference codebases do and return it.

    - ``Conv2d`` weight ~ N(0, std = sqrt(2 / (kh*kw*Cout))) (fan-out He init), conv bias 0;
    - ``BatchNorm2d``: gamma = 0.5, beta = 0 (BatchNorm1d is left untouched: gamma 1, beta 0);
    - ``Linear`` weight ~ N(0, 0.01), bias 0.

    Draws come from the global torch RNG unless ``generator`` (a CPU generator) is given.

    Only these three module types are touched (the papers' models hold no other): ``Conv1d``/``Conv3d``,
    transposed convolutions, ``BatchNorm1d/3d``, ``LayerNorm`` and the ``in_proj_weight``/``q|k|v_proj_weight`` of
    ``MultiheadAttention`` keep their PyTorch initialisation, while ``Linear`` subclasses (such as an attention
    block's ``out_proj``) get N(0, 0.01) and grouped/depthwise ``Conv2d`` get the formula above, whose fan-out
    kh*kw*Cout ignores the groups.  For another architecture, prefer its own initialisation (``init="default"``).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            std = math.sqrt(2.0 / (kh * kw * m.out_channels))
            _normal_(m.weight, std, generator)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            if m.weight is not None:
                m.weight.fill_(0.5)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.Linear):
            _normal_(m.weight, 0.01, generator)
            if m.bias is not None:
                m.bias.zero_()
    return model


def _normal_(t: torch.Tensor, std: float, generator: torch.Generator | None) -> None:
    if generator is None:
        t.normal_(0.0, std)
    else:  # draw on the generator's device (CPU) so results do not depend on where the model lives
        t.copy_(torch.randn(t.shape, generator=generator, dtype=torch.float32).mul_(std))
