"""ITOP-Rand dynamic sparse training, SET style (paper B's correlation study trains with it).

:class:`ITOPRand` is a training callback (:class:`~pags_core.training.Callback`).  Every ``update_interval`` optimiser
steps it updates the topology of every layer at constant per-layer count:

* **death by magnitude** -- the ``round(r_t * n_l)`` kept weights of smallest ``|w|`` leave the mask (``n_l`` = kept
  weights of layer l, ``r_t`` = death rate at step t, cosine-decayed from ``death_rate`` to ``death_rate_min`` over the
  planned number of steps);
* **growth at random** -- as many positions, drawn uniformly among the positions that were pruned *before* the update
  (``regrow_dead=True`` also allows the just-removed ones, as ITOP's Bernoulli growth does), enter the mask with
  weight exactly 0 and a zeroed optimiser state (momentum buffers);
* no redistribution between layers, so every layer density -- hence the global density -- is constant.

A layer at density > 1/(1+r_t) cannot regrow as many weights as it loses; its death count is capped at its number of
pruned positions (a dense ERK stem is therefore never updated).

:func:`itop_train` records the *anchor* (initial mask M_0, dense-init weights θ0) and, after every topology update t,
the snapshot (M_t, θ_t): the mask the loop trains from that step on and the weights right after the update (the
"start" snapshot; regrown weights are 0 in θ_t).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, List, Mapping, MutableMapping, Optional

import numpy as np
import torch
from torch import nn

from ..data import load_dataset
from ..masks import Mask
from ..pruning import generate_mask
from ..training import Callback, TrainState, get_recipe, train
from ..training.callbacks import as_callbacks, cpu_state

__all__ = ["ITOPRand", "UpdateRecord", "Snapshot", "ITOPRun", "itop_train"]

# ------------------------------------------------------------------------------------------------------------------
# dynamic sparse training
# ------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class UpdateRecord:
    """One topology update: the optimiser step after which it happened, the death rate used, the number of weights
    that left (= entered) the mask in total and per layer, and the global density afterwards."""

    step: int
    death_rate: float
    removed: int
    per_layer: Dict[str, int]
    density: float


class ITOPRand(Callback):
    """SET-style ITOP-Rand topology updates as a training callback.

    The callback counts the optimiser steps itself (``self.steps``) and updates after steps ``update_interval, 2*update_interval, ...`` strictly before ``total_steps`` (an update after
    the last step would never be trained).  ``mask`` is modified **in place** (its tensors are overwritten), the
    model's weights at changed positions are set to 0 and so are the matching entries of every optimiser-state
    tensor of the weight's shape (SGD ``momentum_buffer``, Adam moments).

    ``on_update(record, model, optimizer, mask)`` is called after every update (this is where snapshots are taken).
    ``emitted`` is a list the owner may fill (e.g. the snapshots taken so far); it is part of :meth:`state_dict`, so a
    resumed run keeps it.
    """

    def __init__(
        self,
        *,
        update_interval: int,
        total_steps: int,
        death_rate: float = 0.5,
        death_rate_min: float = 0.0,
        seed: int = 0,
        regrow_dead: bool = False,
        on_update: Optional[Callable[[UpdateRecord, nn.Module, Any, MutableMapping], None]] = None,
    ):
        if not isinstance(update_interval, (int, np.integer)) or update_interval < 1:
            raise ValueError(f"update_interval must be a positive int (optimiser steps), got {update_interval!r}")
        if not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
        if not 0.0 <= death_rate_min <= death_rate <= 1.0:
            raise ValueError(f"need 0 <= death_rate_min <= death_rate <= 1, got {death_rate_min!r} and {death_rate!r}")
        self.update_interval = int(update_interval)
        self.total_steps = int(total_steps)
        self.death_rate = float(death_rate)
        self.death_rate_min = float(death_rate_min)
        self.regrow_dead = bool(regrow_dead)
        self.on_update = on_update
        self.steps = 0
        self.records: List[UpdateRecord] = []
        self.emitted: List[Any] = []
        # growth draws come from their own CPU generator: independent of data order and of the device
        self._gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + 0x17A0)

    def state_dict(self) -> Dict[str, Any]:
        """Step count, update records and the growth generator's state (for :func:`pags_core.train` checkpoints)."""
        return {"steps": self.steps, "records": [dataclasses.asdict(r) for r in self.records],
                "generator": self._gen.get_state(), "emitted": list(self.emitted)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.records = [UpdateRecord(**r) for r in state["records"]]
        self._gen.set_state(state["generator"])
        self.emitted = list(state.get("emitted", []))

    def death_rate_at(self, step: int) -> float:
        """Cosine decay: ``min + (rate - min) * (1 + cos(pi * step / total_steps)) / 2``."""
        frac = min(max(step / self.total_steps, 0.0), 1.0)
        return self.death_rate_min + (self.death_rate - self.death_rate_min) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def update_steps(self) -> List[int]:
        """The optimiser steps after which this callback will update the topology."""
        return list(range(self.update_interval, self.total_steps, self.update_interval))

    def on_step_end(self, state: TrainState) -> None:
        self.steps += 1
        t = self.steps
        if t % self.update_interval == 0 and t < self.total_steps:
            rec = self.update(state.model, state.optimizer, state.mask, step=t)
            if self.on_update is not None:
                self.on_update(rec, state.model, state.optimizer, state.mask)

    @torch.no_grad()
    def update(self, model: nn.Module, optimizer: Any, mask: MutableMapping[str, torch.Tensor], *, step: int) -> UpdateRecord:
        """One prune-and-regrow pass over every tensor of ``mask`` (in place); returns its record."""
        rate = self.death_rate_at(step)
        params = dict(model.named_parameters())
        per_layer: Dict[str, int] = {}
        kept_total = numel_total = 0
        for name in list(mask.keys()):
            m = mask[name]
            if name not in params:
                raise KeyError(f"mask tensor {name!r} names no parameter of the model")
            w = params[name]
            flat = m.reshape(-1).to(torch.bool)
            n_total = flat.numel()
            n_kept = int(flat.sum())
            k = int(math.floor(rate * n_kept + 0.5))
            if not self.regrow_dead:
                k = min(k, n_total - n_kept)
            kept_total += n_kept
            numel_total += n_total
            per_layer[name] = max(k, 0)
            if k <= 0:
                continue
            # death: the k kept weights of smallest magnitude (stable sort: ties go to the lower flat index)
            kept_idx = flat.nonzero(as_tuple=True)[0]
            mags = w.detach().reshape(-1).to(flat.device)[kept_idx].abs()
            dead = kept_idx[torch.sort(mags, stable=True).indices[:k]]
            new = flat.clone()
            new[dead] = False
            # growth: k positions uniformly at random among the pruned ones
            pool = (~(new if self.regrow_dead else flat)).nonzero(as_tuple=True)[0]
            pick = torch.randperm(pool.numel(), generator=self._gen)[:k].to(pool.device)
            grown = pool[pick]
            new[grown] = True
            changed = torch.zeros_like(flat)
            changed[dead] = True
            changed[grown] = True
            m.copy_(new.view(m.shape).to(m.dtype))
            changed_w = changed.view(w.shape).to(w.device)
            w.masked_fill_(changed_w, 0.0)
            w.mul_(new.view(w.shape).to(device=w.device, dtype=w.dtype))  # the snapshot weights are zero off-mask
            state = getattr(optimizer, "state", {}).get(w, {}) if optimizer is not None else {}
            for buf in state.values():
                if isinstance(buf, torch.Tensor) and buf.shape == w.shape:
                    buf.masked_fill_(changed_w.to(buf.device), 0)
        rec = UpdateRecord(step=step, death_rate=rate, removed=int(sum(per_layer.values())), per_layer=per_layer,
                           density=kept_total / max(numel_total, 1))
        self.records.append(rec)
        return rec


@dataclasses.dataclass
class Snapshot:
    """(M_t, θ_t) after the topology update at optimiser step ``step`` (step 0 = the anchor (M_0, θ0)).

    ``state`` is a CPU copy of the model's ``state_dict`` (parameters and BN buffers).  When the snapshot lives in
    a run store, ``mask``/``state`` may be ``None`` and are read from ``mask_path``/``state_path`` by :meth:`load`.
    """

    step: int
    mask: Any = None
    state: Optional[Dict[str, torch.Tensor]] = None
    death_rate: float = 0.0
    density: float = math.nan
    mask_path: Optional[str] = None
    state_path: Optional[str] = None

    def load(self) -> "Snapshot":
        """A copy with ``mask`` and ``state`` in memory (reads the files when needed)."""
        mask = self.mask if self.mask is not None else Mask.load(self.mask_path)
        state = self.state if self.state is not None else torch.load(self.state_path, map_location="cpu", weights_only=True)
        return dataclasses.replace(self, mask=mask, state=state)


@dataclasses.dataclass
class ITOPRun:
    """What :func:`itop_train` returns: the anchor, the snapshots (in update order), the update records, the
    substrate's ``TrainResult`` of the dynamic sparse run and the number of planned optimiser steps."""

    anchor: Snapshot
    snapshots: List[Snapshot]
    updates: List[UpdateRecord]
    result: Any
    total_steps: int
    final_mask: Any = None


def _clone_mask(mask: Mapping[str, torch.Tensor]):
    if isinstance(mask, Mask):
        return mask.clone().to("cpu")
    return Mask({k: v.detach().to("cpu", copy=True) for k, v in mask.items()})


def _planned_steps(data: Any, recipe: Any, epochs: Optional[int], max_iters: Optional[int]) -> int:
    """Optimiser steps the substrate's ``train`` will take: epochs x batches per epoch, capped by ``max_iters``."""
    rec = get_recipe(recipe)
    ep = int(rec.epochs if epochs is None else epochs)
    steps = ep * len(data.train_batches(rec.batch_size))
    return min(steps, int(max_iters)) if max_iters is not None else steps


def itop_train(
    model: nn.Module,
    data: Any,
    recipe: Any = "book",
    *,
    density: float,
    update_interval: int,
    mask: Optional[Mapping[str, torch.Tensor]] = None,
    seed: int = 0,
    epochs: Optional[int] = None,
    max_iters: Optional[int] = None,
    death_rate: float = 0.5,
    death_rate_min: float = 0.0,
    regrow_dead: bool = False,
    total_steps: Optional[int] = None,
    device: str | torch.device = "auto",
    on_snapshot: Optional[Callable[[Snapshot], Optional[Snapshot]]] = None,
    keep_snapshots: bool = True,
    callbacks: Any = None,
    progress: Any = None,
    checkpoint: Any = None,
) -> ITOPRun:
    """ITOP-Rand dynamic sparse training of ``model`` (its current weights are θ0) on ``data``.

    The initial mask is ``mask`` or an exact-count ERK mask at ``density`` drawn with ``seed``.  Returns an
    :class:`ITOPRun` whose ``anchor`` is (M_0, θ0) and whose ``snapshots`` are (M_t, θ_t) after each update.

    ``on_snapshot(snapshot)`` is called with the anchor and then after every update (e.g. to persist it); when it
    returns a snapshot, that object is kept instead (a store can drop the tensors and keep the file paths).
    ``keep_snapshots=False`` keeps nothing in memory.  ``callbacks`` run after the ITOP update of every step.

    ``checkpoint``: a file path for :func:`pags_core.train`'s per-epoch checkpoint, which also holds the ITOP state
    (step count, update records, growth generator) and the snapshots kept so far; a call that finds it resumes after
    its last epoch and returns the same run as an uninterrupted call (the anchor is emitted again from the ``model``
    passed in, which must be θ0).
    """
    if isinstance(data, str):
        data = load_dataset(data)
    if mask is None:
        mask = generate_mask(model, "erk", density, seed=seed, device=device)
    elif not isinstance(mask, Mask):
        mask = Mask(mask)
    total = int(total_steps) if total_steps is not None else _planned_steps(data, recipe, epochs, max_iters)

    def _emit(s: Snapshot) -> Snapshot:
        kept = on_snapshot(s) if on_snapshot is not None else None
        return kept if kept is not None else s

    m0 = _clone_mask(mask)
    anchor = _emit(Snapshot(step=0, mask=m0, state=cpu_state(model), death_rate=0.0, density=float(m0.density)))
    cb = ITOPRand(update_interval=update_interval, total_steps=total, death_rate=death_rate,
                  death_rate_min=death_rate_min, seed=seed, regrow_dead=regrow_dead)

    def _on_update(rec: UpdateRecord, mdl: nn.Module, opt: Any, msk: MutableMapping) -> None:
        mt = _clone_mask(msk)
        s = _emit(Snapshot(step=rec.step, mask=mt, state=cpu_state(mdl), death_rate=rec.death_rate,
                           density=float(mt.density)))
        if keep_snapshots:
            cb.emitted.append(s)

    cb.on_update = _on_update
    work_mask = mask.clone()
    result = train(model, data, recipe, mask=work_mask, device=device, seed=seed, epochs=epochs, max_iters=max_iters,
                   callbacks=[cb, *as_callbacks(callbacks)], progress=progress, checkpoint=checkpoint)
    return ITOPRun(anchor=anchor, snapshots=list(cb.emitted), updates=list(cb.records), result=result,
                   total_steps=total, final_mask=_clone_mask(work_mask))
