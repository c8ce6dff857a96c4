"""Bad input, case by case: every public entry point outside the spectral engine, the run store and the chapter
parameters either refuses a bad value with a clear error of the documented type whose message names the offending
value, or (for a damaged store file) warns naming the file and recomputes.  Nothing silent, no bare library
traceback.  The cases follow the probe of issue 15 (items 2-8)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

import pags_core as pc
from pags_core import Mask
from pags_core.experiments import (CHAPTER_PARAMETERS, DataSpec, ExecSpec, ItopSpec, ModelSpec, ParameterError, Plan,
                                   PlanIncomplete, Pretrain, PruneSpec, SamplingSpec, TrainSpec, configure,
                                   execute_unit, make_executor, resolve, run_plan)
from pags_core.methods.pags import population_sample, sample_seed
from pags_core.store import CorruptRunError, RunStore, canonical

pytestmark = pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op:UserWarning")

NAN, INF = float("nan"), float("inf")


def net() -> nn.Module:
    """Two prunable layers, ``0.weight`` (4, 3, 3, 3) and ``3.weight`` (10, 144), for 3x8x8 inputs."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10), nn.LogSoftmax(1))


def broken(value: float) -> nn.Module:
    """:func:`net` with one weight of its first layer set to ``value`` (a diverged run, an fp16 overflow)."""
    m = net()
    with torch.no_grad():
        m[0].weight[0, 0, 0, 0] = value
    return m


DATA = pc.load_dataset("synthetic", n_train=64, n_test=16)
BATCHES = DATA.sample_batches(2, 16)
FAST = pc.Recipe("fast", batch_size=32, epochs=1, schedule="constant", milestones=())


def ones(name: str, shape) -> Mask:
    return Mask({name: torch.ones(shape, dtype=torch.bool)})


def check(call, error: type, *shown: str):
    """``call()`` raises exactly ``error`` (or a subclass) and its message contains every string of ``shown``."""
    with pytest.raises(error) as info:
        call()
    msg = str(info.value)
    for s in shown:
        assert s in msg, f"{s!r} is not named in: {msg}"
    return info.value


def cases(*rows):
    """``(id, call, error, *shown)`` rows as pytest params."""
    return [pytest.param(call, error, shown, id=i) for i, call, error, *shown in rows]


# ---- generators (issue 15 item 2: non-finite weights and scores; noise/temperature validation) --------------------
GENERATORS = cases(
    ("magnitude-noise-nan", lambda: pc.generate_mask(net(), "magnitude", 0.1, noise=NAN), ValueError, "noise", "nan"),
    ("magnitude-noise-negative", lambda: pc.generate_mask(net(), "magnitude", 0.1, noise=-1), ValueError, "got -1"),
    ("magnitude-noise-string", lambda: pc.generate_mask(net(), "magnitude", 0.1, noise="x"), ValueError, "'x'"),
    ("magnitude-noise-bool", lambda: pc.generate_mask(net(), "magnitude", 0.1, noise=True), ValueError, "True"),
    ("grasp-temperature-0", lambda: pc.generate_mask(net(), "grasp", 0.1, batches=BATCHES, temperature=0),
     ValueError, "'grasp'", "temperature", "got 0"),
    ("grasp-temperature-nan", lambda: pc.generate_mask(net(), "grasp", 0.1, batches=BATCHES, temperature=NAN),
     ValueError, "temperature", "nan"),
    ("grasp-temperature-string", lambda: pc.generate_mask(net(), "grasp", 0.1, batches=BATCHES, temperature="x"),
     ValueError, "temperature", "'x'"),
    ("snip-nan-weight", lambda: pc.generate_mask(broken(NAN), "snip", 0.1, batches=BATCHES), ValueError,
     "snip", "0.weight (1 NaN)"),
    ("magnitude-inf-weight", lambda: pc.generate_mask(broken(INF), "magnitude", 0.1), ValueError,
     "magnitude", "0.weight (1 +inf)"),
    ("synflow-nan-weight", lambda: pc.generate_mask(broken(NAN), "synflow", 0.1, input_shape=(3, 8, 8), rounds=2),
     ValueError, "synflow", "0.weight (1 NaN)"),
    ("grasp-neg-inf-weight", lambda: pc.generate_mask(broken(-INF), "grasp", 0.1, batches=BATCHES), ValueError,
     "grasp", "0.weight (1 -inf)"),
    ("nan-batch", lambda: pc.generate_mask(net(), "snip", 0.1, batches=[(torch.full((2, 3, 8, 8), NAN),
                                                                         torch.zeros(2, dtype=torch.long))]),
     ValueError, "batch 0 inputs (384 NaN)"),
    ("density-0", lambda: pc.generate_mask(net(), "random", 0), ValueError, "density", "got 0"),
    ("density-above-1", lambda: pc.generate_mask(net(), "random", 1.5), ValueError, "1.5"),
    ("density-nan", lambda: pc.generate_mask(net(), "random", NAN), ValueError, "nan"),
    ("density-bool", lambda: pc.generate_mask(net(), "random", True), ValueError, "True"),
    ("density-word", lambda: pc.generate_mask(net(), "random", "half"), ValueError, "'half'"),
    ("seed-fraction", lambda: pc.generate_mask(net(), "random", 0.1, seed=1.5), ValueError, "seed", "1.5"),
    ("scope-unknown", lambda: pc.generate_mask(net(), "random", 0.1, scope="layer"), ValueError, "'layer'", "local"),
    ("rounds-0", lambda: pc.generate_mask(net(), "synflow", 0.1, rounds=0, input_shape=(3, 8, 8)), ValueError,
     "rounds", "got 0"),
    ("erk-unknown-option", lambda: pc.generate_mask(net(), "erk", 0.1, temperature=1), TypeError,
     "'erk'", "temperature", "bernoulli, power"),
    ("erk-power-negative", lambda: pc.generate_mask(net(), "erk", 0.1, power=-1), ValueError, "power", "-1"),
    ("erk-bernoulli-string", lambda: pc.generate_mask(net(), "erk", 0.1, bernoulli="yes"), ValueError, "'yes'"),
    ("synflow-input-shape", lambda: pc.generate_mask(net(), "synflow", 0.1, input_shape=(0, 3)), ValueError,
     "input_shape", "(0, 3)"),
    ("snip-without-batches", lambda: pc.generate_mask(net(), "snip", 0.1), ValueError, "'snip' needs data"),
    ("snip-empty-batches", lambda: pc.generate_mask(net(), "snip", 0.1, batches=[]), ValueError, "batches is empty"),
    ("unknown-generator", lambda: pc.generate_mask(net(), "snipp", 0.1), KeyError, "'snipp'", "snip"),
    ("erk-zero-size-layer", lambda: pc.erk_densities({"a": (0, 3), "b": (4, 4)}, 0.1), ValueError, "a (0, 3)"),
    ("zero-size-model-layer", lambda: pc.generate_mask(nn.Sequential(nn.Linear(0, 3), nn.LogSoftmax(1)), "erk", 0.5),
     ValueError, "0.weight (3, 0)"),
    ("no-prunable-layer", lambda: pc.generate_mask(nn.Sequential(nn.ReLU()), "random", 0.1), ValueError,
     "Sequential has no prunable layer"),
    ("compute-scores-erk", lambda: pc.compute_scores(net(), "erk"), ValueError, "'erk' is not score-based"),
    ("compute-scores-prefixed-mask", lambda: pc.compute_scores(net(), "magnitude",
                                                               mask=ones("module.0.weight", (4, 3, 3, 3))),
     ValueError, "'module.0.weight'", "DataParallel"),
    ("select-topk-nan", lambda: pc.select_topk({"a": torch.tensor([1.0, NAN])}, 0.5), ValueError, "a (1 NaN)"),
)


@pytest.mark.parametrize("call, error, shown", GENERATORS)
def test_generators(call, error, shown):
    check(call, error, *shown)


# ---- masks against the model (issue 15 item 3) ---------------------------------------------------------------------
MASKS = cases(
    ("soft-value", lambda: Mask({"0.weight": torch.full((2,), 0.5)}), ValueError, "'0.weight'", "0.5", "threshold"),
    ("nan-value", lambda: Mask({"0.weight": torch.tensor([1.0, NAN])}), ValueError, "'0.weight'", "1 NaN"),
    ("threshold-nan", lambda: Mask({"a": torch.ones(2)}, threshold=NAN), ValueError, "threshold", "nan"),
    ("key-not-a-name", lambda: Mask({0: torch.ones(2)}), TypeError, "int"),
    ("value-not-a-tensor", lambda: Mask({"a": [1, 0]}), TypeError, "list", "'a'"),
    ("empty-density", lambda: Mask().density, ValueError, "empty"),
    ("dataparallel-prefix", lambda: pc.check_mask(ones("module.0.weight", (4, 3, 3, 3)), net()), ValueError,
     "'module.0.weight'", "strip it"),
    ("bias-key", lambda: pc.check_mask(ones("0.bias", (4,)), net()), ValueError, "'0.bias'", "Conv2d"),
    ("typo-key", lambda: pc.check_mask(ones("3.weigth", (10, 144)), net()), ValueError, "'3.weigth' -> '3.weight'"),
    ("other-models-mask", lambda: pc.check_mask(ones("conv1.weight", (4, 3, 3, 3)), net()), ValueError,
     "'conv1.weight'", "another model"),
    ("wrong-shape", lambda: pc.check_mask(ones("0.weight", (4, 3, 3)), net()), ValueError, "(4, 3, 3)", "(4, 3, 3, 3)"),
    ("incomplete", lambda: pc.check_mask(ones("0.weight", (4, 3, 3, 3)), net(), complete=True), ValueError,
     "'3.weight'"),
    ("not-a-mapping", lambda: pc.check_mask([1], net()), TypeError, "list"),
    ("apply-unknown-key", lambda: ones("x.weight", (2,)).apply_(net()), ValueError, "'x.weight'"),
)


@pytest.mark.parametrize("call, error, shown", MASKS)
def test_masks(call, error, shown):
    check(call, error, *shown)


def test_a_garbage_mask_file_is_named(tmp_path):
    p = tmp_path / "mask.pt"
    p.write_bytes(b"not a torch file")
    check(lambda: Mask.load(p), ValueError, str(p), "regenerate")
    check(lambda: Mask.load(tmp_path / "none.pt"), FileNotFoundError, "none.pt")


# ---- training (item 8: a plain dict as mask, fractional seed or epoch count) ---------------------------------------
def fit(**kw):
    kw = {"device": "cpu", "progress": False, **kw}
    return pc.train(net(), kw.pop("data", DATA), kw.pop("recipe", FAST), **kw)


def without(split: str):
    """:data:`DATA` with ``split`` emptied."""
    empty = pc.Split(torch.zeros(0, 3, 8, 8), torch.zeros(0, dtype=torch.long))
    return dataclasses.replace(DATA, **{split: empty})


TRAINING = cases(
    ("dict-mask", lambda: fit(mask={"0.weight": torch.ones(4, 3, 3, 3, dtype=torch.bool)}), TypeError, "dict",
     "Mask(dict_of_bool_tensors)"),
    ("mask-of-another-model", lambda: fit(mask=ones("conv1.weight", (4, 3, 3, 3))), ValueError, "'conv1.weight'"),
    ("epochs-fraction", lambda: fit(epochs=1.5), ValueError, "epochs", "1.5"),
    ("epochs-0", lambda: fit(epochs=0), ValueError, "epochs", "got 0"),
    ("epochs-bool", lambda: fit(epochs=True), ValueError, "True"),
    ("seed-fraction", lambda: fit(seed=1.5), ValueError, "seed", "1.5"),
    ("seed-negative", lambda: fit(seed=-1), ValueError, "seed", "-1"),
    ("max-iters-negative", lambda: fit(max_iters=-1), ValueError, "max_iters", "-1"),
    ("recipe-unknown", lambda: fit(recipe="bok"), KeyError, "'bok'", "book"),
    ("data-not-splits", lambda: fit(data=[1, 2]), TypeError, "list"),
    ("data-unknown-name", lambda: fit(data="imagenet"), KeyError, "'imagenet'", "mnist5k"),
    ("amp-word", lambda: fit(amp="maybe"), ValueError, "amp", "'maybe'"),
    ("channels-last-word", lambda: fit(channels_last="x"), ValueError, "channels_last", "'x'"),
    ("device-unknown", lambda: fit(device="tpu"), ValueError, "'tpu'", "'cuda'"),
    ("device-a-number", lambda: pc.resolve_device(3.5), ValueError, "3.5", "'cpu'"),
    ("device-bad-index", lambda: pc.resolve_device("cuda:x"), ValueError, "'cuda:x'"),
    ("empty-training-split", lambda: fit(data=without("train")), ValueError, "training split of 'synthetic'"),
    ("empty-test-split", lambda: fit(data=without("test")), ValueError, "test split of 'synthetic'"),
    ("evaluate-nothing", lambda: pc.evaluate(net(), [], "cpu"), ValueError, "no examples"),
    ("callback-not-callable", lambda: fit(callbacks=[3]), TypeError, "int"),
    ("recipe-lr-nan", lambda: pc.Recipe("r", lr=NAN), ValueError, "'r'", "lr", "nan"),
    ("recipe-lr-negative", lambda: pc.Recipe("r", lr=-0.1), ValueError, "lr", "-0.1"),
    ("recipe-batch-0", lambda: pc.Recipe("r", batch_size=0), ValueError, "batch_size", "got 0"),
    ("recipe-epochs-fraction", lambda: pc.Recipe("r", epochs=2.5), ValueError, "epochs", "2.5"),
    ("recipe-momentum-2", lambda: pc.Recipe("r", momentum=2.0), ValueError, "momentum", "2.0"),
    ("recipe-nesterov-without-momentum", lambda: pc.Recipe("r", nesterov=True, momentum=0), ValueError,
     "momentum=0"),
    ("recipe-milestone-beyond-the-run", lambda: pc.Recipe("r", milestones=(0.5, 2.0)), ValueError, "(0.5, 2.0)"),
    ("recipe-weight-decay-string", lambda: pc.Recipe("r", weight_decay="5e-4"), ValueError, "'5e-4'"),
    ("recipe-replace-gamma-0", lambda: FAST.replace(gamma=0), ValueError, "gamma", "got 0"),
    ("recipe-schedule-unknown", lambda: pc.Recipe("r", schedule="step"), ValueError, "'step'", "multistep"),
    ("capture-step-0", lambda: pc.CaptureWeights(0), ValueError, "got 0"),
)


@pytest.mark.parametrize("call, error, shown", TRAINING)
def test_training(call, error, shown):
    check(call, error, *shown)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_a_gpu_is_named():
    check(lambda: fit(device="cuda"), ValueError, "'cuda'", "CUDA is not available")


class _Killed(RuntimeError):
    pass


def _die_in_epoch_2(state):
    if state.step == state.steps_per_epoch + 1:  # after the first epoch's checkpoint was written
        raise _Killed


def test_a_checkpoint_of_another_mask_is_refused_naming_the_field(tmp_path):
    ck = tmp_path / "checkpoint.pt"
    two = FAST.replace(epochs=2)
    with pytest.raises(_Killed):
        fit(recipe=two, mask=Mask.ones(net()), checkpoint=ck, callbacks=_die_in_epoch_2)
    other = Mask.ones(net())
    other["0.weight"][0, 0, 0, 0] = False
    check(lambda: fit(recipe=two, mask=other, checkpoint=ck), ValueError, str(ck), "another run", "mask_digest")
    check(lambda: fit(recipe=two, seed=1, mask=Mask.ones(net()), checkpoint=ck), ValueError, "seed: checkpoint 0")


def test_a_stale_corrupt_training_checkpoint_is_named_and_the_run_starts_over(tmp_path):
    ck = tmp_path / "checkpoint.pt"
    ck.write_bytes(b"\x80\x02truncated")
    with pytest.warns(RuntimeWarning, match=str(ck)):
        res = fit(checkpoint=ck)
    assert res.test_acc == fit().test_acc and not ck.exists()


def pags_run(checkpoint):
    return run_pags(population=2, chunk=1, checkpoint=checkpoint)


@pytest.mark.parametrize("content", [b"\x80\x02truncated", b""], ids=["truncated", "empty"])
def test_a_stale_corrupt_pags_checkpoint_is_named_and_the_run_starts_over(tmp_path, content):
    ck = tmp_path / "pags.pt"
    ck.write_bytes(content)
    with pytest.warns(RuntimeWarning, match=f"PAGS checkpoint {ck} is unreadable"):
        res = pags_run(ck)
    assert res.mask == pags_run(None).mask


@pytest.mark.parametrize("run", [pags_run, lambda ck: fit(checkpoint=ck)], ids=["pags", "train"])
@pytest.mark.parametrize("other", [[1, 2], {"format": "something else"}], ids=["a-list", "another-format"])
def test_a_checkpoint_of_another_kind_is_refused_naming_the_file(tmp_path, run, other):
    ck = tmp_path / "checkpoint.pt"
    torch.save(other, ck)
    check(lambda: run(ck), ValueError, str(ck), "is not a", "checkpoint", "delete it")
    assert ck.exists()  # never deleted: it may belong to something else


@pytest.mark.parametrize("run", [pags_run, lambda ck: fit(checkpoint=ck)], ids=["pags", "train"])
def test_a_folder_as_checkpoint_is_refused_before_any_work(tmp_path, run):
    check(lambda: run(tmp_path), ValueError, f"{tmp_path} is a folder", "checkpoint.pt")


# ---- data (item 6: offline CIFAR; item 8: an empty training split, fractional seeds) -------------------------------
DATA_CASES = cases(
    ("val-fraction-above-half", lambda: pc.load_dataset("synthetic", val_fraction=0.6), ValueError, "0.6"),
    ("val-fraction-nan", lambda: pc.load_dataset("synthetic", val_fraction=NAN), ValueError, "nan"),
    ("val-fraction-string", lambda: pc.load_dataset("synthetic", val_fraction="0.1"), TypeError, "'0.1'"),
    ("seed-fraction", lambda: pc.load_dataset("synthetic", seed=1.5), ValueError, "seed", "1.5"),
    ("seed-negative", lambda: pc.load_dataset("synthetic", seed=-1), ValueError, "seed", "-1"),
    ("download-string", lambda: pc.load_dataset("synthetic", download="yes"), TypeError, "'yes'"),
    ("option-typo", lambda: pc.load_dataset("mnist5k", imagesize=8), TypeError, "'imagesize'", "'image_size'"),
    ("n-train-0", lambda: pc.load_dataset("synthetic", n_train=0), ValueError, "n_train", "got 0"),
    ("image-size-fraction", lambda: pc.load_dataset("synthetic", image_size=2.5), ValueError, "image_size", "2.5"),
    ("noise-negative", lambda: pc.load_dataset("synthetic", noise=-1.0), ValueError, "noise", "-1.0"),
    ("empty-validation-split", lambda: pc.load_dataset("synthetic", n_train=4, val_fraction=0.1), ValueError,
     "val_fraction=0.1", "empty validation split"),
    ("empty-test-split", lambda: pc.load_dataset("mnist5k", test_fraction=0.0001), ValueError, "'mnist5k'",
     "empty test split", "test_fraction"),
    ("unknown-data-set", lambda: pc.load_dataset("imagenet"), KeyError, "'imagenet'", "cifar10"),
    ("root-not-a-path", lambda: pc.load_dataset("cifar10", root=3), TypeError, "root", "3"),
    ("sample-batches-0", lambda: DATA.sample_batches(0, 16), ValueError, "got 0"),
    ("sample-batch-too-big", lambda: DATA.sample_batches(1, 1000), ValueError, "1000", "64 training images"),
    ("batch-size-fraction", lambda: DATA.train_batches(1.5), ValueError, "1.5"),
)


@pytest.mark.parametrize("call, error, shown", DATA_CASES)
def test_data(call, error, shown):
    check(call, error, *shown)


@pytest.mark.parametrize("call", [pc.load_dataset, pc.stage_dataset], ids=["load", "stage"])
@pytest.mark.parametrize("name, folder", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_offline_cifar_names_the_folder_and_the_fix(tmp_path, call, name, folder):
    check(lambda: call(name, root=tmp_path), FileNotFoundError, str(tmp_path / folder), "download=True")


# ---- models ----------------------------------------------------------------------------------------------------------
MODELS = cases(
    ("width-0", lambda: pc.make_model("resnet18", num_classes=10, width=0), ValueError, "width", "0"),
    ("width-string", lambda: pc.make_model("resnet18", num_classes=10, width="x"), ValueError, "'x'"),
    ("classes-fraction", lambda: pc.make_model("resnet18", num_classes=1.5), ValueError, "num_classes", "1.5"),
    ("channels-0", lambda: pc.make_model("resnet18", num_classes=10, in_channels=0), ValueError, "in_channels"),
    ("init-unknown", lambda: pc.make_model("resnet18", num_classes=10, init="kaiming"), ValueError, "'kaiming'"),
    ("torchvision-width", lambda: pc.make_model("resnet34_tv", num_classes=10, width=0.5), ValueError,
     "'resnet34_tv'", "width=0.5"),
    ("unknown-model", lambda: pc.make_model("resnet99", num_classes=10), KeyError, "'resnet99'", "resnet18"),
)


@pytest.mark.parametrize("call, error, shown", MODELS)
def test_models(call, error, shown):
    check(call, error, *shown)


# ---- methods: PAGS/PEGS, LTH, Early-Bird (item 8) -------------------------------------------------------------------
def run_pags(model=None, data=DATA, generator="erk", density=0.1, **kw):
    kw = {"population": 1, "device": "cpu", "progress": False, **kw}
    return pc.pags(net() if model is None else model, data, generator, density, **kw)


def run_pegs(iters=2, **kw):
    return pc.pegs(net(), DATA, "erk", 0.1, iters, **{"population": 1, "device": "cpu", "progress": False, **kw})


def run_lth(**kw):
    kw = {"rounds": 1, "recipe": FAST, "device": "cpu", "progress": False, **kw}
    return pc.lth(net(), DATA, kw.pop("density", 0.1), **kw)


def run_eb(**kw):
    kw = {"recipe": FAST, "device": "cpu", "progress": False, "max_epochs": 1, **kw}
    return pc.early_bird(net(), DATA, kw.pop("density", 0.1), **kw)


METHODS = cases(
    ("pags-population-negative", lambda: run_pags(population=-1), ValueError, "population", "-1"),
    ("pags-population-fraction", lambda: run_pags(population=1.5), ValueError, "population", "1.5"),
    ("pags-chunk-0", lambda: run_pags(chunk=0), ValueError, "chunk", "got 0"),
    ("pags-rule-unknown", lambda: run_pags(rule="best"), ValueError, "'best'", "dominance"),
    ("pags-selection-unknown", lambda: run_pags(selection="global"), ValueError, "'global'", "layerwise"),
    ("pags-density-0", lambda: run_pags(density=0), ValueError, "density", "got 0"),
    ("pags-generator-unknown", lambda: run_pags(generator="snipp"), KeyError, "'snipp'"),
    ("pags-snip-without-data", lambda: run_pags(data=None, generator="snip"), ValueError, "'snip'", "data="),
    ("pags-foreign-baseline-mask", lambda: run_pags(baseline_mask=ones("conv1.weight", (4, 3, 3, 3))), ValueError,
     "baseline_mask", "conv1.weight"),
    ("pags-rounds-0", lambda: run_pags(generator="synflow", rounds=0), ValueError, "rounds", "got 0"),
    ("pags-option-of-another-generator", lambda: run_pags(temperature=3), TypeError, "'erk'", "temperature"),
    ("pags-no-prunable-layer", lambda: run_pags(model=nn.Sequential(nn.ReLU())), ValueError, "no prunable layer"),
    ("pags-noise-word", lambda: run_pags(generator="magnitude", noise="x"), ValueError, "noise", "'x'"),
    ("pags-noise-nan", lambda: run_pags(generator="magnitude", noise=NAN), ValueError, "noise", "nan"),
    ("pags-seed-fraction", lambda: run_pags(seed=1.5), ValueError, "seed", "1.5"),
    ("pags-seed-negative", lambda: run_pags(seed=-1), ValueError, "seed", "-1"),
    ("pags-score-batches-0", lambda: run_pags(generator="snip", score_batches=0), ValueError, "score_batches",
     "got 0"),
    ("pags-score-batch-size-0", lambda: run_pags(generator="snip", score_batch_size=0), ValueError,
     "score_batch_size", "got 0"),
    ("pags-baseline-batches-fraction", lambda: run_pags(generator="snip", baseline_batches=0.5), ValueError,
     "baseline_batches", "0.5"),
    ("pags-baseline-mask-a-dict", lambda: run_pags(baseline_mask={"0.weight": torch.ones(4, 3, 3, 3)}), TypeError,
     "baseline_mask", "dict"),
    ("baseline-ticket-seed-fraction", lambda: pc.baseline_ticket(net(), DATA, "erk", 0.1, seed=2.5, device="cpu"),
     ValueError, "seed", "2.5"),
    ("population-sample-batches-0", lambda: population_sample(
        net(), DATA, "snip", 0.1, 0, score_batches=0, device="cpu"), ValueError, "score_batches", "got 0"),
    ("sample-seed-negative", lambda: sample_seed(-3, 0), ValueError, "seed", "-3"),
    ("sample-index-negative", lambda: sample_seed(0, -1), ValueError, "sample index", "-1"),
    ("empty-population", lambda: pc.mask_metrics(net(), [], device="cpu"), ValueError, "no masks"),
    ("pegs-iters-negative", lambda: run_pegs(-1), ValueError, "pre-training iterations", "-1"),
    ("pegs-iters-fraction", lambda: run_pegs(1.5), ValueError, "1.5"),
    ("pegs-recipe-unknown", lambda: run_pegs(recipe="fastest"), KeyError, "'fastest'"),
    ("pegs-pretrain-seed-fraction", lambda: run_pegs(pretrain_seed=1.5), ValueError, "seed", "1.5"),
    ("pegs-theta-n-of-another-model", lambda: run_pegs(pretrained={"conv1.weight": torch.ones(1)}), ValueError,
     "pretrained", "Sequential", '"0.weight"'),
    ("pegs-theta-n-not-a-dict", lambda: run_pegs(pretrained=[1]), ValueError, "pretrained", "list"),
    ("lth-rounds-0", lambda: run_lth(rounds=0), ValueError, "LTH rounds", "got 0"),
    ("lth-rounds-fraction", lambda: run_lth(rounds=1.5), ValueError, "1.5"),
    ("lth-rounds-bool", lambda: pc.lth_densities(0.1, True), ValueError, "True"),
    ("lth-density-0", lambda: run_lth(density=0), ValueError, "density", "got 0"),
    ("lth-rewind-negative", lambda: run_lth(rewind_iter=-1), ValueError, "rewind_iter", "-1"),
    ("lth-rewind-fraction", lambda: run_lth(rewind_iter=1.5), ValueError, "rewind_iter", "1.5"),
    ("lth-rewind-beyond-the-run", lambda: run_lth(rewind_iter=10 ** 6), ValueError, "rewind_iter=1000000",
     "2 optimiser steps"),
    ("lth-epochs-fraction", lambda: run_lth(epochs=1.5), ValueError, "epochs", "1.5"),
    ("lth-round-1-without-mask", lambda: pc.lth_round(net(), DATA, 1, [0.5, 0.1], recipe=FAST, device="cpu"),
     ValueError, "round 1 needs"),
    ("lth-round-0-with-mask", lambda: pc.lth_round(net(), DATA, 0, [0.5], mask=Mask.ones(net()), recipe=FAST,
                                                   device="cpu"), ValueError, "mask=None"),
    ("lth-round-beyond-the-schedule", lambda: pc.lth_round(net(), DATA, 2, [0.5, 0.1], recipe=FAST, device="cpu"),
     ValueError, "round r", "[0, 1]", "got 2"),
    ("lth-round-negative", lambda: pc.lth_round(net(), DATA, -1, [0.5, 0.1], recipe=FAST, device="cpu"),
     ValueError, "round r", "got -1"),
    ("lth-round-bad-density", lambda: pc.lth_round(net(), DATA, 0, [0.5, 2.0], recipe=FAST, device="cpu"),
     ValueError, "density", "got 2.0"),
    ("lth-round-empty-schedule", lambda: pc.lth_round(net(), DATA, 0, [], recipe=FAST, device="cpu"),
     ValueError, "densities", "[]"),
    ("mask-distance-other-shapes", lambda: pc.mask_distance(ones("a", (2,)), ones("a", (3,))), ValueError,
     "a (2,) vs (3,)"),
    ("mask-distance-other-layers", lambda: pc.mask_distance(ones("a", (2,)), ones("b", (2,))), ValueError,
     "different layers"),
    ("eb-epsilon-0", lambda: run_eb(epsilon=0), ValueError, "epsilon", "got 0"),
    ("eb-epsilon-nan", lambda: run_eb(epsilon=NAN), ValueError, "epsilon", "nan"),
    ("eb-epsilon-bool", lambda: run_eb(epsilon=True), ValueError, "True"),
    ("eb-density-2", lambda: run_eb(density=2), ValueError, "density", "got 2"),
    ("eb-max-epochs-0", lambda: run_eb(max_epochs=0), ValueError, "epochs", "got 0"),
    ("eb-max-epochs-fraction", lambda: run_eb(max_epochs=1.5), ValueError, "1.5"),
    ("selection-missing-metric", lambda: pc.select({"imdb": [1.0]}, {"imdb": [[1.0]]}), KeyError,
     "ramanujan_gap, full_spectrum"),
)


@pytest.mark.parametrize("call, error, shown", METHODS)
def test_methods(call, error, shown):
    check(call, error, *shown)


# ---- executors -------------------------------------------------------------------------------------------------------
EXECUTORS = cases(
    ("processes-workers-0", lambda: make_executor("processes", workers=0), ValueError, "workers", "got 0"),
    ("processes-workers-fraction", lambda: make_executor("processes", workers=1.5), ValueError, "1.5"),
    ("processes-gpus-negative", lambda: make_executor("processes", gpus=-1), ValueError, "gpus", "-1"),
    ("processes-option-typo", lambda: make_executor("processes", worker=4), TypeError, "'worker'", "workers"),
    ("serial-with-workers", lambda: make_executor("serial", workers=4), TypeError, "'workers'", "'serial'"),
    ("serial-threads-0", lambda: make_executor("serial", threads=0), ValueError, "threads", "got 0"),
    ("processes-threads-0", lambda: make_executor("processes", threads=0), ValueError, "threads", "got 0"),
    ("unknown-executor", lambda: make_executor("threads"), KeyError, "'threads'", "processes, serial"),
    ("not-an-executor", lambda: make_executor(42), TypeError, "int"),
)


@pytest.mark.parametrize("call, error, shown", EXECUTORS)
def test_executors(call, error, shown):
    check(call, error, *shown)


# ---- run specs: a spec that exists is a valid one -------------------------------------------------------------------
SPECS = cases(
    ("exec-auto", lambda: ExecSpec("auto"), ValueError, "'auto'"),
    ("exec-gpu", lambda: ExecSpec("gpu"), ValueError, "'gpu'", "'cpu' or 'cuda'"),
    ("exec-threads-0", lambda: ExecSpec("cpu", 0), ValueError, "threads", "got 0"),
    ("exec-threads-fraction", lambda: ExecSpec("cpu", 1.5), ValueError, "1.5"),
    ("exec-threads-bool", lambda: ExecSpec("cpu", True), ValueError, "True"),
    ("data-val-fraction", lambda: DataSpec(val_fraction=0.9), ValueError, "val_fraction", "0.9"),
    ("data-seed-fraction", lambda: DataSpec(seed=1.5), ValueError, "seed", "1.5"),
    ("data-option-typo", lambda: DataSpec("mnist5k", options={"imagesize": 8}), ValueError, "imagesize",
     "image_size"),
    ("data-unknown", lambda: DataSpec("imagenet"), KeyError, "'imagenet'"),
    ("data-option-0", lambda: DataSpec("mnist5k", options={"image_size": 0}), ValueError, "image_size", "got 0"),
    ("data-option-a-word", lambda: DataSpec("synthetic", options={"n_train": "many"}), TypeError, "n_train",
     "'many'"),
    ("data-option-nan", lambda: DataSpec("synthetic", options={"noise": NAN}), ValueError, "noise", "nan"),
    ("model-width-0", lambda: ModelSpec(width=0), ValueError, "width", "got 0"),
    ("model-classes-fraction", lambda: ModelSpec(num_classes=1.5), ValueError, "1.5"),
    ("model-init-unknown", lambda: ModelSpec(init="xavier"), ValueError, "'xavier'"),
    ("model-build-seed-fraction", lambda: ModelSpec(width=1 / 16).build(1.5), ValueError, "seed", "1.5"),
    ("model-factory-not-a-path", lambda: ModelSpec(factory="nope"), ValueError, "'nope'"),
    ("model-factory-not-callable", lambda: ModelSpec(factory="math:pi"), TypeError, "'math:pi'"),
    ("model-factory-missing-module", lambda: ModelSpec(factory="no_such_module_xyz:f"), ImportError,
     "'no_such_module_xyz'"),
    ("train-epochs-fraction", lambda: TrainSpec("book", 1.5), ValueError, "epochs", "1.5"),
    ("train-recipe-unknown", lambda: TrainSpec("bok", 1), KeyError, "'bok'"),
    ("train-max-iters-negative", lambda: TrainSpec("book", 1, max_iters=-1), ValueError, "max_iters", "-1"),
    ("prune-density-0", lambda: PruneSpec("snip", 0), ValueError, "density", "got 0"),
    ("prune-option-of-another-generator", lambda: PruneSpec("snip", 0.1, options={"temperature": 3}), ValueError,
     "'snip'", "temperature"),
    ("prune-grasp-temperature-0", lambda: PruneSpec("grasp", 0.1, options={"temperature": 0}), ValueError,
     "'grasp'", "temperature", "got 0"),
    ("prune-erk-bernoulli-word", lambda: PruneSpec("erk", 0.1, options={"bernoulli": "yes"}), ValueError,
     "bernoulli", "'yes'"),
    ("prune-batches-0", lambda: PruneSpec("snip", 0.1, batches=0), ValueError, "batches", "got 0"),
    ("prune-rounds-fraction", lambda: PruneSpec("synflow", 0.1, rounds=2.5), ValueError, "rounds", "2.5"),
    ("sampling-population-negative", lambda: SamplingSpec(-1), ValueError, "population", "-1"),
    ("sampling-noise-nan", lambda: SamplingSpec(2, noise=NAN), ValueError, "noise", "nan"),
    ("sampling-noise-negative", lambda: SamplingSpec(2, noise=-1), ValueError, "noise", "-1"),
    ("sampling-rule-unknown", lambda: SamplingSpec(2, rule="best"), ValueError, "'best'"),
    ("itop-death-rate-2", lambda: ItopSpec(0.1, 10, death_rate=2), ValueError, "death_rate", "got 2"),
    ("itop-interval-0", lambda: ItopSpec(0.1, 0), ValueError, "update_interval", "got 0"),
    ("itop-regrow-string", lambda: ItopSpec(0.1, 10, regrow_dead="no"), ValueError, "'no'"),
    ("itop-death-min-above-death", lambda: ItopSpec(0.1, 10, death_rate=0.2, death_rate_min=0.5), ValueError,
     "death_rate_min", "0.5"),
)


@pytest.mark.parametrize("call, error, shown", SPECS)
def test_specs(call, error, shown):
    check(call, error, *shown)


# ---- the run store (item 4: truncated result.json, {}, garbage artefacts) ------------------------------------------
CFG = {"model": "net", "seed": 0}


@pytest.mark.parametrize("text, said", [('{"test_acc": 0.', "result.json is unreadable"), ("", "unreadable"),
                                        ("[1, 2]", "expected a JSON object, got list"),
                                        ("{}", "missing test_acc"), ('{"test_acc": 0.5}', "missing seconds")],
                         ids=["truncated", "empty-file", "a-list", "empty-object", "a-key-missing"])
def test_a_damaged_result_is_set_aside_naming_the_file(tmp_path, text, said):
    store = RunStore(tmp_path)
    folder = store.save("train", CFG, {"test_acc": 0.5, "seconds": 1.0})
    (folder / "result.json").write_text(text)
    with pytest.warns(RuntimeWarning, match=str(folder / "result.json")) as w:
        assert not store.has("train", CFG, ("test_acc", "seconds"))
    assert said in str(w[0].message)
    assert (folder / "result.json.corrupt").read_text() == text and not (folder / "result.json").exists()


@pytest.mark.parametrize("content", [b"not a torch file", b""], ids=["garbage", "empty"])
def test_a_garbage_artefact_is_named_and_its_run_set_aside(tmp_path, content):
    store = RunStore(tmp_path)
    folder = store.save("ticket", CFG, {"density_realised": 0.1})
    (folder / "mask.pt").write_bytes(content)
    with pytest.warns(RuntimeWarning, match="mask.pt is unreadable"):
        err = check(lambda: store.read_artefact("ticket", CFG, "mask.pt", Mask.load), CorruptRunError,
                    str(folder / "mask.pt"), "recomputed")
    assert err.path == folder / "mask.pt" and not store.has("ticket", CFG)


def test_a_missing_artefact_is_named(tmp_path):
    store = RunStore(tmp_path)
    folder = store.save("ticket", CFG, {"density_realised": 0.1})
    with pytest.warns(RuntimeWarning):
        check(lambda: store.read_artefact("ticket", CFG, "mask.pt", Mask.load), CorruptRunError,
              str(folder / "mask.pt"), "missing")


@pytest.mark.parametrize("value, shown", [(object(), "object"), ({1, 2}, "set")], ids=["object", "set"])
def test_a_configuration_value_without_a_canonical_form_is_named(value, shown):
    check(lambda: canonical({"x": value}), TypeError, shown)


def pretrain_unit(dataset="synthetic", iters=2):
    opts = {"n_train": 64, "n_test": 16} if dataset == "synthetic" else {}
    data = DataSpec(dataset, options=opts)
    model = ModelSpec("resnet18", width=1 / 16, num_classes=data.num_classes, in_channels=data.in_channels)
    return Pretrain(model, data, 0, iters, pc.get_recipe("book"), ExecSpec("cpu", 1))


def test_a_units_stale_corrupt_checkpoint_is_named_and_recomputed(tmp_path):
    unit, store = pretrain_unit(), RunStore(tmp_path)
    ck = unit.artefact(store, "checkpoint.pt")
    ck.write_bytes(b"\x80\x02truncated")
    with pytest.warns(RuntimeWarning, match=f"training checkpoint {ck} is unreadable"):
        res = execute_unit(unit, str(store.root))
    assert res["iters"] == 2 and unit.done(store) and not ck.exists()


def test_a_foreign_checkpoint_in_a_units_folder_fails_that_unit_naming_it(tmp_path):
    unit, store = pretrain_unit(iters=200), RunStore(tmp_path)  # 200 one-step epochs: checkpoints
    other = dataclasses.replace(unit, seed=1)

    def die(state):
        if state.step == state.steps_per_epoch + 1:
            raise _Killed

    ck = unit.artefact(store, "checkpoint.pt")
    with pytest.raises(_Killed):
        pc.train(other.model.build(1), other.data.load(), pc.pretrain_recipe("book"), device="cpu", seed=1,
                 epochs=200, max_iters=200, checkpoint=ck, callbacks=die, progress=False)
    with pytest.raises(PlanIncomplete) as info:
        run_plan(Plan([unit]), "serial", store, progress=False)
    assert str(ck) in str(info.value) and "another run" in str(info.value) and "seed: checkpoint 1" in str(info.value)
    assert not unit.done(store) and ck.exists()


def test_a_sweep_on_missing_cifar_stops_before_any_run_naming_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PAGS_DATA", str(tmp_path / "data"))
    store = RunStore(tmp_path / "store")
    check(lambda: run_plan(Plan([pretrain_unit("cifar10")]), "serial", store, progress=False), FileNotFoundError,
          str(tmp_path / "data" / "cifar-10-batches-py"), "download=True")
    assert not (tmp_path / "store").exists()  # nothing ran, nothing was stored


def test_a_store_on_a_file_is_refused_naming_it(tmp_path):
    f = tmp_path / "results.csv"
    f.write_text("a,b\n")
    check(lambda: RunStore(f), NotADirectoryError, str(f), "is a file")
    check(lambda: RunStore(f / "store"), NotADirectoryError, str(f / "store"), f"{f} is a file")
    check(lambda: RunStore(3), TypeError, "int: 3")
    check(lambda: pegs(store=str(f)), ParameterError, "'store'", str(f))
    assert RunStore("~/some-store").root == Path.home() / "some-store"  # not a folder named "~"


def test_a_missing_run_names_its_configuration(tmp_path):
    check(lambda: RunStore(tmp_path).load("train", CFG), KeyError, "no finished train run", '"seed":0')


# ---- chapter parameters (item 7): papermill strings, ranges, unknown names -----------------------------------------
def pegs(**params):
    return resolve("pegs", **{"profile": "book", **params})


PARAMS = cases(
    ("density-0", lambda: pegs(density=0), ParameterError, "'density'", "(0, 1]", "got 0"),
    ("density-0-as-text", lambda: pegs(density="0"), ParameterError, "'density'", "got '0'"),
    ("density-word", lambda: pegs(density="half"), ParameterError, "'density'", "'half'"),
    ("density-inf", lambda: pegs(density="inf"), ParameterError, "'density'", "inf"),
    ("density-bool", lambda: pegs(density=True), ParameterError, "'density'", "True"),
    ("seeds-repeated", lambda: pegs(seeds="0,0"), ParameterError, "'seeds'", "[0, 0]"),
    ("seeds-fraction", lambda: pegs(seeds="[0, 1.5]"), ParameterError, "'seeds'", "1.5"),
    ("seeds-words", lambda: pegs(seeds="a,b"), ParameterError, "'seeds'", "'a'"),
    ("seeds-negative", lambda: pegs(seeds="[0, -1]"), ParameterError, "'seeds'", ">= 0"),
    ("seeds-empty", lambda: pegs(seeds="[]"), ParameterError, "'seeds'", "at least one"),
    ("seeds-a-number", lambda: pegs(seeds=3), ParameterError, "'seeds'", "int: 3"),
    ("seeds-bool", lambda: pegs(seeds=[True]), ParameterError, "'seeds'", "True"),
    ("epochs-fraction-text", lambda: pegs(epochs="2.5"), ParameterError, "'epochs'", "2.5"),
    ("epochs-word", lambda: pegs(epochs="two"), ParameterError, "'epochs'", "'two'"),
    ("epochs-list", lambda: pegs(epochs="[2]"), ParameterError, "'epochs'", "[2]"),
    ("epochs-0", lambda: pegs(epochs=0), ParameterError, "'epochs'", ">= 1"),
    ("population-negative", lambda: pegs(population=-1), ParameterError, "'population'", "-1"),
    ("population-word", lambda: pegs(population="many"), ParameterError, "'population'", "'many'"),
    ("threads-0", lambda: pegs(threads=0), ParameterError, "'threads'", ">= 1"),
    ("threads-fraction", lambda: pegs(threads=1.5), ParameterError, "'threads'", "1.5"),
    ("workers-word", lambda: pegs(workers="x"), ParameterError, "'workers'", "'x'"),
    ("download-2", lambda: pegs(download=2), ParameterError, "'download'", "0 or 1"),
    ("generators-unknown", lambda: pegs(generators="snip,snp"), ParameterError, "'snp'", "valid choices"),
    ("generators-empty", lambda: pegs(generators=""), ParameterError, "'generators'", "at least one"),
    ("generators-a-number", lambda: pegs(generators=3), ParameterError, "'generators'", "int: 3"),
    ("generators-repeated", lambda: pegs(generators="snip snip"), ParameterError, "'generators'", "repeats"),
    ("baselines-unknown", lambda: pegs(baselines="lth,xx"), ParameterError, "'xx'", "lth, eb"),
    ("controls-unknown", lambda: pegs(controls="shufle"), ParameterError, "'shufle'", "shuffle"),
    ("pretrain-iters-0", lambda: pegs(pretrain_iters="0"), ParameterError, "'pretrain_iters'", ">= 1"),
    ("pretrain-iters-repeated", lambda: pegs(pretrain_iters="8,8"), ParameterError, "[8, 8]"),
    ("pretrain-iters-empty", lambda: pegs(pretrain_iters=""), ParameterError, "'pretrain_iters'", "at least one"),
    ("premise-masks-1", lambda: resolve("pags", premise_masks=1), ParameterError, "'premise_masks'", ">= 2",
     "got 1"),
    ("premise-without-a-population", lambda: resolve("pags", population=1), ParameterError, "premise_masks=8",
     "population of 1"),
    ("lth-rounds-0", lambda: pegs(lth_rounds=0), ParameterError, "'lth_rounds'", ">= 1"),
    ("model-unknown", lambda: pegs(model="resnet99"), ParameterError, "'resnet99'", "resnet18"),
    ("model-a-number", lambda: pegs(model=3), ParameterError, "'model'", "int: 3"),
    ("model-empty", lambda: pegs(model=""), ParameterError, "''"),
    ("dataset-unknown", lambda: pegs(dataset="imagenet"), ParameterError, "'imagenet'", "mnist5k"),
    ("device-unknown", lambda: pegs(device="tpu"), ParameterError, "'tpu'", "auto, cpu, cuda"),
    ("executor-unknown", lambda: pegs(executor="threads"), ParameterError, "'threads'", "processes"),
    ("executor-option-typo", lambda: pegs(executor_options={"workrs": 2}), ParameterError, "'workrs'", "workers"),
    ("executor-options-threads", lambda: pegs(executor_options={"threads": 4}), ParameterError, "threads=4",
     "'threads' parameter"),
    ("executor-options-workers", lambda: pegs(executor_options={"workers": 4}), ParameterError, "workers=4"),
    ("serial-executor-options-workers", lambda: pegs(executor="serial", executor_options={"gpus": 1}),
     ParameterError, "'gpus'", "'serial'"),
    ("workers-without-a-pool", lambda: pegs(executor="serial", workers=4), ParameterError, "'workers' (4)",
     "'serial'"),
    ("data-options-bad-json", lambda: pegs(data_options="{bad"), ParameterError, "'data_options'", "'{bad'"),
    ("data-options-a-list", lambda: pegs(data_options="[1]"), ParameterError, "'data_options'", "[1]"),
    ("data-options-value-0", lambda: pegs(data_options={"image_size": 0}), ValueError, "image_size", "got 0"),
    ("data-options-typo", lambda: pegs(data_options={"imagesize": 8}), ValueError, "imagesize", "image_size"),
    ("store-a-number", lambda: pegs(store=3), ParameterError, "'store'", "int: 3"),
    ("unknown-parameter", lambda: pegs(lr=0.1), ParameterError, "'lr'", "population"),
    ("another-chapters-parameter", lambda: pegs(update_interval=5), ParameterError, "'update_interval'"),
    ("profile-unknown", lambda: resolve("pegs", profile="laptop"), ParameterError, "'laptop'", "book, paper"),
    ("chapter-unknown", lambda: resolve("sweep"), ParameterError, "'sweep'", "pegs"),
    ("custom-without-factory", lambda: resolve("custom", profile="book"), ParameterError, "model_factory"),
    ("custom-width-0", lambda: resolve("custom", model_factory="math:sqrt", width=0), ParameterError,
     "'width'", "> 0"),
    ("itop-snapshots-2", lambda: resolve("itop", snapshots=2), ParameterError, "'snapshots'", ">= 3"),
    ("itop-models-unknown", lambda: resolve("itop", models="resnet18,x"), ParameterError, "'x'"),
    ("itop-interval-0", lambda: resolve("itop", update_interval=0), ParameterError, "'update_interval'"),
)


@pytest.mark.parametrize("call, error, shown", PARAMS)
def test_chapter_parameters(call, error, shown):
    check(call, error, *shown)


@pytest.mark.parametrize("given, parsed", [("snip", ("snip",)), ("snip,erk", ("snip", "erk")),
                                           ("snip erk", ("snip", "erk")), ('["snip"]', ("snip",)),
                                           (["SNIP"], ("snip",))])
def test_a_generators_string_is_a_list_of_names_not_of_letters(given, parsed):
    assert pegs(generators=given).generators == parsed


def notebook_globals(**values):
    ns = {k: None for k in CHAPTER_PARAMETERS["pags"]}
    return {**ns, "profile": "book", **values}


CONFIGURE = cases(
    ("misspelt-parameter", lambda: configure("pags", notebook_globals(popluation=100)), ParameterError,
     "'popluation'", "population"),
    ("unknown-flag", lambda: configure("pags", notebook_globals(verbose=True)), ParameterError, "'verbose'"),
    ("a-cell-missing-parameters", lambda: configure("pags", {"profile": "book"}), ParameterError, "lacks", "seeds"),
    ("density-0", lambda: configure("pags", notebook_globals(density=0)), ParameterError, "'density'"),
    ("generators-as-letters", lambda: configure("pags", notebook_globals(generators="snp")), ParameterError,
     "'snp'"),
    ("chapter-unknown", lambda: configure("sweep", notebook_globals()), ParameterError, "'sweep'", "pags"),
    ("not-the-globals", lambda: configure("pags", [1]), TypeError, "list"),
)


@pytest.mark.parametrize("call, error, shown", CONFIGURE)
def test_configure(call, error, shown):
    check(call, error, *shown)
