"""The paper-shaped PAGS/PEGS table (NeurIPS 2023 Tables 2–3 layout), resumable through the run store.

:func:`resolve_config` turns a profile name plus overrides into a validated, frozen :class:`PagsConfig` (unknown
values raise errors listing the valid ones).  :func:`run_sweep` then produces, for every seed and generator,

- ``baseline``: the generator's ticket at θ0 (on the full scoring batches), trained from θ0;
- ``PAGS``: :func:`~pags_core.sampling.pags` at θ0 ("@0"), trained from θ0;
- ``PEGS@N``: :func:`~pags_core.sampling.pegs` at θ_N, trained from θ_N, for every N in ``pretrain_iters``;

plus the ``LTH`` and ``EB`` baselines (:mod:`pags_core.baselines`).  Every unit of work is a run in the
:class:`~pags_core.store.RunStore`, keyed by its full configuration:

- ``pags_pretrain``: model, data, θ0 seed, pre-training recipe, N, device; artefact ``weights.pt`` (θ_N);
- ``pags_ticket``: model, data, θ0 seed, start (θ0, θ_N, LTH or EB), generator and scoring settings, PAGS settings;
  artefact ``mask.pt``, and for PAGS/PEGS ``population.pt``, ``provenance.csv``, ``trace.csv`` (plus
  ``checkpoint.pt`` while the population is being drawn);
- ``pags_lth_round``: the LTH ticket key and the round; artefacts ``mask.pt`` and ``rewind.pt``;
- ``pags_train``: the ticket key, training recipe, epochs, seed and device;

so a rerun after a crash skips every finished run and an interrupted PAGS population continues from its last
chunk; the PAGS ("@0") runs of ``pags.ipynb`` are exactly the ``pretrain_iters=0`` runs of ``pegs.ipynb``.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..device import resolve_device
from ..masks import Mask
from ..store import RunStore
from .population import PAGSResult, default_noise, pags, pegs, pretrain, pretrain_recipe
from .selection import RULES, SELECTIONS

__all__ = ["PagsConfig", "resolve_config", "CHAPTER_DEFAULTS", "run_sweep", "accuracy_table", "cost_table",
           "summarise_runs", "paired_comparison", "rule_comparison", "population_frame", "load_ticket", "ticket_config", "METHOD_ORDER", "SCHEMA"]

#: bump when a change in pags_core would change stored results (it is part of every key)
SCHEMA = 1
METHOD_ORDER = ("baseline", "PAGS")
_CHAPTERS = ("pags", "pegs")

#: per-profile, per-chapter budget trims on top of the profile (each with its reason, shown as a deviation)
CHAPTER_DEFAULTS: dict = {
    "book": {
        "pags": {
            "values": {"population": 24, "seeds": (0, 1), "generators": ("random", "erk", "snip", "synflow"),
                       "pretrain_iters": (8, 32)},
            "deviations": (
                "PAGS population 24 per generator and seed instead of 2000 (4-minute CPU budget)",
                "2 seeds instead of 3 (CPU budget); PILOT needs >= 4 seeds to resolve 1-2 point differences",
                "generators Random, ERK, SNIP, SynFlow: GraSP is left out on CPU (about 10x SNIP's cost per sample)",
            ),
        },
        "pegs": {
            "values": {"population": 24, "seeds": (0, 1), "generators": ("random", "erk", "snip"), "pretrain_iters": (8, 32),
                       "lth_rounds": 3},
            "deviations": (
                "PAGS/PEGS population 24 per generator and seed instead of 2000 (5-minute CPU budget)",
                "2 seeds instead of 3; generators Random, ERK and SNIP (GraSP and SynFlow left out for the CPU budget)",
                "PEGS@8 and PEGS@32 instead of @100 and @500: the book trains 32 steps per epoch, so 8 and 32 steps are "
                "0.25 and 1 epoch, as 100 and 500 steps are 0.22 and 1.1 CIFAR epochs at batch 100",
                "LTH: 3 rounds with the geometric density schedule D^(r/3), rewinding to step 32 (1 epoch), "
                "instead of 20%-per-round pruning",
            ),
        },
    },
    "paper": {"pags": {"values": {}, "deviations": ()},
              "pegs": {"values": {"lth_rounds": 5}, "deviations": (
                  "LTH: 5 rounds with the geometric density schedule D^(r/5) (density x0.4 per round), rewinding to "
                  "step 500, instead of 20%-per-round pruning (about 21 rounds to reach density 0.01)",)}},
}


@dataclasses.dataclass(frozen=True)
class PagsConfig:
    """Everything a PAGS/PEGS sweep needs, resolved from a profile (see :func:`resolve_config`).

    ``pretrain_iters`` are the PEGS N values (PAGS, N = 0, is always run).  ``noise=None`` means the default scoring-only
    noise (1e-3 for SynFlow/Magnitude, 1e-6 on ResNet34, 0 otherwise).  ``lth_rewind_iter=None`` rewinds LTH to the
    largest PEGS N.  ``num_classes``/``in_channels`` ``None`` follow the data set.  ``baselines`` picks the extra rows.
    """

    profile: str
    dataset: str
    image_size: Optional[int]
    val_fraction: float
    data_seed: int
    model: str
    width: float
    init: str
    num_classes: Optional[int]
    in_channels: Optional[int]
    density: float
    generators: tuple
    population: int
    seeds: tuple
    pretrain_iters: tuple
    score_batches: int
    score_batch_size: int
    baseline_batches: Optional[int]
    noise: Optional[float]
    profile_noise: float
    rounds: int
    recipe: str
    epochs: Optional[int]
    rule: str
    selection: str
    convention: str
    checkpoint_every: int
    lth_rounds: int
    lth_rewind_iter: Optional[int]
    eb_epsilon: float
    eb_max_epochs: Optional[int]
    baselines: tuple
    device: str
    deviations: tuple

    def replace(self, **changes) -> "PagsConfig":
        return resolve_config(self, **changes)

    # ---- derived ----------------------------------------------------------------------------------------------
    def noise_for(self, generator: str) -> float:
        if self.noise is not None:
            return float(self.noise) if generator.lower() in ("synflow", "magnitude") else 0.0
        return default_noise(generator, self.model, self.profile_noise)

    @property
    def rewind_iter(self) -> int:
        if self.lth_rewind_iter is not None:
            return int(self.lth_rewind_iter)
        return int(max(self.pretrain_iters)) if self.pretrain_iters else 0

    def to_frame(self) -> pd.DataFrame:
        """The resolved configuration as a two-column table (deviations listed separately)."""
        rows = [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "deviations"]
        rows.append(("device (resolved)", str(resolve_device(self.device))))
        return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")

    def describe(self) -> str:
        lines = [f"{k:>20}: {v}" for k, v in self.to_frame()["value"].items()]
        if self.deviations:
            lines.append("deviations from the papers:")
            lines.extend(f"  - {d}" for d in self.deviations)
        return "\n".join(lines)

    # ---- building blocks --------------------------------------------------------------------------------------
    def model_spec(self, data=None) -> dict:
        nc = self.num_classes if self.num_classes is not None else (data.num_classes if data is not None else None)
        ic = self.in_channels if self.in_channels is not None else (data.in_channels if data is not None else None)
        return {"model": self.model, "width": float(self.width), "init": self.init, "num_classes": nc,
                "in_channels": ic}

    def data_spec(self) -> dict:
        return {"dataset": self.dataset, "image_size": self.image_size, "val_fraction": float(self.val_fraction),
                "data_seed": int(self.data_seed)}

    def load_data(self):
        return _load_data(self.dataset, self.image_size, float(self.val_fraction), int(self.data_seed),
                          str(resolve_device(self.device)))

    def build_model(self, seed: int, data=None):
        """θ0 of ``seed``: ``torch.manual_seed(seed)`` then ``make_model`` with this configuration."""
        from ..models import make_model

        spec = self.model_spec(data)
        if spec["num_classes"] is None or spec["in_channels"] is None:
            raise ValueError("num_classes/in_channels follow the data set: pass data=")
        torch.manual_seed(int(seed))
        return make_model(spec["model"], num_classes=int(spec["num_classes"]), in_channels=int(spec["in_channels"]),
                          width=spec["width"], init=spec["init"])


@functools.lru_cache(maxsize=4)
def _load_data(dataset, image_size, val_fraction, data_seed, device):
    from ..data import load_dataset

    opts = {} if image_size is None else {"image_size": image_size}
    return load_dataset(dataset, val_fraction=val_fraction, seed=data_seed, device=device, download=True, **opts)


def _tuple(x, what: str, cast=None) -> tuple:
    if isinstance(x, str):  # papermill -p passes "snip,erk", "[0, 1]" or "0 1" as a string
        x = [s for s in x.translate(str.maketrans(",[]()'\"", "       ")).split() if s]
    try:
        t = tuple(x)
    except TypeError:
        t = (x,)
    return tuple(cast(v) for v in t) if cast else t


def resolve_config(profile: "str | Any" = "book", chapter: str = "pags", **overrides) -> PagsConfig:
    """Resolve ``profile`` (a :data:`~pags_core.profiles.PROFILES` name, a Profile or a PagsConfig) plus the chapter's
    budget defaults (:data:`CHAPTER_DEFAULTS`) plus ``overrides`` into a validated :class:`PagsConfig`.

    ``None`` overrides are ignored (papermill parameters default to ``None`` = "the profile's value").  Unknown
    setting names raise ``TypeError``; unknown models, data sets, generators, profiles, recipes, rules, selections,
    conventions, chapters and out-of-range numbers raise ``KeyError``/``ValueError`` listing the valid choices.
    Changing ``dataset`` without ``image_size`` uses the data set's own size.
    """
    from ..data import DATASETS
    from ..models import MODELS
    from ..profiles import PROFILES, Profile, get_profile
    from ..pruning import GENERATORS, check_density
    from ..spectral import CONVENTIONS
    from ..training import RECIPES

    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not isinstance(chapter, str) or chapter.lower() not in _CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; valid choices: {', '.join(_CHAPTERS)}")
    chapter = chapter.lower()
    valid = {f.name for f in dataclasses.fields(PagsConfig)}
    bad = sorted(set(overrides) - valid)
    if bad:
        raise TypeError(f"unknown PAGS setting(s) {', '.join(bad)}; valid settings: {', '.join(sorted(valid))}")

    if isinstance(profile, PagsConfig):
        base = dataclasses.asdict(profile)
    else:
        prof: Profile = get_profile(profile) if not isinstance(profile, str) else PROFILES[profile]
        chap = CHAPTER_DEFAULTS.get(prof.name, {}).get(chapter, {"values": {}, "deviations": ()})
        base = {
            "profile": prof.name, "dataset": prof.dataset, "image_size": prof.image_size,
            "val_fraction": prof.val_fraction, "data_seed": prof.data_seed, "model": prof.model, "width": prof.width,
            "init": prof.init, "num_classes": prof.num_classes, "in_channels": prof.in_channels,
            "density": prof.density, "generators": prof.generators, "population": prof.population,
            "seeds": prof.seeds, "pretrain_iters": prof.pegs_iters, "score_batches": prof.score_batches,
            "score_batch_size": prof.score_batch_size, "baseline_batches": None, "noise": None,
            "profile_noise": prof.noise, "rounds": prof.rounds, "recipe": prof.recipe, "epochs": prof.epochs,
            "rule": "dominance", "selection": "layerwise", "convention": "neurips2023",
            "checkpoint_every": prof.checkpoint_every, "lth_rounds": 3, "lth_rewind_iter": None, "eb_epsilon": 0.1,
            "eb_max_epochs": None, "baselines": ("lth", "eb") if chapter == "pegs" else (), "device": prof.device,
            "deviations": tuple(d for d in prof.deviations if not d.startswith("ITOP")) + tuple(chap["deviations"]),
        }
        base.update(chap["values"])
        if "population" in chap["values"]:  # the chapter's trim replaces the profile's own population line
            base["deviations"] = tuple(d for d in base["deviations"] if not d.startswith("population "))
    if "dataset" in overrides and overrides["dataset"] != base["dataset"]:
        for k in ("image_size", "num_classes", "in_channels"):
            overrides.setdefault(k, None)
            if overrides[k] is None:
                base[k] = None
        overrides = {k: v for k, v in overrides.items() if v is not None}
    base.update(overrides)
    c = base

    # ---- validation -------------------------------------------------------------------------------------------
    c["dataset"] = _registry_name(DATASETS, c["dataset"])
    c["model"] = _registry_name(MODELS, c["model"])
    c["recipe"] = _registry_name(RECIPES, c["recipe"])
    c["generators"] = tuple(GENERATORS[g].name for g in _tuple(c["generators"], "generators"))
    if not c["generators"]:
        raise ValueError(f"generators is empty; valid choices: {', '.join(GENERATORS.names())}")
    c["density"] = check_density(c["density"])
    c["seeds"] = _tuple(c["seeds"], "seeds", _nonneg_int("seed"))
    if not c["seeds"]:
        raise ValueError("seeds is empty; give at least one seed, e.g. seeds=[0]")
    c["pretrain_iters"] = tuple(sorted(set(_tuple(c["pretrain_iters"], "pretrain_iters", _nonneg_int("pretrain_iters"))) - {0}))
    c["population"] = _nonneg_int("population")(c["population"])
    for k in ("score_batches", "score_batch_size", "rounds", "checkpoint_every", "lth_rounds"):
        c[k] = _pos_int(k)(c[k])
    for k in ("baseline_batches", "epochs", "eb_max_epochs", "lth_rewind_iter", "image_size", "num_classes",
              "in_channels"):
        if c[k] is not None:
            c[k] = (_nonneg_int if k == "lth_rewind_iter" else _pos_int)(k)(c[k])
    c["rule"] = _choice(c["rule"], RULES, "selection rule")
    c["selection"] = _choice(c["selection"], SELECTIONS, "selection")
    c["convention"] = _choice(c["convention"], CONVENTIONS, "spectral convention")
    c["baselines"] = tuple(_choice(b, ("lth", "eb"), "baseline") for b in _tuple(c["baselines"], "baselines"))
    c["device"] = str(c["device"])
    resolve_device(c["device"])  # raises for an unusable device
    if not (isinstance(c["eb_epsilon"], (int, float)) and 0 < c["eb_epsilon"] <= 1):
        raise ValueError(f"eb_epsilon must be in (0, 1], got {c['eb_epsilon']!r}")
    if c["noise"] is not None and (not isinstance(c["noise"], (int, float)) or c["noise"] < 0):
        raise ValueError(f"noise must be a non-negative number or None, got {c['noise']!r}")
    c["width"] = float(c["width"])
    c["deviations"] = tuple(c["deviations"])
    return PagsConfig(**c)


def _registry_name(reg, name) -> str:
    reg[name]  # KeyError listing the valid names
    return name.lower()


def _choice(value, valid, what) -> str:
    if not isinstance(value, str) or value.lower() not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid choices: {', '.join(valid)}")
    return value.lower()


def _nonneg_int(what):
    def f(v):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) and not (isinstance(v, str) and v.isdigit()):
            raise ValueError(f"{what} must be a non-negative int, got {v!r}")
        v = int(v)
        if v < 0:
            raise ValueError(f"{what} must be a non-negative int, got {v!r}")
        return v
    return f


def _pos_int(what):
    def f(v):
        v = _nonneg_int(what)(v)
        if v < 1:
            raise ValueError(f"{what} must be a positive int, got {v!r}")
        return v
    return f


# ------------------------------------------------------------------------------------------------------------------
# run keys
# ------------------------------------------------------------------------------------------------------------------
def _dev_type(cfg: PagsConfig) -> str:
    return resolve_device(cfg.device).type


def _pretrain_key(cfg: PagsConfig, data, seed: int, iters: int) -> dict:
    return {"schema": SCHEMA, "kind": "pretrain", "model": cfg.model_spec(data), "data": cfg.data_spec(),
            "theta_seed": int(seed), "seed": int(seed), "iters": int(iters), "recipe": pretrain_recipe(cfg.recipe),
            "device": _dev_type(cfg)}


def ticket_config(cfg: PagsConfig, data, seed: int, generator: Optional[str], method: str, iters: int = 0) -> dict:
    """The store key of a ticket: ``method`` in ``generator`` (M* at θ0), ``pags`` (N = 0), ``pegs`` (N > 0), ``lth``,
    ``eb``."""
    base = {"schema": SCHEMA, "kind": "ticket", "method": method, "model": cfg.model_spec(data),
            "data": cfg.data_spec(), "theta_seed": int(seed), "density": cfg.density, "device": _dev_type(cfg)}
    if method in ("generator", "pags", "pegs"):
        base["generator"] = generator
        base["scoring"] = {"baseline_batches": cfg.baseline_batches, "batch_size": cfg.score_batch_size,
                           "rounds": cfg.rounds}
        base["start"] = None if iters == 0 else _pretrain_key(cfg, data, seed, iters)
        if method != "generator":
            base["scoring"].update(batches=cfg.score_batches, noise=cfg.noise_for(generator))
            base["pags"] = {"population": cfg.population, "rule": cfg.rule, "selection": cfg.selection,
                            "convention": cfg.convention}
    elif method == "lth":
        base["lth"] = {"rounds": cfg.lth_rounds, "rewind_iter": cfg.rewind_iter, "recipe": cfg.recipe,
                       "epochs": cfg.epochs, "seed": int(seed)}
    elif method == "eb":
        base["eb"] = {"epsilon": cfg.eb_epsilon, "max_epochs": cfg.eb_max_epochs, "recipe": cfg.recipe,
                      "epochs": cfg.epochs, "seed": int(seed)}
    else:
        raise ValueError(f"unknown ticket method {method!r}; valid choices: generator, pags, pegs, lth, eb")
    return base


def _train_key(cfg: PagsConfig, ticket: dict, seed: int) -> dict:
    from ..training import get_recipe

    return {"schema": SCHEMA, "kind": "train", "ticket": ticket, "recipe": get_recipe(cfg.recipe),
            "epochs": cfg.epochs, "seed": int(seed), "device": _dev_type(cfg)}


# ------------------------------------------------------------------------------------------------------------------
# units of work
# ------------------------------------------------------------------------------------------------------------------
def _get_pretrained(cfg, data, store: RunStore, seed: int, iters: int, train_fn, progress) -> dict:
    """θ_N of ``seed`` (a state dict), from the store or by pre-training θ0 for ``iters`` steps."""
    key = _pretrain_key(cfg, data, seed, iters)
    path = store.artefact("pags_pretrain", key, "weights.pt")
    if store.has("pags_pretrain", key) and path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    net = cfg.build_model(seed, data)
    t = time.perf_counter()
    tr = pretrain(net, data, iters, recipe=cfg.recipe, seed=seed, device=cfg.device, progress=progress,
                  train_fn=train_fn)
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    torch.save(state, path)
    store.save("pags_pretrain", key, {"iters": int(iters), "seconds": time.perf_counter() - t,
                                 "train_loss": (tr.history[-1]["train_loss"] if tr is not None and tr.history else None)})
    return state


def _start_model(cfg, data, store, seed, iters, train_fn, progress):
    net = cfg.build_model(seed, data)
    if iters:
        net.load_state_dict(_get_pretrained(cfg, data, store, seed, iters, train_fn, progress))
    return net


def _save_pags(store: RunStore, key: dict, res: PAGSResult, extra: Mapping[str, Any]) -> dict:
    res.mask.save(store.artefact("pags_ticket", key, "mask.pt"))
    torch.save({"population": {k: torch.as_tensor(np.array(v)) for k, v in res.population.items()},
                "baseline": {k: torch.as_tensor(np.array(v)) for k, v in res.baseline.items()},
                "layers": list(res.layer_names)}, store.artefact("pags_ticket", key, "population.pt"))
    res.provenance.to_csv(store.artefact("pags_ticket", key, "provenance.csv"), index=False)
    res.trace.to_csv(store.artefact("pags_ticket", key, "trace.csv"), index=False)
    out = {**res.summary(), **dict(extra), "source": [int(s) for s in res.selection.source],
           "layers": list(res.layer_names)}
    store.save("pags_ticket", key, out)
    ck = store.artefact("pags_ticket", key, "checkpoint.pt")
    if ck.is_file():
        ck.unlink()
    return out


def _chunk(cfg: PagsConfig, dev: torch.device) -> int:
    """Samples per scoring batch and checkpoint: the profile's checkpoint interval, at least 100 on a GPU (batched
    scoring needs large batches there).  It changes when progress is saved, never the result."""
    return max(cfg.checkpoint_every, 100) if dev.type == "cuda" else cfg.checkpoint_every


def _get_ticket(cfg, data, store: RunStore, seed: int, generator: Optional[str], method: str, iters: int,
                train_fn, progress) -> tuple[dict, Mask, dict, dict]:
    """(ticket key, mask, start state dict, stored ticket result) — computed once, then read from the store."""
    key = ticket_config(cfg, data, seed, generator, method, iters)
    mpath = store.artefact("pags_ticket", key, "mask.pt")
    if method in ("lth", "eb"):
        spath = store.artefact("pags_ticket", key, "start.pt")
    if store.has("pags_ticket", key) and mpath.is_file():
        info = store.load("pags_ticket", key)
        mask = Mask.load(mpath)
        if method in ("lth", "eb"):
            start = torch.load(spath, map_location="cpu", weights_only=True)
        else:
            start = _start_model(cfg, data, store, seed, iters, train_fn, progress).state_dict()
        return key, mask, start, info

    dev = resolve_device(cfg.device)
    if method == "generator":
        net = cfg.build_model(seed, data)
        from .population import _batches_for
        from ..pruning import GENERATORS, generate_mask
        import warnings

        t = time.perf_counter()
        needs = GENERATORS[generator].needs_data
        batches = _batches_for(data if needs else None, cfg.baseline_batches, cfg.score_batch_size, int(seed), dev)
        opts = {"input_shape": tuple(int(s) for s in data.input_shape)} if generator == "synflow" else {}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pruned .* layer\\(s\\) to nothing.*")
            mask = generate_mask(net, generator, cfg.density, batches=batches, seed=int(seed), device=dev,
                                 rounds=cfg.rounds, progress=False, **opts).to("cpu")
        info = {"density_realised": mask.density, "baseline_generator_s": time.perf_counter() - t,
                "empty_layers": len(mask.empty_layers()), "wall_s": time.perf_counter() - t, "pretrain_iters": 0}
        mask.save(mpath)
        store.save("pags_ticket", key, info)
        return key, mask, net.state_dict(), info

    if method in ("pags", "pegs"):
        net = _start_model(cfg, data, store, seed, iters, train_fn, progress)
        baseline_mask = None
        if iters == 0:  # the baseline ticket M* is the "generator" row's ticket: reuse it
            _, baseline_mask, _, binfo = _get_ticket(cfg, data, store, seed, generator, "generator", 0, train_fn,
                                                     progress)
        pre_s = 0.0
        if iters:
            pre_s = float(store.load("pags_pretrain", _pretrain_key(cfg, data, seed, iters))["seconds"])
        res = pags(net, data, generator, cfg.density, population=cfg.population, score_batches=cfg.score_batches,
                   score_batch_size=cfg.score_batch_size, baseline_batches=cfg.baseline_batches,
                   noise=cfg.noise_for(generator), rule=cfg.rule, selection=cfg.selection, convention=cfg.convention,
                   seed=int(seed), rounds=cfg.rounds, device=dev, chunk=_chunk(cfg, dev),
                   checkpoint=store.artefact("pags_ticket", key, "checkpoint.pt"), progress=progress,
                   baseline_mask=baseline_mask)
        if baseline_mask is not None:
            res.costs["baseline_generator_s"] = float(binfo.get("baseline_generator_s", 0.0))
        info = _save_pags(store, key, res, {"pretrain_iters": int(iters), "pretrain_s": pre_s})
        return key, res.mask, net.state_dict(), info

    net = cfg.build_model(seed, data)
    from ..baselines import early_bird, lth

    if method == "lth":
        rkey = {k: v for k, v in key.items() if k != "kind"}
        res = lth(net, data, cfg.density, rounds=cfg.lth_rounds, rewind_iter=cfg.rewind_iter, recipe=cfg.recipe,
                  epochs=cfg.epochs, seed=int(seed), device=dev, train_fn=train_fn, store=store, store_config=rkey,
                  progress=progress)
        start, info = res.rewind_state, {"pretrain_iters": res.pretrain_iters, "wall_s": res.seconds,
                                         "rewind_iter": res.rewind_iter, "rounds": res.rounds,
                                         "densities": res.densities, "density_realised": res.mask.density}
    else:
        res = early_bird(net, data, cfg.density, epsilon=cfg.eb_epsilon,
                         max_epochs=cfg.eb_max_epochs if cfg.eb_max_epochs is not None else cfg.epochs,
                         recipe=cfg.recipe, seed=int(seed), device=dev, train_fn=train_fn, progress=progress)
        start, info = res.state, {"pretrain_iters": res.pretrain_iters, "wall_s": res.seconds, "epoch": res.epoch,
                                  "distances": res.distances, "converged": res.converged,
                                  "density_realised": res.mask.density}
    res.mask.save(mpath)
    torch.save(start, spath)
    store.save("pags_ticket", key, info)
    return key, res.mask, start, info


def _get_train(cfg, data, store: RunStore, ticket_key: dict, mask: Mask, start: dict, seed: int, train_fn,
               progress) -> dict:
    from ..training import train

    key = _train_key(cfg, ticket_key, seed)

    def run():
        net = cfg.build_model(seed, data)
        net.load_state_dict(start)
        kw = {} if train_fn is not None else {"checkpoint": store.artefact("pags_train", key, "checkpoint.pt")}
        res = (train_fn or train)(net, data, cfg.recipe, mask=mask, device=cfg.device, seed=int(seed),
                                  epochs=cfg.epochs, progress=progress, **kw)
        d = res.to_dict() if hasattr(res, "to_dict") else dict(res)
        return d

    return store.get_or_run("pags_train", key, run)


# ------------------------------------------------------------------------------------------------------------------
# the sweep
# ------------------------------------------------------------------------------------------------------------------
def _tasks(cfg: PagsConfig) -> list[tuple]:
    tasks = []
    for seed in cfg.seeds:
        for g in cfg.generators:
            tasks.append((seed, g, "generator", 0, "baseline"))
            tasks.append((seed, g, "pags", 0, "PAGS"))
            for n in cfg.pretrain_iters:
                tasks.append((seed, g, "pegs", n, f"PEGS@{n}"))
        for b in cfg.baselines:
            tasks.append((seed, None, b, 0, {"lth": "LTH", "eb": "EB"}[b]))
    return tasks


def run_sweep(cfg: PagsConfig, *, store: RunStore | None = None, data=None, train_fn: Callable | None = None,
              methods: Sequence[str] | None = None, progress: Optional[bool] = None) -> pd.DataFrame:
    """Run (or read back) every ticket and training run of ``cfg``; one row per (seed, generator, method).

    ``methods`` restricts the rows (names as in the ``method`` column: ``baseline``, ``PAGS``, ``PEGS@N``, ``LTH``,
    ``EB``).  ``train_fn`` replaces :func:`~pags_core.training.train` everywhere (pre-training, LTH/EB searches and
    ticket training).  Columns: ``seed``, ``generator`` (``LTH``/``EB`` for the baselines), ``method``,
    ``pretrain_iters`` (dense/search optimiser steps before the ticket, the cost column), ``test_acc`` (%, at the
    first best-validation epoch), ``final_test_acc`` (%), ``best_val_acc`` (%), ``density_realised``, ``ticket_s``
    (wall seconds to find the ticket: pre-training + generator + scoring, or the LTH/EB search), ``train_s``,
    ``layers_replaced`` (PAGS/PEGS), ``empty_layers`` (layers of the ticket pruned to nothing), ``diverged``,
    ``ticket_key``.
    """
    store = store if store is not None else RunStore()
    data = data if data is not None else cfg.load_data()
    tasks = _tasks(cfg)
    if methods is not None:
        wanted = set(methods)
        valid = sorted({t[4] for t in tasks})
        bad = sorted(wanted - set(valid))
        if bad:
            raise ValueError(f"unknown method(s) {', '.join(bad)}; valid choices for this configuration: {', '.join(valid)}")
        tasks = [t for t in tasks if t[4] in wanted]
    rows = []
    bar = tqdm(tasks, desc="PAGS/PEGS sweep", disable=None if progress is None else (not progress))
    for seed, g, method, iters, label in bar:
        bar.set_postfix_str(f"seed {seed} {g or ''} {label}")
        key, mask, start, info = _get_ticket(cfg, data, store, seed, g, method, iters, train_fn, False)
        tr = _get_train(cfg, data, store, key, mask, start, seed, train_fn, False)
        if method in ("pags", "pegs"):
            ticket_s = float(info.get("pretrain_s", 0.0)) + float(info.get("baseline_generator_s", 0.0)) + \
                float(info.get("generator_s", 0.0)) + float(info.get("scoring_s", 0.0)) + \
                float(info.get("selection_s", 0.0))
        else:
            ticket_s = float(info.get("wall_s", 0.0))
        rows.append({
            "seed": seed, "generator": g if g is not None else label, "method": label,
            "pretrain_iters": int(info.get("pretrain_iters", iters)),
            "test_acc": 100.0 * _f(tr.get("test_acc")), "final_test_acc": 100.0 * _f(tr.get("final_test_acc")),
            "best_val_acc": 100.0 * _f(tr.get("best_val_acc")),
            "density_realised": _f(info.get("density_realised")), "ticket_s": ticket_s,
            "train_s": _f(tr.get("seconds")), "layers_replaced": info.get("layers_replaced"),
            "empty_layers": len(mask.empty_layers()),
            "diverged": bool(tr.get("diverged", False)), "ticket_key": _key(key),
        })
    bar.close()
    return pd.DataFrame(rows)


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _key(config) -> str:
    from ..store import config_key

    return config_key(config)


# ------------------------------------------------------------------------------------------------------------------
# tables
# ------------------------------------------------------------------------------------------------------------------
def _method_order(methods: Iterable[str]) -> list[str]:
    def rank(m):
        if m == "baseline":
            return (0, 0)
        if m == "PAGS":
            return (1, 0)
        if m.startswith("PEGS@"):
            return (2, int(m[5:]))
        return (3, 0 if m == "LTH" else 1)
    return sorted(set(methods), key=rank)


def summarise_runs(runs: pd.DataFrame, value: str = "test_acc") -> pd.DataFrame:
    """Mean, std (ddof=1) and count of ``value`` per (generator, method), plus the mean cost columns."""
    g = runs.groupby(["generator", "method"], sort=False)
    out = g.agg(mean=(value, "mean"), std=(value, "std"), n=(value, "count"),
                density_realised=("density_realised", "mean"), pretrain_iters=("pretrain_iters", "mean"),
                ticket_s=("ticket_s", "mean"), train_s=("train_s", "mean")).reset_index()
    return out


def _fmt(mean, std, n) -> str:
    if n == 0 or not np.isfinite(mean):
        return "–"
    return f"{mean:.1f} ± {std:.1f}" if n > 1 and np.isfinite(std) else f"{mean:.1f}"


def accuracy_table(runs: pd.DataFrame, value: str = "test_acc") -> pd.DataFrame:
    """The paper-shaped table: one row per generator (then LTH, EB), one column per method (baseline, PAGS,
    PEGS@N…), cells "mean ± std" of ``value`` (%) over seeds; ``n`` = seeds per cell."""
    s = summarise_runs(runs, value)
    methods = _method_order(s["method"])
    gens = list(dict.fromkeys(runs["generator"]))
    gens = [g for g in gens if g not in ("LTH", "EB")] + [g for g in ("LTH", "EB") if g in gens]
    cols = [m for m in methods if m not in ("LTH", "EB")]
    table = pd.DataFrame(index=pd.Index(gens, name="generator"), columns=cols + ["n"], dtype=object)
    for _, r in s.iterrows():
        col = r["method"] if r["method"] not in ("LTH", "EB") else "baseline"
        table.loc[r["generator"], col] = _fmt(r["mean"], r["std"], int(r["n"]))
        table.loc[r["generator"], "n"] = int(r["n"])
    return table.fillna("–")


def cost_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method: dense pre-training / search iterations before the ticket, mean wall seconds to find a ticket,
    mean training seconds, mean realised density."""
    s = runs.groupby("method", sort=False).agg(
        pretrain_iters=("pretrain_iters", "mean"), ticket_s=("ticket_s", "mean"), train_s=("train_s", "mean"),
        density_realised=("density_realised", "mean"), runs=("test_acc", "count"))
    s = s.loc[_method_order(s.index)]
    s["pretrain_iters"] = s["pretrain_iters"].round().astype(int)
    return s


def paired_comparison(runs: pd.DataFrame, a: str = "baseline", b: str = "PAGS", value: str = "test_acc",
                      alpha: float = 0.05) -> pd.DataFrame:
    """Per generator: method ``b`` minus method ``a`` paired by seed (same θ0, data order and training seed).

    Columns: ``n`` (paired seeds), ``mean_diff`` and ``std_diff`` (points), ``p_value`` (two-sided paired t-test; NaN
    for n < 2 or identical differences), ``a_std`` (seed std of ``a``, the noise scale), and ``verdict``: ``"gain"`` /
    ``"loss"`` when p < ``alpha``, else ``"no difference beyond noise"`` (``"n < 2"`` when it cannot be tested).
    """
    from scipy import stats as _st

    rows = []
    for g, sub in runs.groupby("generator", sort=False):
        pa = sub[sub["method"] == a].set_index("seed")[value]
        pb = sub[sub["method"] == b].set_index("seed")[value]
        seeds = sorted(set(pa.index) & set(pb.index))
        if not seeds:
            continue
        d = (pb.loc[seeds] - pa.loc[seeds]).to_numpy(dtype=float)
        n = len(d)
        p = float("nan")
        if n >= 2 and np.std(d) > 0:
            p = float(_st.ttest_1samp(d, 0.0).pvalue)
        if n < 2:
            verdict = "n < 2"
        elif np.isfinite(p) and p < alpha:
            verdict = "gain" if d.mean() > 0 else "loss"
        else:
            verdict = "no difference beyond noise"
        rows.append({"generator": g, "comparison": f"{b} − {a}", "n": n, "mean_diff": float(d.mean()),
                     "std_diff": float(d.std(ddof=1)) if n > 1 else float("nan"), "p_value": p,
                     "a_std": float(pa.loc[seeds].std(ddof=1)) if n > 1 else float("nan"), "verdict": verdict})
    return pd.DataFrame(rows)


def population_frame(ticket: Mapping[str, Any]) -> pd.DataFrame:
    """Network-level (mean over layers, non-finite → 0) Δr_imdb, Δr, λ_imsg, λ and FS of every population sample,
    of the baseline M* and of the selected ticket, from a :func:`load_ticket` record.  Column ``kind`` is
    ``sample``, ``baseline`` or ``selected``; ``density`` is each mask's global density."""
    from .selection import SELECTION_METRICS, clean

    pop, base, prov = ticket["population"], ticket["baseline"], ticket["provenance"]
    sizes = prov["weights"].to_numpy()
    rows = {m: clean(pop[m]).mean(axis=1) for m in SELECTION_METRICS}
    df = pd.DataFrame({"kind": "sample", "sample": np.arange(len(rows["full_spectrum"])), **rows,
                       "density": pop["kept"].sum(axis=1) / sizes.sum()})
    extra = pd.DataFrame([
        {"kind": "baseline", "sample": -1, **{m: clean(base[m]).mean() for m in SELECTION_METRICS},
         "density": base["kept"].sum() / sizes.sum()},
        {"kind": "selected", "sample": -2, **{m: clean(prov[f"selected_{m}"].to_numpy()).mean()
                                               for m in SELECTION_METRICS},
         "density": prov["selected_kept"].sum() / sizes.sum()},
    ])
    return pd.concat([df, extra], ignore_index=True)


def rule_comparison(ticket: Mapping[str, Any]) -> pd.DataFrame:
    """Re-run every selection rule on a stored population (a :func:`load_ticket` record; no generator, no scoring):
    one row per (rule, selection) with layers replaced, replacements, network-mean Δr_imdb and FS of the selection
    and the realised global density."""
    from .selection import clean, select, stitched_density

    sizes = ticket["provenance"]["weights"].to_numpy()
    out = []
    for rule, selection in (("dominance", "layerwise"), ("alt", "layerwise"), ("dominance", "network")):
        sel = select(ticket["baseline"], ticket["population"], rule=rule, selection=selection)
        out.append({"rule": rule if selection == "layerwise" else "-", "selection": selection,
                    "layers_replaced": sel.n_replaced_layers, "replacements": len(sel.trace),
                    "imdb": float(clean(sel.values["imdb"]).mean()), "full_spectrum": sel.network_score(),
                    "density_realised": stitched_density(sel.source, ticket["baseline"]["kept"],
                                                         ticket["population"]["kept"], sizes)})
    base = ticket["baseline"]
    out.insert(0, {"rule": "baseline M*", "selection": "-", "layers_replaced": 0, "replacements": 0,
                   "imdb": float(clean(base["imdb"]).mean()), "full_spectrum": float(clean(base["full_spectrum"]).mean()),
                   "density_realised": float(base["kept"].sum() / sizes.sum())})
    return pd.DataFrame(out)


def load_ticket(cfg: PagsConfig, seed: int, generator: Optional[str], method: str = "pags", iters: int = 0, *,
                store: RunStore | None = None, data=None) -> dict:
    """A finished ticket from the store: ``{"mask", "info", "population", "baseline", "layers", "provenance",
    "trace"}`` (the last five for PAGS/PEGS only).  Raises ``KeyError`` when it has not been run."""
    store = store if store is not None else RunStore()
    data = data if data is not None else cfg.load_data()
    key = ticket_config(cfg, data, seed, generator, method, iters)
    info = store.load("pags_ticket", key)
    out = {"mask": Mask.load(store.artefact("pags_ticket", key, "mask.pt")), "info": info}
    if method in ("pags", "pegs"):
        pop = torch.load(store.artefact("pags_ticket", key, "population.pt"), map_location="cpu", weights_only=True)
        out["population"] = {k: v.numpy() for k, v in pop["population"].items()}
        out["baseline"] = {k: v.numpy() for k, v in pop["baseline"].items()}
        out["layers"] = list(pop["layers"])
        out["provenance"] = pd.read_csv(store.artefact("pags_ticket", key, "provenance.csv"))
        tpath = store.artefact("pags_ticket", key, "trace.csv")
        try:
            out["trace"] = pd.read_csv(tpath)
        except pd.errors.EmptyDataError:
            out["trace"] = pd.DataFrame()
    return out
