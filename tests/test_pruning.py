"""PaI generators: scores against slow hand-written references, exact densities, ERK closed form, errors."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from layer_kinds import AllKinds, all_kinds, all_kinds_batches
from pags_core import (GENERATORS, Mask, add_log_softmax, compute_scores, erk_counts, erk_densities, generate_mask,
                       layer_geometry, make_model, prunable_parameters, select_topk)


class Tiny(nn.Module):
    """150 prunable weights; BN with non-trivial running statistics so eval() vs train() mode matters."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(2)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1, bias=True)
        self.fc = nn.Linear(32, 3)

    def forward(self, x):
        x = F.relu(self.bn(self.conv1(x)))
        x = torch.tanh(self.conv2(x))  # smooth, so finite differences are accurate
        return F.log_softmax(self.fc(x.flatten(1)), dim=1)


def tiny():
    torch.manual_seed(0)
    net = Tiny()
    with torch.no_grad():
        net.bn.running_mean.copy_(torch.tensor([0.3, -0.2]))
        net.bn.running_var.copy_(torch.tensor([2.0, 0.5]))
        net.bn.weight.copy_(torch.tensor([1.5, -0.7]))
        net.bn.bias.copy_(torch.tensor([0.1, -0.3]))
        for p in net.parameters():
            if p.dim() > 1:
                p.mul_(3.0)  # larger weights: non-trivial GraSP/SynFlow
    return net


def tiny_batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(5, 1, 4, 4, generator=g), torch.randint(0, 3, (5,), generator=g)) for _ in range(2)]


def _flat(d):
    return torch.cat([v.reshape(-1) for v in d.values()])


def _unflat(vec, like):
    out, i = {}, 0
    for k, v in like.items():
        out[k] = vec[i:i + v.numel()].view_as(v)
        i += v.numel()
    return out


def _fd_grad(f, w, h=1e-6):
    """Central finite differences of a scalar float64 function of a flat vector."""
    g = torch.zeros_like(w)
    for i in range(w.numel()):
        e = torch.zeros_like(w)
        e[i] = h
        g[i] = (f(w + e) - f(w - e)) / (2 * h)
    return g


def _double_state(net):
    net = copy.deepcopy(net).double().eval()
    return net, {k: v.detach().clone() for k, v in net.named_parameters()}, dict(net.named_buffers())


def test_snip_matches_finite_difference_reference():
    net, batches = tiny(), tiny_batches()
    d, params, bufs = _double_state(net)
    w = {k: v for k, v in params.items() if k in prunable_parameters(d)}
    theta = _flat(w)

    def loss_of_m(mvec):  # L as a function of the mask variables m, at m = 1: s = |dL/dm|
        eff = {k: v * m for (k, v), m in zip(w.items(), _unflat(mvec, w).values())}
        total = 0.0
        for x, y in batches:
            total = total + F.nll_loss(functional_call(d, {**params, **eff, **bufs}, (x.double(),)), y)
        return total

    ref = _fd_grad(loss_of_m, torch.ones_like(theta)).abs()
    ref = ref / ref.sum()
    got = _flat(compute_scores(net, "snip", batches, device="cpu")).double()
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-7)


def test_itersnip_scores_under_mask_allow_reentry():
    net, batches = tiny(), tiny_batches()
    mask = Mask.ones(net)
    mask["conv2.weight"].view(-1)[::2] = False
    d, params, bufs = _double_state(net)
    w = {k: v for k, v in params.items() if k in prunable_parameters(d)}
    m = {k: mask[k].double() for k in w}

    def loss_of_eff(vec):
        total = 0.0
        for x, y in batches:
            total = total + F.nll_loss(functional_call(d, {**params, **_unflat(vec, w), **bufs}, (x.double(),)), y)
        return total

    g_eff = _fd_grad(loss_of_eff, _flat({k: w[k] * m[k] for k in w}))
    ref = (_flat(w) * g_eff).abs()
    ref = ref / ref.sum()
    got = _flat(compute_scores(net, "itersnip", batches, mask=mask, device="cpu")).double()
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-7)
    pruned = ~mask["conv2.weight"]
    assert torch.all(compute_scores(net, "itersnip", batches, mask=mask, device="cpu")["conv2.weight"][pruned] > 0)


def test_grasp_matches_explicit_hessian():
    net, batches = tiny(), tiny_batches()
    d, params, bufs = _double_state(net)
    w = {k: v for k, v in params.items() if k in prunable_parameters(d)}
    theta = _flat(w)

    def f(vec):
        total = 0.0
        for x, y in batches:
            out = functional_call(d, {**params, **_unflat(vec, w), **bufs}, (x.double(),))
            total = total + F.nll_loss(out / 200.0, y)
        return total

    theta_g = theta.clone().requires_grad_(True)
    g = torch.autograd.grad(f(theta_g), theta_g)[0]
    H = torch.autograd.functional.hessian(f, theta)
    ref = theta * (H @ g)
    ref = ref / (ref.sum().abs() + 1e-10)
    got = _flat(compute_scores(net, "grasp", batches, device="cpu")).double()
    assert torch.allclose(got, ref, rtol=1e-3, atol=1e-6 * ref.abs().max())
    assert (got < 0).any() and (got > 0).any()  # signed


def _synflow_ref(net, mask, input_shape=(1, 4, 4)):
    d = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        for t in list(d.parameters()) + [b for b in d.buffers() if b.is_floating_point()]:
            t.abs_()
    params = {k: v.detach().clone() for k, v in d.named_parameters()}
    bufs = dict(d.named_buffers())
    w = {k: params[k] * mask[k].double() for k in prunable_parameters(d)}
    x = torch.ones((1, *input_shape), dtype=torch.float64)
    R = lambda vec: functional_call(d, {**params, **_unflat(vec, w), **bufs}, (x,)).sum()  # noqa: E731
    vec = _flat(w)
    return (vec * _fd_grad(R, vec)).abs()


def test_synflow_matches_finite_difference_reference():
    net = tiny()
    ref = _synflow_ref(net, Mask.ones(net))
    got = _flat(compute_scores(net, "synflow", device="cpu", input_shape=(1, 4, 4)))
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-9)


@pytest.mark.filterwarnings("ignore:.*pruned .* to nothing")
def test_synflow_iterative_matches_reference_loop():
    net, D, R = tiny(), 0.2, 3
    mask = Mask.ones(net)
    for e in range(R):
        s = _unflat(_synflow_ref(net, mask), mask)
        s = {k: v.masked_fill(~mask[k], -math.inf) for k, v in s.items()}
        mask = select_topk(s, D ** ((e + 1) / R))
    got = generate_mask(net, "synflow", D, rounds=R, device="cpu", batches=tiny_batches())  # shape from the batch
    assert got == mask
    # pruned weights stay pruned: each round's mask is a subset of the previous one
    assert got.num_kept == round(D * got.num_total)


def test_magnitude_and_random_references():
    net = tiny()
    w = prunable_parameters(net)
    mag = generate_mask(net, "magnitude", 0.3, device="cpu")
    assert mag == select_topk({k: v.detach().abs() for k, v in w.items()}, 0.3)
    kth = torch.sort(_flat({k: v.detach().abs() for k, v in w.items()}), descending=True).values[round(0.3 * 150) - 1]
    assert all(torch.all((w[k].abs() >= kth) == m) for k, m in mag.items())
    g = torch.Generator().manual_seed(5)
    ref = select_topk({k: torch.randn(v.shape, generator=g) for k, v in w.items()}, 0.3)
    assert generate_mask(net, "random", 0.3, seed=5, device="cpu") == ref
    assert generate_mask(net, "random", 0.3, seed=6, device="cpu") != ref


@pytest.mark.filterwarnings("ignore:.*pruned .* to nothing")
def test_scoring_uses_eval_mode_and_never_mutates_the_model():
    net = tiny()
    net.train()
    state = copy.deepcopy(net.state_dict())
    for name in GENERATORS.names():
        generate_mask(net, name, 0.3, batches=tiny_batches(), rounds=2, device="cpu", noise=1e-2,
                      **({"input_shape": (1, 4, 4)} if name == "synflow" else {}))
        assert net.training
        for k, v in net.state_dict().items():
            assert torch.equal(v, state[k]), (name, k)
    # eval mode: SNIP with BN running stats equals the reference (test above); train-mode BN would differ
    s_eval = compute_scores(net, "snip", tiny_batches(), device="cpu")
    net_train_bn = copy.deepcopy(net)
    net_train_bn.bn.track_running_stats = False
    net_train_bn.bn.running_mean = None
    net_train_bn.bn.running_var = None
    s_batchstats = compute_scores(net_train_bn, "snip", tiny_batches(), device="cpu")
    assert not torch.allclose(_flat(s_eval), _flat(s_batchstats))


def test_noise_makes_magnitude_samples_differ():
    net = tiny()
    a = generate_mask(net, "magnitude", 0.3, noise=0.0, seed=0, device="cpu")
    assert a == generate_mask(net, "magnitude", 0.3, noise=0.0, seed=1, device="cpu")
    b0 = generate_mask(net, "magnitude", 0.3, noise=0.5, seed=0, device="cpu")
    assert b0 == generate_mask(net, "magnitude", 0.3, noise=0.5, seed=0, device="cpu")
    assert b0 != generate_mask(net, "magnitude", 0.3, noise=0.5, seed=1, device="cpu")


@pytest.fixture(scope="module")
def book_model():
    torch.manual_seed(0)
    return make_model("resnet18", num_classes=10, in_channels=1, width=1 / 8)


@pytest.fixture(scope="module")
def book_batches():
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(2)]


@pytest.mark.filterwarnings("ignore:.*pruned .* to nothing")
@pytest.mark.parametrize("method", sorted(GENERATORS.names()))
@pytest.mark.parametrize("density", [0.5, 0.05, 0.01])
def test_achieved_global_density(book_model, book_batches, method, density):
    m = generate_mask(book_model, method.upper(), density, batches=book_batches, rounds=3, device="cpu")
    assert abs(m.density - density) <= 1e-4
    assert m.num_kept == round(density * m.num_total)
    assert m.meta["method"] == method and m.meta["density"] == density
    m.check(book_model)


def test_local_scope_is_layerwise(book_model):
    m = generate_mask(book_model, "random", 0.1, scope="local", device="cpu")
    for k, (kept, total) in m.layer_counts().items():
        assert kept == max(1, round(0.1 * total)), k


def test_erk_closed_form_hand_computed():
    p = erk_densities({"a": (10, 10), "b": (100, 100)}, 0.1)
    eps = 0.1 * 10100 / (0.2 * 100 + 0.02 * 10000)
    assert p == pytest.approx({"a": eps * 0.2, "b": eps * 0.02})
    # a saturating layer joins the dense set S and eps is recomputed without it
    p = erk_densities({"a": (4, 4), "b": (100, 100)}, 0.1)
    eps = (0.1 * 10000 - 0.9 * 16) / (0.02 * 10000)
    assert p == pytest.approx({"a": 1.0, "b": eps * 0.02})


def test_erk_layer_densities_match_closed_form(book_model):
    shapes = {k: tuple(v.shape) for k, v in prunable_parameters(book_model).items()}
    N = {k: math.prod(s) for k, s in shapes.items()}
    raw = {k: sum(s) / N[k] for k, s in shapes.items()}
    D = 0.02
    p = erk_densities(shapes, D)
    dense = {k for k in p if p[k] == 1.0}
    eps = (D * sum(N[k] for k in N if k not in dense) - (1 - D) * sum(N[k] for k in dense)) / \
        sum(raw[k] * N[k] for k in N if k not in dense)
    for k in shapes:
        assert p[k] == pytest.approx(1.0 if k in dense else eps * raw[k])
        assert p[k] <= 1.0
    assert sum(p[k] * N[k] for k in N) == pytest.approx(D * sum(N.values()))
    counts = erk_counts(shapes, D)
    assert sum(counts.values()) == round(D * sum(N.values()))
    mask = generate_mask(book_model, "erk", D, seed=3, device="cpu")
    for k, (kept, total) in mask.layer_counts().items():
        assert kept == counts[k] and abs(kept - p[k] * total) <= 1.0, k
    assert mask.layer_densities()["conv1.weight"] == pytest.approx(0.583, abs=0.01)  # PILOT: stem 0.58
    assert mask.layer_densities()["linear.weight"] == pytest.approx(0.32, abs=0.01)  # PILOT: head 0.32
    assert generate_mask(book_model, "erk", D, seed=3, device="cpu") == mask
    assert generate_mask(book_model, "erk", D, seed=4, device="cpu") != mask


def test_erk_bernoulli_density_in_expectation(book_model):
    m = generate_mask(book_model, "erk", 0.05, bernoulli=True, device="cpu")
    assert m.meta["bernoulli"] is True
    assert m.density == pytest.approx(0.05, rel=0.05)


def test_select_keeps_exactly_k_with_ties():
    s = {"a": torch.zeros(10), "b": torch.ones(5)}
    m = select_topk(s, 0.6)  # k = 9: all five ones, then the first four tied zeros
    assert m.num_kept == 9 and m["b"].all() and m["a"].tolist() == [True] * 4 + [False] * 6


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), "abc"])
def test_bad_density_names_value_and_range(book_model, bad):
    with pytest.raises(ValueError, match=r"\(0, 1\].*" + (r"nan" if bad != bad else repr(bad).replace(".", r"\."))):
        generate_mask(book_model, "random", bad, device="cpu")


def test_unknown_method_lists_choices(book_model):
    with pytest.raises(KeyError, match=r"'prune_me'.*erk.*grasp.*itersnip.*magnitude.*random.*snip.*synflow"):
        generate_mask(book_model, "prune_me", 0.1)


def test_data_method_without_batches(book_model):
    for name in ("snip", "grasp", "itersnip"):
        with pytest.raises(ValueError, match=rf"'{name}' needs data.*batches="):
            generate_mask(book_model, name, 0.1, device="cpu")


def test_unknown_option(book_model):
    with pytest.raises(TypeError, match=r"'erk'.*temperature.*bernoulli"):
        generate_mask(book_model, "erk", 0.1, temperature=3)


def test_empty_layer_warning_names_layers():
    net = nn.Sequential(nn.Linear(4, 50), nn.ReLU(), nn.Linear(50, 3))
    with torch.no_grad():
        net[2].weight.mul_(1e-6)
    with pytest.warns(UserWarning, match=r"pruned 1 layer\(s\) to nothing: 2\.weight"):
        m = generate_mask(net, "magnitude", 0.1, device="cpu")
    assert m.empty_layers() == ["2.weight"]


@pytest.mark.filterwarnings("ignore:.*pruned .* to nothing")
def test_works_on_a_torchvision_model():
    tvm = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    net = add_log_softmax(tvm.squeezenet1_1(num_classes=10))
    assert torch.allclose(net(torch.randn(1, 3, 32, 32)).exp().sum(), torch.tensor(1.0), atol=1e-5)
    batches = [(torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,)))]
    for name in ("snip", "synflow", "erk"):
        m = generate_mask(net, name, 0.05, batches=batches, rounds=2, device="cpu")
        assert abs(m.density - 0.05) <= 1e-4
        assert "features.0.weight" in m and "classifier.1.weight" in m
        m.check(net)


# ---- every layer kind: grouped, depthwise, transposed, 1-D/3-D, attention ----------------------------------------------
def test_erk_grouped_layer_reads_true_fan_in_hand_computed():
    """Depthwise 3x3 (8 ch) -> pointwise 8->16 -> Linear 16->4, density 0.3, by hand:
    raw = (8+1+3+3)/72, (16+8+1+1)/128, (4+16)/64; eps = 0.3 * 264 / (15 + 26 + 20) (no layer saturates)."""
    net = nn.Sequential(nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 16, 1), nn.Flatten(), nn.Linear(16, 4))
    shapes = {k: tuple(v.shape) for k, v in prunable_parameters(net).items()}
    assert shapes["0.weight"] == (8, 1, 3, 3)  # the stored shape already holds C_in/g = 1
    eps = 0.3 * 264 / 61
    p = erk_densities(shapes, 0.3)
    assert p == pytest.approx({"0.weight": eps * 15 / 72, "1.weight": eps * 26 / 128, "3.weight": eps * 20 / 64})
    assert p["0.weight"] != pytest.approx(eps * (8 + 8 + 3 + 3) / (8 * 8 * 9))  # not the dense 8->8 reading
    counts = generate_mask(net, "erk", 0.3, seed=0, device="cpu").layer_counts()
    assert sum(k for k, _ in counts.values()) == round(0.3 * 264)
    assert all(abs(kept - p[n] * total) <= 1 for n, (kept, total) in counts.items())


def _reach(layer: nn.Module, x: torch.Tensor, out_index: tuple) -> torch.Tensor:
    """Bool tensor of the input entries that one output entry depends on (gradient support, weights kept non-zero)."""
    x = x.clone().requires_grad_(True)
    layer(x)[out_index].backward()
    return x.grad != 0


@pytest.mark.parametrize("layer, x, out_index", [
    (nn.Conv2d(6, 4, 3, groups=2), torch.randn(1, 6, 7, 7), (0, 3, 2, 2)),
    (nn.Conv2d(4, 4, 3, groups=4), torch.randn(1, 4, 7, 7), (0, 1, 2, 2)),
    (nn.Conv1d(6, 9, 5, groups=3), torch.randn(1, 6, 11), (0, 4, 3)),
    (nn.Conv3d(4, 2, 3, groups=2), torch.randn(1, 4, 5, 5, 5), (0, 1, 1, 1, 1)),
])
def test_geometry_fan_in_is_what_one_output_really_reads(layer, x, out_index):
    """prod(weight.shape[1:]) (LayerGeometry.fan_in, what ERK and the graph use) equals the number of input
    entries an interior output entry of a grouped convolution depends on, all inside its own group's channels."""
    torch.manual_seed(0)
    geo = layer_geometry(nn.Sequential(layer))["0.weight"]
    reach = _reach(layer, x, out_index)
    assert int(reach.sum()) == geo.fan_in
    o, cin, g = out_index[1], layer.in_channels, layer.groups
    group = o // (layer.out_channels // g)
    channels = reach[0].flatten(1).any(1).nonzero().flatten().tolist()
    assert channels == list(range(group * cin // g, (group + 1) * cin // g))
    assert geo.n_inputs == g * geo.fan_in


def test_transposed_geometry_row_reaches_its_units():
    """A transposed convolution's row is an input channel: one input entry reaches prod(shape[1:]) output entries
    (C_out/g channels x kernel positions, stride = kernel so nothing overlaps)."""
    torch.manual_seed(0)
    t = nn.ConvTranspose2d(6, 4, 2, stride=2, groups=2)
    geo = layer_geometry(nn.Sequential(t))["0.weight"]
    x = torch.zeros(1, 6, 3, 3)
    x[0, 4, 1, 1] = 1.0
    with torch.no_grad():
        reached = (t(x) - t(torch.zeros_like(x))) != 0
    assert int(reached.sum()) == geo.fan_in == 2 * 2 * 2
    assert reached[0].flatten(1).any(1).nonzero().flatten().tolist() == [2, 3]  # group 1's output channels


def _kinds_reference(net, batches, score):
    """Scores of every prunable weight of ``net`` from a float64 functional re-implementation."""
    d = copy.deepcopy(net).double().eval()
    params = {k: v.detach().clone() for k, v in d.named_parameters()}
    names = list(AllKinds.EXPECTED)
    return score(d, params, names, [(x.double(), y) for x, y in batches])


def _call(d, params, names, vec_or_dict, x):
    w = vec_or_dict if isinstance(vec_or_dict, dict) else _unflat(vec_or_dict, {n: params[n] for n in names})
    return functional_call(d, {**params, **w}, (x,))


def test_snip_grasp_synflow_on_every_layer_kind_match_references():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    net, batches = all_kinds(), all_kinds_batches()
    theta_of = lambda params, names: _flat({n: params[n] for n in names})  # noqa: E731

    def snip(d, params, names, bs):
        m = torch.ones_like(theta_of(params, names), requires_grad=True)
        theta = theta_of(params, names)
        loss = sum(F.nll_loss(_call(d, params, names, theta * m, x), y) for x, y in bs)
        s = torch.autograd.grad(loss, m)[0].abs()
        return s / s.sum()

    def grasp(d, params, names, bs):
        theta = theta_of(params, names)
        f = lambda v: sum(F.nll_loss(_call(d, params, names, v, x) / 200.0, y) for x, y in bs)  # noqa: E731
        with sdpa_kernel(SDPBackend.MATH):
            g = torch.autograd.functional.jacobian(f, theta)
            hg = torch.autograd.functional.hvp(f, theta, g)[1]
        s = theta * hg
        return s / (s.sum().abs() + 1e-10)

    def synflow(d, params, names, bs):
        absd = {k: v.abs() for k, v in params.items()}
        theta = theta_of(absd, names).requires_grad_(True)
        R = _call(d, absd, names, theta, torch.ones(1, 2, 6, 6, dtype=torch.float64)).sum()
        return (theta * torch.autograd.grad(R, theta)[0]).abs().detach()

    for method, ref_fn, tol in (("snip", snip, 1e-4), ("grasp", grasp, 1e-3), ("synflow", synflow, 1e-5)):
        ref = _kinds_reference(net, batches, ref_fn)
        got = compute_scores(net, method, batches, device="cpu", **({"input_shape": (2, 6, 6)}
                                                                    if method == "synflow" else {}))
        assert list(got) == list(AllKinds.EXPECTED)
        got = _flat(got).double()
        assert torch.allclose(got, ref, rtol=tol, atol=tol * ref.abs().max()), method
        attn = _flat({k: v for k, v in _unflat(got, prunable_parameters(net)).items() if "proj_weight" in k})
        assert attn.abs().sum() > 0, method  # the attention projections are scored, not left out


@pytest.mark.filterwarnings("ignore:.*pruned .* to nothing")
@pytest.mark.parametrize("method", sorted(GENERATORS.names()))
def test_every_generator_masks_every_layer_kind_at_the_density(method):
    net = all_kinds()
    m = generate_mask(net, method, 0.3, batches=all_kinds_batches(), rounds=3, device="cpu")
    assert list(m) == list(AllKinds.EXPECTED)
    assert m.num_kept == round(0.3 * m.num_total)
    m.check(net, complete=True)


@pytest.mark.filterwarnings("ignore:.*pruned .* to nothing")
def test_local_scope_and_magnitude_reference_on_every_layer_kind():
    net = all_kinds()
    local = generate_mask(net, "random", 0.3, scope="local", device="cpu")
    assert {k: kept for k, (kept, _) in local.layer_counts().items()} == \
        {k: max(1, round(0.3 * p.numel())) for k, p in prunable_parameters(net).items()}
    mag = generate_mask(net, "magnitude", 0.3, device="cpu")
    w = torch.cat([p.detach().abs().reshape(-1) for p in prunable_parameters(net).values()])
    kth = torch.sort(w, descending=True).values[round(0.3 * w.numel()) - 1]
    for k, p in prunable_parameters(net).items():
        assert torch.equal(mag[k], p.detach().abs() >= kth), k  # no ties among random float weights
