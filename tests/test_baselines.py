"""LTH with rewinding and Early-Bird tickets: schedules, distances, rewinding, stopping rule, resume."""
from __future__ import annotations

import pytest
import torch

import pags_core as pc
from pags_core.baselines import early_bird, lth, lth_densities, mask_distance

pytestmark = pytest.mark.filterwarnings("ignore:.*pruned .* layer\\(s\\) to nothing:UserWarning")


def test_geometric_schedule_ends_exactly_at_d():
    assert lth_densities(0.01, 2) == pytest.approx([0.1, 0.01])
    assert lth_densities(0.02, 1) == [0.02]
    assert lth_densities(0.125, 3) == pytest.approx([0.5, 0.25, 0.125])
    with pytest.raises(ValueError, match="positive int"):
        lth_densities(0.1, 0)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        lth_densities(0.0, 2)


def test_mask_distance_by_hand():
    a = pc.Mask({"w": torch.tensor([1, 1, 0, 0, 0, 0], dtype=torch.bool)})
    b = pc.Mask({"w": torch.tensor([1, 0, 1, 0, 0, 0], dtype=torch.bool)})
    assert mask_distance(a, a) == 0.0
    assert mask_distance(a, b) == pytest.approx(2 / 4)  # one of two kept weights moved
    c = pc.Mask({"w": torch.tensor([0, 0, 0, 0, 1, 1], dtype=torch.bool)})
    assert mask_distance(a, c) == 1.0


def test_lth_rewinds_prunes_to_d_and_resumes(data, tmp_path, tiny_model):
    model = tiny_model(data)
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    store = pc.RunStore(tmp_path)
    res = lth(model, data, 0.05, rounds=2, rewind_iter=1, recipe="book", epochs=1, device="cpu", store=store,
              store_config={"test": 1})
    assert res.mask.num_kept == round(0.05 * res.mask.num_total)
    assert [r["pruned_to"] for r in res.rounds] == pytest.approx([0.05 ** 0.5, 0.05])
    assert res.rounds[1]["trained_density"] == pytest.approx(0.05 ** 0.5)
    # θ_k is the state after one optimiser step of the dense run: not θ0, and θ0 itself is untouched
    assert any(not torch.equal(theta0[k], res.rewind_state[k]) for k in theta0 if k.endswith("weight"))
    assert all(torch.equal(theta0[k], v) for k, v in model.state_dict().items())
    assert res.pretrain_iters == sum(r["iters"] for r in res.rounds) > 0
    # every round was persisted: a rerun trains nothing and returns the same ticket
    def boom(*a, **k):
        raise AssertionError("a finished LTH round was trained again")
    again = lth(model, data, 0.05, rounds=2, rewind_iter=1, recipe="book", epochs=1, device="cpu", store=store,
                store_config={"test": 1}, train_fn=boom)
    assert again.mask == res.mask
    assert all(torch.equal(again.rewind_state[k], res.rewind_state[k]) for k in res.rewind_state)


def test_lth_rewind_beyond_the_run_is_an_error(data, tiny_model):
    with pytest.raises(ValueError, match="rewind_iter"):
        lth(tiny_model(data), data, 0.1, rounds=1, rewind_iter=10_000, recipe="book", epochs=1, device="cpu")


def _scripted_train(changes_until_epoch: int, steps_per_epoch: int, epochs: int):
    """A stand-in for train(): calls step_callback at every step; the weights change (a new random draw) at every
    epoch boundary up to ``changes_until_epoch`` and stay put afterwards."""
    def fn(model, data, recipe, *, step_callback=None, epochs=epochs, **kw):
        g = torch.Generator().manual_seed(0)
        step = 0
        for e in range(1, epochs + 1):
            if e <= changes_until_epoch:
                with torch.no_grad():
                    for p in model.parameters():
                        p.copy_(torch.randn(p.shape, generator=g))
            for _ in range(steps_per_epoch):
                step += 1
                step_callback(step, model, None, None)
        return pc.TrainResult(test_acc=0.0, best_val_acc=0.0, best_epoch=epochs, final_test_acc=0.0, iters=step)
    return fn


def test_early_bird_stops_at_the_first_stable_epoch(data, tiny_model):
    spe = len(data.train_batches(pc.get_recipe("book").batch_size))
    model = tiny_model(data)
    res = early_bird(model, data, 0.05, epsilon=0.1, max_epochs=6, recipe="book", device="cpu",
                     train_fn=_scripted_train(3, spe, 6))
    # masks change at epochs 1-3 and are identical from epoch 3 on: dist(M4, M3) = 0 < ε -> stop at epoch 4
    assert res.converged and res.epoch == 4 and res.pretrain_iters == 4 * spe
    assert res.distances[-1] == 0.0 and all(d > 0.1 for d in res.distances[:-1])
    assert res.mask.num_kept == round(0.05 * res.mask.num_total)
    net = tiny_model(data)
    net.load_state_dict(res.state)
    assert res.mask == pc.generate_mask(net, "magnitude", 0.05, device="cpu")  # the ticket is θ_e's magnitude mask


def test_early_bird_without_convergence_uses_the_last_epoch(data, tiny_model):
    spe = len(data.train_batches(pc.get_recipe("book").batch_size))
    res = early_bird(tiny_model(data), data, 0.05, epsilon=0.01, max_epochs=3, recipe="book", device="cpu",
                     train_fn=_scripted_train(3, spe, 3))
    assert not res.converged and res.epoch == 3 and len(res.distances) == 2


def test_early_bird_real_training_smoke(data, tiny_model):
    res = early_bird(tiny_model(data), data, 0.1, epsilon=0.5, max_epochs=2, recipe="book", device="cpu")
    assert 1 <= res.epoch <= 2 and res.mask.density == pytest.approx(0.1, abs=1e-4)
