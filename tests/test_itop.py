"""ITOP-Rand: prune/regrow invariants, snapshots = the masks actually trained, study resume after a crash."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import pags_core
from pags_core.analysis import apply_bcode_filter, itop_correlations
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
    # correlations on the filtered snapshots: the same table, with the intervals for dependent snapshots
    t = t.assign(step=[10, 20, 30, 40])
    one = itop_correlations(apply_bcode_filter(t), ["ramanujan_gap"], control=None, pooled=False, n_boot=50)
    assert one.n.tolist() == [1] and math.isnan(one.r.iloc[0]) and math.isnan(one.boot_low.iloc[0])
    kept = apply_bcode_filter(t.assign(imdb=[0.1, 0.2, 0.2, 0.3], imsg=0.2))
    assert kept.index.tolist() == [0, 1, 3]
    three = itop_correlations(kept, ["ramanujan_gap"], control=None, pooled=False, n_boot=50).iloc[0]
    assert three.n == 3 and three.r == pytest.approx(pearson([1, 2, 4], [0.1, 0.2, 0.5]).r)
    assert itop_correlations(t, ["ramanujan_gap"], control=None, pooled=False, n_boot=50).n.tolist() == [4]
    # partial correlation given the ITOP step: a metric that is the step plus a constant carries nothing more
    s = pd.DataFrame({"model": "m", "seed": 0, "step": [10, 20, 30, 40, 50], "test_acc": [0.1, 0.3, 0.2, 0.5, 0.4]})
    s = s.assign(ramanujan_gap=s.step / 10 + 1, imdb=[0.3, 0.1, 0.4, 0.1, 0.5])
    c = itop_correlations(s, ["ramanujan_gap", "imdb", "step"], pooled=False, n_boot=50).set_index("metric")
    assert c.loc["ramanujan_gap", "r"] == pytest.approx(c.loc["step", "r"])
    assert math.isnan(c.loc["ramanujan_gap", "partial_r"]) and math.isnan(c.loc["step", "partial_r"])
    assert c.loc["imdb", "partial_r"] == pytest.approx(
        pearson(*[np.asarray(v) - np.polyval(np.polyfit(s.step, v, 1), s.step) for v in (s.imdb, s.test_acc)]).r)


# ----------------------------------------------------------------------------------------------------------------
# correlations over dependent snapshots: the moving-block bootstrap, within-trajectory pooling
# ----------------------------------------------------------------------------------------------------------------
from scipy import stats as st  # noqa: E402

from pags_core.analysis import accuracy_reliability, block_bootstrap_pearson, correlation_count_note, \
    fisher_z_interval, itop_correlations, partial_pearson, within_group, within_pearson  # noqa: E402


def test_a_linear_relation_gives_r_1_and_a_degenerate_interval():
    x = np.arange(10.0)
    res = block_bootstrap_pearson(x, 2 * x + 1, block=3, n_boot=500)
    assert res.r == pytest.approx(1.0) and res.n == 10
    # every resample is a set of points on the same line: r* = 1 in all 500, so the interval is [1, 1] and the
    # percentile p-value is its smallest possible value 2 * (0 + 1) / (500 + 1)
    assert (res.ci_low, res.ci_high) == pytest.approx((1.0, 1.0))
    assert res.p_value == pytest.approx(2 / 501)
    anti = block_bootstrap_pearson(x, -x, block=2, n_boot=300)
    assert (anti.r, anti.ci_low, anti.ci_high) == pytest.approx((-1.0, -1.0, -1.0))


def test_within_group_takes_out_the_levels_of_the_groups():
    # two trajectories at levels 0 and 10 on both axes; inside each, y = (1, -1, -1, 1) is orthogonal to the
    # centred x = (-1.5, -0.5, 0.5, 1.5): the levels alone make the raw pooled r, the within-group r is exactly 0
    x = np.array([1, 2, 3, 4, 11, 12, 13, 14], dtype=float)
    y = np.array([1, -1, -1, 1, 11, 9, 9, 11], dtype=float)
    g = np.repeat([0, 1], 4)
    assert pearson(x, y).r > 0.95
    np.testing.assert_allclose(within_group(x, g), [-1.5, -0.5, 0.5, 1.5] * 2)
    np.testing.assert_allclose(within_group(y, g), [1, -1, -1, 1] * 2)
    pooled = block_bootstrap_pearson(x, y, g, block=2, n_boot=400)
    assert pooled.r == pytest.approx(0.0, abs=1e-12)
    assert pooled.ci_low <= 0 <= pooled.ci_high
    assert within_pearson(x, y, g).r == pytest.approx(0.0, abs=1e-12)
    raw = block_bootstrap_pearson(x, y, g, block=2, n_boot=400, center=False)
    assert raw.r == pytest.approx(pearson(x, y).r)


def test_the_bootstrap_is_deterministic_for_a_seed():
    rng = np.random.default_rng(5)
    x = rng.normal(size=12)
    y = x + rng.normal(size=12)
    a, b = (block_bootstrap_pearson(x, y, block=3, n_boot=300, seed=7) for _ in range(2))
    assert a == b
    c = block_bootstrap_pearson(x, y, block=3, n_boot=300, seed=8)
    assert c.r == a.r and (c.ci_low, c.ci_high) != (a.ci_low, a.ci_high)


def test_fewer_points_than_a_block_plus_one_give_nan():
    res = block_bootstrap_pearson([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], block=3)
    assert res.r == pytest.approx(0.5) and res.n == 3  # r is defined ...
    assert math.isnan(res.ci_low) and math.isnan(res.ci_high) and math.isnan(res.p_value)  # ... its interval is not
    # pooled: one trajectory that is too short is enough
    x = np.arange(7.0)
    pooled = block_bootstrap_pearson(x, x ** 2, [0, 0, 0, 0, 1, 1, 1], block=3)
    assert math.isnan(pooled.ci_low) and np.isfinite(pooled.r)
    assert math.isnan(block_bootstrap_pearson([1.0, 2.0, 3.0, 4.0], [2.0] * 4, block=1).r)  # constant y
    with pytest.raises(ValueError, match="block"):
        block_bootstrap_pearson(x, x, block=0)
    with pytest.raises(ValueError, match="same length"):
        block_bootstrap_pearson(x, x[:-1])


def _slow_block_bootstrap(x, y, groups, block, n_boot, seed, z=None, circular=True, confidence=0.95):
    """The statistic and resampling written out loop by loop (the same random draws: one (n_boot, blocks) array of
    block starts per group, in group order), with numpy/scipy doing each resample's correlation."""
    rng = np.random.default_rng(seed)
    gs = list(dict.fromkeys(groups))
    draws = {}
    for gv in gs:
        m = int(np.sum(groups == gv))
        draws[gv] = rng.integers(0, m if circular else m - block + 1, size=(n_boot, math.ceil(m / block)))
    rs = []
    for b in range(n_boot):
        xs, ys, zs = [], [], []
        for gv in gs:
            ix = np.flatnonzero(groups == gv)
            pos = np.concatenate([[(s + j) % len(ix) for j in range(block)] for s in draws[gv][b]])[:len(ix)]
            sel = ix[pos]
            xs.append(x[sel] - x[sel].mean())
            ys.append(y[sel] - y[sel].mean())
            if z is not None:
                zs.append(z[sel] - z[sel].mean())
        xb, yb = np.concatenate(xs), np.concatenate(ys)
        if z is not None:
            zb = np.concatenate(zs)
            xb, yb = xb - (xb @ zb) / (zb @ zb) * zb, yb - (yb @ zb) / (zb @ zb) * zb
        rs.append(np.corrcoef(xb, yb)[0, 1])
    return np.quantile(rs, [(1 - confidence) / 2, (1 + confidence) / 2])


@pytest.mark.parametrize("block, circular", [(1, True), (3, True), (3, False)])
def test_block_bootstrap_matches_a_loop_by_loop_reference(block, circular):
    rng = np.random.default_rng(11)
    g = np.repeat([0, 1], [9, 8])
    x = rng.normal(size=17) + 5 * g
    z = np.concatenate([np.arange(9), np.arange(8)]).astype(float)
    y = 0.6 * x + 0.1 * z + rng.normal(size=17)
    kw = {"block": block, "n_boot": 200, "seed": 3, "circular": circular}
    res = block_bootstrap_pearson(x, y, g, **kw)
    assert res.r == pytest.approx(pearson(within_group(x, g), within_group(y, g)).r, rel=1e-12)
    assert (res.ci_low, res.ci_high) == pytest.approx(
        tuple(_slow_block_bootstrap(x, y, g, block, 200, 3, circular=circular)), rel=1e-9)
    part = block_bootstrap_pearson(x, y, g, z=z, **kw)
    assert part.r == pytest.approx(within_pearson(x, y, g, z).r, rel=1e-10)
    assert (part.ci_low, part.ci_high) == pytest.approx(
        tuple(_slow_block_bootstrap(x, y, g, block, 200, 3, z, circular=circular)), rel=1e-9)
    # the points are resampled in the order given by ``order``, not in the order of the arrays
    perm = rng.permutation(17)
    shuffled = block_bootstrap_pearson(x[perm], y[perm], g[perm], order=np.arange(17.0)[perm], **kw)
    assert (shuffled.r, shuffled.ci_low, shuffled.ci_high) == pytest.approx((res.r, res.ci_low, res.ci_high))


def test_circular_blocks_draw_every_snapshot_equally_often():
    # m = 10 points, blocks of 3: a circular block covers each point with probability 3/10, and the truncated
    # fourth block (1 point) with 1/10, so every point is expected exactly 3 * 3/10 + 1/10 = 1 time per resample.
    # Moving blocks start only at 0..7: the first point is covered by one start of eight, i.e. 3 * 1/8 + 1/8 = 0.5
    # times, a middle point (e.g. the fifth, starts 2..4) 3 * 3/8 + 1/8 = 1.25 times.
    from pags_core.analysis.correlation import block_resamples

    ix = [np.arange(10)]
    circ = block_resamples(ix, 10, 3, 20000, np.random.default_rng(0), circular=True)
    counts = np.stack([(circ == i).sum(axis=1) for i in range(10)], axis=1).mean(axis=0)
    np.testing.assert_allclose(counts, 1.0, atol=0.03)
    mov = block_resamples(ix, 10, 3, 20000, np.random.default_rng(0), circular=False)
    counts = np.stack([(mov == i).sum(axis=1) for i in range(10)], axis=1).mean(axis=0)
    assert counts[0] == pytest.approx(0.5, abs=0.03) and counts[4] == pytest.approx(1.25, abs=0.03)
    # consecutive points stay together: inside a block, each index follows the previous one (mod 10)
    assert ((np.diff(circ[:, :3], axis=1) % 10) == 1).all()


def test_within_pearson_counts_the_degrees_of_freedom_of_the_group_means():
    rng = np.random.default_rng(2)
    g = np.repeat(["a", "b", "c"], 6)
    x, y, z = rng.normal(size=(3, 18))
    res = within_pearson(x, y, g)
    r = pearson(within_group(x, g), within_group(y, g)).r
    assert res.r == pytest.approx(r, rel=1e-12)
    # three group means removed = two covariates beyond the intercept: Fisher z with n - 2, t with n - 2 - 2 df
    assert (res.ci_low, res.ci_high) == pytest.approx(fisher_z_interval(r, 18 - 2), rel=1e-12)
    t = r * math.sqrt((18 - 4) / (1 - r * r))
    assert res.p_value == pytest.approx(2 * st.t.sf(abs(t), 18 - 4), rel=1e-10)
    one = within_pearson(x, y, np.zeros(18))
    assert (one.r, one.ci_low, one.p_value) == pytest.approx(
        (pearson(x, y).r, pearson(x, y).ci_low, pearson(x, y).p_value), rel=1e-10)
    assert within_pearson(x, y, np.zeros(18), z).r == pytest.approx(partial_pearson(x, y, z).r, rel=1e-10)


def _trajectories():
    """Two 'trajectories' of 8 snapshots: accuracy = step / 10 + a trajectory level + a metric-driven part."""
    rng = np.random.default_rng(0)
    rows = []
    for seed, level in ((0, 90.0), (1, 93.0)):
        step = np.arange(10, 90, 10)
        m = rng.normal(size=8)
        acc = level + step / 10 + 0.8 * m + 0.3 * rng.normal(size=8)
        rows.append(pd.DataFrame({"model": "resnet18", "seed": seed, "step": step, "full_spectrum": m + level,
                                  "imdb": rng.normal(size=8), "test_acc": acc}))
    return pd.concat(rows, ignore_index=True)


def test_itop_correlations_long_format_per_trajectory_and_pooled():
    t = _trajectories()
    corr = itop_correlations(t, ["full_spectrum", "imdb", "step"], n_boot=300)
    assert list(corr.columns[:3]) == ["model", "trajectory", "metric"]
    assert len(corr) == 3 * 3 and set(corr.trajectory) == {"seed 0", "seed 1", "pooled"}
    c = corr.set_index(["trajectory", "metric"])
    s0 = t[t.seed == 0]
    ref = pearson(s0.full_spectrum, s0.test_acc)
    assert c.loc[("seed 0", "full_spectrum"), "r"] == pytest.approx(ref.r)
    assert (c.loc[("seed 0", "full_spectrum"), "fisher_low"], c.loc[("seed 0", "full_spectrum"), "fisher_p"]) == \
        pytest.approx((ref.ci_low, ref.p_value))
    pr = partial_pearson(s0.full_spectrum, s0.test_acc, s0.step)
    assert c.loc[("seed 0", "full_spectrum"), "partial_r"] == pytest.approx(pr.r)
    assert c.loc[("seed 0", "full_spectrum"), "partial_fisher_high"] == pytest.approx(pr.ci_high)
    g = t.seed.to_numpy()
    assert c.loc[("pooled", "full_spectrum"), "r"] == pytest.approx(
        pearson(within_group(t.full_spectrum, g), within_group(t.test_acc, g)).r)
    assert c.loc[("pooled", "imdb"), "partial_r"] == pytest.approx(within_pearson(t.imdb, t.test_acc, g, t.step).r)
    assert c.loc[("pooled", "step"), ["partial_r", "partial_boot_p"]].isna().all()  # the control given itself
    assert (c["boot_low"] <= c["r"] + 1e-12).all() and (c["r"] <= c["boot_high"] + 1e-12).all()
    # the row order of the table does not matter: snapshots are put in step order inside each trajectory
    again = itop_correlations(t.sample(frac=1.0, random_state=1), ["full_spectrum", "imdb", "step"], n_boot=300)
    pd.testing.assert_frame_equal(corr, again)
    only = itop_correlations(t, ["imdb"], per_trajectory=False, control=None, n_boot=50)
    assert list(only.trajectory) == ["pooled"] and only.partial_r.isna().all()
    with pytest.raises(KeyError, match="lambda"):
        itop_correlations(t, ["lambda"])


def test_correlation_count_note_counts_the_tests_and_the_holm_survivors():
    t = pd.DataFrame({"metric": ["a", "b", "step"], "boot_p": [0.001, 0.04, 0.0001], "boot_low": [0.2, 0.01, 0.5],
                      "boot_high": [0.9, 0.8, 0.9], "partial_boot_p": [0.5, np.nan, np.nan],
                      "partial_boot_low": [-0.3, np.nan, np.nan], "partial_boot_high": [0.4, np.nan, np.nan]})
    note = correlation_count_note(t)
    # tests: a, b, partial a (the step row is the reference, not a test); Holm: 0.001*3 = 0.003 < 0.05,
    # 0.04*2 = 0.08 > 0.05 -> 1 survivor; 2 intervals exclude 0; 3 * 0.05 = 0.15 expected by chance
    assert note.startswith("3 correlations") and "2 of the intervals exclude 0" in note
    assert "about 0.2 would" in note  # 0.15 shown with one decimal
    assert "1 stay significant" in note
    assert correlation_count_note(t.assign(boot_p=np.nan, partial_boot_p=np.nan)).startswith("No correlation")


def test_accuracy_reliability_by_hand():
    table = pd.DataFrame({"model": "m", "seed": [0] * 4 + [1] * 4, "step": [1, 2, 3, 4] * 2,
                          "test_acc": [90.0, 92.0, 94.0, 96.0, 80.0, 81.0, 81.0, 82.0]})
    reps = pd.DataFrame({"model": "m", "seed": [0, 0, 1, 1, 1], "step": [1, 1, 2, 2, 2],
                         "test_acc": [90.0, 91.0, 81.0, 81.0, 84.0]})
    out = accuracy_reliability(table, reps).set_index("trajectory")
    # noise: snapshot (0, 1): 90, 91 -> SS 0.5, 1 df; snapshot (1, 2): 81, 81, 84 -> mean 82, SS 1 + 1 + 4 = 6, 2 df
    noise_var = 6.5 / 3
    assert out["noise_df"].eq(3).all() and out["noise_sd"].iloc[0] == pytest.approx(math.sqrt(noise_var))
    assert out.loc["seed 0", "noise_sd_low"] == pytest.approx(math.sqrt(3 * noise_var / st.chi2.ppf(0.975, 3)))
    assert out.loc["seed 0", "noise_sd_high"] == pytest.approx(math.sqrt(3 * noise_var / st.chi2.ppf(0.025, 3)))
    # trajectory 0: SS 9 + 1 + 1 + 9 = 20 over 3 df; reliability 1 - (6.5/3) / (20/3) = 0.675
    assert out.loc["seed 0", "sd"] == pytest.approx(math.sqrt(20 / 3))
    assert out.loc["seed 0", "reliability"] == pytest.approx(0.675)
    assert out.loc["seed 0", "ceiling"] == pytest.approx(math.sqrt(0.675))
    # trajectory 1: SS 1 + 0 + 0 + 1 = 2 over 3 df is below the noise: nothing of its spread is reliable
    assert out.loc["seed 1", "reliability"] == 0.0 and out.loc["seed 1", "ceiling"] == 0.0
    # pooled: SS 22 over 8 - 2 df
    assert out.loc["pooled", "sd"] == pytest.approx(math.sqrt(22 / 6))
    assert out.loc["pooled", "reliability"] == pytest.approx(1 - noise_var / (22 / 6))
    lo_var = 3 * noise_var / st.chi2.ppf(0.975, 3)
    assert out.loc["pooled", "ceiling_high"] == pytest.approx(math.sqrt(1 - lo_var / (22 / 6)))
    none = accuracy_reliability(table, reps.iloc[[0, 2]])  # no snapshot retrained twice: no noise estimate
    assert none["noise_df"].eq(0).all() and none["ceiling"].isna().all()


# ----------------------------------------------------------------------------------------------------------------
# the plan: retraining seeds, noise retrainings, the per-snapshot table
# ----------------------------------------------------------------------------------------------------------------
import dataclasses  # noqa: E402

from pags_core import experiments as ex  # noqa: E402
from pags_core.analysis import snapshot_metrics  # noqa: E402


def _tiny_cfg(tmp_path, **kw):
    opts = {"profile": "book", "dataset": "synthetic", "epochs": 1, "retrain_epochs": 1, "snapshots": 3,
            "update_interval": 1, "executor": "serial", "store": str(tmp_path / "store"),
            "data_options": {"image_size": 8, "num_classes": 4, "in_channels": 1, "n_train": 640, "n_test": 64}}
    return ex.resolve("itop", **{**opts, **kw})


def test_retraining_seed_keeps_the_keys_of_the_trajectorys_own_retraining(tmp_path):
    ip = ex.itop_plan(_tiny_cfg(tmp_path))
    u = ip.retrains[0][1]
    assert u.seed is None and u.train_seed == u.dst.seed
    # the field defaults to the trajectory's seed: setting it to that seed changes nothing, not even the key
    same = dataclasses.replace(u, seed=u.dst.seed)
    assert same.seed is None and same.key == u.key and same == u
    assert "seed" not in u.__canonical__()
    other = dataclasses.replace(u, seed=1000)
    assert other.key != u.key and other.train_seed == 1000 and "retraining seed 1000" in other.label()
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="retraining seed"):
            dataclasses.replace(u, seed=bad)


def test_itop_plan_adds_noise_retrainings_on_evenly_spaced_snapshots(tmp_path):
    cfg = _tiny_cfg(tmp_path, seeds=[0, 1000])
    base = ex.itop_plan(cfg)
    assert base.noise == [] and len(base.retrains) == 2 * 3
    ip = ex.itop_plan(cfg, noise_snapshots=2, noise_seeds=2)
    steps = [k[2] for k, _ in ip.retrains if k[1] == 0]
    assert len(steps) == 3
    keys = [k for k, _ in ip.noise]
    # first and last retrained snapshot of each trajectory, two other training seeds each, never the trajectory's
    assert keys == [("resnet18", 0, steps[0], 1000), ("resnet18", 0, steps[0], 1001),
                    ("resnet18", 0, steps[-1], 1000), ("resnet18", 0, steps[-1], 1001),
                    ("resnet18", 1000, steps[0], 1001), ("resnet18", 1000, steps[0], 1002),
                    ("resnet18", 1000, steps[-1], 1001), ("resnet18", 1000, steps[-1], 1002)]
    assert all(u.seed == k[3] and u.step == k[2] for k, u in ip.noise)
    assert len(ip.plan.targets) == 6 + 8 and len(ip.plan) == 2 + 6 + 8
    for bad in ({"noise_snapshots": -1}, {"noise_seeds": 0}, {"noise_snapshots": 1.0}):
        with pytest.raises(ValueError, match="must be an int"):
            ex.itop_plan(cfg, **bad)


def test_itop_runs_and_replicates_read_back_a_finished_study(tmp_path):
    cfg = _tiny_cfg(tmp_path)
    cfg = cfg.replace(seeds=(0,))
    ip = ex.itop_plan(cfg, noise_snapshots=1)
    ex.run_plan(ip.plan, progress=False, **cfg.execution())
    store = cfg.execution()["store"]
    runs = ex.itop_runs(ip, store)
    assert list(runs.step) == [k[2] for k, _ in ip.retrains] and (runs.nonzero_outside_mask == 0).all()
    for (_, _, step), u in ip.retrains:
        row = runs[runs.step == step].iloc[0]
        assert row.test_acc == pytest.approx(100 * u.result(store)["test_acc"])  # percent
        # the metrics against a direct computation from the stored snapshot and anchor
        d = ip.dst[("resnet18", 0)]
        snap, anchor = d.snapshot(store, step), d.snapshot(store, 0)
        direct = snapshot_metrics(d.model.build(0), snap.mask, weights=snap.state, initial_weights=anchor.state,
                                  initial_mask=anchor.mask)
        assert {k: row[k] for k in direct} == pytest.approx(direct)
        assert row.density == pytest.approx(cfg.density, abs=1e-3)
    reps = ex.itop_replicates(ip, store)
    first = ip.retrains[0][0][2]
    assert list(reps.step) == [first, first] and list(reps.retrain_seed) == [0, 1000]
    assert reps.test_acc.iloc[0] == pytest.approx(runs.test_acc.iloc[0])
    assert reps.test_acc.iloc[1] == pytest.approx(100 * ip.noise[0][1].result(store)["test_acc"])
