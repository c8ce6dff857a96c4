"""Test helper: one small network holding every prunable layer kind (not a test module)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MyLinear(nn.Linear):
    """A Linear subclass (as torch's NonDynamicallyQuantizableLinear): still prunable."""


class AllKinds(nn.Module):
    """Conv2d, depthwise and grouped Conv2d, grouped ConvTranspose2d, Conv3d, grouped Conv1d, a MultiheadAttention
    with a shared in_proj_weight, one with separate q/k/v projections (kdim 5, vdim 3) and a Linear subclass head.
    Input (B, 2, 6, 6); returns log-probabilities over 3 classes."""

    #: parameter name -> (kind, groups), in model order: what the tests expect pags_core to find
    EXPECTED = {
        "conv.weight": ("conv2d", 1),
        "dw.weight": ("conv2d", 4),
        "grouped.weight": ("conv2d", 2),
        "tconv.weight": ("convtranspose2d", 2),
        "conv3.weight": ("conv3d", 1),
        "conv1.weight": ("conv1d", 2),
        "attn.in_proj_weight": ("attention", 1),
        "attn.out_proj.weight": ("linear", 1),
        "cross.q_proj_weight": ("attention", 1),
        "cross.k_proj_weight": ("attention", 1),
        "cross.v_proj_weight": ("attention", 1),
        "cross.out_proj.weight": ("linear", 1),
        "head.weight": ("linear", 1),
    }

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.grouped = nn.Conv2d(4, 6, 1, groups=2)
        self.tconv = nn.ConvTranspose2d(6, 4, 2, stride=2, groups=2)  # weight (6, 2, 2, 2)
        self.conv3 = nn.Conv3d(1, 2, 3, padding=1)
        self.conv1 = nn.Conv1d(8, 8, 3, padding=1, groups=2)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.cross = nn.MultiheadAttention(8, 2, kdim=5, vdim=3, batch_first=True)
        self.head = MyLinear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = torch.tanh(self.conv(x))
        x = torch.tanh(self.dw(x))
        x = torch.tanh(self.grouped(x))
        x = torch.tanh(self.tconv(x))                       # (B, 4, 12, 12)
        x = F.adaptive_avg_pool2d(x, 4)                     # (B, 4, 4, 4)
        x = torch.tanh(self.conv3(x.unsqueeze(1)))          # (B, 2, 4, 4, 4)
        x = torch.tanh(self.conv1(x.reshape(b, 8, 16)))     # (B, 8, 16)
        t = x.transpose(1, 2)                               # (B, 16 tokens, 8)
        t = t + self.attn(t, t, t, need_weights=False)[0]
        t = t + self.cross(t, t[..., :5], t[..., :3], need_weights=False)[0]
        return F.log_softmax(self.head(t.mean(1)), dim=1)


def all_kinds(seed: int = 0) -> AllKinds:
    torch.manual_seed(seed)
    return AllKinds()


def all_kinds_batches(n: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 2, 6, 6, generator=g), torch.randint(0, 3, (4,), generator=g)) for _ in range(n)]
