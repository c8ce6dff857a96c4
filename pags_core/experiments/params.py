"""Chapter parameters → a validated, frozen :class:`ChapterConfig`.

Every chapter's first code cell is a papermill ``parameters`` cell; its second cell calls :func:`configure`, which
checks every parameter before any work starts: unknown names fail (papermill itself only warns), every value is
checked for type, range and choice, and lists given as strings on the command line (``-p seeds "[0, 1]"``,
``-p generators snip,erk``) are parsed by one helper, :func:`parse_list`.  A value of ``None`` means "the profile's".
Errors name the parameter, the bad value and the valid values.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import pandas as pd

from .profiles import CHAPTERS, Profile, get_profile
from .specs import DataSpec, ExecSpec, ItopSpec, ModelSpec, PruneSpec, SamplingSpec, TrainSpec

__all__ = ["ChapterConfig", "PARAMETERS", "CHAPTER_PARAMETERS", "resolve", "configure", "check_extras", "Param",
           "parse_list", "ParameterError", "at_least", "between", "length", "nonempty", "all_of"]


class ParameterError(ValueError):
    """A chapter parameter is unknown or has a bad value (the message names it and the valid values)."""


# ----------------------------------------------------------------------------------------------------------------
# parsing and checking one value
# ----------------------------------------------------------------------------------------------------------------
def parse_list(value: Any, name: str) -> list:
    """A list from a list/tuple, or from a string as papermill's ``-p`` passes it: JSON (``"[0, 1]"``,
    ``'["snip", "erk"]'``), comma- or space-separated (``"snip,erk"``, ``"0 1"``) or a single item (``"snip"``)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = json.loads(text)
            return list(parsed) if isinstance(parsed, list) else [parsed]
        except ValueError:
            pass
        return [t.strip().strip("'\"") for t in text.strip("[]()").replace(",", " ").split() if t.strip()]
    raise ParameterError(f"parameter {name!r} must be a list (or a string such as \"[0, 1]\" or \"a,b\"), got "
                         f"{type(value).__name__}: {value!r}")


def _as_int(v: Any, name: str) -> int:
    if isinstance(v, bool):
        raise ParameterError(f"parameter {name!r} must be an integer, got {v!r}")
    if isinstance(v, str):
        try:
            v = json.loads(v.strip())
        except ValueError:
            raise ParameterError(f"parameter {name!r} must be an integer, got {v!r}") from None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool):
        raise ParameterError(f"parameter {name!r} must be an integer, got {v!r}")
    return v


def _as_float(v: Any, name: str) -> float:
    if isinstance(v, bool):
        raise ParameterError(f"parameter {name!r} must be a number, got {v!r}")
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            raise ParameterError(f"parameter {name!r} must be a number, got {v!r}") from None
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ParameterError(f"parameter {name!r} must be a finite number, got {v!r}")
    return float(v)


_KINDS = ("str", "int", "float", "int_list", "float_list", "str_list", "dict")


@dataclass(frozen=True)
class Param:
    """One parameter: its ``name``, ``kind`` (``str``, ``int``, ``float``, ``int_list``, ``float_list``,
    ``str_list``, ``dict``), its documentation, the valid ``choices`` (a callable returning them, for registries), an
    optional ``check`` (the parsed value → an error text such as ``"must be >= 1"``, or None), whether None is
    allowed (``optional``: None = the profile's value) and whether a list may repeat a value (``distinct``)."""

    name: str
    kind: str
    doc: str
    choices: Optional[Callable[[], list]] = None
    check: Optional[Callable[[Any], Optional[str]]] = None
    optional: bool = True  # None allowed (= the profile's value)
    distinct: bool = True  # lists: a repeated value is an error

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a parameter name must be a Python identifier, got {self.name!r}")
        if self.kind not in _KINDS:
            raise ValueError(f"parameter {self.name!r} is declared with an unknown kind {self.kind!r}; kinds: "
                             f"{', '.join(_KINDS)}")

    def parse(self, value: Any) -> Any:
        if value is None:
            if self.optional:
                return None
            raise ParameterError(f"parameter {self.name!r} must be given ({self.doc})")
        n = self.name
        if self.kind == "str":
            if not isinstance(value, str):
                raise ParameterError(f"parameter {n!r} must be a string, got {type(value).__name__}: {value!r}")
            out = value.strip().lower() if self.choices else value
        elif self.kind == "int":
            out = _as_int(value, n)
        elif self.kind == "float":
            out = _as_float(value, n)
        elif self.kind == "int_list":
            out = tuple(_as_int(v, n) for v in parse_list(value, n))
        elif self.kind == "float_list":
            out = tuple(_as_float(v, n) for v in parse_list(value, n))
        elif self.kind == "str_list":
            out = tuple(str(v).strip().lower() for v in parse_list(value, n))
        elif self.kind == "dict":
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    raise ParameterError(f"parameter {n!r} must be a mapping (JSON text is accepted), got "
                                         f"{value!r}") from None
            if not isinstance(value, Mapping):
                raise ParameterError(f"parameter {n!r} must be a mapping, got {type(value).__name__}: {value!r}")
            out = dict(value)
        else:  # pragma: no cover - __post_init__ admits only _KINDS
            raise AssertionError(self.kind)
        if self.distinct and self.kind.endswith("_list") and len(set(out)) != len(out):
            raise ParameterError(f"parameter {n!r} repeats a value: {list(out)} (each entry must be distinct)")
        if self.choices is not None:
            valid = self.choices()
            items = out if isinstance(out, tuple) else (out,)
            bad = [v for v in items if v not in valid]
            if bad:
                raise ParameterError(f"parameter {n!r}: unknown value(s) {', '.join(map(repr, bad))}; valid choices: "
                                     f"{', '.join(valid)}")
        if self.check is not None:
            msg = self.check(out)
            if msg:
                raise ParameterError(f"parameter {n!r} {msg}, got {value!r}")
        return out


def _reg(name: str) -> Callable[[], list]:
    def get() -> list:
        import pags_core

        return [n.lower() for n in getattr(pags_core, name).names()]
    return get


def _executors() -> list:
    from .executors import EXECUTORS

    return EXECUTORS.names()


# ---- checks for Param(check=...): each returns an error text or None; on a list it checks every item ------------
def _items(v) -> tuple:
    return v if isinstance(v, tuple) else (v,)


def at_least(k: float) -> Callable[[Any], Optional[str]]:
    """Check: every value is >= ``k``."""
    def check(v):
        return f"must be >= {k}" if any(x < k for x in _items(v)) else None
    return check


def between(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Callable[[Any], Optional[str]]:
    """Check: every value lies in the interval from ``lo`` to ``hi`` (closed unless ``lo_open``/``hi_open``)."""
    def inside(x):
        return (lo < x if lo_open else lo <= x) and (x < hi if hi_open else x <= hi)

    if math.isinf(hi):
        text = f"must be {'>' if lo_open else '>='} {lo:g}"
    else:
        text = f"must lie in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def check(v):
        return text if not all(inside(x) for x in _items(v)) else None
    return check


def length(*allowed: int) -> Callable[[Any], Optional[str]]:
    """Check: a list has one of the ``allowed`` lengths."""
    def check(v):
        return None if len(v) in allowed else f"must have {' or '.join(map(str, allowed))} entries"
    return check


def nonempty(v) -> Optional[str]:
    """Check: a list names at least one value."""
    return "must name at least one value" if len(v) == 0 else None


def _store_problem(root: str) -> Optional[str]:
    from ..store import RunStore

    try:
        RunStore(root)
    except NotADirectoryError as e:
        return f"is no folder ({e})"
    return None


def all_of(*checks: Callable[[Any], Optional[str]]) -> Callable[[Any], Optional[str]]:
    """Check: every one of ``checks``, the first failure reported."""
    def check(v):
        for c in checks:
            msg = c(v)
            if msg:
                return msg
        return None
    return check


PARAMETERS: Mapping[str, Param] = {p.name: p for p in (
    Param("profile", "str", "the profile: 'book' (CPU, MNIST-5k) or 'paper' (GPU, CIFAR-100)", _reg("PROFILES"),
          optional=False),
    Param("model", "str", "a registered model name; None for the profile's", _reg("MODELS")),
    Param("model_factory", "str", "import path 'module:attribute' of your own model factory f(num_classes, "
          "in_channels, width); None for a registered model"),
    Param("width", "float", "channel multiplier of the model; None for the profile's",
          check=between(0, math.inf, lo_open=True)),
    Param("dataset", "str", "a registered data set; None for the profile's", _reg("DATASETS")),
    Param("data_options", "dict", "loader options of the data set (image_size; for synthetic also num_classes, "
          "in_channels, n_train, n_test); None for the profile's"),
    Param("density", "float", "kept fraction of all prunable weights, in (0, 1]; None for the profile's",
          check=between(0, 1, lo_open=True)),
    Param("seeds", "int_list", "seeds of θ0 and of training; None for the profile's",
          check=all_of(nonempty, at_least(0))),
    Param("epochs", "int", "training epochs; None for the profile's", check=at_least(1)),
    Param("generators", "str_list", "PaI generators; None for the profile's", _reg("GENERATORS"), check=nonempty),
    Param("population", "int", "PAGS/PEGS samples per generator and seed; None for the profile's", check=at_least(0)),
    Param("pretrain_iters", "int_list", "PEGS pre-training steps N; None for the profile's",
          check=all_of(nonempty, at_least(1))),
    Param("baselines", "str_list", "training-based baselines (lth, eb); None for the profile's",
          lambda: ["lth", "eb"]),
    Param("lth_rounds", "int", "LTH prune-retrain rounds; None for the profile's", check=at_least(1)),
    Param("controls", "str_list", "control rows: shuffle, dense, generator_at_start; None for the profile's",
          lambda: ["shuffle", "dense", "generator_at_start"]),
    Param("premise_masks", "int", "masks of one population trained to test the PAGS premise (0: none, else at "
          "least 2); None for the profile's", check=lambda v: "must be 0 (none) or >= 2" if v == 1 or v < 0 else None),
    Param("models", "str_list", "models of the ITOP study; None for the profile's", _reg("MODELS"), check=nonempty),
    Param("update_interval", "int", "optimiser steps between ITOP topology updates; None for the profile's",
          check=at_least(1)),
    Param("snapshots", "int", "ITOP snapshots retrained per trajectory; None for the profile's", check=at_least(3)),
    Param("retrain_epochs", "int", "epochs of each snapshot's retraining; None for the profile's", check=at_least(1)),
    Param("device", "str", "auto, cpu or cuda; None for the profile's", lambda: ["auto", "cpu", "cuda"]),
    Param("threads", "int", "torch threads per run (part of every run key); None for the profile's", check=at_least(1)),
    Param("executor", "str", "serial, processes or slurm; None for the profile's", _executors),
    Param("workers", "int", "worker processes of the processes executor; None for the profile's", check=at_least(1)),
    Param("executor_options", "dict", "extra executor options (Slurm: partition, gpus_per_job, cpus_per_job, "
          "time_min, array_parallelism, folder, extra); None for none"),
    Param("store", "str", "folder of the run store (on a shared filesystem for Slurm); None for the default",
          check=lambda v: _store_problem(v)),
    Param("download", "int", "1 lets the driver download a missing data set (CIFAR) once before the runs fan out",
          check=lambda v: None if v in (0, 1) else "must be 0 or 1"),
)}

_EXECUTION = ("device", "threads", "executor", "workers", "executor_options", "store", "download")
_MODEL = ("profile", "model", "width", "dataset", "data_options", "density", "seeds", "epochs")

#: the parameters of each chapter that takes a profile
CHAPTER_PARAMETERS: Mapping[str, tuple] = {
    "weighted_metrics": ("profile", "model", "dataset", "data_options", "density", "generators", "device"),
    "itop": ("profile", "model", "models", "width", "dataset", "data_options", "density", "seeds", "epochs",
             "update_interval", "snapshots", "retrain_epochs", *_EXECUTION),
    "pags": (*_MODEL, "generators", "population", "controls", "premise_masks", *_EXECUTION),
    "pegs": (*_MODEL, "generators", "population", "pretrain_iters", "baselines", "lth_rounds", "controls",
             *_EXECUTION),
    "custom": ("profile", "model_factory", "width", "dataset", "data_options", "density", "seeds", "epochs", "generators",
               "population", *_EXECUTION),
}


# ----------------------------------------------------------------------------------------------------------------
# the configuration
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChapterConfig:
    """Everything one chapter runs with: the specs of its runs, its budget, where and how the runs execute, and the
    deviations from the papers that concern it.  Build it with :func:`resolve` or :func:`configure`."""

    chapter: str
    profile: str
    data: DataSpec
    model: ModelSpec
    density: float
    train: TrainSpec
    seeds: tuple
    generators: tuple
    score_batches: int
    score_batch_size: int
    baseline_batches: Optional[int]
    rounds: int
    population: int
    noise: Optional[float]
    rule: str
    selection: str
    convention: str
    pegs_iters: tuple
    baselines: tuple
    lth_rounds: int
    lth_rewind_iter: Optional[int]
    eb_epsilon: float
    controls: tuple
    premise_masks: int
    models: tuple
    itop: ItopSpec
    itop_train: TrainSpec
    retrain: TrainSpec
    snapshots: int
    retrain_from: str
    exec: ExecSpec
    executor: str
    workers: int
    executor_options: tuple
    store: Optional[str]
    download: bool
    deviations: tuple

    def replace(self, **changes: Any) -> "ChapterConfig":
        """A copy with some fields changed (e.g. ``cfg.replace(generators=("snip",), controls=())``); the fields are
        those of this class, already resolved (specs, tuples)."""
        valid = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(changes) - valid)
        if bad:
            raise ParameterError(f"unknown configuration field(s) {', '.join(bad)}; fields: {', '.join(sorted(valid))}")
        return dataclasses.replace(self, **changes)

    # ---- specs of the runs ------------------------------------------------------------------------------------
    def prune(self, generator: str) -> PruneSpec:
        """The generator call of this configuration (the baseline ticket M*)."""
        return PruneSpec(generator, self.density, batches=self.baseline_batches, batch_size=self.score_batch_size,
                         rounds=self.rounds)

    def sampling(self, generator: str) -> SamplingSpec:
        """PAGS/PEGS sampling for ``generator`` (scoring-only noise for the data-free deterministic ones)."""
        from ..methods.pags import default_noise

        noise = default_noise(generator, self.model.name) if self.noise is None else (
            float(self.noise) if generator in ("synflow", "magnitude") else 0.0)
        return SamplingSpec(self.population, batches=self.score_batches, noise=noise, rule=self.rule,
                            selection=self.selection, convention=self.convention)

    def model_for(self, name: str) -> ModelSpec:
        """This configuration's model spec with another registered architecture (ITOP's several models)."""
        return dataclasses.replace(self.model, name=name, factory=None, factory_digest=None)

    @property
    def rewind_iter(self) -> int:
        """LTH's rewind step: set explicitly, else the largest PEGS N (the same θ_N semantics), else 0."""
        if self.lth_rewind_iter is not None:
            return int(self.lth_rewind_iter)
        return int(max(self.pegs_iters)) if self.pegs_iters else 0

    # ---- execution --------------------------------------------------------------------------------------------
    def execution(self) -> dict:
        """Keyword arguments of :func:`~pags_core.experiments.run_plan`: executor, its options, the store, download.
        Every executor gets the runs' thread count (a Slurm job asks for at least that many CPUs); ``workers`` is the
        process pool's size (a Slurm array's parallelism is ``executor_options["array_parallelism"]``)."""
        from ..store import RunStore

        opts = dict(self.executor_options)
        opts.setdefault("threads", self.exec.threads)
        if self.executor == "processes":
            opts.setdefault("workers", self.workers)
        return {"executor": self.executor, "store": RunStore(self.store), "download": self.download, **opts}

    # ---- display ----------------------------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """The settings this chapter uses, one per row."""
        used = CHAPTERS[self.chapter]
        rows = [("profile", self.profile)]
        show = {
            "data": lambda: f"{self.data.name} {dict(self.data.options) or ''} (val {self.data.val_fraction:g}, "
                            f"split seed {self.data.seed})",
            "model": lambda: (f"{self.model.name} width {self.model.width:g}, {self.model.in_channels} input "
                              f"channel(s), {self.model.num_classes} classes, init {self.model.init}"
                              + (f", factory {self.model.factory}" if self.model.factory else "")),
            "density": lambda: self.density,
            "train": lambda: f"recipe {self.train.recipe.name}, {self.train.epochs} epochs",
            "seeds": lambda: list(self.seeds),
            "generators": lambda: list(self.generators),
            "score_batches": lambda: f"{self.score_batches} x {self.score_batch_size} per "
                                     + ("PAGS sample" if "population" in used else "generator mask"),
            "baseline_batches": lambda: "one pass over the training split" if self.baseline_batches is None
            else f"{self.baseline_batches} x {self.score_batch_size}",
            "population": lambda: self.population,
            "premise_masks": lambda: self.premise_masks,
            "pegs_iters": lambda: list(self.pegs_iters),
            "baselines": lambda: list(self.baselines),
            "lth_rounds": lambda: f"{self.lth_rounds} (rewind to step {self.rewind_iter})",
            "models": lambda: list(self.models),
            "itop": lambda: (f"ERK at {self.itop.density}, update every {self.itop.update_interval} steps, death rate "
                             f"{self.itop.death_rate} (cosine), {self.itop_train.epochs} epochs"),
            "retrain": lambda: f"{self.retrain.epochs} epochs from the snapshot weights ({self.retrain_from})",
            "snapshots": lambda: self.snapshots,
            "exec": lambda: (f"{self.exec.device}, {self.exec.threads} torch thread(s) per run; executor "
                             f"{self.executor}" + (f" with {self.workers} workers" if self.executor == "processes"
                                                   else "")),
        }
        for f in used:
            if f in show:
                rows.append((f, show[f]()))
        if "controls" in CHAPTER_PARAMETERS.get(self.chapter, ()):
            rows.append(("controls", list(self.controls)))
        return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")

    def describe(self) -> str:
        """The settings and this chapter's deviations from the papers, as text."""
        lines = [f"{k:>16}: {v}" for k, v in self.table()["value"].items()]
        if self.deviations:
            lines.append("deviations from the papers in this chapter:")
            lines.extend(f"  - {d}" for d in self.deviations)
        else:
            lines.append("no deviation from the papers' settings in this chapter")
        return "\n".join(lines)


def _declared_device(executor: str, options: Mapping[str, Any], device: str) -> str:
    from .executors import cuda_device_count

    if device != "auto":
        return device
    if executor == "slurm":
        return "cuda" if int(options.get("gpus_per_job", 0) or 0) > 0 else "cpu"
    return "cuda" if cuda_device_count() > 0 else "cpu"


def resolve(chapter: str, profile: "str | Profile" = "book", **params: Any) -> ChapterConfig:
    """The configuration of ``chapter`` under ``profile`` with ``params`` (``None`` = the profile's value).

    Raises :class:`ParameterError` for an unknown chapter or parameter and for a bad value (naming it and the valid
    values); unknown registry names inside specs raise ``KeyError`` listing the valid names."""
    if chapter not in CHAPTER_PARAMETERS:
        raise ParameterError(f"unknown chapter {chapter!r}; valid choices: {', '.join(CHAPTER_PARAMETERS)}")
    valid = CHAPTER_PARAMETERS[chapter]
    bad = sorted(set(params) - set(valid))
    if bad:
        raise ParameterError(f"unknown parameter(s) {', '.join(map(repr, bad))} for the {chapter!r} chapter; its "
                             f"parameters: {', '.join(valid)}")
    prof = get_profile(PARAMETERS["profile"].parse(profile) if isinstance(profile, str) else profile)
    given = {k: PARAMETERS[k].parse(v) for k, v in params.items()}
    given = {k: v for k, v in given.items() if v is not None}
    v = prof.chapter_values(chapter)
    if "dataset" in given and given["dataset"] != v["dataset"]:
        v["data_options"] = {}  # another data set: its own image size and shape
    rename = {"pretrain_iters": "pegs_iters"}
    for k, val in given.items():
        v[rename.get(k, k)] = val
    if chapter == "pags" and int(v["premise_masks"]) > 0 and int(v["population"]) < 2:
        raise ParameterError(f"the PAGS premise trains premise_masks={v['premise_masks']} samples of a population of "
                             f"{v['population']}: pass -p population 2 or more, or -p premise_masks 0")
    if chapter == "custom" and "model_factory" not in given:
        raise ParameterError("parameter 'model_factory' must be given for the custom chapter: an import path "
                             "'module:attribute' of your model factory f(num_classes, in_channels, width)")
    opts = dict(v.get("executor_options") or {})
    if v["executor"] == "slurm" and "folder" not in opts and v.get("store"):
        opts["folder"] = str(v["store"]) + "/slurm"
    _check_executor_options(v["executor"], opts)
    if given.get("workers", 1) > 1 and v["executor"] == "serial":
        raise ParameterError(f"parameter 'workers' ({given['workers']}) asks for parallel workers, but the 'serial' "
                             "executor runs one unit at a time; pass -p executor processes, or drop workers")

    if chapter == "itop" and "model" in given:  # the main model first, then the others of the study
        v["models"] = (given["model"], *[m for m in v["models"] if m != given["model"]])
    if chapter == "itop" and "epochs" in given:
        v["itop_epochs"] = given["epochs"]
    data = DataSpec(v["dataset"], val_fraction=v["val_fraction"], seed=v["data_seed"],
                    options=tuple(sorted(v["data_options"].items())))
    factory = v.get("model_factory")
    model = ModelSpec(name=(factory.rpartition(":")[2] or factory).lower() if factory else v["model"],
                      width=float(v["width"]), num_classes=data.num_classes, in_channels=data.in_channels,
                      init=v["init"], factory=factory)
    device = _declared_device(v["executor"], opts, v["device"])
    used = set(CHAPTERS[chapter])
    return ChapterConfig(
        chapter=chapter, profile=prof.name, data=data, model=model, density=float(v["density"]),
        train=TrainSpec(v["recipe"], v["epochs"]), seeds=tuple(v["seeds"]), generators=tuple(v["generators"]),
        score_batches=int(v["score_batches"]), score_batch_size=int(v["score_batch_size"]),
        baseline_batches=v["baseline_batches"], rounds=int(v["rounds"]), population=int(v["population"]),
        noise=v["noise"], rule=v["rule"], selection=v["selection"], convention=v["convention"],
        pegs_iters=tuple(sorted(v["pegs_iters"])), baselines=tuple(v["baselines"]), lth_rounds=int(v["lth_rounds"]),
        lth_rewind_iter=v["lth_rewind_iter"], eb_epsilon=float(v["eb_epsilon"]), controls=tuple(v["controls"]),
        premise_masks=int(v["premise_masks"]), models=tuple(v["models"]),
        itop=ItopSpec(float(v["density"]), int(v["update_interval"]), death_rate=float(v["death_rate"]),
                      regrow_dead=bool(v["regrow_dead"])),
        itop_train=TrainSpec(v["recipe"], int(v["itop_epochs"])), retrain=TrainSpec(v["recipe"], int(v["retrain_epochs"])),
        snapshots=int(v["snapshots"]), retrain_from=v["retrain_from"], exec=ExecSpec(device, int(v["threads"])),
        executor=v["executor"], workers=int(v["workers"]), executor_options=tuple(sorted(opts.items())),
        store=v.get("store"), download=bool(v.get("download", 0)),
        deviations=tuple(d.at(_value(v, d.field)) for d in prof.chapter_deviations(chapter)
                         if d.applies(_value(v, d.field))))


def _value(values: Mapping[str, Any], field: str) -> Any:
    val = values[field]
    return tuple(val) if isinstance(val, list) else val


def _check_executor_options(executor: str, opts: Mapping[str, Any]) -> None:
    from .executors import EXECUTORS

    factory = EXECUTORS[executor]
    if executor == "slurm":  # the registry holds a lazy wrapper; the class itself imports submitit only when built
        from .slurm import SlurmExecutor as factory
    # the local executors' threads and workers are parameters of their own (threads is part of every run key)
    own = () if executor == "slurm" else ("threads", "workers")
    for k in own:
        if k in opts:
            raise ParameterError(f"executor_options sets {k}={opts[k]!r}: set it with the {k!r} parameter instead "
                                 f"(-p {k} {opts[k]!r})")
    allowed = [p for p in inspect.signature(factory).parameters if p not in ("_", "kwargs", "store", *own)]
    bad = sorted(set(opts) - set(allowed))
    if bad:
        raise ParameterError(f"executor_options has unknown option(s) {', '.join(map(repr, bad))} for the "
                             f"{executor!r} executor; its options: {', '.join(allowed) or 'none'}"
                             + ("" if executor == "slurm" else " (threads and workers are parameters of their own)"))


_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "display"}
_PLAIN = (str, int, float, bool, list, tuple, dict, type(None))


def _declared(params: tuple, named: Mapping[str, Param]) -> dict:
    """name → Param from positional :class:`Param` objects and ``name=Param(...)`` keywords (the two must agree)."""
    out: dict = {}
    for key, p in [(None, p) for p in params] + list(named.items()):
        if not isinstance(p, Param):
            raise TypeError(f"a chapter parameter is declared as a Param, got {type(p).__name__}: {p!r}")
        if key is not None and key != p.name:
            raise ValueError(f"Param {p.name!r} is passed as keyword {key!r}: the names must agree")
        if p.name in out:
            raise ValueError(f"parameter {p.name!r} is declared twice")
        out[p.name] = p
    return out


def _reject_unknown(namespace: Mapping[str, Any], declared, owner: str) -> None:
    """Every plain value (number, string, list, dict, None) of ``namespace`` that is not a declared parameter is an
    unknown parameter (a misspelt ``-p``: papermill itself only warns); names starting with ``_`` and IPython's own
    are not parameters."""
    unknown = sorted(k for k, val in namespace.items()
                     if not k.startswith("_") and k not in _IPYTHON_NAMES and isinstance(val, _PLAIN)
                     and k not in declared)
    if unknown:
        raise ParameterError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for {owner}; its parameters: "
                             f"{', '.join(sorted(declared))}")


def _require(namespace: Mapping[str, Any], names, owner: str) -> None:
    missing = [k for k in names if k not in namespace]
    if missing:
        raise ParameterError(f"the parameters cell lacks {', '.join(missing)} ({owner}'s parameters: "
                             f"{', '.join(names)})")


def configure(chapter: str, namespace: Mapping[str, Any], *extra: Param, **named: Param) -> ChapterConfig:
    """:func:`resolve` from a notebook's globals (``configure("pegs", globals())``), right after the parameters cell.

    Every declared parameter of the chapter is read from ``namespace``; any other plain value there (a number,
    string, list, dict or None that is not a chapter parameter, e.g. a misspelt ``-p popluation 100``) is an unknown
    parameter and fails.  ``extra`` (:class:`Param` objects, or ``name=Param(name, ...)`` keywords) declares the
    chapter's own additional parameters: they are checked here too, so every bad value fails in this one call, and
    :func:`check_extras` with the same declarations returns their parsed values."""
    if chapter not in CHAPTER_PARAMETERS:
        raise ParameterError(f"unknown chapter {chapter!r}; valid choices: {', '.join(CHAPTER_PARAMETERS)}")
    if not isinstance(namespace, Mapping):
        raise TypeError(f"configure reads the notebook's globals(): a mapping, got {type(namespace).__name__}")
    own = _declared(extra, named)
    clash = sorted(set(own) & set(CHAPTER_PARAMETERS[chapter]))
    if clash:
        raise ValueError(f"the {chapter!r} chapter declares its own parameter(s) {', '.join(clash)}, which are "
                         "already chapter parameters")
    owner = f"the {chapter!r} chapter"
    _reject_unknown(namespace, set(CHAPTER_PARAMETERS[chapter]) | set(own), owner)
    _require(namespace, (*CHAPTER_PARAMETERS[chapter], *own), owner)
    cfg = resolve(chapter, **{k: namespace[k] for k in CHAPTER_PARAMETERS[chapter]})
    check_extras(namespace, *own.values())
    return cfg


def check_extras(namespace: Mapping[str, Any], *params: Param, strict: bool = False, chapter: Optional[str] = None,
                 **named: Param) -> dict:
    """The parsed values (name → value, in declaration order) of a chapter's own parameters, declared as
    :class:`Param` objects (positionally, or as ``name=Param(name, ...)`` keywords), read from its globals.

    A value that is absent from ``namespace`` counts as None.  With ``strict=True`` (a chapter without a profile,
    whose parameters are all its own) the parameters cell must define every declared name, and every other plain
    value in ``namespace`` is an unknown parameter, as in :func:`configure`; ``chapter`` names the chapter in the
    messages.  Raises :class:`ParameterError` naming the parameter, the bad value and the valid values."""
    own = _declared(params, named)
    if strict:
        owner = f"the {chapter!r} chapter" if chapter else "this chapter"
        _reject_unknown(namespace, set(own), owner)
        _require(namespace, tuple(own), owner)
    return {k: p.parse(namespace.get(k)) for k, p in own.items()}
