"""Nothing silent in the generators: every bad argument, option, model, batch or score is an error naming the
generator and the offending value."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pags_core import GENERATORS, Mask, compute_scores, erk_counts, erk_densities, generate_mask, select_topk

WEIGHT_READERS = ("magnitude", "snip", "grasp", "synflow", "itersnip")


class Small(nn.Module):
    def __init__(self, act=None):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.act = act or nn.Tanh()
        self.fc = nn.Linear(3 * 4 * 4, 3)

    def forward(self, x):
        return F.log_softmax(self.fc(self.act(self.bn(self.conv(x))).flatten(1)), dim=1)


def small(act=None):
    torch.manual_seed(0)
    return Small(act)


def batches():
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 1, 4, 4, generator=g), torch.randint(0, 3, (4,), generator=g))]


def gen(net, method, density=0.3, **kw):
    kw.setdefault("device", "cpu")
    kw.setdefault("rounds", 2)
    return generate_mask(net, method, density, batches=batches(), **kw)


# ---- non-finite models, batches and scores --------------------------------------------------------------------------
@pytest.mark.parametrize("method", WEIGHT_READERS)
def test_nan_weight_refused_naming_generator_layer_and_count(method):
    net = small()
    with torch.no_grad():
        net.fc.weight[0, 3] = float("nan")
        net.fc.weight[1, 0] = float("inf")
    with pytest.raises(ValueError, match=rf"^{method}: the model's parameters/buffers hold non-finite values: "
                                         r"fc\.weight \(1 NaN, 1 \+inf\)"):
        gen(net, method)


def test_inf_buffer_refused_and_random_erk_do_not_read_weights():
    net = small()
    with torch.no_grad():
        net.bn.running_var[1] = float("inf")
    with pytest.raises(ValueError, match=r"snip: .*bn\.running_var \(1 \+inf\)"):
        gen(net, "snip")
    for method in ("random", "erk"):  # masks independent of the weights: allowed
        assert gen(net, method).num_kept == round(0.3 * (27 + 144))


def test_nan_batch_refused():
    net = small()
    bad = batches()
    bad[0][0][2, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match=r"snip: the scoring mini-batches hold non-finite values: batch 0 inputs "
                                         r"\(1 NaN\)"):
        generate_mask(net, "snip", 0.3, batches=bad, device="cpu")


def test_grasp_overflow_refused_naming_layer_and_temperature():
    with pytest.raises(ValueError, match=r"grasp produced non-finite scores, which it will not rank: conv\.weight "
                                         r"\(\d+ NaN.*temperature=1e-300"):
        gen(small(), "grasp", temperature=1e-300)


def test_synflow_overflow_names_R():
    torch.manual_seed(0)
    deep = nn.Sequential(*[nn.Linear(10, 10) for _ in range(80)])
    with torch.no_grad():
        for m in deep:
            m.weight.fill_(1000.0)  # x1e4 per layer: 1e320 > float64 max
    with pytest.raises(ValueError, match=r"synflow: R = .* is inf .*overflowed"):
        generate_mask(deep, "synflow", 0.1, device="cpu", rounds=1)


def test_equal_scores_refused_naming_zero_layers():
    net = small()
    with torch.no_grad():
        net.fc.weight.zero_()  # as torchvision's ViT head: blocks every gradient
    with pytest.raises(ValueError, match=r"snip gave every weight the same score 0\.0.*all zero: fc\.weight"):
        gen(net, "snip")
    with torch.no_grad():
        net.conv.weight.fill_(0.5)
        net.fc.weight.fill_(0.5)
    with pytest.raises(ValueError, match=r"magnitude gave every weight the same score 0\.5"):
        gen(net, "magnitude")


def test_grasp_without_second_derivative_names_the_operation():
    with pytest.raises(RuntimeError, match=r"GraSP needs second derivatives.*hardsigmoid.*another generator"):
        gen(small(nn.Hardsigmoid()), "grasp")


def test_select_topk_refuses_nan_naming_layer():
    with pytest.raises(ValueError, match=r"scores hold NaN.*b \(2 NaN\)"):
        select_topk({"a": torch.ones(3), "b": torch.tensor([1.0, math.nan, math.nan])}, 0.5)
    m = select_topk({"a": torch.tensor([-math.inf, 1.0]), "b": torch.tensor([math.inf, 0.0])}, 0.5)
    assert m["a"].tolist() == [False, True] and m["b"].tolist() == [True, False]  # ±inf keep their meaning


# ---- arguments and options ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, pattern", [
    ({"noise": float("nan")}, r"noise must be a finite number >= 0.*nan"),
    ({"noise": -1e-3}, r"noise must be .*-0\.001"),
    ({"noise": float("inf")}, r"noise must be .*inf"),
    ({"noise": "0.1"}, r"noise must be .*'0\.1'"),
    ({"noise": True}, r"noise must be .*True"),
    ({"seed": 1.5}, r"seed must be an int, got 1\.5"),
    ({"seed": "0"}, r"seed must be an int, got '0'"),
    ({"seed": True}, r"seed must be an int, got True"),
    ({"rounds": 0}, r"rounds must be a positive int, got 0"),
    ({"rounds": 2.5}, r"rounds must be a positive int, got 2\.5"),
    ({"rounds": True}, r"rounds must be a positive int, got True"),
    ({"scope": "layer"}, r"unknown scope 'layer'; valid choices: global, local"),
])
@pytest.mark.parametrize("method", ["magnitude", "synflow"])
def test_bad_arguments_name_the_value(method, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        gen(small(), method, **kw)


@pytest.mark.parametrize("method, opts, pattern", [
    ("grasp", {"temperature": 0}, r"'grasp': temperature must be a finite number > 0, got 0"),
    ("grasp", {"temperature": -200.0}, r"'grasp': temperature .*-200\.0"),
    ("grasp", {"temperature": float("nan")}, r"'grasp': temperature .*nan"),
    ("grasp", {"temperature": "hot"}, r"'grasp': temperature .*'hot'"),
    ("erk", {"power": float("nan")}, r"'erk': power must be a finite number >= 0, got nan"),
    ("erk", {"power": -1}, r"'erk': power .*-1"),
    ("erk", {"bernoulli": "yes"}, r"'erk': bernoulli must be True or False, got 'yes'"),
    ("synflow", {"input_shape": (0, 4, 4)}, r"'synflow': input_shape must be .*\(0, 4, 4\)"),
    ("synflow", {"input_shape": "1x4x4"}, r"'synflow': input_shape .*'1x4x4'"),
])
def test_bad_options_name_generator_and_value(method, opts, pattern):
    with pytest.raises(ValueError, match=pattern):
        gen(small(), method, **opts)
    if GENERATORS[method].scorer is not None:
        with pytest.raises(ValueError, match=pattern):
            compute_scores(small(), method, batches(), device="cpu", **opts)


@pytest.mark.parametrize("bad", [True, False])
def test_bool_density_refused(bad):
    with pytest.raises(ValueError, match=rf"density must be a number in \(0, 1\].*{bad}"):
        gen(small(), "random", density=bad)


# ---- odd models -------------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("method", sorted(GENERATORS.names()))
def test_zero_size_layer_named(method):
    net = nn.Sequential(nn.Linear(4, 0), nn.Linear(0, 3))
    with pytest.raises(ValueError, match=r"2 prunable layer\(s\) have no weights.*0\.weight \(0, 4\), 1\.weight \(3, 0\)"):
        generate_mask(net, method, 0.5, batches=[(torch.randn(2, 4), torch.tensor([0, 1]))], device="cpu")


def test_erk_functions_refuse_zero_size_and_empty():
    with pytest.raises(ValueError, match=r"fc \(3, 0\)"):
        erk_densities({"conv": (2, 2, 3, 3), "fc": (3, 0)}, 0.1)
    with pytest.raises(ValueError, match=r"fc \(3, 0\)"):
        erk_counts({"fc": (3, 0)}, 0.1)
    with pytest.raises(ValueError, match="at least one layer"):
        erk_densities({}, 0.1)


@pytest.mark.parametrize("method", sorted(GENERATORS.names()))
def test_no_prunable_layer_named(method):
    net = nn.Sequential(nn.Flatten(), nn.LayerNorm(4))
    with pytest.raises(ValueError, match=r"Sequential has no prunable layer.*Supported: Conv1d"):
        generate_mask(net, method, 0.5, batches=[(torch.randn(2, 4), torch.tensor([0, 1]))], device="cpu")


def test_synflow_input_shape_not_guessed_for_other_first_layers():
    net = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Flatten(), nn.LazyLinear(2))
    net[2] = nn.Linear(3 * 6, 2)
    with pytest.raises(ValueError, match=r"cannot infer the SynFlow input shape .*0\.weight \(conv1d\).*input_shape="):
        generate_mask(net, "synflow", 0.5, device="cpu", rounds=1)
    assert generate_mask(net, "synflow", 0.5, device="cpu", rounds=1, input_shape=(2, 8)).num_kept == 27


def test_compute_scores_checks_the_mask_against_the_model():
    net = small()
    prefixed = Mask({"module." + k: v for k, v in Mask.ones(net).items()})
    with pytest.raises(ValueError, match=r"'module\.conv\.weight'.*'module\.' prefix"):
        compute_scores(net, "itersnip", batches(), mask=prefixed, device="cpu")
    partial = Mask({"conv.weight": torch.ones(3, 1, 3, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"mask lacks 1 prunable weight\(s\).*'fc\.weight'"):
        compute_scores(net, "itersnip", batches(), mask=partial, device="cpu")


@pytest.mark.parametrize("method", ["synflow", "snip", "grasp", "magnitude"])
def test_layernorm_models_without_batchnorm_score(method):
    """SynFlow and the others on a LayerNorm + GELU network without BatchNorm: finite, non-degenerate scores."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 3), nn.LogSoftmax(dim=1))
    data = [(torch.randn(4, 6), torch.tensor([0, 1, 2, 0]))]
    s = compute_scores(net, method, data, device="cpu")
    flat = torch.cat([v.reshape(-1) for v in s.values()])
    assert torch.isfinite(flat).all() and flat.std() > 0
    assert generate_mask(net, method, 0.2, batches=data, device="cpu", rounds=2).num_kept == round(0.2 * 72)

