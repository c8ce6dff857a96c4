"""The Mask type: accounting, model checks, application, persistence."""
import copy

import pytest
import torch
from torch import nn

from pags_core import Mask, make_model


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))


def _half_mask(net):
    m = Mask.ones(net)
    m["0.weight"].view(-1)[:27] = False  # 27 of 54
    m["3.weight"][:, :] = False
    m["3.weight"][0, :10] = True  # 10 of 192
    return m


def test_ones_and_accounting():
    net = _net()
    m = Mask.ones(net)
    assert list(m) == ["0.weight", "3.weight"]
    assert m.num_total == 54 + 192 and m.num_kept == m.num_total and m.density == 1.0
    h = _half_mask(net)
    assert h.num_kept == 37 and h.density == pytest.approx(37 / 246)
    assert h.layer_densities() == pytest.approx({"0.weight": 0.5, "3.weight": 10 / 192})
    assert h.empty_layers() == []
    h["3.weight"][:] = False
    assert h.empty_layers() == ["3.weight"]


def test_values_are_bool():
    m = Mask({"a": torch.tensor([1.0, 0.0, 2.0])})
    assert m["a"].dtype == torch.bool and m["a"].tolist() == [True, False, True]


def test_apply_zeroes_pruned_weights_only():
    net = _net()
    before = net[0].weight.detach().clone()
    m = _half_mask(net)
    m.apply_(net)
    w = net[0].weight.detach()
    assert torch.all(w[~m["0.weight"]] == 0)
    assert torch.equal(w[m["0.weight"]], before[m["0.weight"]])
    assert net[0].weight.requires_grad  # applied under no_grad, parameter untouched otherwise


def test_apply_grads():
    net = _net()
    m = _half_mask(net)
    net(torch.randn(2, 2, 6, 6)).sum().backward()
    m.apply_grads_(net)
    assert torch.all(net[3].weight.grad[~m["3.weight"]] == 0)
    assert net[3].weight.grad[m["3.weight"]].abs().sum() > 0


def test_check_names_layer_and_both_shapes():
    net = _net()
    bad = Mask({"0.weight": torch.ones(3, 2, 5, 5, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"'0\.weight'.*\(3, 2, 5, 5\).*\(3, 2, 3, 3\)"):
        bad.check(net)
    with pytest.raises(ValueError, match=r"'0\.weight'.*\(3, 2, 5, 5\).*\(3, 2, 3, 3\)"):
        bad.apply_(net)
    missing = Mask({"conv9.weight": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"'conv9\.weight'.*names no parameter"):
        missing.check(net)


def test_save_load_roundtrip(tmp_path):
    net = make_model("resnet18", num_classes=10, in_channels=1, width=1 / 8)
    m = Mask.ones(net)
    g = torch.Generator().manual_seed(1)
    for k in m:
        m[k] = torch.rand(m[k].shape, generator=g) < 0.3
    m.meta.update(method="test", density=0.3, seed=1)
    m.save(tmp_path / "m.pt")
    back = Mask.load(tmp_path / "m.pt")
    assert back == m and list(back) == list(m) and back.meta == m.meta
    assert all(t.dtype == torch.bool for t in back.values())
    # the file is a plain dict that torch.load(weights_only=True) accepts
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert set(raw) >= {"tensors", "meta"}


def test_deepcopy_and_clone_are_independent():
    m = _half_mask(_net())
    for c in (copy.deepcopy(m), m.clone()):
        assert c == m
        c["0.weight"][:] = True
        assert c != m


def test_to_returns_self_on_same_device():
    m = _half_mask(_net())
    assert m.to("cpu") is m


def test_empty_mask_density_error():
    with pytest.raises(ValueError, match="empty"):
        Mask().density


def test_from_weights():
    net = _net()
    _half_mask(net).apply_(net)
    assert Mask.from_weights(net) == _half_mask(net)
