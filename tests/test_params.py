"""Chapter parameters: profiles, per-chapter deviations, papermill strings, unknown and ill-typed parameters."""
from __future__ import annotations

import pytest

from pags_core.experiments import PARAMETERS, CHAPTER_PARAMETERS, ParameterError, configure, get_profile, parse_list, \
    resolve


def test_the_book_and_paper_profiles_resolve_to_specs():
    b = resolve("pegs", profile="book")
    assert (b.data.name, dict(b.data.options), b.model.name, b.model.width, b.model.in_channels) == \
        ("mnist5k", {"image_size": 14, "test_fraction": 0.2}, "resnet18", 1 / 8, 1)
    assert (b.density, b.train.recipe.name, b.train.epochs, b.exec.device, b.exec.threads) == (0.02, "book", 5, "cpu", 1)
    assert (b.executor, b.workers) == ("processes", 2) and len(b.seeds) >= 4
    p = resolve("pegs", profile="PAPER", device="cpu")
    assert (p.data.name, p.model.num_classes, p.model.in_channels, p.density, p.train.epochs) == \
        ("cifar100", 100, 3, 0.01, 250)
    assert p.pegs_iters == (100, 500) and p.rewind_iter == 500 and p.population == 2000
    assert p.sampling("synflow").noise == 1e-3 and p.sampling("snip").noise == 0.0
    r34 = resolve("pags", profile="paper", model="resnet34", device="cpu")
    assert r34.sampling("synflow").noise == 1e-6  # the authors' ResNet34 noise


def test_each_chapter_prints_only_its_own_deviations():
    itop = {d.field for d in resolve("itop", profile="book").deviations}
    pegs = {d.field for d in resolve("pegs", profile="book").deviations}
    assert {"update_interval", "snapshots", "retrain_epochs"} <= itop and "population" not in itop
    assert {"population", "pegs_iters", "lth_rounds"} <= pegs and "update_interval" not in pegs
    assert "pegs_iters" not in {d.field for d in resolve("pags", profile="book").deviations}
    # a reader who sets a field back to the papers' value no longer sees that deviation
    assert "density" not in {d.field for d in resolve("pegs", profile="book", density=0.01).deviations}
    assert resolve("pags", profile="paper", device="cpu").deviations == ()
    assert "LTH in 5 rounds" in str(resolve("pegs", profile="paper", device="cpu").deviations[0])


def test_papermill_strings_and_none_mean_the_profiles_value():
    c = resolve("pegs", profile="book", seeds="[0, 1, 2]", generators="snip,erk", pretrain_iters="8 32",
                density="0.05", population="12", epochs=None)
    assert c.seeds == (0, 1, 2) and c.generators == ("snip", "erk") and c.pegs_iters == (8, 32)
    assert c.density == 0.05 and c.population == 12 and c.train.epochs == 5
    assert parse_list("snip", "g") == ["snip"] and parse_list('["a", "b"]', "g") == ["a", "b"]
    assert parse_list((1, 2), "s") == [1, 2]
    assert resolve("pegs", profile="book", dataset="cifar10").data.options == ()  # its own image size
    assert resolve("pegs", profile="book", dataset="cifar10").model.in_channels == 3


@pytest.mark.parametrize("params, match", [
    ({"populaton": 10}, r"unknown parameter\(s\) 'populaton'.*population"),
    ({"generators": "snp"}, r"'generators': unknown value\(s\) 'snp'; valid choices: .*snip"),
    ({"generators": "snip,snip"}, "repeats a value"),
    ({"seeds": "[0, 0]"}, "repeats a value"),
    ({"seeds": "[0, -1]"}, "must be >= 0"),
    ({"seeds": "[]"}, "at least one"),
    ({"seeds": 1.5}, "must be a list"),
    ({"density": 0}, r"'density' must lie in \(0, 1\]"),
    ({"density": "half"}, "'density' must be a number"),
    ({"density": float("nan")}, "finite number"),
    ({"epochs": 2.5}, "'epochs' must be an integer"),
    ({"epochs": True}, "'epochs' must be an integer"),
    ({"epochs": 0}, "must be >= 1"),
    ({"model": "resnet99"}, r"'model': unknown value.*resnet18"),
    ({"dataset": "imagenet"}, r"'dataset': unknown value.*mnist5k"),
    ({"executor": "threads"}, r"'executor': unknown value.*processes"),
    ({"workers": 0}, "must be >= 1"),
    ({"device": "tpu"}, r"'device': unknown value.*auto, cpu, cuda"),
    ({"executor_options": {"workrs": 2}}, r"unknown option\(s\) 'workrs'.*workers"),
    ({"executor_options": "[1"}, "must be a mapping"),
    ({"update_interval": 5}, r"unknown parameter\(s\) 'update_interval'"),
])
def test_bad_parameters_fail_at_once_naming_the_value(params, match):
    with pytest.raises(ParameterError, match=match):
        resolve("pegs", profile="book", **params)


def test_bad_profile_and_chapter():
    with pytest.raises(ParameterError, match="'profile': unknown value.*book, paper"):
        resolve("pegs", profile="laptop")
    with pytest.raises(ParameterError, match="unknown chapter 'sweep'"):
        resolve("sweep")
    with pytest.raises(ParameterError, match="model_factory"):
        resolve("custom", profile="book")
    with pytest.raises(KeyError, match="book, paper"):
        get_profile("laptop")


def test_configure_reads_a_notebooks_globals_and_rejects_unknown_plain_values():
    import math

    ns = {k: None for k in CHAPTER_PARAMETERS["pags"]}
    ns.update(profile="book", math=math, In=[], _private=1, __name__="__main__")
    assert configure("pags", ns).chapter == "pags"
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) 'popluation'"):
        configure("pags", {**ns, "popluation": 100})  # a misspelt -p: papermill would only warn
    with pytest.raises(ParameterError, match="lacks"):
        configure("pags", {"profile": "book"})


def test_every_parameter_is_documented_without_an_equals_sign():
    # papermill drops a parameter whose comment contains "=" from --help-notebook
    for p in PARAMETERS.values():
        assert p.doc and "=" not in p.doc, p.name
    for chapter, names in CHAPTER_PARAMETERS.items():
        assert set(names) <= set(PARAMETERS), chapter
