"""The true graph of grouped, depthwise, 1-D/3-D and transposed layers, against the dense oracle and closed forms."""
import math
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pags_core.spectral import (biadjacency, layer_spectrum, model_spectrum, reference_layer_spectrum,
                                score_population)
from pags_core.spectral.examples import complete_bipartite, disjoint_union
from pags_core.spectral.metrics import METRIC_FIELDS
from test_spectral_oracles import assert_same as _assert_same

# (weight shape, groups): ConvNeXt-like depthwise 7x7, MobileNet-like depthwise 3x3, a grouped conv with g = 4,
# Conv1d (plain and grouped), Conv3d, and a transposed conv weight (C_in, C_out/g, k, k) read as its adjoint's graph
LAYERS = {
    "depthwise7x7": ((16, 1, 7, 7), 16),
    "depthwise3x3": ((32, 1, 3, 3), 32),
    "grouped_g4": ((16, 4, 3, 3), 4),
    "conv1d": ((12, 6, 5), 1),
    "conv1d_g3": ((12, 2, 5), 3),
    "conv3d": ((8, 4, 3, 3, 3), 1),
    "conv_transpose_g2": ((16, 4, 3, 3), 2),
}


def assert_same(fast, ref, keys, rtol=1e-9, atol=1e-12):
    _assert_same(fast, ref, keys, rtol=rtol, atol=atol)


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("density", [0.3, 0.7, 1.0])
@pytest.mark.parametrize("convention", ["neurips2023", "iclr2023"])
def test_true_graph_matches_dense_oracle(layer, density, convention):
    shape, g = LAYERS[layer]
    rng = np.random.default_rng(zlib.crc32(f"{layer}{density}".encode()))
    mask = rng.random(shape) < density
    w = rng.normal(size=shape)
    for weight in (w, None):
        fast = layer_spectrum(mask, weight, convention, groups=g).as_dict()
        ref = reference_layer_spectrum(mask, weight, convention, groups=g)
        assert_same(fast, ref, METRIC_FIELDS)


def test_oracle_biadjacency_is_block_diagonal():
    """The oracle's graph, checked entry by entry: output o reaches only the input units of its group."""
    w = np.arange(1, 1 + 6 * 2 * 2, dtype=float).reshape(6, 2, 2)  # 6 rows, groups = 3 -> 2 rows per group, F = 4
    B = biadjacency(w, groups=3)
    assert B.shape == (12, 6)
    for o in range(6):
        grp = o // 2
        col = B[:, o]
        assert np.array_equal(col[grp * 4:(grp + 1) * 4], w[o].reshape(-1))
        assert not np.delete(col, np.arange(grp * 4, (grp + 1) * 4)).any()


@pytest.mark.parametrize("layer", ["grouped_g4", "conv1d_g3", "conv_transpose_g2"])
def test_grouped_layer_is_the_disjoint_union_of_its_groups(layer):
    """Scoring a g-group layer equals scoring the disjoint union of its g blocks as one dense Linear layer (built with
    examples.disjoint_union, independently of both the engine and the oracle)."""
    shape, g = LAYERS[layer]
    rng = np.random.default_rng(5)
    mask = rng.random(shape) < 0.4
    w = rng.normal(size=shape)
    rows, F = shape[0] // g, int(np.prod(shape[1:]))
    blocks = lambda a: [a[b * rows:(b + 1) * rows].reshape(rows, F) for b in range(g)]  # noqa: E731
    union_mask = disjoint_union(*blocks(mask))  # (R, g*F): a Linear layer's layout
    union_w = np.zeros(union_mask.shape)
    for b, blk in enumerate(blocks(w)):
        union_w[b * rows:(b + 1) * rows, b * F:(b + 1) * F] = blk
    a = layer_spectrum(mask, w, groups=g).as_dict()
    u = layer_spectrum(union_mask, union_w).as_dict()
    assert_same(a, u, [k for k in METRIC_FIELDS if k != "density"])
    assert a["density"] == pytest.approx(g * u["density"])  # density = kept fraction of the layer's own weights
    plain = layer_spectrum(mask, w, groups=1)  # the unrolling that ignores the groups is a different graph
    assert plain.n_left == F and a["n_left"] <= g * F and plain.mu0 != pytest.approx(a["mu0"])


def test_dense_depthwise_layer_closed_form():
    """A dense depthwise k×k layer is C disjoint stars K(k², 1): μ0 = μ̂ = k (every channel equally strong), every
    input unit has fan-out 1, so both conventions' gates fail and the layer adds nothing to FS."""
    C, k = 24, 7
    mask = np.ones((C, 1, k, k), bool)
    n = layer_spectrum(mask, np.ones(mask.shape), groups=C)
    assert n.mu0 == pytest.approx(k, rel=1e-12) and n.mu_hat == pytest.approx(k, rel=1e-12)
    assert n.weighted_mu0 == pytest.approx(k, rel=1e-12) and n.weighted_mu_hat == pytest.approx(k, rel=1e-12)
    assert n.d_left == 1.0 and n.d_right == k * k and n.density == 1.0
    assert n.ramanujan_gap == math.inf and n.weighted_gap == math.inf and n.imdb == 0.0 and n.full_spectrum == 0.0
    i = layer_spectrum(mask, None, "iclr2023", groups=C)
    assert math.isnan(i.ramanujan_gap) and math.isnan(i.imdb)


def test_repeated_and_distinct_block_strengths():
    """μ̂ of a block-diagonal graph: the second largest σ among the blocks — μ0 again when two blocks are equally
    strong, the weaker block's σ1 otherwise (closed forms of complete bipartite blocks)."""
    K = complete_bipartite(40, 50)  # σ1 = √2000; large enough for the Lanczos path
    for second, expect in ((K, math.sqrt(2000)), (complete_bipartite(36, 40), math.sqrt(1440))):
        r = layer_spectrum(disjoint_union(K, second), None)
        assert r.mu0 == pytest.approx(math.sqrt(2000), rel=1e-12)
        assert r.mu_hat == pytest.approx(expect, rel=1e-12)


def _grouped_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, bias=False), nn.ReLU(),
        nn.Conv2d(16, 16, 3, groups=16, bias=False),  # depthwise
        nn.Conv2d(16, 32, 3, groups=4), nn.ReLU(),  # grouped
        nn.Conv2d(32, 24, 1), nn.Flatten(), nn.Linear(24, 10),
    )


def test_model_spectrum_reads_groups_from_the_model():
    m = _grouped_model()
    g = torch.Generator().manual_seed(1)
    params = {k: v for k, v in m.named_parameters() if k.endswith("weight")}
    mask = {k: torch.rand(v.shape, generator=g) < 0.5 for k, v in params.items()}
    df = model_spectrum(m, mask, progress=False)
    assert list(df["groups"]) == [1, 16, 4, 1, 1]
    for (name, w), groups in zip(params.items(), df["groups"]):
        r = layer_spectrum(mask[name], w.detach(), groups=groups).as_dict()
        for k in ("mu0", "mu_hat", "weighted_mu0", "ramanujan_gap", "imdb", "imsg", "full_spectrum", "d_left"):
            a, b = df.loc[name, k], r[k]
            assert a == b or (math.isnan(a) and math.isnan(b)), (name, k, a, b)
    # the same through a mapping of weights with explicit groups
    weights = {k: v.detach() for k, v in params.items()}
    df2 = model_spectrum(weights, mask, groups={"2.weight": 16, "3.weight": 4}, progress=False)
    pd.testing.assert_frame_equal(df, df2)
    pop = score_population(m, [mask, mask], device="cpu", progress=False)
    assert np.allclose(pop[pop["sample"] == 1]["full_spectrum"].to_numpy(), df["full_spectrum"].to_numpy(), rtol=1e-12)


def test_grouped_layer_with_wrong_groups_is_an_error():
    with pytest.raises(ValueError, match=r"groups=3.*16 rows"):
        layer_spectrum(np.ones((16, 4, 3, 3), bool), None, groups=3, name="conv")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        layer_spectrum(np.ones(16, bool), None)
