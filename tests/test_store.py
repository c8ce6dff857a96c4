"""RunStore: canonical keys, atomic persistence, resume semantics."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from pags_core.registry import Registry
from pags_core.store import RunStore, canonical, config_key


@dataclasses.dataclass(frozen=True)
class Cfg:
    model: str = "resnet18"
    density: float = 0.02
    seeds: tuple = (0, 1)


def test_canonical_form_is_order_independent():
    assert canonical({"b": 1, "a": 2}) == canonical({"a": 2, "b": 1}) == '{"a":2,"b":1}'
    assert config_key(Cfg()) == config_key({"seeds": [0, 1], "density": 0.02, "model": "resnet18"})
    assert config_key(Cfg()) != config_key(Cfg(density=0.05))


def test_canonical_rejects_unserialisable_values():
    with pytest.raises(TypeError, match="object"):
        canonical({"x": object()})


def test_get_or_run_persists_and_resumes(tmp_path):
    store = RunStore(tmp_path)
    calls = []

    def run():
        calls.append(1)
        return {"acc": 0.5, "bad": math.inf}

    first = store.get_or_run("train", Cfg(), run)
    second = RunStore(tmp_path).get_or_run("train", Cfg(), run)  # a fresh process would see the same files
    assert len(calls) == 1
    assert first == second == {"acc": 0.5, "bad": "inf"}
    assert [c["density"] for c, _ in store.runs("train")] == [0.02]


def test_a_crashed_run_is_not_recorded(tmp_path):
    store = RunStore(tmp_path)

    def crash():
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.get_or_run("train", Cfg(), crash)
    assert not store.has("train", Cfg())
    assert store.get_or_run("train", Cfg(), lambda: {"acc": 1.0}) == {"acc": 1.0}


def test_registry_errors_name_the_value_and_the_choices():
    r = Registry("model")
    r.register("ResNet18", 1)
    r.register("vgg16", 2)
    assert r["resnet18"] == 1 and "RESNET18" in r
    with pytest.raises(KeyError, match=r"unknown model 'resnet50'; valid choices: resnet18, vgg16"):
        r["resnet50"]
    with pytest.raises(ValueError, match="already registered"):
        r.register("VGG16", 3)


def test_contents_leaves_out_wall_clock_times_logs_and_leases_only(tmp_path):
    from pags_core.store import untimed

    assert untimed({"seconds": 1.0, "elapsed": 2, "wall_s": 3, "dst_seconds": 4, "test_acc": 0.9,
                    "history": [{"epoch": 1, "seconds": 0.5, "val_acc": 0.8}], "sizes": [1, 2]}) == \
        {"test_acc": 0.9, "history": [{"epoch": 1, "val_acc": 0.8}], "sizes": [1, 2]}
    a, b = RunStore(tmp_path / "a"), RunStore(tmp_path / "b")
    for store, secs in ((a, 1.0), (b, 7.0)):
        store.save("train", {"seed": 0}, {"test_acc": 0.5, "seconds": secs})
        torch.save({"w": torch.tensor([1.0, 0.0])}, store.artefact("train", {"seed": 0}, "mask.pt"))
        (store.path("train", {"seed": 0}) / "log.txt").write_text(f"took {secs}")
    assert a.contents() == b.contents()
    assert sorted(a.contents()) == [f"train/{config_key({'seed': 0})}/{f}" for f in ("config.json", "mask.pt",
                                                                                      "result.json")]
    torch.save({"w": torch.tensor([1.0, -0.0])}, b.artefact("train", {"seed": 0}, "mask.pt"))
    assert a.contents() != b.contents()  # equal in value, not bit for bit
