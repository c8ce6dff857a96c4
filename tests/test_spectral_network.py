"""model_spectrum, network_summary, fs_distance and batched score_population."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pags_core.spectral import (fs_distance, layer_spectrum, model_spectrum, network_summary, prunable_weights,
                                score_population)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, bias=False), nn.ReLU(),
        nn.Conv2d(16, 24, 3), nn.BatchNorm2d(24), nn.ReLU(),
        nn.Conv2d(24, 32, 1, bias=False), nn.Flatten(),
        nn.Linear(32, 10),
    )


def random_mask(model, density, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(w.shape, generator=g) < density for k, w in prunable_weights(model).items()}


def test_prunable_weights_is_the_models_definition():
    from pags_core.models import prunable_parameters
    assert prunable_weights is prunable_parameters  # one definition of what is prunable
    m = tiny_model()
    assert list(prunable_weights(m)) == ["0.weight", "2.weight", "5.weight", "7.weight"]


@pytest.mark.parametrize("convention", ["neurips2023", "iclr2023"])
def test_model_spectrum_rows_equal_layer_spectrum(convention):
    m = tiny_model()
    mask = random_mask(m, 0.3, 0)
    del mask["7.weight"]  # absent layers count as dense
    df = model_spectrum(m, mask, convention, progress=False)
    assert list(df.index) == list(prunable_weights(m))
    for name, w in prunable_weights(m).items():
        mk = mask.get(name, torch.ones(w.shape, dtype=torch.bool))
        r = layer_spectrum(mk, w.detach(), convention, name=name).as_dict()
        for k in ("ramanujan_gap", "weighted_gap", "imdb", "imsg", "full_spectrum", "mu0", "mu_hat"):
            a, b = df.loc[name, k], r[k]
            assert (a == b) or (math.isnan(a) and math.isnan(b)), (name, k, a, b)
    assert df.loc["7.weight", "density"] == 1.0
    binary = model_spectrum(m, mask, convention, weights=None, progress=False)
    assert binary["weighted_gap"].isna().all()
    assert np.allclose(binary["ramanujan_gap"].fillna(-1), df["ramanujan_gap"].fillna(-1))


def test_model_spectrum_shape_mismatch():
    m = tiny_model()
    mask = random_mask(m, 0.3, 0)
    mask["2.weight"] = mask["2.weight"][:, :, :1]
    with pytest.raises(ValueError, match=r"2\.weight.*\(24, 16, 1, 3\).*\(24, 16, 3, 3\)"):
        model_spectrum(m, mask, progress=False)


def test_network_summary_neurips_maps_nonfinite_to_zero():
    df = pd.DataFrame({"convention": "neurips2023", "ramanujan_gap": [1.0, math.inf, -1.0, 2.0],
                       "weighted_gap": [0.5, math.inf, 0.5, 1.0], "imdb": [0.2, 0.0, 0.4, 0.6],
                       "imsg": [0.1, 0.0, math.inf, 0.1], "full_spectrum": [1.0, 0.0, 2.0, 3.0],
                       "valid": [True, False, True, True]})
    s = network_summary(df)
    assert s["ramanujan_gap"] == pytest.approx(2.0 / 4)
    assert s["imsg"] == pytest.approx(0.2 / 4)
    assert s["full_spectrum"] == pytest.approx(6.0 / 4)
    v = network_summary(df, valid_only=True)
    assert v["ramanujan_gap"] == pytest.approx(2.0 / 3)
    assert s["n_layers"] == 4 and s["n_valid"] == 3


def test_network_summary_iclr():
    df = pd.DataFrame({"convention": "iclr2023", "ramanujan_gap": [1.0, math.nan, -1.0, 2.0],
                       "imdb": [math.nan, 0.5, 0.3, -0.1], "valid": [True, False, True, True]})
    s = network_summary(df)
    assert s["ramanujan_gap"] == pytest.approx(2.0 / 3)  # non-NaN mean
    assert s["perc_ram_by_rm"] == pytest.approx(2 / 4)  # a NaN layer counts as not Ramanujan
    assert s["perc_ram_by_irm"] == pytest.approx(2 / 4)


def test_fs_distance_variants():
    cols = ["ramanujan_gap", "weighted_gap", "imdb", "imsg"]
    a = pd.DataFrame([[3.0, 4.0, 0.0, 0.0], [math.inf, 1.0, 0.0, 0.0]], columns=cols, index=["l1", "l2"])
    b = pd.DataFrame([[0.0, 4.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]], columns=cols, index=["l2", "l1"])
    assert fs_distance(a) == pytest.approx((5.0 + 1.0) / 2)
    assert fs_distance(a, reduce="concat") == pytest.approx(math.sqrt(25 + 1))
    val, per = fs_distance(a, b, distance="anchor", per_layer=True)  # rows matched by name
    # l1: (3,4) − (1,1) = (2,3); l2: (+inf→0, 1) − (0, 4) = (0, −3)
    assert per["l1"] == pytest.approx(math.sqrt(4 + 9)) and per["l2"] == pytest.approx(3.0)
    assert val == pytest.approx((math.sqrt(13) + 3) / 2)
    assert fs_distance(a, coordinates="weighted") == pytest.approx((4 + 1) / 2)
    ang = fs_distance(a, b, distance="angular", per_layer=True)[1]
    assert ang["l2"] == pytest.approx(3.0)  # parallel vectors: cos = 1
    assert ang["l1"] == pytest.approx(7 / (5 * math.sqrt(2)) * math.sqrt(13))
    with pytest.raises(ValueError, match="origin"):
        fs_distance(a, distance="sideways")
    with pytest.raises(ValueError, match="reference"):
        fs_distance(a, distance="anchor")


@pytest.mark.parametrize("convention", ["neurips2023", "iclr2023"])
@pytest.mark.parametrize("engine", ["auto", "batched", "per_mask"])
def test_score_population_equals_per_mask_layer_spectrum(convention, engine):
    m = tiny_model(1)
    masks = [random_mask(m, d, s) for s, d in enumerate((0.08, 0.2, 0.35, 0.5, 0.2))]
    with torch.no_grad():  # a zero weight inside the mask exercises the weighted gate
        m[0].weight[0, 0, 0, 0] = 0.0
    pop = score_population(m, masks, convention, device="cpu", engine=engine, progress=False)
    assert len(pop) == len(masks) * 4
    assert list(pop["layer"][:4]) == list(prunable_weights(m))
    for i, mk in enumerate(masks):
        for name, w in prunable_weights(m).items():
            r = layer_spectrum(mk[name], w.detach(), convention, name=name).as_dict()
            row = pop[(pop["sample"] == i) & (pop["layer"] == name)].iloc[0]
            for k, b in r.items():
                if k in ("name", "convention"):
                    continue
                a = row[k]
                if isinstance(b, float) and (math.isnan(b) or math.isinf(b)):
                    assert (math.isnan(a) and math.isnan(b)) or a == b, (i, name, k, a, b)
                else:
                    assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (i, name, k, a, b)


def test_score_population_accepts_stacked_masks_and_weight_mapping():
    m = tiny_model(2)
    masks = [random_mask(m, 0.25, s) for s in range(3)]
    stacked = {k: torch.stack([mk[k] for mk in masks]) for k in masks[0]}
    weights = {k: w.detach().clone() for k, w in prunable_weights(m).items()}
    a = score_population(m, masks, device="cpu", progress=False)
    b = score_population(weights, stacked, device="cpu", progress=False)
    pd.testing.assert_frame_equal(a, b)


def test_anchor_reference_same_mask_at_init_is_zero_distance():
    from pags_core.spectral import anchor_reference
    m = tiny_model(3)
    mask = random_mask(m, 0.3, 1)
    w0 = {k: w.detach().clone() for k, w in prunable_weights(m).items()}
    df = model_spectrum(m, mask, progress=False)
    ref = anchor_reference(m, mask, initial_weights=w0, reference="same_mask", progress=False)
    assert fs_distance(df, ref, distance="anchor") == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        for p in prunable_weights(m).values():
            p.mul_(3.0)  # "trained" weights: λ and λ_imsg scale, Δr and IMDB do not
    moved = model_spectrum(m, mask, progress=False)
    assert fs_distance(moved, ref, distance="anchor") > 0
    assert fs_distance(moved, ref, distance="anchor", coordinates="weighted") == pytest.approx(
        fs_distance(moved, ref, distance="anchor"), rel=1e-9)
    mask0 = random_mask(m, 0.3, 2)
    ref0 = anchor_reference(m, mask, initial_weights=w0, initial_mask=mask0, reference="initial", progress=False)
    assert fs_distance(model_spectrum(m, mask0, weights=w0, progress=False), ref0, distance="anchor") == pytest.approx(0.0, abs=1e-12)


def test_torch_lanczos_path_matches_numpy():
    """The Lanczos iterations in torch (what a CUDA device runs), here on the CPU, give the numpy path's values."""
    from pags_core.spectral.conventions import get_convention
    from pags_core.spectral.graph import layer_input
    from pags_core.spectral.stats import layer_stats
    torch.manual_seed(4)
    lin = nn.Linear(300, 120)
    mask = torch.rand(lin.weight.shape) < 0.05  # smaller side 120 > DENSE_MAX: the Lanczos path
    x = layer_input("fc", tuple(lin.weight.shape), 1, [mask, ~mask], lin.weight.detach())
    conv = get_convention("neurips2023")
    a = layer_stats([x], conv, weighted=True)
    b = layer_stats([x], conv, weighted=True, device=torch.device("cpu"))
    for f in ("s1", "s2", "s1w", "s2w", "g_s1", "g_s2", "g_s1w", "g_s2w"):
        assert np.allclose(getattr(a, f), getattr(b, f), rtol=1e-10, atol=1e-12, equal_nan=True), f


def test_results_do_not_depend_on_thread_counts_or_repetition():
    """Bit-identical metrics across repeated calls and torch thread counts (BLAS is held to one thread inside)."""
    m = tiny_model(5)
    mask = random_mask(m, 0.3, 7)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = model_spectrum(m, mask, progress=False)
        torch.set_num_threads(2)
        b = model_spectrum(m, mask, progress=False)
    finally:
        torch.set_num_threads(threads)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(a, model_spectrum(m, mask, progress=False), check_exact=True)
