"""Convention-specific rules: fixtures from the ICLR-2023 authors' released per-layer CSVs, hand-computed IMDB groups, the +inf / 0 / NaN rules, errors."""
import math

import numpy as np
import pytest

from pags_core.spectral import CONVENTIONS, layer_spectrum, reference_layer_spectrum

S2, S3 = math.sqrt(2), math.sqrt(3)


def test_conventions_exported():
    assert set(CONVENTIONS) == {"iclr2023", "neurips2023"}


def test_fc_fixture_iclr():
    """Released-CSV fixture (CIFAR-10, ResNet34, ERK d=0.01, seed 1): dense 512→10 classifier of the ICLR ResNet34 (ERK d=0.01 leaves it dense)."""
    r = layer_spectrum(np.ones((10, 512), bool), None, "iclr2023", name="fc")
    assert r.mu0 == pytest.approx(71.5542, abs=1e-4)
    assert r.mu_hat == pytest.approx(0.0, abs=1e-9)
    assert r.spectral_gap == pytest.approx(16.7993, abs=1e-4) and r.sm_ub == pytest.approx(16.7993, abs=1e-4)
    assert r.ramanujan_gap == pytest.approx(25.6053, abs=1e-4) and r.rm_ub == pytest.approx(3 + math.sqrt(511))
    assert r.imdb == pytest.approx(r.ramanujan_gap, rel=1e-9) and r.n_groups == 1
    assert r.expansion == pytest.approx(0.0195, abs=1e-4)
    assert r.random_factor == pytest.approx(-0.9860, abs=1e-4)  # holds only with E_dir = 2|E|


def small_mask():
    """Cout = 4 outputs × 10 inputs (Linear layout (out, in)).

    inputs 0-3: rows of J − I (fan-out 3; the 4×4 group has σ = 3, 1, 1, 1)
    inputs 4-5: all four outputs (fan-out 4; K(2,4): σ = √8, 0)
    input 6: output 0 only (fan-out 1; a group of one)
    inputs 7-9: fan-out 2 (a group of three that fails the d ≥ 3 gate)"""
    B = np.zeros((10, 4), bool)  # (inputs, outputs)
    B[:4] = ~np.eye(4, dtype=bool)
    B[4:6] = True
    B[6, 0] = True
    B[7, [0, 1]] = B[8, [2, 3]] = B[9, [0, 2]] = True
    return B.T.copy()


def test_imdb_groups_iclr_by_hand():
    r = layer_spectrum(small_mask(), None, "iclr2023")
    # groups of size >= 3: d=3 (n=4, r=4, d_R=3 passes), d=2 (n=3, fails d>=3); d=4 (n=2) and d=1 are too small
    assert r.n_groups == 1
    assert r.imdb == pytest.approx(2 * S2 - 1, rel=1e-12)  # √2 + √2 − 1
    assert r.ism == pytest.approx(2 * S2 - 1, rel=1e-12)  # 2√(3−1) − 1
    assert r.imdb_norm == pytest.approx((2 * S2 - 1) / (2 * S2), rel=1e-12)
    assert r.ism_norm == pytest.approx((2 * S2 - 1) / (2 * S2), rel=1e-12)
    assert r.imax_ep == 1.0 and r.i_mean_ep == 1.0
    assert math.isnan(r.imsg) and math.isnan(r.weighted_gap)  # iclr2023 is binary only


def test_imdb_groups_neurips_by_hand():
    mask = small_mask()
    r = layer_spectrum(mask, None, "neurips2023")
    # groups of size >= 2: d=3 (c=4/7, Δr_g=2√2−1) and d=4 (n=2, r=4, d_R=2 > 1, c=4/5, Δr_g=√3+1−0)
    assert r.n_groups == 2
    expect = (4 / 7 * (2 * S2 - 1) + 4 / 5 * (S3 + 1)) / 2
    assert r.imdb == pytest.approx(expect, rel=1e-12)
    assert math.isnan(r.imsg)  # no weight given
    # all-ones weights: λ_g = σ1 − σ2 = 2 and √8
    r1 = layer_spectrum(mask, np.ones(mask.shape), "neurips2023")
    assert r1.imsg == pytest.approx((4 / 7 * 2 + 4 / 5 * math.sqrt(8)) / 2, rel=1e-12)
    assert r1.weighted_gap == pytest.approx(r1.mu0 - r1.mu_hat, rel=1e-12)
    fs = math.sqrt(r1.ramanujan_gap ** 2 + r1.weighted_gap ** 2 + r1.imdb ** 2 + r1.imsg ** 2)
    assert r1.full_spectrum == pytest.approx(fs, rel=1e-12)


def test_zero_weight_inside_mask_removes_weighted_edge():
    mask = small_mask()
    w = np.ones(mask.shape)
    w[1:, 4] = 0.0  # input 4 keeps one nonzero weight: the d=4 group's weighted mean fan-out is 5/2 < 3
    r = layer_spectrum(mask, w, "neurips2023")
    assert r.imsg == math.inf  # the binary group gate passed, the weighted one failed
    assert r.imdb == pytest.approx(layer_spectrum(mask, None).imdb, rel=1e-12)  # binary values unchanged
    fs = math.sqrt(r.ramanujan_gap ** 2 + r.weighted_gap ** 2 + r.imdb ** 2)  # +inf counts as 0 in FS
    assert r.full_spectrum == pytest.approx(fs, rel=1e-12)
    ref = reference_layer_spectrum(mask, w, "neurips2023")
    assert ref["imsg"] == math.inf and ref["weighted_gap"] == pytest.approx(r.weighted_gap, rel=1e-12)
    # all weights zero: the weighted graph is empty, λ = λ_imsg = +inf, FS keeps only the binary coordinates
    z = layer_spectrum(mask, np.zeros(mask.shape), "neurips2023")
    assert z.weighted_gap == math.inf and z.imsg == math.inf and math.isnan(z.weighted_mu0)


def test_whole_layer_gate_orientation_neurips():
    # 3 outputs, each reached by 3 distinct inputs: mean output fan-in 3 >= 3, mean input fan-out 1 -> fails (> 1)
    m = np.zeros((3, 9), bool)
    for c in range(3):
        m[c, 3 * c:3 * c + 3] = True
    r = layer_spectrum(m, np.ones(m.shape))
    assert r.ramanujan_gap == math.inf and r.weighted_gap == math.inf and r.mixing == math.inf
    assert not r.valid and r.mu0 == pytest.approx(math.sqrt(3))  # μ0 is still reported
    # the transpose (fan-out 3 per input, fan-in 1 per output) fails the outputs-first gate too
    assert layer_spectrum(m.T.copy(), None).ramanujan_gap == math.inf
    # 4 outputs × 6 inputs, every output fan-in 3 (>= 3) and input fan-out 2 (> 1): passes
    m2 = np.zeros((4, 6), bool)
    for c in range(4):
        m2[c, [(c + k) % 6 for k in (0, 2, 4)]] = True
    r2 = layer_spectrum(m2, None)
    assert r2.d_right == 3 and r2.valid and math.isfinite(r2.ramanujan_gap)
    assert math.isnan(layer_spectrum(m2, None, "iclr2023").ramanujan_gap)  # ICLR needs input fan-out >= 3


@pytest.mark.parametrize("mask", [
    np.zeros((8, 4, 3, 3), bool),  # empty layer
    np.pad(np.ones((1, 1), bool), ((0, 7), (0, 5))),  # a single edge
    np.eye(6, dtype=bool),  # a perfect matching: every degree 1
])
def test_degenerate_layers(mask):
    w = np.ones(mask.shape)
    n = layer_spectrum(mask, w, "neurips2023")
    assert n.ramanujan_gap == math.inf and n.weighted_gap == math.inf
    assert n.imdb == 0.0 and n.imsg == 0.0 and n.full_spectrum == 0.0 and n.n_groups == 0
    i = layer_spectrum(mask, w, "iclr2023")
    for k in ("ramanujan_gap", "imdb", "spectral_gap", "random_factor", "expansion", "ism", "imax_ep"):
        assert math.isnan(getattr(i, k)), k
    if mask.any():
        assert n.mu0 == pytest.approx(1.0) and n.mu_hat == pytest.approx(1.0 if mask.sum() > 1 else 0.0)
    else:
        assert math.isnan(n.mu0)


def test_shape_mismatch_names_layer_and_shapes():
    with pytest.raises(ValueError) as e:
        layer_spectrum(np.ones((8, 4, 3, 3), bool), np.ones((8, 4, 1, 1)), name="layer1.0.conv1.weight")
    msg = str(e.value)
    assert "layer1.0.conv1.weight" in msg and "(8, 4, 3, 3)" in msg and "(8, 4, 1, 1)" in msg


def test_unknown_convention_and_bound():
    with pytest.raises(ValueError, match="iclr2023.*neurips2023"):
        layer_spectrum(np.ones((4, 4), bool), None, "neurips2024")
    with pytest.raises(ValueError, match="bipartite"):
        layer_spectrum(np.ones((4, 4), bool), None, bound="tight")


def test_layer_groups_table_matches_imdb():
    from pags_core.spectral import layer_groups
    mask = small_mask()
    for conv in ("neurips2023", "iclr2023"):
        g = layer_groups(mask, np.ones(mask.shape), conv)
        r = layer_spectrum(mask, np.ones(mask.shape), conv)
        v = g[g["valid"]]
        assert len(v) == r.n_groups
        assert (v["c_g"] * v["ramanujan_gap"]).mean() == pytest.approx(r.imdb, rel=1e-12)
    g = layer_groups(mask, None, "iclr2023")
    assert list(g["d"]) == [2, 3] and list(g["valid"]) == [False, True]  # size threshold 3 drops d=1 and d=4


def test_adjacency_eigenvalues_are_plus_minus_singular_values():
    from pags_core.spectral import adjacency_eigenvalues
    mask = small_mask()
    ev = adjacency_eigenvalues(mask)
    assert np.allclose(np.sort(ev), np.sort(-ev))
    a = np.sort(np.abs(ev))[::-1]
    r = layer_spectrum(mask, None)
    assert a[0] == pytest.approx(r.mu0) and a[1] == pytest.approx(r.mu0)  # ±μ0 take the first two places
    assert a[2] == pytest.approx(r.mu_hat)  # μ̂ is the third-largest |eigenvalue|
