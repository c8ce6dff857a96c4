"""Chapter plans: which units a chapter needs, built from its :class:`~pags_core.experiments.params.ChapterConfig`,
and the rows of its tables read back from the store once the plan has run.

- :func:`table_plan`: the PAGS/PEGS tables (paper B, Tables 2–3): per seed and generator the generator's own ticket
  ("baseline"), PAGS and PEGS@N, the controls (the layer-wise shuffle of each ticket, the generator's ticket at θ_N
  trained from θ_N, the dense network) and the LTH / Early-Bird baselines, each trained once.
- :func:`itop_plan`: the ITOP correlation study (paper B, Figs 2–4): one ITOP-Rand run per model and seed, then the
  static retraining of evenly spaced snapshots (and of a few of them again with other seeds, for the retraining
  noise); :func:`itop_runs` reads back one row per snapshot (its metrics and retrained accuracy).

A plan is static: every unit and its key is known before anything runs (the ITOP update steps follow from the data
size and the recipe), so a Slurm login node can plan runs it cannot execute.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from ..methods.pags import pretrain_recipe
from ..methods.selection import clean
from ..store import RunStore
from .driver import Plan
from .params import ChapterConfig
from .units import EarlyBird, ItopDST, ItopRetrain, LTHRound, Pretrain, Sample, Shuffle, Ticket, Train

__all__ = ["Row", "TablePlan", "table_plan", "table_runs", "premise_plan", "ItopPlan", "itop_plan", "itop_runs",
           "itop_replicates", "itop_total_steps", "itop_update_steps", "select_snapshots", "ticket_unit",
           "pretrain_unit", "NOISE_SEED_BASE"]


@dataclass(frozen=True)
class Row:
    """One row of a results table: its labels and the units behind it (``ticket`` may be None for the dense row)."""

    seed: int
    generator: str
    method: str
    pretrain_iters: int
    ticket: Any
    train: Train


@dataclass
class TablePlan:
    """A table's plan (``plan``) and its rows, in display order."""

    plan: Plan
    rows: list

    def __len__(self) -> int:
        return len(self.plan)


def pretrain_unit(cfg: ChapterConfig, seed: int, iters: int) -> Pretrain:
    return Pretrain(cfg.model, cfg.data, seed, iters, pretrain_recipe(cfg.train.recipe), cfg.exec)


def ticket_unit(cfg: ChapterConfig, seed: int, generator: str, method: str = "baseline", iters: int = 0) -> Ticket:
    """The ticket of one table cell: ``method`` is ``"baseline"`` (the generator's own ticket at θ0, or at θ_N when
    ``iters`` > 0) or ``"pags"`` (PAGS at θ0, PEGS@``iters`` at θ_N)."""
    if method not in ("baseline", "pags"):
        raise ValueError(f"unknown ticket method {method!r}; valid choices: baseline, pags")
    start = pretrain_unit(cfg, seed, iters) if iters else None
    return Ticket(cfg.model, cfg.data, seed, cfg.prune(generator), cfg.exec, start=start,
                  sampling=cfg.sampling(generator) if method == "pags" else None)


#: generators whose kept positions are uniformly random within each layer given its count: the layer-wise shuffle of
#: their own ticket is another draw of the same generator, so it is not trained
UNIFORM_WITHIN_LAYER = ("random", "erk")


def table_plan(cfg: ChapterConfig, *, methods: Optional[Sequence[str]] = None) -> TablePlan:
    """The units of the PAGS/PEGS table of ``cfg``.  Methods (the ``method`` column): ``baseline``, ``PAGS``,
    ``PEGS@N``; with the controls of ``cfg.controls``: ``shuffle(<method>)`` (``shuffle``), ``generator@N``
    (``generator_at_start``), ``dense`` (``dense``); and ``LTH``/``EB`` (``cfg.baselines``).  The shuffle of a
    generator's own ticket is left out for :data:`UNIFORM_WITHIN_LAYER` generators (it would be another draw of them).  ``methods`` keeps only
    the rows whose method is listed."""
    train = lambda seed, ticket: Train(cfg.model, cfg.data, seed, cfg.train, cfg.exec, ticket)  # noqa: E731
    if "lth" in cfg.baselines and cfg.rewind_iter > 0 and (methods is None or "LTH" in methods):
        steps = cfg.train.epochs * math.ceil(_train_size(cfg) / cfg.train.recipe.batch_size)
        if cfg.rewind_iter > steps:
            raise ValueError(f"LTH rewinds to step {cfg.rewind_iter} (the largest PEGS N), but a training run has "
                             f"only {steps} optimiser steps ({cfg.train.epochs} epochs); use fewer pre-training "
                             "steps (pretrain_iters) or more epochs")
    rows: list[Row] = []
    ctl = set(cfg.controls)
    for seed in cfg.seeds:
        for g in cfg.generators:
            cells = [("baseline", 0, ticket_unit(cfg, seed, g)), ("PAGS", 0, ticket_unit(cfg, seed, g, "pags"))]
            for n in cfg.pegs_iters:
                if "generator_at_start" in ctl:
                    cells.append((f"generator@{n}", n, ticket_unit(cfg, seed, g, "baseline", n)))
                cells.append((f"PEGS@{n}", n, ticket_unit(cfg, seed, g, "pags", n)))
            if "shuffle" in ctl:
                cells += [(f"shuffle({m})", n, Shuffle(t, seed)) for m, n, t in list(cells)
                          if not m.startswith("generator@") and not (m == "baseline" and g in UNIFORM_WITHIN_LAYER)]
            rows += [Row(seed, g, m, n, t, train(seed, t)) for m, n, t in cells]
        if "dense" in ctl:
            rows.append(Row(seed, "dense", "dense", 0, None, train(seed, None)))
        for b in cfg.baselines:
            if b == "lth":
                t = LTHRound(cfg.model, cfg.data, seed, cfg.density, cfg.lth_rounds, cfg.lth_rounds - 1,
                             cfg.rewind_iter, cfg.train, cfg.exec)
                rows.append(Row(seed, "LTH", "LTH", 0, t, train(seed, t)))
            else:
                t = EarlyBird(cfg.model, cfg.data, seed, cfg.density, cfg.eb_epsilon, cfg.train, cfg.exec)
                rows.append(Row(seed, "EB", "EB", 0, t, train(seed, t)))
    if methods is not None:
        valid = sorted({r.method for r in rows})
        bad = sorted(set(methods) - set(valid))
        if bad:
            raise ValueError(f"unknown method(s) {', '.join(bad)}; valid choices for this configuration: "
                             f"{', '.join(valid)}")
        rows = [r for r in rows if r.method in set(methods)]
    return TablePlan(Plan([r.train for r in rows], name=f"{cfg.chapter} table"), rows)


def _ticket_seconds(ticket: Any, store: RunStore) -> tuple[float, int]:
    """(wall seconds to find the ticket: pre-training + generator + scoring + selection, or the LTH/EB search;
    dense optimiser steps before the ticket)."""
    if ticket is None:
        return 0.0, 0
    if isinstance(ticket, Shuffle):
        return _ticket_seconds(ticket.source, store)
    if isinstance(ticket, Sample):
        return 0.0, 0
    res = ticket.result(store)
    if isinstance(ticket, Ticket):
        pre = ticket.start.result(store) if ticket.start is not None else {"seconds": 0.0, "iters": 0}
        own = sum(float(res.get(k, 0.0)) for k in ("baseline_generator_s", "generator_s", "scoring_s",
                                                   "selection_s"))
        return float(pre["seconds"]) + own, int(pre["iters"])
    if isinstance(ticket, LTHRound):
        rounds = [dataclasses.replace(ticket, round=r).result(store) for r in range(ticket.rounds)]
        return sum(float(r["seconds"]) for r in rounds), sum(int(r["iters"]) for r in rounds)
    return float(res["seconds"]), int(res["pretrain_iters"])


def table_runs(tp: TablePlan, store: Optional[RunStore] = None) -> pd.DataFrame:
    """One row per table row of a plan that has run: ``seed``, ``generator``, ``method``, ``pretrain_iters`` (dense or
    search steps before the ticket), ``test_acc`` (% at the first best-validation epoch), ``final_test_acc``,
    ``best_val_acc`` (%), ``density_realised``, ``ticket_s``, ``train_s``, ``layers_replaced`` (PAGS/PEGS),
    ``empty_layers``, ``diverged``, ``kept`` (kept weights per layer), ``ticket_key``."""
    store = store if store is not None else RunStore()
    out = []
    for r in tp.rows:
        tr = r.train.result(store)
        tres = r.ticket.result(store) if r.ticket is not None else {}
        t_s, iters = _ticket_seconds(r.ticket, store)
        out.append({
            "seed": r.seed, "generator": r.generator, "method": r.method, "pretrain_iters": iters,
            "test_acc": 100.0 * float(tr["test_acc"]), "final_test_acc": 100.0 * float(tr["final_test_acc"]),
            "best_val_acc": 100.0 * float(tr["best_val_acc"]), "density_realised": float(tr["density"]),
            "ticket_s": t_s, "train_s": float(tr["seconds"]), "layers_replaced": tres.get("layers_replaced"),
            "empty_layers": int(tres.get("empty_layers", 0)), "diverged": bool(tr.get("diverged", False)),
            "kept": tr.get("kept"), "ticket_key": r.ticket.key if r.ticket is not None else None,
        })
    return pd.DataFrame(out)


def premise_plan(cfg: ChapterConfig, store: RunStore, generators: Sequence[str], seed: int,
                 k: Optional[int] = None) -> TablePlan:
    """The PAGS premise (within one population, does a higher FS train better?): for each generator, ``k`` samples
    (default ``cfg.premise_masks``) of the population of its PAGS ticket of ``seed`` that span the population's range
    of layer-mean FS (evenly spaced ranks, lowest and highest included), each trained from θ0.  The PAGS tickets must
    have run (their stored populations choose the samples).  Row ``method`` is ``"sample <index>"``."""
    k = cfg.premise_masks if k is None else int(k)
    if k < 2:
        raise ValueError(f"the premise needs at least 2 masks per population, got k = {k}")
    train = lambda t: Train(cfg.model, cfg.data, seed, cfg.train, cfg.exec, t)  # noqa: E731
    rows = []
    for g in generators:
        ticket = ticket_unit(cfg, seed, g, "pags")
        fs = clean(ticket.population(store)["population"]["full_spectrum"]).mean(axis=1)
        ranks = np.argsort(fs, kind="stable")
        picks = sorted({int(ranks[int(round(i))]) for i in np.linspace(0, len(fs) - 1, min(k, len(fs)))})
        for idx in picks:
            t = Sample(ticket, idx)
            rows.append(Row(seed, g, f"sample {idx}", 0, t, train(t)))
    return TablePlan(Plan([r.train for r in rows], name=f"{cfg.chapter} premise"), rows)


# ----------------------------------------------------------------------------------------------------------------
# ITOP
# ----------------------------------------------------------------------------------------------------------------
def select_snapshots(steps: Sequence[int], count: Optional[int]) -> list:
    """``count`` evenly spaced entries of ``steps`` (always the first and the last); all of them when ``count`` is
    None or not smaller than ``len(steps)``."""
    steps = list(steps)
    if count is None or count >= len(steps):
        return steps
    if count < 1:
        raise ValueError(f"count must be positive, got {count!r}")
    idx = sorted(set(int(round(i)) for i in np.linspace(0, len(steps) - 1, count)))
    return [steps[i] for i in idx]


def itop_total_steps(cfg: ChapterConfig) -> int:
    """The optimiser steps of one ITOP-Rand run (data size, batch size and epochs fix them)."""
    return cfg.itop_train.epochs * math.ceil(_train_size(cfg) / cfg.itop_train.recipe.batch_size)


def itop_update_steps(cfg: ChapterConfig) -> list:
    """The optimiser steps after which ITOP-Rand updates the topology: every ``update_interval`` steps, strictly
    before the last step of the run."""
    return list(range(cfg.itop.update_interval, itop_total_steps(cfg), cfg.itop.update_interval))


def _train_size(cfg: ChapterConfig) -> int:
    return len(cfg.data.load().train)


#: the first training seed of the extra retrainings that measure the retraining noise (:func:`itop_plan`)
NOISE_SEED_BASE = 1000


@dataclass
class ItopPlan:
    """The ITOP study's plan: ``dst`` maps (model, seed) to the ITOP-Rand run, ``retrains`` lists ((model, seed,
    step), retraining) in table order, and ``noise`` ((model, seed, step, retraining seed), retraining) the extra
    retrainings of some snapshots with other training seeds."""

    plan: Plan
    dst: dict
    retrains: list
    noise: list = dataclasses.field(default_factory=list)


def itop_plan(cfg: ChapterConfig, *, noise_snapshots: int = 0, noise_seeds: int = 1) -> ItopPlan:
    """One ITOP-Rand run per (model, seed) and the retraining of ``cfg.snapshots`` evenly spaced snapshots of each.

    With ``noise_snapshots`` > 0, that many of each trajectory's retrained snapshots (evenly spaced, first and last
    included) are retrained ``noise_seeds`` more times with other training seeds (``NOISE_SEED_BASE``, +1, ...,
    never the trajectory's own), so that the retraining noise of the accuracy axis can be measured."""
    for name, v, low in (("noise_snapshots", noise_snapshots, 0), ("noise_seeds", noise_seeds, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    steps = select_snapshots(itop_update_steps(cfg), cfg.snapshots)
    if not steps:
        raise ValueError(f"the ITOP run has no topology update: update_interval {cfg.itop.update_interval} is not "
                         f"smaller than the {itop_total_steps(cfg)} optimiser steps of the run")
    dst, retrains, noise = {}, [], []
    for name in cfg.models:
        model = cfg.model_for(name)
        for seed in cfg.seeds:
            d = ItopDST(model, cfg.data, seed, cfg.itop, cfg.itop_train, cfg.exec)
            dst[(name, seed)] = d
            retrains += [((name, seed, s), ItopRetrain(d, s, cfg.retrain, cfg.retrain_from)) for s in steps]
            others = [r for r in range(NOISE_SEED_BASE, NOISE_SEED_BASE + noise_seeds + 1) if r != seed][:noise_seeds]
            for s in (select_snapshots(steps, noise_snapshots) if noise_snapshots else []):
                noise += [((name, seed, s, r), ItopRetrain(d, s, cfg.retrain, cfg.retrain_from, seed=r))
                          for r in others]
    return ItopPlan(Plan([u for _, u in retrains + noise], name="ITOP study"), dst, retrains, noise)


def itop_runs(ip: ItopPlan, store: Optional[RunStore] = None, *, convention: str = "neurips2023") -> pd.DataFrame:
    """One row per retrained snapshot of a plan that has run: ``model``, ``seed``, ``step`` (the optimiser step after
    which the topology was updated), ``death_rate``, ``density``, the metrics of
    :func:`~pags_core.analysis.snapshot_metrics` of (M_t, |θ_t|) with the anchor distances from (M_0, θ0) and
    (M_t, θ0) (columns named as :data:`~pags_core.analysis.ITOP_METRICS`), ``test_acc`` (% at the first
    best-validation epoch of the retraining), ``final_test_acc``, ``best_val_acc`` (%),
    ``nonzero_outside_mask`` (must be 0) and ``retrain_s`` (seconds)."""
    from ..analysis.itop import snapshot_metrics
    from ..spectral import anchor_reference

    store = store if store is not None else RunStore()
    anchors: dict = {}
    rows = []
    for (name, seed, step), unit in ip.retrains:
        d = ip.dst[(name, seed)]
        if (name, seed) not in anchors:
            anchor, net = d.snapshot(store, 0), d.model.build(seed)
            ref = anchor_reference(net, anchor.mask, initial_weights=anchor.state, initial_mask=anchor.mask,
                                   reference="initial", convention=convention, progress=False)
            anchors[(name, seed)] = (anchor, net, ref)
        anchor, net, ref = anchors[(name, seed)]
        snap = d.snapshot(store, step)
        metrics = snapshot_metrics(net, snap.mask, weights=snap.state, convention=convention,
                                   initial_weights=anchor.state, initial_reference=ref)
        res = unit.result(store)
        rows.append({"model": name, "seed": seed, "step": step, "death_rate": snap.death_rate,
                     "density": snap.density, **metrics, "test_acc": 100.0 * float(res["test_acc"]),
                     "final_test_acc": 100.0 * float(res["final_test_acc"]),
                     "best_val_acc": 100.0 * float(res["best_val_acc"]),
                     "nonzero_outside_mask": int(res["nonzero_outside_mask"]), "retrain_s": float(res["seconds"])})
    return pd.DataFrame(rows)


def itop_replicates(ip: ItopPlan, store: Optional[RunStore] = None) -> pd.DataFrame:
    """Every retraining of the snapshots that the plan retrains more than once (``ip.noise``), the trajectory's own
    included: ``model``, ``seed``, ``step``, ``retrain_seed``, ``test_acc`` (%)."""
    store = store if store is not None else RunStore()
    main = dict(ip.retrains)
    again = {(m, s, t) for (m, s, t, _), _ in ip.noise}
    units = [(k, main[k]) for k in main if k in again] + [((m, s, t), u) for (m, s, t, _), u in ip.noise]
    return pd.DataFrame([{"model": m, "seed": s, "step": t, "retrain_seed": u.train_seed,
                          "test_acc": 100.0 * float(u.result(store)["test_acc"])} for (m, s, t), u in units],
                        columns=["model", "seed", "step", "retrain_seed", "test_acc"])
