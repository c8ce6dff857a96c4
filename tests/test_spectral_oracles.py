"""Spectral engine against independent oracles: the dense adjacency eigendecomposition and closed forms."""
import math

import numpy as np
import pytest
import torch

from pags_core.spectral import layer_spectrum, reference_layer_spectrum, reference_top2
from pags_core.spectral.examples import complete_bipartite, disjoint_union, projective_plane, random_biregular
from pags_core.spectral.metrics import METRIC_FIELDS
from pags_core.spectral.svd import top2_many, top2_sparse

RTOL = 1e-9


def assert_same(fast, ref, keys=METRIC_FIELDS, rtol=RTOL, atol=1e-12):
    for k in keys:
        a, b = float(fast[k]), float(ref[k])
        if math.isnan(b) or math.isinf(b):
            assert (math.isnan(a) and math.isnan(b)) or a == b, f"{k}: {a} vs {b}"
        else:
            assert a == pytest.approx(b, rel=rtol, abs=atol), f"{k}: {a} vs {b}"


def random_layer(rng, shape, density, zero_weights=0.0):
    mask = rng.random(shape) < density
    w = rng.normal(size=shape)
    if zero_weights:
        w[rng.random(shape) < zero_weights] = 0.0
    return mask, w


@pytest.mark.parametrize("convention", ["neurips2023", "iclr2023"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_matches_dense_reference_on_random_masks(convention, weighted, seed):
    rng = np.random.default_rng(seed)
    shapes = [(24, 6, 3, 3), (40, 30), (12, 20, 1, 1)]
    for shape, density in zip(shapes, (0.12, 0.15, 0.3)):
        mask, w = random_layer(rng, shape, density, zero_weights=0.05 if seed % 2 else 0.0)
        weight = w if weighted else None
        fast = layer_spectrum(mask, weight, convention).as_dict()
        ref = reference_layer_spectrum(mask, weight, convention)
        assert_same(fast, ref)


@pytest.mark.parametrize("bound", ["bipartite", "regular", "spectral", "mean_degree"])
def test_bound_options_match_reference(bound):
    rng = np.random.default_rng(7)
    mask, w = random_layer(rng, (32, 8, 3, 3), 0.1)
    for conv in ("neurips2023", "iclr2023"):
        assert_same(layer_spectrum(mask, w, conv, bound=bound, softness=0.1).as_dict(),
                    reference_layer_spectrum(mask, w, conv, bound=bound, softness=0.1))


def test_top2_paths_agree_with_adjacency_eigenvalues():
    rng = np.random.default_rng(3)
    # large enough to take the Lanczos path (smaller side > DENSE_MAX) as well as the dense one
    for shape, p in (((300, 200), 0.02), ((50, 40), 0.2), ((400, 170), 0.01), ((30, 8), 0.5)):
        B = (rng.random(shape) < p) * rng.random(shape)
        s_fast = top2_sparse(B)
        s_ref = reference_top2(B)
        assert s_fast == pytest.approx(s_ref, rel=1e-9, abs=1e-12)
        r, c = np.nonzero(B)  # the torch implementation of the Lanczos path, run on the CPU
        s_t = top2_many(np.zeros(r.size, dtype=np.int64), r, c, B[r, c], 1, device=torch.device("cpu"))[0, 0]
        assert tuple(s_t) == pytest.approx(s_ref, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("a,b", [(5, 3), (10, 512), (7, 7), (64, 27)])
def test_complete_bipartite(a, b):
    r = layer_spectrum(complete_bipartite(a, b), None)
    assert r.mu0 == pytest.approx(math.sqrt(a * b), rel=1e-12)
    assert r.mu_hat == pytest.approx(0.0, abs=1e-9 * math.sqrt(a * b))
    s = top2_sparse(np.ones((b, a)))
    assert s[0] == pytest.approx(math.sqrt(a * b), rel=1e-12)
    assert s[1] == pytest.approx(0.0, abs=1e-12 * math.sqrt(a * b))


def test_disjoint_union_repeats_mu0():
    K = complete_bipartite(4, 6)
    r = layer_spectrum(disjoint_union(K, K), None)
    assert r.mu0 == pytest.approx(math.sqrt(24), rel=1e-12)
    assert r.mu_hat == pytest.approx(r.mu0, rel=1e-12)  # repeated σ1 -> μ̂ = μ0 (kept as the references compute)
    # a smaller second block gives its own σ1 as μ̂
    r2 = layer_spectrum(disjoint_union(K, complete_bipartite(3, 3)), None)
    assert r2.mu_hat == pytest.approx(3.0, rel=1e-12)


@pytest.mark.parametrize("q", [2, 3, 5])
def test_projective_plane_is_ramanujan(q):
    A = projective_plane(q)
    n = q * q + q + 1
    assert A.shape == (n, n)
    assert (A.sum(0) == q + 1).all() and (A.sum(1) == q + 1).all()
    for conv in ("neurips2023", "iclr2023"):
        r = layer_spectrum(A, None, conv)
        assert r.mu0 == pytest.approx(q + 1, rel=1e-12)
        assert r.mu_hat == pytest.approx(math.sqrt(q), rel=1e-10)
        assert r.rm_ub == pytest.approx(2 * math.sqrt(q), rel=1e-12)
        assert r.ramanujan_gap == pytest.approx(math.sqrt(q), rel=1e-10) and r.ramanujan_gap > 0
        assert r.n_groups == 1
        c = n / (2 * n - 1) if conv == "neurips2023" else 1.0
        assert r.imdb == pytest.approx(c * math.sqrt(q), rel=1e-10)
    assert reference_top2(A.T.astype(float)) == pytest.approx((q + 1, math.sqrt(q)), rel=1e-10)


@pytest.mark.parametrize("n_left,n_right,d_left", [(60, 40, 4), (90, 30, 3), (200, 100, 5)])
def test_random_biregular(n_left, n_right, d_left):
    A = random_biregular(n_left, n_right, d_left, seed=1)
    d_right = n_left * d_left // n_right
    assert (A.sum(0) == d_left).all() and (A.sum(1) == d_right).all()
    r = layer_spectrum(A, None)
    assert r.mu0 == pytest.approx(math.sqrt(d_left * d_right), rel=1e-10)
    assert r.d_left == d_left and r.d_right == d_right
    assert r.rm_ub == pytest.approx(math.sqrt(d_left - 1) + math.sqrt(d_right - 1))
    assert r.mu_hat == pytest.approx(reference_top2(A.T.astype(float))[1], rel=1e-9)


def test_permutation_invariance():
    rng = np.random.default_rng(11)
    mask, w = random_layer(rng, (16, 8, 3, 3), 0.15)
    base = layer_spectrum(mask, w)
    po, pi = rng.permutation(16), rng.permutation(8)
    pk = rng.permutation(9)
    m2 = mask[po][:, pi].reshape(16, 8, 9)[:, :, pk].reshape(16, 8, 3, 3)
    w2 = w[po][:, pi].reshape(16, 8, 9)[:, :, pk].reshape(16, 8, 3, 3)
    other = layer_spectrum(m2, w2)
    assert_same(other.as_dict(), base.as_dict(), rtol=1e-10)


def test_torch_and_numpy_inputs_agree():
    rng = np.random.default_rng(5)
    mask, w = random_layer(rng, (20, 4, 3, 3), 0.2)
    a = layer_spectrum(mask, w)
    b = layer_spectrum(torch.from_numpy(mask), torch.from_numpy(w).float())
    assert a.ramanujan_gap == pytest.approx(b.ramanujan_gap, rel=1e-12)
    assert a.weighted_gap == pytest.approx(b.weighted_gap, rel=1e-6)  # float32 weights


def _big_degenerate_layers():
    """Degenerate layers large enough (smaller side > DENSE_MAX) to take the batched Lanczos path."""
    rng = np.random.default_rng(17)
    one_edge = np.zeros((120, 90), bool)
    one_edge[7, 11] = True
    rank1 = np.zeros((150, 100), bool)
    rank1[10:70, 20:90] = True  # a dense block K(70, 60) inside a larger layer: rank 1, σ2 = 0
    block = rng.random((60, 90)) < 0.08
    twins = disjoint_union(block, block)  # two identical random blocks: σ1 repeated, μ̂ = μ0
    matching = np.eye(100, dtype=bool)[rng.permutation(100)]  # every component K(1,1): σ1 = σ2 = 1
    sparse = rng.random((200, 150)) < 0.04
    return {"empty": np.zeros((120, 90), bool), "one_edge": one_edge, "rank1": rank1, "twins": twins,
            "matching": matching, "sparse": sparse}


@pytest.mark.parametrize("name", list(_big_degenerate_layers()))
@pytest.mark.parametrize("convention", ["neurips2023", "iclr2023"])
def test_degenerate_layers_on_the_lanczos_path(name, convention):
    mask = _big_degenerate_layers()[name]
    rng = np.random.default_rng(3)
    w = rng.normal(size=mask.shape)
    w_zero = w.copy()
    w_zero[rng.random(mask.shape) < 0.3] = 0.0  # zero weights inside the mask: a smaller weighted graph
    for weight in (None, w, w_zero, np.ones(mask.shape)):
        assert_same(layer_spectrum(mask, weight, convention).as_dict(),
                    reference_layer_spectrum(mask, weight, convention), rtol=1e-9, atol=1e-12)
    r = layer_spectrum(mask, None)
    if name == "twins":
        assert r.mu_hat == pytest.approx(r.mu0, rel=1e-12)
    if name == "rank1":
        assert r.mu0 == pytest.approx(math.sqrt(70 * 60), rel=1e-12) and r.mu_hat == pytest.approx(0.0, abs=1e-12)
    if name == "matching":
        assert r.mu0 == pytest.approx(1.0) and r.mu_hat == pytest.approx(1.0)


def test_many_matrices_in_one_call_agree_with_svd():
    """top2_many on a batch mixing sizes, densities, disconnected and rank-1 matrices, against numpy's SVD."""
    rng = np.random.default_rng(8)
    mats = []
    for i in range(40):
        n, m = rng.integers(1, 260, 2)
        B = (rng.random((n, m)) < rng.choice([0.01, 0.05, 0.3, 1.0])) * (rng.random((n, m)) if i % 2 else 1.0)
        mats.append(B)
    mats += [np.kron(np.eye(3), np.ones((40, 50))), np.kron(np.eye(60), np.ones((1, 3)))]
    prob, row, col, val, ro, co = [], [], [], [], 0, 0
    for j, B in enumerate(mats):
        r, c = np.nonzero(B)
        prob.append(np.full(r.size, j)), row.append(r + ro), col.append(c + co), val.append(B[r, c])
        ro, co = ro + B.shape[0], co + B.shape[1]
    s = top2_many(*map(np.concatenate, (prob, row, col, val)), len(mats))
    for j, B in enumerate(mats):
        sv = np.r_[np.linalg.svd(B, compute_uv=False), 0.0, 0.0][:2]
        assert s[j, 0] == pytest.approx(sv, rel=1e-10, abs=1e-12 * max(sv[0], 1.0)), j
