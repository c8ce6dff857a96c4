"""The Mask type: binary values, accounting, checks against the model, application, persistence, training."""
import copy
import re

import numpy as np
import pytest
import torch
from torch import nn

from layer_kinds import AllKinds, all_kinds
from pags_core import Mask, check_mask, generate_mask, make_model


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
    m = Mask({"a": torch.tensor([1.0, 0.0, 1.0]), "b": torch.tensor([0, 1], dtype=torch.uint8)})
    assert m["a"].dtype == torch.bool and m["a"].tolist() == [True, False, True]
    assert m["b"].tolist() == [False, True]


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
    with pytest.raises(ValueError, match=r"match no prunable parameter.*'conv9\.weight'"):
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


# ---- binary values ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, shown", [(0.5, "0.5"), (2.0, "2.0"), (-1, "-1")])
def test_soft_values_are_an_error_naming_tensor_and_value(bad, shown):
    with pytest.raises(ValueError, match=rf"'fc\.weight' is not binary: 1 of 3 .*\(e\.g\. {re.escape(shown)}\).*threshold"):
        Mask({"fc.weight": torch.tensor([1, 0, bad])})
    m = Mask({"fc.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"'fc\.weight' is not binary"):
        m["fc.weight"] = torch.tensor([1.0, 0.0, bad])
    assert m["fc.weight"].all()  # the failed assignment changed nothing


def test_nan_and_complex_values_are_errors():
    with pytest.raises(ValueError, match=r"'w' holds 2 NaN"):
        Mask({"w": torch.tensor([1.0, float("nan"), float("nan")])}, threshold=0.5)
    with pytest.raises(ValueError, match=r"'w' is complex"):
        Mask({"w": torch.tensor([1 + 0j])})


def test_threshold_keeps_entries_strictly_above():
    soft = torch.tensor([0.2, 0.5, 0.51, 1.0, -3.0])
    assert Mask({"w": soft}, threshold=0.5)["w"].tolist() == [False, False, True, True, False]
    assert Mask({"w": soft}, threshold=0)["w"].tolist() == [True, True, True, True, False]
    b = torch.tensor([True, False])
    assert Mask({"w": b}, threshold=0.5)["w"].tolist() == [True, False]  # bool tensors are already binary
    for bad in (float("nan"), float("inf"), "0.5", True):
        with pytest.raises(ValueError, match=rf"threshold must be a finite number.*{re.escape(repr(bad))}"):
            Mask({"w": soft}, threshold=bad)


# ---- keys checked against the model ---------------------------------------------------------------------------------
def test_unknown_keys_listed_together():
    net = _net()
    m = Mask.ones(net)
    m["conv9.weight"] = torch.ones(1, dtype=torch.bool)
    m["fc.weight"] = torch.ones(1, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"2 of 4 mask key\(s\) match no prunable parameter.*'conv9\.weight', "
                                         r"'fc\.weight'"):
        m.check(net)


def test_dataparallel_prefix_hint():
    net = _net()
    prefixed = Mask({"module." + k: v for k, v in Mask.ones(net).items()})
    with pytest.raises(ValueError, match=r"'module\.0\.weight'.*'module\.' prefix of a DataParallel.*removeprefix"):
        prefixed.check(net)
    wrapped = nn.DataParallel(net)  # no GPU needed: the names gain the prefix
    assert list(Mask.ones(wrapped)) == ["module.0.weight", "module.3.weight"]
    with pytest.raises(ValueError, match=r"'0\.weight'.*model is wrapped.*model\.module"):
        Mask.ones(net).check(wrapped)


def test_non_prunable_parameter_and_typo_hints():
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    with pytest.raises(ValueError, match=r"'1\.weight' is a parameter of a BatchNorm2d, which pags_core does not prune"):
        Mask({"1.weight": torch.ones(3, dtype=torch.bool)}).check(net)
    with pytest.raises(ValueError, match=r"'0\.bias' is a parameter of a Conv2d"):
        Mask({"0.bias": torch.ones(3, dtype=torch.bool)}).check(net)
    with pytest.raises(ValueError, match=r"Did you mean: '0\.wieght' -> '0\.weight'\?"):
        Mask({"0.wieght": torch.ones(3, 2, 3, 3, dtype=torch.bool)}).check(net)


def test_complete_requires_every_prunable_weight():
    net = _net()
    partial = Mask({"0.weight": torch.ones(3, 2, 3, 3, dtype=torch.bool)})
    partial.check(net)  # absent layers count as dense
    with pytest.raises(ValueError, match=r"mask lacks 1 prunable weight\(s\) of the model: '3\.weight'"):
        partial.check(net, complete=True)


def test_check_mask_on_plain_mappings():
    net = _net()
    with pytest.raises(ValueError, match=r"'3\.weight' is not binary: 192 of 192.*0\.5"):
        check_mask({"3.weight": torch.full((4, 48), 0.5)}, net)
    weights = {"a": torch.zeros(2, 3)}
    check_mask({"a": np.ones((2, 3), dtype=bool)}, weights)
    with pytest.raises(ValueError, match=r"'b'"):
        check_mask({"b": torch.ones(2, 3)}, weights)
    with pytest.raises(TypeError, match="mapping parameter name -> bool tensor.*list"):
        check_mask([torch.ones(2)], net)


# ---- persistence ----------------------------------------------------------------------------------------------------
def test_save_load_and_apply_on_every_layer_kind(tmp_path):
    net = all_kinds()
    m = generate_mask(net, "random", 0.3, seed=2, device="cpu")
    assert list(m) == list(AllKinds.EXPECTED)
    m.save(tmp_path / "kinds.pt")
    back = Mask.load(tmp_path / "kinds.pt")
    assert back == m and list(back) == list(m)
    back.check(net, complete=True).apply_(net)
    params = dict(net.named_parameters())
    for name, keep in back.items():
        assert torch.all(params[name][~keep] == 0) and torch.all(params[name][keep] != 0), name


def test_load_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no saved Mask at .*absent\.pt"):
        Mask.load(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a torch file")
    with pytest.raises(ValueError, match=r"garbage\.pt is not a readable saved Mask.*regenerate"):
        Mask.load(garbage)
    good = tmp_path / "good.pt"
    Mask.ones(_net()).save(good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"truncated\.pt is not a readable saved Mask"):
        Mask.load(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match=r"other\.pt is not a readable saved Mask.*format None"):
        Mask.load(other)
    soft = tmp_path / "soft.pt"
    torch.save({"format": "pags_core.Mask/1", "names": ["w"], "tensors": {"w": torch.tensor([0.5])}}, soft)
    with pytest.raises(ValueError, match=r"soft\.pt .*'w' is not binary"):
        Mask.load(soft)


# ---- pruned attention stays pruned through training -------------------------------------------------------------------
@pytest.mark.parametrize("same_dim", [True, False])
def test_pruned_attention_stays_pruned_through_training(same_dim):
    """The update of pags_core.train (zero the pruned gradients, SGD with momentum and weight decay, re-apply the
    mask) on a TransformerEncoderLayer, and on a MultiheadAttention with separate q/k/v projections."""
    torch.manual_seed(0)
    if same_dim:
        body = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
        x = torch.randn(4, 5, 8)
        forward = lambda: body(x)  # noqa: E731
        attn = ["self_attn.in_proj_weight"]
    else:
        body = nn.MultiheadAttention(8, 2, kdim=5, vdim=3, batch_first=True)
        q, k, v = torch.randn(4, 5, 8), torch.randn(4, 5, 5), torch.randn(4, 5, 3)
        forward = lambda: body(q, k, v)[0]  # noqa: E731
        attn = ["q_proj_weight", "k_proj_weight", "v_proj_weight"]
    mask = generate_mask(body, "random", 0.3, seed=1, device="cpu")
    assert set(attn) <= set(mask)
    mask.apply_(body)
    params = dict(body.named_parameters())
    start = {n: params[n].detach().clone() for n in mask}
    opt = torch.optim.SGD(body.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    body.train()
    for _ in range(3):
        opt.zero_grad()
        forward().pow(2).mean().backward()
        mask.apply_grads_(body)
        assert all(torch.all(params[n].grad[~mask[n]] == 0) for n in attn)
        opt.step()
        mask.apply_(body)
    for n in mask:
        assert torch.all(params[n][~mask[n]] == 0), n  # exactly zero
    for n in attn:
        assert not torch.equal(params[n][mask[n]], start[n][mask[n]]), n  # the kept weights did train
