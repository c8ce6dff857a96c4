"""Training: masks stay enforced (weights, grads, momentum), divergence, seeds, max_iters, callbacks, recipes."""
import math

import pytest
import torch
from torch import nn

from pags_core import RECIPES, Mask, TrainResult, evaluate, generate_mask, load_dataset, make_model, train
from pags_core.training import Callback, Recipe

FAST = Recipe("fast", nesterov=True, batch_size=32, test_batch_size=64, epochs=2, schedule="cosine", milestones=())


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic", num_classes=4, in_channels=1, image_size=6, n_train=128, n_test=64, seed=0)


def small_model(seed=0):
    torch.manual_seed(seed)
    return make_model("resnet18", num_classes=4, in_channels=1, width=1 / 16)


def test_pruned_weights_grads_and_momentum_stay_zero(data):
    model = small_model()
    mask = generate_mask(model, "random", 0.1, seed=1, device="cpu")
    seen = []

    def check(state):
        step, m, opt, mk = state.step, state.model, state.optimizer, state.mask
        params = dict(m.named_parameters())
        for name, keep in mk.items():
            p = params[name]
            assert torch.all(p[~keep] == 0), (step, name)
            assert torch.all(p.grad[~keep] == 0), (step, name)  # zeroed before the optimiser step
            buf = opt.state[p].get("momentum_buffer")
            assert buf is None or torch.all(buf[~keep] == 0), (step, name)
        seen.append(step)

    res = train(model, data, FAST, mask=mask, device="cpu", callbacks=check, progress=False)
    assert seen == list(range(1, res.iters + 1)) and res.iters == 2 * 4
    params = dict(model.named_parameters())
    assert any(torch.any(params[n][k] != 0) for n, k in mask.items())  # kept weights did train
    assert Mask.from_weights(model).num_kept <= mask.num_kept


def test_mask_is_reread_every_step(data):
    """ITOP changes the mask in place from the callback; the loop must enforce the new mask from then on."""
    model = small_model()
    mask = Mask.ones(model)
    target = "layer1.0.conv1.weight"

    def prune_more(state):
        step, mk = state.step, state.mask
        if step == 2:
            mk[target][:] = False  # replace the tensor's content in place
        if step == 3:
            mk["linear.weight"] = torch.zeros_like(mk["linear.weight"])  # or swap the tensor

    train(model, data, FAST, mask=mask, device="cpu", callbacks=prune_more, max_iters=4, progress=False)
    assert torch.all(model.layer1[0].conv1.weight == 0) and torch.all(model.linear.weight == 0)


def test_result_fields_and_best_val_selection(data):
    model = small_model()
    res = train(model, data, FAST.replace(epochs=3), device="cpu", seed=0, progress=False)
    assert isinstance(res, TrainResult) and not res.diverged and res.iters == 12 and res.seconds > 0
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    vals = [h["val_acc"] for h in res.history]
    assert res.best_val_acc == max(vals) and res.best_epoch == vals.index(max(vals)) + 1  # FIRST best epoch
    assert res.test_acc == res.history[res.best_epoch - 1]["test_acc"]
    assert res.final_test_acc == res.history[-1]["test_acc"]
    assert res.final_test_acc == evaluate(model, data.test_batches(64), "cpu")
    assert res.to_dict()["iters"] == 12


def test_training_learns_and_is_repeatable(data):
    a = train(small_model(), data, FAST, device="cpu", seed=3, progress=False)
    b = train(small_model(), data, FAST, device="cpu", seed=3, progress=False)
    c = train(small_model(), data, FAST, device="cpu", seed=4, progress=False)
    assert a.history[-1]["train_loss"] == b.history[-1]["train_loss"]
    assert [h["test_acc"] for h in a.history] == [h["test_acc"] for h in b.history]
    assert a.history[-1]["train_loss"] != c.history[-1]["train_loss"]
    assert a.history[-1]["train_loss"] < 0.9 * a.history[0]["train_loss"]  # it learns


def test_seed_leaves_callers_rng_alone(data):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train(small_model(), data, FAST, device="cpu", seed=0, max_iters=1, progress=False)
    torch.manual_seed(0)
    torch.set_rng_state(before)
    assert torch.equal(torch.get_rng_state(), before)


def test_max_iters_stops(data):
    res = train(small_model(), data, FAST, device="cpu", max_iters=5, progress=False)
    assert res.iters == 5 and len(res.history) == 2 and res.history[-1]["iters"] == 5
    assert train(small_model(), data, FAST, device="cpu", max_iters=0, progress=False).iters == 0


def test_divergence_is_recorded_not_raised(data):
    def poison(state):
        if state.step == 3:
            with torch.no_grad():
                state.model.linear.weight.fill_(float("nan"))

    res = train(small_model(), data, FAST, device="cpu", callbacks=poison, progress=False)
    assert res.diverged and res.iters == 3 and res.history[-1].get("diverged") is True
    assert len(res.history) == 1
    huge = train(small_model(), data, FAST.replace(lr=1e12, epochs=3), device="cpu", progress=False)
    assert huge.diverged


def test_multistep_schedule_per_epoch(data):
    rec = Recipe("ms", batch_size=64, epochs=4, schedule="multistep", milestones=(0.5, 0.75), lr=0.1)
    res = train(small_model(), data, rec, device="cpu", progress=False)
    assert [h["lr"] for h in res.history] == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_cosine_schedule_per_step_reaches_zero(data):
    lrs = []
    train(small_model(), data, FAST, device="cpu", progress=False,
          callbacks=lambda state: lrs.append(state.optimizer.param_groups[0]["lr"]))
    total = 8
    assert lrs == pytest.approx([0.05 * (1 + math.cos(math.pi * t / total)) for t in range(1, total + 1)])
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_recipes_match_method_and_pilot():
    i, n, b = RECIPES["iclr2023"], RECIPES["NeurIPS2023"], RECIPES["book"]
    assert (i.lr, i.momentum, i.nesterov, i.weight_decay, i.batch_size, i.test_batch_size, i.epochs) == \
        (0.1, 0.9, False, 5e-4, 256, 128, 250)
    assert i.schedule == "multistep" and i.milestone_epochs() == [125, 187] and i.gamma == 0.1
    assert (n.nesterov, n.batch_size, n.epochs, n.milestone_epochs()) == (True, 100, 250, [125, 187])
    assert (b.epochs, b.batch_size, b.nesterov, b.weight_decay, b.schedule, b.augment) == \
        (5, 128, True, 5e-4, "cosine", False)
    with pytest.raises(KeyError, match=r"'sgdr'.*book.*iclr2023.*neurips2023"):
        RECIPES["sgdr"]


def test_evaluate_and_bad_inputs(data):
    class Const(nn.Module):
        def forward(self, x):
            out = torch.full((x.shape[0], 4), -10.0)
            out[:, 2] = 0.0
            return out

    assert evaluate(Const(), data.test_batches(64), "cpu") == float((data.test.y == 2).float().mean())
    with pytest.raises(TypeError, match="DataSplits"):
        train(small_model(), [1, 2], FAST)
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\.weight"):
        bad = Mask.ones(small_model())
        bad["layer1.0.conv1.weight"] = torch.ones(3, 3, dtype=torch.bool)
        train(small_model(), data, FAST, mask=bad, device="cpu")
    with pytest.raises(ValueError, match="amp"):
        train(small_model(), data, FAST, amp="maybe", device="cpu")


def test_max_iters_zero_gives_nan_not_minus_one(data):
    res = train(small_model(), data, FAST, device="cpu", max_iters=0, progress=False)
    assert res.history == [] and math.isnan(res.best_val_acc) and math.isnan(res.test_acc)


class _Crash(RuntimeError):
    pass


@pytest.mark.parametrize("schedule", ["cosine", "multistep"])
def test_checkpoint_resume_gives_the_uninterrupted_result(data, tmp_path, schedule):
    # Oracle: the same run without interruption.  Augmentation on, so the data-order generator's state matters too.
    rec = Recipe("ck", nesterov=True, batch_size=32, test_batch_size=64, epochs=3, schedule=schedule,
                 milestones=(0.5,), augment=True)
    mask = generate_mask(small_model(), "random", 0.2, seed=1, device="cpu")
    ref_model = small_model()
    ref = train(ref_model, data, rec, mask=mask.clone(), device="cpu", seed=3, progress=False)

    ck = tmp_path / "run" / "checkpoint.pt"
    model = small_model()
    crash_at = 4 + 3  # 4 steps per epoch: dies in epoch 2, after the end-of-epoch-1 checkpoint

    def die(state):
        if state.step == crash_at:
            raise _Crash

    with pytest.raises(_Crash):
        train(model, data, rec, mask=mask.clone(), device="cpu", seed=3, progress=False, checkpoint=ck, callbacks=die)
    assert ck.is_file()
    assert torch.load(ck, weights_only=False)["epoch"] == 1
    foreign = small_model(seed=99)  # a checkpoint belongs to the run that started from these weights and mask
    with pytest.raises(ValueError, match="start_digest"):
        train(foreign, data, rec, mask=mask.clone(), device="cpu", seed=3, progress=False, checkpoint=ck,
              callbacks=die)
    other_mask = generate_mask(small_model(), "random", 0.2, seed=2, device="cpu")
    with pytest.raises(ValueError, match="mask_digest"):
        train(small_model(), data, rec, mask=other_mask, device="cpu", seed=3, progress=False, checkpoint=ck)
    fresh = small_model()
    res = train(fresh, data, rec, mask=mask.clone(), device="cpu", seed=3, progress=False, checkpoint=ck)
    assert not ck.exists()  # removed once the run ended
    assert res.iters == ref.iters and res.best_epoch == ref.best_epoch and res.test_acc == ref.test_acc
    drop = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert drop(res.history) == drop(ref.history)
    for k, v in ref_model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_checkpoint_of_another_run_is_refused(data, tmp_path):
    ck = tmp_path / "checkpoint.pt"
    rec = Recipe("ck", batch_size=32, epochs=2, schedule="constant", milestones=())

    def die(state):
        if state.step == 5:
            raise _Crash

    with pytest.raises(_Crash):
        train(small_model(), data, rec, device="cpu", seed=0, progress=False, checkpoint=ck, callbacks=die)
    with pytest.raises(ValueError, match=r"another run \(seed: checkpoint 0, this call 1\)"):
        train(small_model(), data, rec, device="cpu", seed=1, progress=False, checkpoint=ck)
    torch.save({"something": 1}, ck)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        train(small_model(), data, rec, device="cpu", seed=0, progress=False, checkpoint=ck)
    ck.write_bytes(b"\x80\x02garbage")  # a truncated or garbled file: warned about, deleted, the run starts over
    with pytest.warns(RuntimeWarning, match="unreadable"):
        res = train(small_model(), data, rec, device="cpu", seed=0, progress=False, checkpoint=ck)
    ref = train(small_model(), data, rec, device="cpu", seed=0, progress=False)
    assert res.test_acc == ref.test_acc and not ck.exists()


class _StopAfter(Callback):
    """Stops at the end of epoch ``epoch`` and counts its hooks (state travels through the checkpoint)."""

    def __init__(self, epoch):
        self.epoch, self.steps, self.started, self.ended = epoch, 0, 0, 0

    def on_train_start(self, state):
        self.started += 1

    def on_step_end(self, state):
        self.steps += 1

    def on_epoch_end(self, state):
        assert state.record["epoch"] == state.epoch and "val_acc" in state.record
        return state.epoch == self.epoch

    def on_train_end(self, state):
        self.ended += 1

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, s):
        self.steps = s["steps"]


def test_a_callback_stops_training_and_its_state_survives_a_resume(data, tmp_path):
    rec = FAST.replace(epochs=4)
    cb = _StopAfter(2)
    res = train(small_model(), data, rec, device="cpu", progress=False, callbacks=[cb])
    assert res.stopped_by == "_StopAfter" and len(res.history) == 2 and res.iters == 8 == cb.steps
    assert (cb.started, cb.ended) == (1, 1)
    assert train(small_model(), data, rec, device="cpu", progress=False).stopped_by is None
    # crash in epoch 3 of a run whose callback stops at 4: the resumed callback has counted every step exactly once
    ck = tmp_path / "ck.pt"

    def die(state):
        if state.step == 10:
            raise _Crash

    with pytest.raises(_Crash):
        train(small_model(), data, rec, device="cpu", progress=False, checkpoint=ck, callbacks=[_StopAfter(4), die])
    cb2 = _StopAfter(4)
    res = train(small_model(), data, rec, device="cpu", progress=False, checkpoint=ck, callbacks=[cb2, lambda s: None])
    assert cb2.steps == res.iters == 16 and res.stopped_by == "_StopAfter"


def test_capture_weights_keeps_the_state_after_step_k(data):
    from pags_core.training import CaptureWeights

    cap = CaptureWeights(3)
    seen = {}
    model = small_model()
    train(model, data, FAST, device="cpu", progress=False,
          callbacks=[cap, lambda s: seen.setdefault(s.step, {k: v.clone() for k, v in s.model.state_dict().items()})])
    assert all(torch.equal(cap.weights[k], seen[3][k]) for k in seen[3])
    assert not all(torch.equal(cap.weights[k], seen[4][k]) for k in seen[4])
    with pytest.raises(ValueError, match="positive int"):
        CaptureWeights(0)


def test_a_plain_dict_mask_is_refused(data):
    model = small_model()
    with pytest.raises(TypeError, match="pags_core.Mask"):
        train(model, data, FAST, mask={n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()})
