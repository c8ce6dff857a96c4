"""ITOP-Rand: prune/regrow invariants, snapshots = the masks actually trained, study resume after a crash."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import pags_core
from pags_core.analysis import apply_bcode_filter, snapshot_correlations
from pags_core.experiments import select_snapshots
from pags_core.methods.itop import ITOPRand, itop_train
from pags_core.training import TrainState
from pags_core.masks import Mask
from pags_core.models import prunable_parameters
from pags_core.analysis import pearson
from pags_core.store import RunStore
from pags_core.training import Recipe


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models: one thread is as fast, and it avoids oversubscribing the shared 2-core machine (pytest -n 2)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5))


def _random_mask(model, density, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for n, p in prunable_parameters(model).items():
        k = max(1, round(density * p.numel()))
        flat = torch.zeros(p.numel(), dtype=torch.bool)
        flat[torch.randperm(p.numel(), generator=g)[:k]] = True
        out[n] = flat.view(p.shape)
    return Mask(out)


def _counts(mask):
    return {n: int(t.sum()) for n, t in mask.items()}


def test_death_rate_schedule_and_update_steps():
    cb = ITOPRand(update_interval=10, total_steps=100, death_rate=0.5)
    assert cb.death_rate_at(0) == pytest.approx(0.5)
    assert cb.death_rate_at(50) == pytest.approx(0.25)
    assert cb.death_rate_at(100) == pytest.approx(0.0, abs=1e-15)
    assert cb.update_steps() == list(range(10, 100, 10))  # never after the last step
    with pytest.raises(ValueError, match="update_interval"):
        ITOPRand(update_interval=0, total_steps=10)
    with pytest.raises(ValueError, match="death_rate"):
        ITOPRand(update_interval=1, total_steps=10, death_rate=1.5)


def test_update_keeps_counts_kills_smallest_and_regrows_previously_pruned_at_zero():
    model = _tiny()
    mask = _random_mask(model, 0.3)
    mask.apply_(model)
    params = prunable_parameters(model)
    cb = ITOPRand(update_interval=1, total_steps=1000, death_rate=0.5, seed=1)
    before_counts, total_density = _counts(mask), mask.density
    for it in range(5):
        old = mask.clone()
        w_old = {n: p.detach().clone() for n, p in params.items()}
        rec = cb.update(model, None, mask, step=it)  # step 0..4: death rate ~0.5
        assert _counts(mask) == before_counts and mask.density == total_density
        assert rec.density == pytest.approx(total_density)
        for n, p in params.items():
            o, m, w = old[n], mask[n], w_old[n]
            k = int(math.floor(rec.death_rate * int(o.sum()) + 0.5))
            dead, grown, survivors = o & ~m, m & ~o, o & m
            assert int(dead.sum()) == k == int(grown.sum()) == rec.per_layer[n]
            # growth never re-picks a just-killed position: the survivors are exactly n_kept - k
            assert int(survivors.sum()) == int(o.sum()) - k
            # death removes the smallest-magnitude kept weights
            if k:
                assert w[dead].abs().max() <= w[survivors].abs().min()
            # survivors keep their weights, regrown weights start at exactly zero, nothing lives off-mask
            assert torch.equal(p.detach()[survivors], w[survivors])
            assert bool((p.detach()[grown] == 0).all()) and bool((p.detach()[~m] == 0).all())
        # give every kept weight a fresh distinct magnitude so the next round has something to rank
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(torch.randn_like(p) * mask[n])


def test_regrow_dead_option_and_dense_layers():
    model = _tiny()
    mask = _random_mask(model, 0.3)
    mask["0.weight"] = torch.ones_like(mask["0.weight"])  # a dense layer has nowhere to grow
    mask.apply_(model)
    cb = ITOPRand(update_interval=1, total_steps=100, death_rate=0.5, seed=0)
    old = mask.clone()
    rec = cb.update(model, None, mask, step=0)
    assert torch.equal(mask["0.weight"], old["0.weight"]) and rec.per_layer["0.weight"] == 0
    cb2 = ITOPRand(update_interval=1, total_steps=100, death_rate=0.5, seed=0, regrow_dead=True)
    counts = _counts(mask)
    cb2.update(model, None, mask, step=0)
    assert _counts(mask) == counts  # counts still preserved when dead positions may come back


def test_callback_zeroes_momentum_of_regrown_weights_in_a_training_loop():
    model = _tiny()
    mask = _random_mask(model, 0.2)
    mask.apply_(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    x, y = torch.randn(16, 2, 6, 6), torch.randint(0, 5, (16,))
    grown_seen = []

    def on_update(rec, mdl, optimizer, msk):
        for n, p in prunable_parameters(mdl).items():
            grown = msk[n] & ~prev[n]
            buf = optimizer.state[p]["momentum_buffer"]
            assert bool((buf[grown] == 0).all()) and bool((p.detach()[grown] == 0).all())
            grown_seen.append(int(grown.sum()))

    cb = ITOPRand(update_interval=3, total_steps=10, death_rate=0.5, seed=0, on_update=on_update)
    for step in range(1, 11):
        prev = mask.clone()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()  # no gradient masking: momentum builds off-mask
        opt.step()
        mask.apply_(model)
        cb.on_step_end(TrainState(model=model, optimizer=opt, mask=mask, device=torch.device("cpu"),
                                  steps_per_epoch=10, total_steps=10, step=step))
    assert [r.step for r in cb.records] == [3, 6, 9] and sum(grown_seen) > 0


def _tiny_recipe():
    return Recipe("tiny", lr=0.05, nesterov=True, batch_size=64, test_batch_size=256, epochs=2, schedule="cosine",
                  milestones=(), augment=False)


class _Crash(RuntimeError):
    pass


def test_itop_train_resumes_from_its_checkpoint(tmp_path):
    # Oracle: the same DST run uninterrupted.  The interrupted run dies in epoch 2 (after the epoch-1 checkpoint);
    # resumed, it must give the same snapshots, update records and final weights.
    data = pags_core.load_dataset("synthetic")

    def model():
        torch.manual_seed(0)
        return pags_core.make_model("resnet18", num_classes=data.num_classes, in_channels=data.in_channels, width=0.125)

    kw = dict(density=0.1, update_interval=2, seed=0, device="cpu", death_rate=0.5)
    ref_model = model()
    ref = itop_train(ref_model, data, _tiny_recipe(), **kw)
    steps_per_epoch = math.ceil(len(data.train) / 64)
    ck = tmp_path / "dst" / "checkpoint.pt"

    def die(state):
        if state.step == steps_per_epoch + 3:
            raise _Crash

    with pytest.raises(_Crash):
        itop_train(model(), data, _tiny_recipe(), checkpoint=ck, callbacks=die, **kw)
    assert torch.load(ck, weights_only=False)["epoch"] == 1
    resumed_model = model()
    run = itop_train(resumed_model, data, _tiny_recipe(), checkpoint=ck, **kw)
    assert not ck.exists()
    assert [s.step for s in run.snapshots] == [s.step for s in ref.snapshots]
    for a, b in zip(run.snapshots, ref.snapshots):
        assert a.mask == b.mask and all(torch.equal(a.state[k], b.state[k]) for k in b.state)
    assert [(u.step, u.removed, u.per_layer) for u in run.updates] == [(u.step, u.removed, u.per_layer)
                                                                       for u in ref.updates]
    assert run.final_mask == ref.final_mask and run.result.test_acc == ref.result.test_acc
    for k, v in ref_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[k], v), k


def test_itop_train_snapshots_are_the_masks_actually_trained():
    data = pags_core.load_dataset("synthetic")
    torch.manual_seed(0)
    model = pags_core.make_model("resnet18", num_classes=data.num_classes, in_channels=data.in_channels, width=0.125)
    seen = {}

    def log(state):  # runs after the ITOP update of the same step
        step, mdl, msk = state.step, state.model, state.mask
        seen[step] = msk.clone()
        for n, p in prunable_parameters(mdl).items():
            assert not bool(((p.detach() != 0) & ~msk[n]).any()), "a weight lives outside the current mask"

    run = itop_train(model, data, _tiny_recipe(), density=0.1, update_interval=2, seed=0, device="cpu",
                     callbacks=log)
    steps_per_epoch = math.ceil(len(data.train) / 64)
    assert run.total_steps == 2 * steps_per_epoch == run.result.iters
    assert [s.step for s in run.snapshots] == list(range(2, run.total_steps, 2)) == [u.step for u in run.updates]
    assert run.anchor.step == 0 and run.anchor.mask.density == pytest.approx(0.1, abs=1e-4)
    for s in run.snapshots:
        assert s.mask == seen[s.step]  # the mask the loop trained with right after update k is snapshot k
        assert s.mask.density == run.anchor.mask.density
        assert s.mask.layer_counts() == run.anchor.mask.layer_counts()
    # between updates the mask does not change
    assert seen[3] == run.snapshots[0].mask
    # the anchor weights are the dense initialisation θ0
    assert all(bool((run.anchor.state[n] != 0).float().mean() > 0.99) for n in run.anchor.mask)


def test_select_snapshots_and_bcode_filter():
    assert select_snapshots([10, 20, 30, 40, 50], None) == [10, 20, 30, 40, 50]
    assert select_snapshots([10, 20, 30, 40, 50], 3) == [10, 30, 50]
    assert select_snapshots([10, 20], 5) == [10, 20]
    t = pd.DataFrame({"model": "m", "dataset": "d", "seed": 0, "imdb": [0.1, 0.01, 0.2, 0.3],
                      "full_spectrum": [1.0, 1.0, 7.0, 2.0], "imsg": [0.2, 0.2, 0.2, float("inf")],
                      "ramanujan_gap": [1, 2, 3, 4], "test_acc": [0.1, 0.2, 0.3, 0.5]})
    assert apply_bcode_filter(t).index.tolist() == [0]
    corr = snapshot_correlations(t, ["ramanujan_gap"])
    row = corr.set_index("filter").loc["bcode_vgg"]
    assert row["n"] == 1 and math.isnan(row["r"])
    two = snapshot_correlations(t.assign(imdb=[0.1, 0.2, 0.2, 0.3], imsg=0.2), ["ramanujan_gap"])  # rows 0, 1, 3 pass
    row = two.set_index("filter").loc["bcode_vgg"]
    assert row["n"] == 3 and row["r"] == pytest.approx(pearson([1, 2, 4], [0.1, 0.2, 0.5]).r)
    assert math.isnan(snapshot_correlations(t.iloc[:2], ["ramanujan_gap"]).r.iloc[0])  # n = 2 < min_n
    # partial correlation given the ITOP step: a metric that is the step plus a constant carries nothing more
    s = pd.DataFrame({"model": "m", "step": [10, 20, 30, 40, 50], "test_acc": [0.1, 0.3, 0.2, 0.5, 0.4]})
    s = s.assign(ramanujan_gap=s.step / 10 + 1, imdb=[0.3, 0.1, 0.4, 0.1, 0.5], full_spectrum=1.0, imsg=0.2)
    c = snapshot_correlations(s, ["ramanujan_gap", "imdb", "step"]).set_index(["filter", "metric"]).loc["none"]
    assert c.loc["ramanujan_gap", "r"] == pytest.approx(c.loc["step", "r"]) and math.isnan(c.loc["ramanujan_gap", "partial_r"])
    assert c.loc["imdb", "partial_r"] == pytest.approx(
        pearson(*[np.asarray(v) - np.polyval(np.polyfit(s.step, v, 1), s.step) for v in (s.imdb, s.test_acc)]).r)
    assert math.isnan(c.loc["step", "partial_r"])
    assert corr.set_index("filter").loc["none", "n"] == 4
