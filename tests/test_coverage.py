"""Which parameters are pruned and why the others are not: every role on a hand-built model."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pags_core.analysis import parameter_coverage


class LowRank(nn.Module):
    """A custom layer with its own weight layout (two factors): pags_core cannot read it."""

    def __init__(self):
        super().__init__()
        self.weight_u = nn.Parameter(torch.randn(5, 2))
        self.weight_v = nn.Parameter(torch.randn(2, 4))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.conv = nn.Conv2d(4, 4, 3, groups=4)
        self.bn = nn.BatchNorm2d(4)
        self.attn = nn.MultiheadAttention(4, 2)
        self.ln = nn.LayerNorm(4)
        self.low = LowRank()
        self.token = nn.Parameter(torch.zeros(1, 4))
        self.fc = nn.Linear(4, 3)


def test_every_role_by_hand():
    t = parameter_coverage(Net()).set_index("parameter")
    expect = {
        "emb.weight": ("embedding", 40), "conv.weight": ("pruned", 36), "conv.bias": ("bias", 4),
        "bn.weight": ("normalisation", 4), "bn.bias": ("bias", 4), "attn.in_proj_weight": ("pruned", 48),
        "attn.in_proj_bias": ("bias", 12), "attn.out_proj.weight": ("pruned", 16), "attn.out_proj.bias": ("bias", 4),
        "ln.weight": ("normalisation", 4), "ln.bias": ("bias", 4), "low.weight_u": ("unsupported layer", 10),
        "low.weight_v": ("unsupported layer", 8), "token": ("other parameter", 4), "fc.weight": ("pruned", 12),
        "fc.bias": ("bias", 3),
    }
    assert sorted(t.index) == sorted(expect)
    assert {k: (t.loc[k, "role"], t.loc[k, "weights"]) for k in expect} == expect
    assert t.loc["conv.weight", "detail"] == "conv2d, groups 4" and t.loc["attn.in_proj_weight", "detail"] == "attention"
    assert t["weights"].sum() == sum(p.numel() for p in Net().parameters())


def test_a_shared_weight_is_listed_once():
    fc = nn.Linear(3, 3)
    t = parameter_coverage(nn.Sequential(fc, nn.ReLU(), fc))
    assert t["parameter"].tolist() == ["0.weight", "0.bias"] and t["role"].tolist() == ["pruned", "bias"]


def test_not_a_module():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        parameter_coverage({"w": torch.zeros(2, 2)})
