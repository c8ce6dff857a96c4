"""PAGS / PEGS: selection rules on hand-made cases, density accounting, resume after a crash, θ_N, and bad names."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import pags_core as pc

pytestmark = pytest.mark.filterwarnings("ignore:.*pruned .* layer\\(s\\) to nothing:UserWarning")
from pags_core.methods import SelectionState, baseline_ticket, mask_metrics, pags, pegs, select, stitched_density
from pags_core.methods.pags import sample_seed

INF = math.inf

# Three layers, baseline + three samples.  Columns are layers.
BASE = {"imdb": [0.5, 1.0, 0.0], "full_spectrum": [1.0, 2.0, 0.5], "ramanujan_gap": [0.3, INF, 1.0]}
POP = {
    "imdb": [[0.6, 0.9, 0.0],            # s0
             [0.6, 1.0, INF],            # s1
             [0.7, np.nan, 0.1]],        # s2
    "full_spectrum": [[1.0, 3.0, 0.4],
                      [1.0, 2.0, 0.6],
                      [0.9, 5.0, 0.7]],
    "ramanujan_gap": [[0.2, 0.5, 2.0],
                      [0.2, INF, 0.9],
                      [0.1, 0.4, INF]],
}


def test_greedy_dominance_by_hand():
    # layer 0: s0 (0.6>=0.5, 1.0>=1.0 tie) -> s1 (exact tie: newer wins) -> s2 rejected (FS 0.9 < 1.0)
    # layer 1: s0 rejected (imdb 0.9 < 1.0) -> s1 (tie on both) -> s2 rejected (imdb NaN counts as 0)
    # layer 2: s0 rejected (FS 0.4 < 0.5) -> s1 (imdb +inf counts as 0 >= 0, FS 0.6) -> s2 (0.1 >= 0, 0.7 >= 0.6)
    sel = select(BASE, POP)
    assert sel.source.tolist() == [1, 1, 2]
    assert sel.values["full_spectrum"].tolist() == [1.0, 2.0, 0.7]
    assert sel.values["imdb"][2] == 0.1 and sel.values["ramanujan_gap"][2] == INF
    assert [(e["sample"], e["layer"]) for e in sel.trace] == [(0, 0), (1, 0), (1, 1), (1, 2), (2, 2)]
    assert sel.n_replaced_layers == 3 and sel.n_seen == 3


def test_alt_rule_by_hand_with_inf():
    # alt: Δr strictly smaller (not inf-cleaned) and FS >= FS*.
    # layer 0: s0 (0.2 < 0.3) -> s1 rejected (0.2 not < 0.2) -> s2 rejected (FS 0.9 < 1.0)          -> 0
    # layer 1: s0 (0.5 < inf: a finite layer replaces an invalid one) -> s1 rejected (inf never wins) -> s2 (0.4 < 0.5, FS 5 >= 3) -> 2
    # layer 2: s0 rejected (2.0 > 1.0) -> s1 (0.9 < 1.0, FS 0.6 >= 0.5) -> s2 rejected (inf)      -> 1
    sel = select(BASE, POP, rule="alt")
    assert sel.source.tolist() == [0, 2, 1]
    assert sel.values["ramanujan_gap"].tolist() == [0.2, 0.4, 0.9]


def test_network_argmax_ties_to_newer():
    # mean FS: baseline 3.5/3, s0 4.4/3, s1 3.6/3, s2 6.6/3 -> s2
    sel = select(BASE, POP, selection="network")
    assert sel.source.tolist() == [2, 2, 2]
    assert sel.network_score() == pytest.approx(6.6 / 3)
    tie = {k: np.vstack([v, v[2]]) if k == "full_spectrum" else np.vstack([v, np.zeros(3)])
           for k, v in ((k, np.asarray(v, float)) for k, v in POP.items())}
    assert select(BASE, tie, selection="network").source.tolist() == [3, 3, 3]
    # a population that never beats the baseline keeps it
    worse = {k: np.asarray(v, float)[:1] * 0 for k, v in POP.items()}
    assert select(BASE, worse, selection="network").source.tolist() == [-1, -1, -1]


def test_streaming_in_chunks_equals_one_shot_and_round_trips():
    one = select(BASE, POP)
    st = SelectionState(BASE)
    st.update({k: np.asarray(v, float)[:2] for k, v in POP.items()})
    st = SelectionState.from_state_dict(st.state_dict())  # a checkpoint between chunks
    st.update({k: np.asarray(v, float)[2:] for k, v in POP.items()}, offset=2)
    two = st.result()
    assert two.source.tolist() == one.source.tolist() and two.trace == one.trace
    with pytest.raises(ValueError, match="consumed"):
        st.update({k: np.asarray(v, float)[:1] for k, v in POP.items()}, offset=0)


def test_bad_rule_and_selection_names_list_choices():
    with pytest.raises(ValueError, match="dominance, alt"):
        select(BASE, POP, rule="best")
    with pytest.raises(ValueError, match="layerwise, network"):
        select(BASE, POP, selection="global")


def test_stitched_density_by_hand():
    sizes = [100, 200, 50]
    base = [10, 20, 5]                         # density 35/350 = 0.1
    pop = [[12, 18, 5], [8, 30, 4], [10, 20, 9]]
    assert stitched_density([-1, -1, -1], base, pop, sizes) == pytest.approx(0.1)
    assert stitched_density([1, 1, 2], base, pop, sizes) == pytest.approx((8 + 30 + 9) / 350)
    assert stitched_density([0, -1, 1], base, pop, sizes) == pytest.approx((12 + 20 + 4) / 350)


# ---------------------------------------------------------------------------------------------------------------
# small real runs: ResNet18 at width 1/16 on the synthetic 8x8 set (a few seconds on 2 cores)
# ---------------------------------------------------------------------------------------------------------------
def test_pags_provenance_and_density_drift(data, tiny_model):
    model = tiny_model(data)
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    res = pags(model, data, "random", 0.05, population=4, seed=3, device="cpu", chunk=3)
    # θ0 untouched, realised density = the stitched mask's density = provenance accounting
    assert all(torch.equal(theta0[k], v) for k, v in model.state_dict().items())
    assert res.density_realised == pytest.approx(res.mask.density)
    prov = res.provenance
    assert res.density_realised == pytest.approx(prov["selected_kept"].sum() / prov["weights"].sum())
    assert res.density_drift == pytest.approx(res.density_realised - 0.05)
    # every stitched layer is the layer of the sample it claims to come from
    for _, row in prov.iterrows():
        k = int(row["source"])
        ref = res.baseline_mask if k < 0 else pc.generate_mask(model, "random", 0.05, seed=sample_seed(3, k), device="cpu")
        assert torch.equal(res.mask[row["layer"]], ref[row["layer"]].cpu())
    # the recorded metrics are the metrics of the stitched mask at θ0
    again = mask_metrics(model, [res.mask], device="cpu")
    np.testing.assert_allclose(again["full_spectrum"][0], res.selection.values["full_spectrum"], rtol=1e-9)
    assert set(res.costs) >= {"generator_s", "scoring_s", "baseline_generator_s", "selection_s", "wall_s"}


def test_pags_scores_grouped_and_depthwise_layers_as_their_true_graphs(data):
    """The population is scored at θ with every layer's true graph: each stored per-layer value equals the dense
    oracle of the block-diagonal graph (and differs from the dense unrolling of the stored weight shape)."""
    from torch import nn

    from pags_core.spectral import reference_layer_spectrum

    torch.manual_seed(0)
    c = data.in_channels
    model = nn.Sequential(nn.Conv2d(c, 12, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(12, 12, 3, padding=1, groups=12), nn.ReLU(),  # depthwise: fan-out 1
                          nn.Conv2d(12, 24, 3, padding=1, groups=3), nn.ReLU(),   # grouped: 3 blocks
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, data.num_classes), nn.LogSoftmax(1))
    res = pags(model, data, "snip", 0.3, population=3, seed=1, device="cpu", score_batches=1, score_batch_size=16,
               baseline_batches=1)
    names = list(pc.prunable_parameters(model))
    groups = {n: g.groups for n, g in pc.layer_geometry(model).items()}
    assert [groups[n] for n in names] == [1, 12, 3, 1]
    for j, n in enumerate(names):
        w = dict(model.named_parameters())[n].detach()
        ref = reference_layer_spectrum(res.baseline_mask[n], w, groups=groups[n])
        assert res.baseline["full_spectrum"][j] == pytest.approx(ref["full_spectrum"], rel=1e-9, abs=1e-12), n
        assert res.baseline["imdb"][j] == pytest.approx(ref["imdb"], rel=1e-9, abs=1e-12), n
    # the depthwise layer fails the gates in every mask: FS = 0 and Δr_imdb = 0 everywhere
    dw = names.index("2.weight")
    assert res.baseline["full_spectrum"][dw] == 0 and (res.population["full_spectrum"][:, dw] == 0).all()
    assert (res.population["imdb"][:, dw] == 0).all()
    # read as the dense unrolling of its stored shape (groups = 1), the dense depthwise layer would pass the gates
    w = dict(model.named_parameters())["2.weight"].detach()
    dense = torch.ones_like(w, dtype=torch.bool)
    assert reference_layer_spectrum(dense, w)["valid"] and not reference_layer_spectrum(dense, w, groups=12)["valid"]
    # the stitched ticket's recorded values are those of the model's own spectrum
    again = pc.model_spectrum(model, res.mask)
    np.testing.assert_allclose(again["full_spectrum"].to_numpy(), res.selection.values["full_spectrum"], rtol=1e-9,
                               atol=1e-12)


def test_pags_network_selection_keeps_one_whole_sample(data, tiny_model):
    model = tiny_model(data)
    res = pags(model, data, "random", 0.05, population=3, seed=5, device="cpu", selection="network")
    k = int(res.selection.source[0])
    assert (res.selection.source == k).all()
    ref = res.baseline_mask if k < 0 else pc.generate_mask(model, "random", 0.05, seed=sample_seed(5, k), device="cpu")
    assert res.mask == ref.to("cpu")
    scores = res.population["full_spectrum"].mean(axis=1)
    assert res.selection.network_score() >= max(scores.max(), np.mean(res.baseline["full_spectrum"])) - 1e-12


def test_pags_population_resumes_after_a_crash(data, tmp_path, tiny_model):
    model = tiny_model(data)
    calls = []

    def flaky(*a, **k):
        calls.append(k["seed"])
        if len(calls) == 4:  # baseline + 2 samples done (chunk 2 checkpointed), crash in the 2nd chunk
            raise RuntimeError("killed")
        return pc.generate_mask(*a, **k)

    kw = dict(population=5, seed=1, device="cpu", chunk=2)
    with pytest.raises(RuntimeError, match="killed"):
        pags(model, data, "erk", 0.05, checkpoint=tmp_path / "ck.pt", generate_fn=flaky, **kw)
    calls.clear()
    resumed = pags(model, data, "erk", 0.05, checkpoint=tmp_path / "ck.pt", generate_fn=flaky, **kw)
    assert calls == [sample_seed(1, k) for k in (2, 3, 4)]  # neither the baseline nor samples 0-1 again
    fresh = pags(model, data, "erk", 0.05, **kw)
    assert resumed.mask == fresh.mask
    assert resumed.selection.trace == fresh.selection.trace
    np.testing.assert_array_equal(resumed.population["full_spectrum"], fresh.population["full_spectrum"])
    with pytest.raises(ValueError, match="another configuration"):
        pags(model, data, "erk", 0.02, checkpoint=tmp_path / "ck.pt", **{**kw, "population": 5})


def test_pegs_measures_and_trains_at_theta_n(data, tiny_model):
    model = tiny_model(data)
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    res = pegs(model, data, "magnitude", 0.05, pretrain_iters=2, recipe="book", population=2, device="cpu",
               noise=1e-3)
    theta_n = res.weights
    assert any(not torch.equal(theta0[k], theta_n[k]) for k in theta0 if k.endswith("weight"))
    assert any(not torch.equal(theta0[k], theta_n[k]) for k in theta0 if k.endswith("running_mean"))  # BN stats
    assert all(torch.equal(theta0[k], v) for k, v in model.state_dict().items())  # caller's θ0 untouched
    net_n = tiny_model(data)
    net_n.load_state_dict(theta_n)
    # the generator ran at θ_N: the baseline ticket is θ_N's magnitude mask, not θ0's
    assert res.baseline_mask == pc.generate_mask(net_n, "magnitude", 0.05, device="cpu")
    assert res.baseline_mask != pc.generate_mask(model, "magnitude", 0.05, device="cpu")
    # the metrics are |W| at θ_N
    np.testing.assert_allclose(mask_metrics(net_n, [res.baseline_mask], device="cpu")["weighted_gap"][0],
                               res.baseline["weighted_gap"])
    assert res.costs["pretrain_iters"] == 2


def test_pegs_with_a_given_theta_n_equals_pegs_that_pretrains(data, tiny_model):
    """One PEGS implementation: the experiment layer passes θ_N it stored; the public call pre-trains itself."""
    model = tiny_model(data)
    kw = dict(pretrain_iters=2, recipe="book", population=2, device="cpu", seed=0)
    full = pegs(model, data, "snip", 0.05, **kw)
    given = pegs(model, data, "snip", 0.05, pretrained=full.weights, **kw)
    assert given.mask == full.mask and given.baseline_mask == full.baseline_mask


def test_baseline_ticket_is_where_pags_starts(data, tiny_model):
    model = tiny_model(data)
    m = baseline_ticket(model, data, "snip", 0.05, score_batch_size=32, seed=4, device="cpu")
    res = pags(model, data, "snip", 0.05, population=0, score_batch_size=32, seed=4, device="cpu")
    assert m == res.baseline_mask == res.mask  # an empty population keeps M*
    assert m.num_kept == round(0.05 * m.num_total)


def test_a_population_checkpoint_at_other_weights_is_refused(data, tmp_path, tiny_model):
    calls = []

    def crash_after_one_chunk(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return pc.generate_mask(*a, **k)

    kw = dict(population=4, seed=1, device="cpu", chunk=2, checkpoint=tmp_path / "ck.pt")
    with pytest.raises(RuntimeError, match="killed"):
        pags(tiny_model(data), data, "erk", 0.05, generate_fn=crash_after_one_chunk, **kw)
    with pytest.raises(ValueError, match="another configuration"):
        pags(tiny_model(data, seed=1), data, "erk", 0.05, **kw)  # another θ0


def test_bad_generator_names_list_the_valid_choices():
    with pytest.raises(KeyError, match="grasp"):
        pags(None, None, "bogus", 0.1)


