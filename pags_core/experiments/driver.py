"""The driver: run a plan of units through an executor, wave by wave, resuming from the run store.

:class:`Plan` holds the units a chapter reads; :meth:`Plan.waves` orders them with everything they depend on into
waves of independent units (pre-training → tickets → training; a DST run → its retrainings).  :func:`run_plan`

1. stages every data set once in the driver (jobs never download);
2. skips every unit whose result is in the store (that is the resume);
3. submits each wave's missing units to the executor (one Slurm job array per wave) and waits for them;
4. never loses a finished unit: every unit persists its own result the moment it ends, a failing or killed unit only
   fails itself and what depends on it, and the sweep goes on with the rest; at the end one
   :class:`PlanIncomplete` error names every missing run, its error and where its log is. Running the plan again
   computes only what is missing.

:func:`execute_unit` is what runs on a worker: it sets the unit's torch thread count, takes the unit's lease in the
store (two workers never compute the same unit), runs it and stores its result atomically.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Optional

from ..store import CorruptRunError, LeaseHeld, RunStore
from .executors import Executor, make_executor
from .units import Unit, UnitContext

__all__ = ["Plan", "PlanIncomplete", "PlanReport", "execute_unit", "run_plan"]


class Plan:
    """The units a sweep needs (its *targets*), in the order a table reads them, plus by closure every unit they
    depend on."""

    def __init__(self, targets: Iterable[Unit], name: str = "plan"):
        self.targets = list(targets)
        self.name = name

    def __len__(self) -> int:
        return len(self.units())

    def units(self) -> list[Unit]:
        """Every unit, dependencies before dependents, each once (by key)."""
        seen: "OrderedDict[str, Unit]" = OrderedDict()

        def visit(u: Unit) -> None:
            k = u.key
            if k in seen:
                return
            for d in u.deps():
                visit(d)
            seen[k] = u

        for t in self.targets:
            visit(t)
        return list(seen.values())

    def waves(self) -> list[list[Unit]]:
        """Waves of independent units: a unit's wave is one more than its deepest dependency's."""
        units = self.units()
        depth: dict[str, int] = {}
        for u in units:
            depth[u.key] = 1 + max((depth[d.key] for d in u.deps()), default=-1)
        out: list[list[Unit]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for u in units:
            out[depth[u.key]].append(u)
        return out

    def missing(self, store: RunStore) -> list[Unit]:
        return [u for u in self.units() if not u.done(store)]


@dataclasses.dataclass
class PlanReport:
    """What :func:`run_plan` did: units in the plan, found in the store, computed now; wall seconds; executor."""

    name: str
    units: int
    cached: int
    computed: int
    seconds: float
    executor: str

    def __str__(self) -> str:
        return (f"{self.name}: {self.units} runs, {self.cached} read from the store, {self.computed} computed "
                f"in {self.seconds:.0f} s ({self.executor})")


class PlanIncomplete(RuntimeError):
    """Some units of a plan could not be computed.  ``failures`` maps a unit's label to (error, log path)."""

    def __init__(self, name: str, failures: "OrderedDict[str, tuple]", store: RunStore):
        self.failures = failures
        lines = [f"{len(failures)} run(s) of {name} are missing (everything else is stored; running the same sweep "
                 f"again computes only these):"]
        for label, (err, log) in failures.items():
            lines.append(f"  - {label}: {err}" + (f" [log: {log}]" if log else ""))
        lines.append(f"store: {store.root}")
        super().__init__("\n".join(lines))


@contextlib.contextmanager
def _threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def execute_unit(unit: Unit, store_root: str, progress: Optional[bool] = False) -> dict:
    """Run one unit where this function is called (a pool worker, a Slurm job, or the driver itself) and store its
    result; a unit already in the store is read back.  Raises :class:`~pags_core.store.LeaseHeld` when another live
    worker is computing it."""
    store = RunStore(store_root)
    if unit.done(store):
        return unit.result(store)
    with _threads(unit.exec.threads), store.lease(unit.kind, unit.config()):
        if unit.done(store):
            return unit.result(store)
        t0 = time.perf_counter()
        result = dict(unit.run(UnitContext(store, unit, progress)))
        result.setdefault("unit_seconds", time.perf_counter() - t0)
        store.save(unit.kind, unit.config(), result)
    return unit.result(store)


def _log_path(store: RunStore, unit: Unit) -> Path:
    return unit.folder(store) / "log.txt"


def _future_log(fut: Any, fallback: Optional[Path]) -> Optional[str]:
    log = getattr(fut, "log", None)
    return str(log) if log else (str(fallback) if fallback is not None and Path(fallback).exists() else None)


@dataclasses.dataclass
class _Sweep:
    """What one pass of :func:`run_plan` has learnt so far: runs computed, runs that failed (label -> (message,
    log)), keys of failed runs (their dependants are not run) and whether an artefact was found corrupt."""

    store: RunStore
    ex: Executor
    name: str
    bar: Any
    poll_s: float
    failures: "OrderedDict[str, tuple]"
    computed: int = 0
    corrupt: bool = False
    failed_keys: set = dataclasses.field(default_factory=set)

    def fail(self, unit: Unit, message: str, log: Optional[str]) -> None:
        self.failed_keys.add(unit.key)
        self.failures[unit.label()] = (message, log)

    def wave(self, i: int, wave: list) -> None:
        """Compute the units of one wave that the store lacks and whose dependencies are there; units another sweep
        holds the lease of are waited for, and taken over if that sweep lets its lease go."""
        pending = []
        for u in wave:
            if u.done(self.store):
                continue
            bad = [d for d in u.deps() if d.key in self.failed_keys or not d.done(self.store)]
            if bad:
                self.fail(u, f"not run: it needs {bad[0].label()}, which is missing", None)
                continue
            pending.append(u)
        waiting: list = []
        while pending or waiting:
            if pending:
                waiting += self.submit(f"{self.name}-wave{i}", pending)
                pending = []
            if waiting:  # another sweep computes these: wait until it stores them or lets its lease go
                time.sleep(self.poll_s)
                still = []
                for u in waiting:
                    if u.done(self.store):
                        self.bar.update(1)
                    elif self.store.lease_holder(u.kind, u.config()) is None:
                        pending.append(u)
                    else:
                        still.append(u)
                waiting = still

    def submit(self, label: str, units: list) -> list:
        """Run ``units`` as one submission on the executor; returns those whose lease another sweep holds."""
        store = self.store
        logs = [_log_path(store, u) for u in units]
        with self.ex.wave(label):
            futs = [self.ex.submit(execute_unit, u, str(store.root), log=log) for u, log in zip(units, logs)]
        held = []
        for u, fut, log in zip(units, futs, logs):
            try:
                fut.result()
                self.computed += 1
                self.failures.pop(u.label(), None)
                self.bar.update(1)
            except LeaseHeld:
                held.append(u)
            except CorruptRunError as e:
                self.corrupt = True
                self.fail(u, str(e), _future_log(fut, log))
            except Exception as e:  # noqa: BLE001 - reported at the end, the sweep goes on
                self.fail(u, f"{type(e).__name__}: {e}", _future_log(fut, log))
        return held


def run_plan(plan: Plan, executor: "str | Executor" = "serial", store: Optional[RunStore] = None, *,
             progress: Optional[bool] = None, download: bool = False, poll_s: float = 2.0,
             **executor_options: Any) -> PlanReport:
    """Compute every unit of ``plan`` that the store lacks, wave by wave, on ``executor`` (a name of
    :data:`~pags_core.experiments.EXECUTORS` with ``executor_options``, or an executor object).

    ``download`` lets the driver fetch a data set that is not on disk (CIFAR) before anything fans out.
    Raises :class:`PlanIncomplete` naming every run that could not be computed; all others are stored."""
    from tqdm.auto import tqdm

    store = store if store is not None else RunStore()
    own = isinstance(executor, str)
    ex = make_executor(executor, store=store.root, **executor_options) if own else executor
    t0 = time.perf_counter()
    try:
        units = plan.units()
        for spec in {getattr(u, "data", None) for u in units} - {None}:
            spec.stage(download=download)
        cached = sum(u.done(store) for u in units)
        failures: "OrderedDict[str, tuple]" = OrderedDict()
        computed = 0
        for attempt in range(2):  # a second pass recomputes what a corrupt artefact set aside in the first
            bar = tqdm(total=sum(not u.done(store) for u in units), desc=plan.name,
                       disable=None if progress is None else not progress, leave=False)
            sweep = _Sweep(store, ex, plan.name, bar, poll_s, failures)
            for i, wave in enumerate(plan.waves()):
                sweep.wave(i, wave)
            bar.close()
            computed += sweep.computed
            if not (sweep.corrupt and attempt == 0):
                break
            failures.clear()
        if failures:
            raise PlanIncomplete(plan.name, failures, store)
        return PlanReport(plan.name, len(units), cached, computed, time.perf_counter() - t0, ex.describe())
    finally:
        if own:
            ex.shutdown()
