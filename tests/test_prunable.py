"""What is prunable: every layer kind found under its named_parameters name, attention projections that really are
the weights the forward uses, unsupported and computed weights named, geometry of each kind."""
import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from layer_kinds import AllKinds, all_kinds
from pags_core import (SUPPORTED_LAYERS, Mask, generate_mask, layer_geometry, prunable_layers, prunable_parameters,
                       require_prunable, unsupported_layers)


def test_every_layer_kind_found_in_model_order_with_kind_and_groups():
    net = all_kinds()
    geo = layer_geometry(net)
    assert {k: (g.kind, g.groups) for k, g in geo.items()} == AllKinds.EXPECTED
    assert list(geo) == list(AllKinds.EXPECTED)  # model order: attention in_proj before its out_proj
    params = dict(net.named_parameters())
    for name, p in prunable_parameters(net).items():
        assert p is params[name], name  # the very parameter object, under its named_parameters name
        assert geo[name].shape == tuple(p.shape)
    assert list(prunable_layers(net)) == ["conv", "dw", "grouped", "tconv", "conv3", "conv1", "attn", "attn.out_proj",
                                          "cross", "cross.out_proj", "head"]


def test_transposed_conv_rows_are_input_channels():
    t = nn.ConvTranspose2d(6, 4, 3, groups=2)
    g = layer_geometry(nn.Sequential(t))["0.weight"]
    # stored (C_in, C_out/g, k, k): rows = the 6 input channels; input units = C_out * k * k over 2 diagonal blocks
    assert g.shape == (6, 2, 3, 3) and g.n_outputs == 6 and g.n_inputs == 4 * 9 and g.fan_in == 2 * 9


def test_attention_projections_are_the_weights_the_forward_uses():
    """Masking the prunable attention weights to zero (biases zero) leaves only out_proj's bias: the output is that
    constant, so the masked tensors are the live projections, not copies."""
    torch.manual_seed(0)
    for mha in (nn.MultiheadAttention(8, 2, batch_first=True),
                nn.MultiheadAttention(8, 2, kdim=5, vdim=3, batch_first=True)):
        net = nn.Sequential(mha)
        names = [n for n in prunable_parameters(net) if "out_proj" not in n]
        assert names == (["0.in_proj_weight"] if mha._qkv_same_embed_dim else
                         ["0.q_proj_weight", "0.k_proj_weight", "0.v_proj_weight"])
        with torch.no_grad():
            mha.in_proj_bias.zero_()
            mha.out_proj.bias.normal_()
        q, k, v = torch.randn(2, 4, 8), torch.randn(2, 4, mha.kdim), torch.randn(2, 4, mha.vdim)
        before = mha(q, k, v)[0]
        mask = Mask.ones(net)
        for n in names:
            mask[n][:] = False
        mask.apply_(net)
        after = mha(q, k, v)[0]
        assert not torch.allclose(before, after)
        assert torch.allclose(after, mha.out_proj.bias.expand_as(after))


def test_transformer_layers_names():
    enc = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True)
    assert list(prunable_parameters(enc)) == ["self_attn.in_proj_weight", "self_attn.out_proj.weight",
                                             "linear1.weight", "linear2.weight"]
    dec = nn.TransformerDecoderLayer(16, 2, dim_feedforward=32)
    assert [n for n in prunable_parameters(dec) if "proj" in n] == [
        "self_attn.in_proj_weight", "self_attn.out_proj.weight",
        "multihead_attn.in_proj_weight", "multihead_attn.out_proj.weight"]


class CustomConv(nn.Module):
    """A layer holding its own weight shape: pags_core cannot read it."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 2, 3, 3))

    def forward(self, x):
        return F.conv2d(x, self.weight)


def _mixed():
    return nn.ModuleDict({"conv": nn.Conv2d(2, 3, 3), "custom": CustomConv(), "bil": nn.Bilinear(3, 4, 5),
                          "rnn": nn.LSTM(3, 4), "emb": nn.Embedding(10, 4), "norm": nn.LayerNorm(4),
                          "fc": nn.Linear(4, 2)})


def test_unsupported_layers_listed_and_strict_error_names_them():
    net = _mixed()
    assert unsupported_layers(net) == ["custom.weight (CustomConv, (4, 2, 3, 3))", "bil.weight (Bilinear, (5, 3, 4))",
                                       "rnn.weight_ih_l0 (LSTM, (16, 3))", "rnn.weight_hh_l0 (LSTM, (16, 4))"]
    assert list(prunable_parameters(net)) == ["conv.weight", "fc.weight"]  # embedding/norm never pruned
    with pytest.raises(ValueError, match=r"4 layer\(s\).*custom\.weight \(CustomConv.*Bilinear.*LSTM.*Supported: "
                                         + re.escape(SUPPORTED_LAYERS)):
        prunable_parameters(net, strict=True)
    with pytest.raises(ValueError, match=r"CustomConv"):
        layer_geometry(net, strict=True)
    assert list(prunable_layers(nn.Sequential(nn.Conv2d(1, 1, 1)), strict=True)) == ["0"]


def test_generate_mask_warns_once_about_unsupported_layers():
    class WithCustom(nn.Module):
        def __init__(self):
            super().__init__()
            self.custom = CustomConv()
            self.fc = nn.Linear(8, 2)

    net = WithCustom()
    with pytest.warns(UserWarning, match=r"stay dense: custom\.weight \(CustomConv, \(4, 2, 3, 3\)\).*strict=True"):
        m = generate_mask(net, "random", 0.5, device="cpu")
    assert list(m) == ["fc.weight"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        generate_mask(net, "random", 0.5, device="cpu")  # same model type and layers: no second warning


def test_computed_weights_are_always_an_error():
    wn = nn.utils.parametrizations.weight_norm(nn.Linear(3, 4))
    with pytest.raises(ValueError, match=r"layer 1 \(ParametrizedLinear\).*computed.*remove_parametrizations"):
        prunable_parameters(nn.Sequential(nn.Conv2d(1, 2, 1), wn))
    sn = nn.utils.spectral_norm(nn.Conv2d(2, 2, 1))  # old-style: weight recomputed from weight_orig
    with pytest.raises(ValueError, match=r"layer <model> \(Conv2d\).*computed"):
        prunable_parameters(sn)
    with pytest.raises(ValueError, match=r"layer 1 \(LazyLinear\) is lazy"):
        prunable_parameters(nn.Sequential(nn.Linear(2, 2), nn.LazyLinear(3)))


def test_shared_weight_listed_once_under_its_parameter_name():
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight
    net = nn.Sequential(a, nn.ReLU(), b)
    assert list(prunable_parameters(net)) == ["0.weight"]
    emb = nn.Embedding(10, 4)
    dec = nn.Linear(4, 10)
    dec.weight = emb.weight  # a tied language-model decoder: named after the embedding, as named_parameters does
    lm = nn.ModuleDict({"emb": emb, "dec": dec})
    assert list(prunable_parameters(lm)) == ["emb.weight"] and "emb.weight" in dict(lm.named_parameters())
    Mask.ones(lm).check(lm)


def test_no_prunable_layer_error_names_model_and_supported():
    with pytest.raises(ValueError, match=r"Sequential has no prunable layer.*Supported: Conv1d"):
        require_prunable(nn.Sequential(nn.ReLU(), nn.LayerNorm(3)))
    with pytest.raises(ValueError, match=r"no prunable layer.*unsupported layers found: 0\.weight \(Bilinear"):
        require_prunable(nn.Sequential(nn.Bilinear(2, 2, 2)))
    with pytest.raises(TypeError, match="expected a torch.nn.Module, got dict"):
        prunable_parameters({"w": torch.zeros(2, 2)})
