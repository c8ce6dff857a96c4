"""PAGS / PEGS: selection rules on hand-made cases, density accounting, resume after a crash, θ_N, and bad names."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import pags_core as pc

pytestmark = pytest.mark.filterwarnings("ignore:.*pruned .* layer\\(s\\) to nothing:UserWarning")
from pags_core.sampling import (SelectionState, mask_metrics, pags, pegs, resolve_config, run_sweep, sample_seed,
                                select, stitched_density)

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


def _stub_train(log, fail_at=None):
    """A fast deterministic stand-in for pags_core.train: accuracy from the ticket's density and the seed."""
    def fn(model, data, recipe="book", *, mask=None, seed=0, step_callback=None, max_iters=None, **kw):
        log.append({"mask": None if mask is None else mask.clone(), "seed": seed, "max_iters": max_iters,
                    "weights": {k: v.detach().clone() for k, v in model.state_dict().items()}})
        if fail_at is not None and len(log) == fail_at:
            raise RuntimeError("killed mid-sweep")
        acc = 0.5 + (0.0 if mask is None else mask.density) + 0.01 * seed
        return pc.TrainResult(test_acc=acc, best_val_acc=acc, best_epoch=1, final_test_acc=acc, iters=max_iters or 3)
    return fn


def _sweep_cfg(**kw):
    base = dict(dataset="synthetic", width=1 / 16, generators=["random", "erk"], population=3, seeds=[0, 1],
                pretrain_iters=[2], checkpoint_every=2, lth_rounds=2, lth_rewind_iter=0)
    return resolve_config("book", "pegs", **{**base, **kw})


def test_sweep_resumes_after_a_crash_and_gives_the_same_table(tmp_path):
    cfg = _sweep_cfg()
    data = pc.load_dataset("synthetic")
    crashed = pc.RunStore(tmp_path / "a")
    log = []
    with pytest.raises(RuntimeError, match="killed"):
        run_sweep(cfg, store=crashed, data=data, train_fn=_stub_train(log, fail_at=6), progress=False)
    finished_before = len(crashed.runs("pags_train"))
    assert finished_before >= 3
    log2 = []
    resumed = run_sweep(cfg, store=crashed, data=data, train_fn=_stub_train(log2), progress=False)
    clean_log = []
    clean = run_sweep(cfg, store=pc.RunStore(tmp_path / "b"), data=data, train_fn=_stub_train(clean_log),
                      progress=False)
    assert len(log2) == len(clean_log) - (len(log) - 1)  # only the runs that had not finished were trained again
    keep = ["seed", "generator", "method", "pretrain_iters", "test_acc", "density_realised", "layers_replaced",
            "ticket_key"]
    pd.testing.assert_frame_equal(resumed[keep], clean[keep])
    pd.testing.assert_frame_equal(pc.accuracy_table(resumed), pc.accuracy_table(clean))
    # a third run trains nothing
    log3 = []
    run_sweep(cfg, store=crashed, data=data, train_fn=_stub_train(log3), progress=False)
    assert log3 == []


def test_sweep_trains_pegs_tickets_from_theta_n(tmp_path):
    cfg = _sweep_cfg(generators=["random"], seeds=[0], baselines=[])
    data = pc.load_dataset("synthetic")
    store = pc.RunStore(tmp_path)
    log = []
    stub = _stub_train(log)

    def hybrid(model, data, recipe="book", **kw):  # real dense pre-training, stubbed ticket training
        if kw.get("max_iters") is not None:
            return pc.train(model, data, recipe, **kw)
        return stub(model, data, recipe, **kw)

    runs = run_sweep(cfg, store=store, data=data, train_fn=hybrid, progress=False)
    assert runs["method"].tolist() == ["baseline", "PAGS", "PEGS@2"]
    theta0 = cfg.build_model(0, data).state_dict()
    pre = [c for c, _ in store.runs("pags_pretrain")]
    assert len(pre) == 1 and pre[0]["iters"] == 2
    theta_n = torch.load(store.artefact("pags_pretrain", pre[0], "weights.pt"), weights_only=True)
    assert any(not torch.equal(theta0[k], theta_n[k]) for k in theta0)
    by_method = dict(zip(runs["method"], log))
    # baseline and PAGS train from θ0, PEGS from θ_N; each with its own ticket mask
    for m, start in (("baseline", theta0), ("PAGS", theta0), ("PEGS@2", theta_n)):
        w = by_method[m]["weights"]
        assert all(torch.equal(w[k], start[k]) for k in start), m
    pegs_ticket = pc.load_ticket(cfg, 0, "random", "pegs", 2, store=store, data=data)
    assert by_method["PEGS@2"]["mask"] == pegs_ticket["mask"]
    assert pegs_ticket["info"]["pretrain_iters"] == 2
    assert runs.loc[2, "pretrain_iters"] == 2 and runs.loc[1, "pretrain_iters"] == 0


def test_bad_names_list_the_valid_choices():
    with pytest.raises(KeyError, match="snip"):
        resolve_config("book", generators=["snp"])
    with pytest.raises(KeyError, match="book, paper"):
        resolve_config("laptop")
    with pytest.raises(KeyError, match="resnet18"):
        resolve_config("book", model="resnet99")
    with pytest.raises(KeyError, match="mnist5k"):
        resolve_config("book", dataset="imagenet")
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        resolve_config("book", density=1.5)
    with pytest.raises(ValueError, match="dominance, alt"):
        resolve_config("book", rule="max")
    with pytest.raises(ValueError, match="pags, pegs"):
        resolve_config("book", chapter="itop")
    with pytest.raises(TypeError, match="valid settings"):
        resolve_config("book", populaton=10)
    with pytest.raises(KeyError, match="grasp"):
        pags(None, None, "bogus", 0.1)


def test_config_defaults_and_overrides():
    cfg = resolve_config("book", "pags", model="resnet34", seeds=None, generators="erk,snip")
    assert cfg.model == "resnet34" and cfg.seeds == (0, 1) and cfg.generators == ("erk", "snip")
    assert cfg.noise_for("synflow") == 1e-6 and cfg.noise_for("snip") == 0.0  # B-code's ResNet34 noise
    assert resolve_config("book", seeds="[0, 1, 2]", pretrain_iters="100 500").seeds == (0, 1, 2)  # papermill -p strings
    assert resolve_config("paper", "pegs").pretrain_iters == (100, 500)
    assert resolve_config("paper", "pegs").rewind_iter == 500
    c10 = resolve_config("book", dataset="cifar10")
    assert c10.image_size is None and c10.num_classes is None  # follow the data set
