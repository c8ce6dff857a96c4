"""LTH with rewinding and Early-Bird tickets: schedules, distances, rewinding, stopping rule, resume."""
from __future__ import annotations

import pytest
import torch

import pags_core as pc
from pags_core.methods import EarlyBirdSearch, early_bird, lth, lth_densities, mask_distance
from pags_core.training import TrainState

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


def test_lth_rewinds_and_prunes_to_d(data, tiny_model):
    model = tiny_model(data)
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    res = lth(model, data, 0.05, rounds=2, rewind_iter=1, recipe="book", epochs=1, device="cpu")
    assert res.mask.num_kept == round(0.05 * res.mask.num_total)
    assert [r["pruned_to"] for r in res.rounds] == pytest.approx([0.05 ** 0.5, 0.05])
    assert res.rounds[1]["trained_density"] == pytest.approx(0.05 ** 0.5)
    # θ_k is the state after one optimiser step of the dense run: not θ0, and θ0 itself is untouched
    assert any(not torch.equal(theta0[k], res.rewind_state[k]) for k in theta0 if k.endswith("weight"))
    assert all(torch.equal(theta0[k], v) for k, v in model.state_dict().items())
    assert res.pretrain_iters == sum(r["iters"] for r in res.rounds) > 0
    # round 1's mask lies inside round 0's: pruning only removes weights
    r0 = pc.methods.lth_round(model, data, 0, lth_densities(0.05, 2), rewind_iter=1, recipe="book", epochs=1,
                              device="cpu")
    assert all(bool((res.mask[n] & ~r0.mask[n]).sum() == 0) for n in res.mask)


def test_lth_rewind_beyond_the_run_is_an_error(data, tiny_model):
    with pytest.raises(ValueError, match="rewind_iter"):
        lth(tiny_model(data), data, 0.1, rounds=1, rewind_iter=10_000, recipe="book", epochs=1, device="cpu")


class _Weights(torch.nn.Module):
    """A 'model' of one prunable layer whose weights the test sets directly."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(10, 10, bias=False)


def _epochs(search, weights_per_epoch):
    """Feed the search one end-of-epoch state per weight tensor; returns the epoch at which it asked to stop."""
    model = _Weights()
    for e, w in enumerate(weights_per_epoch, start=1):
        with torch.no_grad():
            model.fc.weight.copy_(w)
        state = TrainState(model=model, optimizer=None, mask=None, device=torch.device("cpu"), steps_per_epoch=4,
                           total_steps=4 * len(weights_per_epoch), step=4 * e, epoch=e, record={"epoch": e})
        if search.on_epoch_end(state):
            return e
    return None


def test_early_bird_stops_at_the_first_stable_epoch():
    g = torch.Generator().manual_seed(0)
    changing = [torch.randn(10, 10, generator=g) for _ in range(3)]
    # masks change at epochs 1-3 and stay identical from epoch 3 on: dist(M4, M3) = 0 < ε -> stop at epoch 4
    search = EarlyBirdSearch(0.05, epsilon=0.1)
    assert _epochs(search, changing + [changing[-1] * 1.5, changing[-1]]) == 4
    assert search.converged and search.epoch == 4 and search.distances[-1] == 0.0
    assert all(d > 0.1 for d in search.distances[:-1]) and len(search.distances) == 3
    assert search.mask.num_kept == 5  # the ticket is θ_e's magnitude mask at density 0.05 of 100 weights
    assert torch.equal(search.state["fc.weight"], changing[-1] * 1.5)
    restored = EarlyBirdSearch(0.05, epsilon=0.1)
    restored.load_state_dict(search.state_dict())  # what a training checkpoint keeps
    assert restored.mask == search.mask and restored.distances == search.distances


def test_early_bird_without_convergence_keeps_the_last_epoch():
    g = torch.Generator().manual_seed(1)
    search = EarlyBirdSearch(0.05, epsilon=0.01)
    assert _epochs(search, [torch.randn(10, 10, generator=g) for _ in range(3)]) is None
    assert not search.converged and search.epoch == 3 and len(search.distances) == 2
    with pytest.raises(ValueError, match="epsilon"):
        EarlyBirdSearch(0.05, epsilon=0.0)


def test_early_bird_real_training_smoke(data, tiny_model):
    res = early_bird(tiny_model(data), data, 0.1, epsilon=0.5, max_epochs=2, recipe="book", device="cpu")
    assert 1 <= res.epoch <= 2 and res.mask.density == pytest.approx(0.1, abs=1e-4)
