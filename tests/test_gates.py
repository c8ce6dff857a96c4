"""The density each layer needs to pass the spectral gates: hand-computed thresholds, ERK's smallest passing density
in closed form, and the engine's own gate on random masks as the oracle."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import pags_core as pc
from pags_core.analysis import gate_density, gate_table, min_gate_density
from pags_core.pruning.erk import erk_densities


def _net():
    return nn.Sequential(nn.Conv2d(4, 8, 3), nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 8, 3, groups=2),
                         nn.Linear(16, 10), nn.Linear(2, 5))


def test_thresholds_by_hand():
    t = gate_table(_net()).set_index("layer")
    # fan-in prod(shape[1:]); fan-out shape[0] / groups
    assert t["fan_in"].tolist() == [36, 9, 36, 16, 2] and t["fan_out"].tolist() == [8, 1, 4, 10, 5]
    assert t["gate_density"].tolist() == pytest.approx([3 / 36, math.inf, 3 / 36, 3 / 16, math.inf])
    iclr = gate_table(_net(), convention="iclr2023")["gate_density"].tolist()
    assert iclr == pytest.approx([3 / 8, math.inf, 3 / 4, 3 / 10, math.inf])
    geo = pc.layer_geometry(_net())
    assert gate_density(geo["1.weight"]) == math.inf  # depthwise: no density, not even dense, passes


def test_allocations_at_a_density():
    t = gate_table(_net(), 0.2)
    assert (t["uniform_density"] == 0.2).all()
    erk = erk_densities({n: g.shape for n, g in pc.layer_geometry(_net()).items()}, 0.2)
    assert t["erk_density"].tolist() == pytest.approx(list(erk.values()))
    assert t["uniform_passes"].tolist() == [True, False, True, True, False]
    assert t["erk_passes"].tolist() == [e >= g for e, g in zip(t["erk_density"], t["gate_density"])]


def test_min_gate_density_uniform_and_erk_closed_form():
    net = nn.Sequential(nn.Linear(16, 10), nn.Linear(100, 50))
    assert min_gate_density(net, "uniform") == pytest.approx(3 / 16)
    # ERK: p_l = eps * raw_l, raw = (sum of dims) / (product of dims); eps = D * sum N / sum raw*N.
    # Layer 1 binds (its gate/raw is the larger: (3/16)/(26/160) > (3/100)/(150/5000)), so
    # D* = (3/16) / (26/160) * (26 + 150) / (160 + 5000).
    expect = (3 / 16) / (26 / 160) * (26 + 150) / (160 + 5000)
    got = min_gate_density(net, "erk", tol=1e-9)
    assert got == pytest.approx(expect, rel=1e-7)
    assert math.isnan(min_gate_density(nn.Sequential(nn.Conv2d(8, 8, 3, groups=8)), "erk"))  # no layer can pass
    with pytest.raises(ValueError, match="unknown allocation 'snip'; valid choices: uniform, erk"):
        min_gate_density(net, "snip")


@pytest.mark.parametrize("layer", [nn.Linear(400, 300), nn.Conv2d(32, 64, 3), nn.Conv2d(64, 64, 3, groups=4)],
                         ids=["linear", "conv", "grouped"])
def test_the_threshold_predicts_the_engines_gate_on_random_masks(layer):
    need = gate_density(pc.layer_geometry(nn.Sequential(layer))["0.weight"])
    torch.manual_seed(0)
    w = layer.weight.detach()
    groups = getattr(layer, "groups", 1)
    for factor, valid in ((1.3, True), (0.5, False)):
        for _ in range(3):
            mask = torch.rand(w.shape) < need * factor
            got = pc.layer_spectrum(mask, w, groups=groups)
            assert got.valid is valid, (factor, got.d_right)


def test_a_depthwise_layer_fails_even_dense():
    layer = nn.Conv2d(16, 16, 3, groups=16)
    got = pc.layer_spectrum(torch.ones_like(layer.weight, dtype=torch.bool), layer.weight.detach(), groups=16)
    assert not got.valid and got.full_spectrum == 0 and got.d_left == 1


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="torch.nn.Module or a non-empty mapping"):
        gate_table({})
    with pytest.raises(ValueError, match="density"):
        gate_table(_net(), 0)
    with pytest.raises(ValueError, match="tol"):
        min_gate_density(_net(), tol=0.5)
