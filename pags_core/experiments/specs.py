"""Run specs: frozen, typed descriptions of the parts of a run (data, model, training, generator, PAGS sampling,
ITOP, execution), composed into the units of :mod:`pags_core.experiments.units`.

Every spec is a frozen dataclass of plain values, validated when it is made, so a spec that exists is a valid one.
A unit's key is derived from its specs in one place (:func:`run_key`): the canonical JSON of the whole unit, nested
specs and dependencies included, plus :data:`SCHEMA`.  Two runs that differ in any field never share a result.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..data import DATASETS, load_dataset, stage_dataset
from ..data.sources import check_dataset_options
from ..methods.selection import RULES, SELECTIONS
from ..models import MODELS, init_random, make_model
from ..pruning import GENERATORS, check_density
from ..pruning.checks import check_options
from ..registry import Registry, check_choice
from ..spectral import CONVENTIONS
from ..store import canonical, config_key
from ..training import get_recipe
from ..training.recipes import Recipe
import torch

__all__ = ["SCHEMA", "DataSpec", "ModelSpec", "TrainSpec", "PruneSpec", "SamplingSpec", "ItopSpec", "ExecSpec",
           "run_key", "load_factory"]

#: bump when a change in pags_core would change stored results (it is part of every key)
SCHEMA = 2


def run_key(unit: Any) -> str:
    """The store key of a unit: 16 hex digits of the SHA-256 of its canonical form (kind, schema, every field)."""
    return config_key(key_config(unit))


def key_config(unit: Any) -> dict:
    """The canonical configuration a unit's key is computed from."""
    return {"schema": SCHEMA, "unit": unit}


def _int(value: Any, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _num(value: Any, what: str, lo: float = -math.inf, hi: float = math.inf, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    v = float(value)
    if v < lo or v > hi or (lo_open and v == lo):
        left = "(" if lo_open else "["
        raise ValueError(f"{what} must lie in {left}{lo:g}, {hi:g}], got {value!r}")
    return v


def _name(reg: Registry, value: Any) -> str:
    reg[value]  # KeyError listing the valid names (TypeError for a non-string)
    return value.lower()


def _options(opts: Any) -> tuple:
    """A sorted tuple of (name, value) pairs from a mapping or pairs (hashable, canonical)."""
    items = dict(opts).items() if not isinstance(opts, tuple) else opts
    return tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in items))


# ----------------------------------------------------------------------------------------------------------------
# data and model
# ----------------------------------------------------------------------------------------------------------------
#: (input channels, classes) of the registered data sets, known without loading them (a login node plans CIFAR runs
#: without the files); ``synthetic`` reads them from its options.
_DATA_SHAPES = {"mnist5k": (1, 10), "digits": (1, 10), "cifar10": (3, 10), "cifar100": (3, 100)}


@dataclass(frozen=True)
class DataSpec:
    """A data set by name (:data:`pags_core.DATASETS`) with its split settings and loader ``options``
    (e.g. ``image_size``; for ``synthetic`` its shape and size)."""

    name: str = "mnist5k"
    val_fraction: float = 0.1
    seed: int = 0
    options: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "name", _name(DATASETS, self.name))
        object.__setattr__(self, "val_fraction", _num(self.val_fraction, "val_fraction", 0.0, 0.5))
        object.__setattr__(self, "seed", _int(self.seed, "data seed"))
        opts = _options(self.options)
        allowed = [p for p in inspect.signature(DATASETS[self.name]).parameters
                   if p not in ("root", "download", "val_fraction", "seed")]
        bad = [k for k, _ in opts if k not in allowed]
        if bad:
            raise ValueError(f"data set {self.name!r} has no option(s) {', '.join(bad)}; its options: "
                             f"{', '.join(allowed) or 'none'}")
        check_dataset_options(self.name, dict(opts))  # the values too, before any run loads the data
        object.__setattr__(self, "options", opts)

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    @property
    def in_channels(self) -> int:
        if self.name == "synthetic":
            return int(self.option("in_channels", 3))
        return _DATA_SHAPES[self.name][0]

    @property
    def num_classes(self) -> int:
        if self.name == "synthetic":
            return int(self.option("num_classes", 10))
        return _DATA_SHAPES[self.name][1]

    def load(self, device: str = "cpu"):
        """The :class:`~pags_core.data.DataSplits`, loaded offline (cached per process and device)."""
        return _load_data(self, str(device))

    def stage(self, download: bool = False) -> None:
        """Make the files available before runs fan out (:func:`~pags_core.data.stage_dataset`: CIFAR is downloaded
        here, once, when ``download``); runs then always load offline."""
        stage_dataset(self.name, download=download)


@functools.lru_cache(maxsize=4)
def _load_data(spec: DataSpec, device: str):
    return load_dataset(spec.name, val_fraction=spec.val_fraction, seed=spec.seed, device=device, download=False,
                        **dict(spec.options))


def load_factory(path: str) -> Callable[..., Any]:
    """The model factory named by an import path ``"package.module:attribute"`` (or ``package.module.attribute``).
    It is called as ``factory(num_classes, in_channels, width)``, like the factories of :data:`pags_core.MODELS`."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"a model factory is an import path 'module:attribute', got {path!r}")
    mod, sep, attr = path.partition(":")
    if not sep:
        mod, _, attr = path.rpartition(".")
    if not mod or not attr:
        raise ValueError(f"a model factory is an import path 'module:attribute', got {path!r}")
    try:
        module = importlib.import_module(mod)
    except ImportError as e:
        raise ImportError(f"cannot import the model factory module {mod!r} ({e}); put it on the Python path (e.g. "
                          "next to the notebook, or install it) so that every worker can import it too") from e
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ImportError(f"module {mod!r} has no attribute {attr!r} (model factory {path!r})") from None
    if not callable(obj):
        raise TypeError(f"model factory {path!r} is not callable")
    return obj


def _source_digest(path: str) -> str:
    """SHA-256 (12 hex digits) of the source file of a factory's module: a changed model is a new run."""
    module = importlib.import_module(path.partition(":")[0] if ":" in path else path.rpartition(".")[0])
    try:
        text = inspect.getsource(module)
    except (OSError, TypeError):
        return "no-source"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ModelSpec:
    """A network: a :data:`pags_core.MODELS` name, or a reader's own ``factory`` (an import path, see
    :func:`load_factory`; ``name`` then only labels it), with ``width``, class and channel counts and the
    initialisation (``"paper"`` = both papers' ``init_random``, ``"default"`` = PyTorch's)."""

    name: str = "resnet18"
    width: float = 1.0
    num_classes: int = 10
    in_channels: int = 3
    init: str = "paper"
    factory: Optional[str] = None
    factory_digest: Optional[str] = None

    def __post_init__(self):
        if self.factory is None:
            object.__setattr__(self, "name", _name(MODELS, self.name))
        else:
            load_factory(self.factory)
            if self.factory_digest is None:
                object.__setattr__(self, "factory_digest", _source_digest(self.factory))
        object.__setattr__(self, "width", _num(self.width, "width", 0.0, math.inf, lo_open=True))
        object.__setattr__(self, "num_classes", _int(self.num_classes, "num_classes", 1))
        object.__setattr__(self, "in_channels", _int(self.in_channels, "in_channels", 1))
        if self.init not in ("paper", "default"):
            raise ValueError(f"unknown init {self.init!r}; valid choices: paper, default")

    def build(self, seed: int):
        """θ0 of ``seed``: ``torch.manual_seed(seed)``, then the model with its initialisation."""
        torch.manual_seed(_int(seed, "seed"))
        if self.factory is None:
            return make_model(self.name, num_classes=self.num_classes, in_channels=self.in_channels,
                              width=self.width, init=self.init)
        model = load_factory(self.factory)(self.num_classes, self.in_channels, self.width)
        if self.init == "paper":
            init_random(model)
        return model


# ----------------------------------------------------------------------------------------------------------------
# training, pruning, sampling, ITOP
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainSpec:
    """A training run's recipe (:class:`~pags_core.training.Recipe`), its number of epochs and an optional cap on
    optimiser steps."""

    recipe: Recipe
    epochs: int
    max_iters: Optional[int] = None

    def __post_init__(self):
        object.__setattr__(self, "recipe", get_recipe(self.recipe))
        object.__setattr__(self, "epochs", _int(self.epochs, "epochs", 1))
        if self.max_iters is not None:
            object.__setattr__(self, "max_iters", _int(self.max_iters, "max_iters", 0))


@dataclass(frozen=True)
class PruneSpec:
    """One call of a PaI generator: ``generator`` at global ``density``, scored on ``batches`` mini-batches of
    ``batch_size`` (``None`` = one pass over the training split), ``rounds`` for the iterative generators and the
    generator's extra ``options`` (e.g. GraSP's temperature)."""

    generator: str
    density: float
    batches: Optional[int] = None
    batch_size: int = 100
    rounds: int = 100
    options: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "generator", _name(GENERATORS, self.generator))
        object.__setattr__(self, "density", check_density(self.density))
        if self.batches is not None:
            object.__setattr__(self, "batches", _int(self.batches, "scoring batches", 1))
        object.__setattr__(self, "batch_size", _int(self.batch_size, "scoring batch size", 1))
        object.__setattr__(self, "rounds", _int(self.rounds, "rounds", 1))
        opts = _options(self.options)
        valid = GENERATORS[self.generator].options
        bad = [k for k, _ in opts if k not in valid]
        if bad:
            raise ValueError(f"generator {self.generator!r} has no option(s) {', '.join(bad)}; its options: "
                             f"{', '.join(valid) or 'none'}")
        check_options(self.generator, valid, dict(opts))  # the values too (GraSP's temperature > 0, ...)
        object.__setattr__(self, "options", opts)


@dataclass(frozen=True)
class SamplingSpec:
    """PAGS/PEGS sampling: ``population`` samples, each scored on ``batches`` fresh mini-batches, SynFlow/Magnitude
    with scoring-only weight ``noise``; the selection ``rule`` and ``selection`` mode and the spectral
    ``convention``."""

    population: int
    batches: int = 4
    noise: float = 0.0
    rule: str = "dominance"
    selection: str = "layerwise"
    convention: str = "neurips2023"

    def __post_init__(self):
        object.__setattr__(self, "population", _int(self.population, "population", 0))
        object.__setattr__(self, "batches", _int(self.batches, "scoring batches per sample", 1))
        object.__setattr__(self, "noise", _num(self.noise, "noise", 0.0))
        object.__setattr__(self, "rule", check_choice(self.rule, RULES, "selection rule"))
        object.__setattr__(self, "selection", check_choice(self.selection, SELECTIONS, "selection"))
        object.__setattr__(self, "convention", check_choice(self.convention, CONVENTIONS, "convention"))


@dataclass(frozen=True)
class ItopSpec:
    """ITOP-Rand dynamic sparse training (paper B's correlation study): ERK start at ``density``, a topology update
    every ``update_interval`` optimiser steps with a cosine-decayed death rate, random growth."""

    density: float
    update_interval: int
    death_rate: float = 0.5
    death_rate_min: float = 0.0
    regrow_dead: bool = False

    def __post_init__(self):
        object.__setattr__(self, "density", check_density(self.density))
        object.__setattr__(self, "update_interval", _int(self.update_interval, "update_interval", 1))
        object.__setattr__(self, "death_rate", _num(self.death_rate, "death_rate", 0.0, 1.0))
        object.__setattr__(self, "death_rate_min", _num(self.death_rate_min, "death_rate_min", 0.0, self.death_rate))
        if not isinstance(self.regrow_dead, bool):
            raise ValueError(f"regrow_dead must be True or False, got {self.regrow_dead!r}")


@dataclass(frozen=True)
class ExecSpec:
    """Where a unit runs: the declared device type (``"cpu"`` or ``"cuda"``; an executor resolves ``"auto"`` before
    keys are made, so a login node without a GPU plans CUDA runs) and the number of torch threads (CPU results depend
    on the summation order, hence on it: it is part of every key)."""

    device: str = "cpu"
    threads: int = 1

    def __post_init__(self):
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda' (resolve 'auto' with the executor first), got "
                             f"{self.device!r}")
        object.__setattr__(self, "threads", _int(self.threads, "threads", 1))


def describe(spec: Any) -> str:
    """The canonical JSON of a spec or unit (what its key is computed from)."""
    return canonical(spec)
