"""Units: the pure, serialisable pieces a sweep is made of.

A unit is a frozen dataclass of specs (:mod:`pags_core.experiments.specs`) and the units it depends on.  Its key is
:func:`~pags_core.experiments.specs.run_key` of itself; ``run(ctx)`` computes it, writes its artefacts into its
folder of the :class:`~pags_core.store.RunStore` and returns the small result dict that
:func:`~pags_core.experiments.driver.execute_unit` stores as ``result.json``.  A unit never returns tensors: what a
dependent needs it reads back from the store, so a unit runs the same in this process, in a pool worker or in a
Slurm job on another machine.

Ticket units (a mask and the weights training starts from) share one interface, ``load(store) -> (mask, state)``:
:class:`Ticket` (a generator's own ticket, or PAGS/PEGS), :class:`LTHRound` (the last round's),
:class:`EarlyBird` and :class:`Shuffle` (the layer-wise shuffle control).  :class:`Train` trains any of them (or the
dense network) and :class:`ItopDST`/:class:`ItopRetrain` make the ITOP correlation study.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np
import torch

from ..masks import Mask
from ..methods.early_bird import early_bird
from ..methods.itop import Snapshot, itop_train
from ..methods.lth import lth_densities, lth_round
from ..methods.pags import baseline_ticket, pags, pegs, population_sample, pretrain
from ..models import prunable_parameters
from ..pruning.erk import random_positions
from ..store import RunStore, atomic_torch_save
from ..training import train
from ..training.callbacks import cpu_state
from ..training.recipes import Recipe
from .specs import DataSpec, ExecSpec, ItopSpec, ModelSpec, PruneSpec, SamplingSpec, TrainSpec, key_config, run_key

__all__ = ["Unit", "UnitContext", "Pretrain", "Ticket", "LTHRound", "EarlyBird", "Shuffle", "Sample", "Train",
           "ItopDST", "ItopRetrain", "TICKET_UNITS"]


@dataclass
class UnitContext:
    """What a running unit gets: the store, its own folder, the device and whether to show progress bars."""

    store: RunStore
    unit: "Unit"
    progress: Optional[bool] = False

    @property
    def device(self) -> torch.device:
        return torch.device(self.unit.exec.device)

    def path(self, name: str) -> Path:
        """A file in the unit's folder (created)."""
        return self.unit.artefact(self.store, name)

    def data(self, spec: DataSpec):
        return spec.load(device="cpu")


class Unit:
    """Base class of units (see the module docstring).  Subclasses are frozen dataclasses with ``kind``."""

    kind: ClassVar[str] = "unit"
    #: keys every stored result of this kind must have (a result without them is set aside and recomputed)
    result_keys: ClassVar[tuple] = ()

    def deps(self) -> tuple:
        return ()

    def run(self, ctx: UnitContext) -> dict:
        raise NotImplementedError

    def label(self) -> str:
        return self.kind

    def __canonical__(self) -> dict:
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    # ---- store access -----------------------------------------------------------------------------------------
    @property
    def key(self) -> str:
        return run_key(self)

    def config(self) -> dict:
        return key_config(self)

    def folder(self, store: RunStore) -> Path:
        return store.path(self.kind, self.config())

    def artefact(self, store: RunStore, name: str) -> Path:
        return store.artefact(self.kind, self.config(), name)

    def done(self, store: RunStore) -> bool:
        return store.has(self.kind, self.config(), self.result_keys)

    def result(self, store: RunStore) -> dict:
        return store.load(self.kind, self.config(), self.result_keys)

    def read(self, store: RunStore, name: str, reader=None) -> Any:
        """An artefact of this finished unit (a torch file by default); an unreadable one raises
        :class:`~pags_core.store.CorruptRunError` and sets the unit aside."""
        reader = reader or (lambda p: torch.load(p, map_location="cpu", weights_only=True))
        return store.read_artefact(self.kind, self.config(), name, reader)

    def read_mask(self, store: RunStore, name: str = "mask.pt") -> Mask:
        return self.read(store, name, Mask.load)


def _save_mask(ctx: UnitContext, mask: Mask, name: str = "mask.pt") -> None:
    atomic_torch_save(mask.to("cpu").state_dict(), ctx.path(name))


def _theta0(model: ModelSpec, seed: int) -> dict:
    return cpu_state(model.build(seed))


# ----------------------------------------------------------------------------------------------------------------
# tickets
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pretrain(Unit):
    """θ_N: the dense network of ``seed`` after ``iters`` steps of :func:`~pags_core.methods.pags.pretrain_recipe`
    (PEGS's pre-training; artefact ``weights.pt``)."""

    kind: ClassVar[str] = "pretrain"
    result_keys: ClassVar[tuple] = ("iters", "seconds")
    model: ModelSpec
    data: DataSpec
    seed: int
    iters: int
    recipe: Recipe
    exec: ExecSpec

    def label(self) -> str:
        return f"pretrain {self.model.name} seed {self.seed} N={self.iters}"

    def run(self, ctx: UnitContext) -> dict:
        net = self.model.build(self.seed)
        t = time.perf_counter()
        tr = pretrain(net, ctx.data(self.data), self.iters, recipe=self.recipe, seed=self.seed, device=ctx.device,
                      progress=ctx.progress, checkpoint=ctx.path("checkpoint.pt"))
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        atomic_torch_save(state, ctx.path("weights.pt"))
        loss = tr.history[-1]["train_loss"] if tr is not None and tr.history else None
        return {"iters": self.iters, "seconds": time.perf_counter() - t, "train_loss": loss,
                "diverged": bool(tr.diverged) if tr is not None else False}

    def weights(self, store: RunStore) -> dict:
        return self.read(store, "weights.pt")


@dataclass(frozen=True)
class Ticket(Unit):
    """A PaI ticket of ``seed``'s θ0 (or of θ_N when ``start`` is a :class:`Pretrain`).

    Without ``sampling`` it is the generator's own ticket M* (:func:`~pags_core.methods.pags.baseline_ticket`: the
    tables' baseline row, and, at θ_N, the "generator at θ_N" control); with ``sampling`` it is PAGS at θ0 or PEGS at
    θ_N (:func:`~pags_core.pags` / :func:`~pags_core.pegs`), which start from that M*.  Artefacts: ``mask.pt``, and
    for PAGS/PEGS ``population.pt``, ``provenance.csv``, ``trace.csv``."""

    kind: ClassVar[str] = "ticket"
    result_keys: ClassVar[tuple] = ("density_realised",)
    model: ModelSpec
    data: DataSpec
    seed: int
    prune: PruneSpec
    exec: ExecSpec
    start: Optional[Pretrain] = None
    sampling: Optional[SamplingSpec] = None

    @property
    def method(self) -> str:
        if self.sampling is None:
            return "generator"
        return "pegs" if self.start is not None else "pags"

    def label(self) -> str:
        at = f"@{self.start.iters}" if self.start is not None else ""
        what = {"generator": self.prune.generator, "pags": f"PAGS {self.prune.generator}",
                "pegs": f"PEGS {self.prune.generator}"}[self.method]
        return f"{what}{at} seed {self.seed}"

    def baseline(self) -> "Ticket":
        """The generator's own ticket M* at the same weights (where PAGS/PEGS start)."""
        return dataclasses.replace(self, sampling=None)

    def deps(self) -> tuple:
        out = () if self.start is None else (self.start,)
        return out + (() if self.sampling is None else (self.baseline(),))

    def start_state(self, store: RunStore) -> dict:
        return self.start.weights(store) if self.start is not None else _theta0(self.model, self.seed)

    def run(self, ctx: UnitContext) -> dict:
        data = ctx.data(self.data)
        net = self.model.build(self.seed)
        p, opts = self.prune, dict(self.prune.options)
        t = time.perf_counter()
        if self.sampling is None:
            if self.start is not None:
                net.load_state_dict(self.start.weights(ctx.store))
            mask = baseline_ticket(net, data, p.generator, p.density, baseline_batches=p.batches,
                                   score_batch_size=p.batch_size, seed=self.seed, rounds=p.rounds, device=ctx.device,
                                   **opts)
            _save_mask(ctx, mask)
            return {"density_realised": mask.density, "empty_layers": len(mask.empty_layers()),
                    "generator_s": time.perf_counter() - t}
        s = self.sampling
        base = self.baseline()
        kw = dict(population=s.population, score_batches=s.batches, score_batch_size=p.batch_size,
                  baseline_batches=p.batches, noise=s.noise, rule=s.rule, selection=s.selection,
                  convention=s.convention, seed=self.seed, rounds=p.rounds, device=ctx.device,
                  chunk=100 if ctx.device.type == "cuda" else 10, checkpoint=ctx.path("checkpoint.pt"),
                  progress=ctx.progress, baseline_mask=base.read_mask(ctx.store), **opts)
        if self.start is None:
            res = pags(net, data, p.generator, p.density, **kw)
        else:
            res = pegs(net, data, p.generator, p.density, self.start.iters, recipe=self.start.recipe,
                       pretrain_seed=self.start.seed, pretrained=self.start.weights(ctx.store), **kw)
        _save_mask(ctx, res.mask)
        atomic_torch_save({"population": {k: torch.as_tensor(np.array(v)) for k, v in res.population.items()},
                           "baseline": {k: torch.as_tensor(np.array(v)) for k, v in res.baseline.items()},
                           "layers": list(res.layer_names)}, ctx.path("population.pt"))
        res.provenance.to_csv(ctx.path("provenance.csv"), index=False)
        res.trace.to_csv(ctx.path("trace.csv"), index=False)
        ck = ctx.path("checkpoint.pt")
        if ck.exists():
            ck.unlink()
        base_res = base.result(ctx.store)
        return {**res.summary(), "baseline_generator_s": float(base_res.get("generator_s", 0.0)),
                "empty_layers": len(res.mask.empty_layers()), "source": [int(x) for x in res.selection.source],
                "layers": list(res.layer_names)}

    def load(self, store: RunStore) -> tuple:
        return self.read_mask(store), self.start_state(store)

    def population(self, store: RunStore) -> dict:
        """A finished PAGS/PEGS ticket's record: ``mask``, ``info`` (its result), ``population`` and ``baseline``
        ({metric: array}), ``layers``, ``provenance`` and ``trace`` (DataFrames)."""
        import pandas as pd

        if self.sampling is None:
            raise ValueError(f"{self.label()} is a generator ticket: it has no population")
        pop = self.read(store, "population.pt")

        def csv(p):
            try:
                return pd.read_csv(p)
            except pd.errors.EmptyDataError:  # no replacement happened: an empty trace
                return pd.DataFrame()

        return {"mask": self.read_mask(store), "info": self.result(store),
                "population": {k: v.numpy() for k, v in pop["population"].items()},
                "baseline": {k: v.numpy() for k, v in pop["baseline"].items()}, "layers": list(pop["layers"]),
                "provenance": self.read(store, "provenance.csv", csv), "trace": self.read(store, "trace.csv", csv)}


@dataclass(frozen=True)
class LTHRound(Unit):
    """Round ``round`` of an LTH search (:func:`~pags_core.methods.lth.lth_round`); the last round's pruned mask
    with the rewind weights θ_k is the LTH ticket.  Artefacts ``mask.pt`` and ``rewind.pt``."""

    kind: ClassVar[str] = "lth_round"
    result_keys: ClassVar[tuple] = ("round", "pruned_to", "iters", "seconds")
    model: ModelSpec
    data: DataSpec
    seed: int
    density: float
    rounds: int
    round: int
    rewind_iter: int
    train: TrainSpec
    exec: ExecSpec

    def label(self) -> str:
        return f"LTH round {self.round + 1}/{self.rounds} seed {self.seed}"

    def previous(self) -> Optional["LTHRound"]:
        return dataclasses.replace(self, round=self.round - 1) if self.round > 0 else None

    def deps(self) -> tuple:
        prev = self.previous()
        return () if prev is None else (prev,)

    def run(self, ctx: UnitContext) -> dict:
        prev = self.previous()
        mask, rewind = (None, None) if prev is None else prev.load(ctx.store)
        out = lth_round(self.model.build(self.seed), ctx.data(self.data), self.round,
                        lth_densities(self.density, self.rounds), mask=mask, rewind_state=rewind,
                        rewind_iter=self.rewind_iter, recipe=self.train.recipe, epochs=self.train.epochs,
                        seed=self.seed, device=ctx.device, checkpoint=ctx.path("checkpoint.pt"),
                        progress=ctx.progress)
        _save_mask(ctx, out.mask)
        atomic_torch_save(out.rewind_state, ctx.path("rewind.pt"))
        return {**out.log(), "density_realised": out.mask.density, "empty_layers": len(out.mask.empty_layers())}

    def load(self, store: RunStore) -> tuple:
        return self.read_mask(store), self.read(store, "rewind.pt")


@dataclass(frozen=True)
class EarlyBird(Unit):
    """An Early-Bird ticket (:func:`~pags_core.methods.early_bird.early_bird`) searched for at most ``train.epochs``
    epochs; artefacts ``mask.pt`` and ``start.pt`` (θ_e)."""

    kind: ClassVar[str] = "early_bird"
    result_keys: ClassVar[tuple] = ("epoch", "pretrain_iters", "seconds")
    model: ModelSpec
    data: DataSpec
    seed: int
    density: float
    epsilon: float
    train: TrainSpec
    exec: ExecSpec

    def label(self) -> str:
        return f"Early-Bird seed {self.seed}"

    def run(self, ctx: UnitContext) -> dict:
        res = early_bird(self.model.build(self.seed), ctx.data(self.data), self.density, epsilon=self.epsilon,
                         max_epochs=self.train.epochs, recipe=self.train.recipe, seed=self.seed, device=ctx.device,
                         checkpoint=ctx.path("checkpoint.pt"), progress=ctx.progress)
        _save_mask(ctx, res.mask)
        atomic_torch_save(res.state, ctx.path("start.pt"))
        return {"epoch": res.epoch, "distances": res.distances, "converged": res.converged,
                "pretrain_iters": res.pretrain_iters, "seconds": res.seconds, "density_realised": res.mask.density,
                "empty_layers": len(res.mask.empty_layers())}

    def load(self, store: RunStore) -> tuple:
        return self.read_mask(store), self.read(store, "start.pt")


@dataclass(frozen=True)
class Shuffle(Unit):
    """The layer-wise shuffle control of a ticket (Frankle et al., ICLR 2021): the same number of kept weights in
    every layer as ``source``, at uniformly random positions drawn with ``seed``, trained from the same weights."""

    kind: ClassVar[str] = "shuffle"
    result_keys: ClassVar[tuple] = ("density_realised",)
    source: Any
    seed: int

    @property
    def exec(self) -> ExecSpec:
        return self.source.exec

    def label(self) -> str:
        return f"shuffle of {self.source.label()}"

    def deps(self) -> tuple:
        return (self.source,)

    def run(self, ctx: UnitContext) -> dict:
        mask, _ = self.source.load(ctx.store)
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, 0x5F1E]).generate_state(1)[0]))
        out = Mask({n: random_positions(tuple(t.shape), int(t.sum()), g) for n, t in mask.items()},
                   {"method": "shuffle", "seed": self.seed})
        _save_mask(ctx, out)
        return {"density_realised": out.density, "empty_layers": len(out.empty_layers())}

    def load(self, store: RunStore) -> tuple:
        return self.read_mask(store), self.source.load(store)[1]


@dataclass(frozen=True)
class Sample(Unit):
    """Sample ``index`` of the population of a PAGS/PEGS ``ticket``, drawn again on its own
    (:func:`~pags_core.methods.pags.population_sample`) so that it can be trained: the masks of one population that
    test the PAGS premise (a higher FS, a higher accuracy)."""

    kind: ClassVar[str] = "sample"
    result_keys: ClassVar[tuple] = ("density_realised",)
    ticket: Ticket
    index: int

    def __post_init__(self):
        if self.ticket.sampling is None:
            raise ValueError(f"{self.ticket.label()} has no population to draw a sample from")

    @property
    def exec(self) -> ExecSpec:
        return self.ticket.exec

    def label(self) -> str:
        return f"sample {self.index} of {self.ticket.label()}"

    def deps(self) -> tuple:
        return () if self.ticket.start is None else (self.ticket.start,)

    def run(self, ctx: UnitContext) -> dict:
        t, p = self.ticket, self.ticket.prune
        net = t.model.build(t.seed)
        if t.start is not None:
            net.load_state_dict(t.start.weights(ctx.store))
        mask = population_sample(net, ctx.data(t.data), p.generator, p.density, self.index, seed=t.seed,
                                 score_batches=t.sampling.batches, score_batch_size=p.batch_size,
                                 noise=t.sampling.noise, rounds=p.rounds, device=ctx.device, **dict(p.options))
        _save_mask(ctx, mask)
        return {"density_realised": mask.density, "empty_layers": len(mask.empty_layers())}

    def load(self, store: RunStore) -> tuple:
        return self.read_mask(store), self.ticket.start_state(store)


TICKET_UNITS = (Ticket, LTHRound, EarlyBird, Shuffle, Sample)


# ----------------------------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------------------------
_TRAIN_FIELDS = ("test_acc", "best_val_acc", "best_epoch", "final_test_acc", "diverged", "seconds", "iters",
                 "stopped_by")


@dataclass(frozen=True)
class Train(Unit):
    """Training of a ticket (any of :data:`TICKET_UNITS`: its mask, from its start weights) or, with
    ``ticket=None``, of the dense network from ``seed``'s θ0.  ``seed`` also fixes the data order."""

    kind: ClassVar[str] = "train"
    result_keys: ClassVar[tuple] = ("test_acc", "best_val_acc", "iters", "seconds")
    model: ModelSpec
    data: DataSpec
    seed: int
    train: TrainSpec
    exec: ExecSpec
    ticket: Any = None

    def label(self) -> str:
        return f"train {self.ticket.label() if self.ticket is not None else f'dense seed {self.seed}'}"

    def deps(self) -> tuple:
        return () if self.ticket is None else (self.ticket,)

    def run(self, ctx: UnitContext) -> dict:
        net = self.model.build(self.seed)
        mask = None
        if self.ticket is not None:
            mask, start = self.ticket.load(ctx.store)
            net.load_state_dict(start)
        res = train(net, ctx.data(self.data), self.train.recipe, mask=mask, device=ctx.device, seed=self.seed,
                    epochs=self.train.epochs, max_iters=self.train.max_iters, progress=ctx.progress,
                    checkpoint=ctx.path("checkpoint.pt"))
        out = {k: getattr(res, k) for k in _TRAIN_FIELDS}
        out["history"] = res.history
        out["density"] = mask.density if mask is not None else 1.0
        out["kept"] = {n: int(t.sum()) for n, t in mask.items()} if mask is not None else None
        return out


# ----------------------------------------------------------------------------------------------------------------
# ITOP
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItopDST(Unit):
    """One ITOP-Rand dynamic sparse training run (:func:`~pags_core.methods.itop.itop_train`) of ``seed``: the anchor
    (M_0, θ0) and every snapshot (M_t, θ_t) are artefacts ``step<t>.mask`` / ``step<t>.pt``."""

    kind: ClassVar[str] = "itop_dst"
    result_keys: ClassVar[tuple] = ("snapshots", "anchor", "total_steps")
    model: ModelSpec
    data: DataSpec
    seed: int
    itop: ItopSpec
    train: TrainSpec
    exec: ExecSpec

    def label(self) -> str:
        return f"ITOP-Rand {self.model.name} seed {self.seed}"

    def run(self, ctx: UnitContext) -> dict:
        def persist(s: Snapshot) -> Snapshot:
            mp, wp = ctx.path(f"step{s.step:07d}.mask"), ctx.path(f"step{s.step:07d}.pt")
            atomic_torch_save(s.mask.state_dict(), mp)
            atomic_torch_save(s.state, wp)
            return Snapshot(step=s.step, death_rate=s.death_rate, density=float(s.mask.density), mask_path=mp.name,
                            state_path=wp.name)

        t0 = time.perf_counter()
        it = self.itop
        run = itop_train(self.model.build(self.seed), ctx.data(self.data), self.train.recipe, density=it.density,
                         update_interval=it.update_interval, seed=self.seed, epochs=self.train.epochs,
                         max_iters=self.train.max_iters, death_rate=it.death_rate, death_rate_min=it.death_rate_min,
                         regrow_dead=it.regrow_dead, device=ctx.device, on_snapshot=persist, progress=ctx.progress,
                         checkpoint=ctx.path("checkpoint.pt"))
        res = run.result
        return {
            "anchor": {"step": 0, "mask": run.anchor.mask_path, "state": run.anchor.state_path},
            "snapshots": [{"step": s.step, "death_rate": s.death_rate, "density": s.density, "mask": s.mask_path,
                           "state": s.state_path} for s in run.snapshots],
            "updates": [{"step": u.step, "death_rate": u.death_rate, "removed": u.removed, "density": u.density}
                        for u in run.updates],
            "total_steps": run.total_steps, "initial_density": run.anchor.density,
            "final_density": float(run.final_mask.density), "wall_seconds": time.perf_counter() - t0,
            **{f"dst_{k}": getattr(res, k) for k in _TRAIN_FIELDS},
        }

    def snapshot(self, store: RunStore, step: int):
        """The snapshot after the update at ``step`` (0 = the anchor) with its mask and weights in memory."""
        rec = self.result(store)
        entries = {0: {**rec["anchor"], "death_rate": 0.0}} | {int(e["step"]): e for e in rec["snapshots"]}
        if step not in entries:
            raise KeyError(f"the ITOP run has no snapshot at step {step}; its steps: {sorted(entries)[:5]}...")
        e = entries[step]
        mask = self.read(store, e["mask"], Mask.load)
        return Snapshot(step=step, mask=mask, state=self.read(store, e["state"]),
                        death_rate=float(e.get("death_rate", 0.0)), density=float(mask.density))


@dataclass(frozen=True)
class ItopRetrain(Unit):
    """Static sparse retraining of the ITOP snapshot at ``step`` (its mask fixed) from θ_t (``retrain_from=
    "snapshot"``) or from θ0 (``"init"``).  ``seed`` is the training seed of the retraining (data order); None, or
    the trajectory's own seed, means the trajectory's seed (both give the same key).  Another seed retrains the same
    snapshot again: the spread of such retrainings is the noise of the accuracy axis."""

    kind: ClassVar[str] = "itop_retrain"
    result_keys: ClassVar[tuple] = ("test_acc", "best_val_acc", "nonzero_outside_mask")
    dst: ItopDST
    step: int
    train: TrainSpec
    retrain_from: str = "snapshot"
    seed: Optional[int] = None

    def __post_init__(self):
        if self.retrain_from not in ("snapshot", "init"):
            raise ValueError(f"unknown retrain_from {self.retrain_from!r}; valid choices: snapshot, init")
        if self.seed is not None:
            if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
                raise ValueError(f"the retraining seed must be an int >= 0 or None, got {self.seed!r}")
            if self.seed == self.dst.seed:
                object.__setattr__(self, "seed", None)

    def __canonical__(self) -> dict:  # without a seed of its own the key is the one of a unit without the field
        out = super().__canonical__()
        if out["seed"] is None:
            del out["seed"]
        return out

    @property
    def train_seed(self) -> int:
        """The seed the retraining runs with (the trajectory's unless ``seed`` is set)."""
        return self.dst.seed if self.seed is None else self.seed

    @property
    def exec(self) -> ExecSpec:
        return self.dst.exec

    def label(self) -> str:
        extra = f" (retraining seed {self.seed})" if self.seed is not None else ""
        return f"retrain {self.dst.label()} step {self.step}{extra}"

    def deps(self) -> tuple:
        return (self.dst,)

    def run(self, ctx: UnitContext) -> dict:
        snap = self.dst.snapshot(ctx.store, self.step)
        start = snap.state if self.retrain_from == "snapshot" else self.dst.snapshot(ctx.store, 0).state
        net = self.dst.model.build(self.dst.seed)
        net.load_state_dict(start)
        res = train(net, ctx.data(self.dst.data), self.train.recipe, mask=snap.mask.clone(), device=ctx.device,
                    seed=self.train_seed, epochs=self.train.epochs, max_iters=self.train.max_iters,
                    progress=ctx.progress, checkpoint=ctx.path("checkpoint.pt"))
        outside = sum(int(((p.detach().cpu() != 0) & ~snap.mask[n].cpu()).sum())
                      for n, p in prunable_parameters(net).items())
        return {**{k: getattr(res, k) for k in _TRAIN_FIELDS}, "nonzero_outside_mask": outside,
                "mask_density": float(snap.mask.density)}
