"""ITOP-Rand dynamic sparse training (SET style) and the snapshot correlation study of paper B (METHOD §9).

Dynamic sparse training
    :class:`ITOPRand` is a ``step_callback`` for :func:`pags_core.train`.  Every ``update_interval`` optimiser steps
    it updates the topology of every layer at constant per-layer count:

    * **death by magnitude** -- the ``round(r_t * n_l)`` kept weights of smallest ``|w|`` leave the mask
      (``n_l`` = kept weights of layer l, ``r_t`` = death rate at step t, cosine-decayed from ``death_rate``
      to ``death_rate_min`` over the planned number of steps);
    * **growth at random** -- as many positions, drawn uniformly among the positions that were pruned *before*
      the update (``regrow_dead=True`` also allows the just-removed ones, as ITOP's Bernoulli growth does),
      enter the mask with weight exactly 0 and a zeroed optimiser state (momentum buffers);
    * no redistribution between layers, so every layer density -- hence the global density -- is constant.

    A layer at density > 1/(1+r_t) cannot regrow as many weights as it loses; its death count is capped at its
    number of pruned positions (a dense ERK stem is therefore never updated).

Snapshots
    :func:`itop_train` records the *anchor* (initial mask M_0, dense-init weights θ0) and, after every topology
    update t, the snapshot (M_t, θ_t) -- the mask the loop trains from that step on and the weights right after
    the update (the "start" snapshot; regrown weights are 0 in θ_t).

The study
    :func:`itop_study` runs one ITOP-Rand training per (model, seed), retrains each selected snapshot as a *static*
    sparse network (from θ_t, or from θ0 with ``retrain_from="init"``) with the profile's recipe, measures the
    network-level ``neurips2023`` metrics of (M_t, |θ_t|) and correlates each with the retrained test accuracy
    (Pearson r, 95% Fisher-z interval, n).  Every DST run (with its snapshots as artefacts) and every retraining
    is persisted in a :class:`~pags_core.store.RunStore` keyed by its full configuration, so an interrupted study
    resumes without retraining finished snapshots and returns the same table.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Any, Callable, Dict, List, Mapping, MutableMapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .stats import partial_pearson, pearson

__all__ = [
    "ITOPRand",
    "UpdateRecord",
    "Snapshot",
    "ITOPRun",
    "itop_train",
    "ITOPConfig",
    "ITOP_METRICS",
    "ITOP_REFERENCES",
    "BCODE_VGG_FILTER",
    "resolve_itop_config",
    "select_snapshots",
    "snapshot_metrics",
    "apply_bcode_filter",
    "snapshot_correlations",
    "ITOPStudy",
    "itop_study",
]

#: bump when a change would alter stored results (it is part of every run key)
_VERSION = 1


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


class ITOPRand:
    """SET-style ITOP-Rand topology updates as a ``step_callback(step, model, optimizer, mask)``.

    The callback counts the optimiser steps itself (``self.steps``; the ``step`` argument is not interpreted) and
    updates after steps ``update_interval, 2*update_interval, ...`` strictly before ``total_steps`` (an update after
    the last step would never be trained).  ``mask`` is modified **in place** (its tensors are overwritten), the
    model's weights at changed positions are set to 0 and so are the matching entries of every optimiser-state
    tensor of the weight's shape (SGD ``momentum_buffer``, Adam moments).

    ``on_update(record, model, optimizer, mask)`` is called after every update (this is where snapshots are taken).
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
        # growth draws come from their own CPU generator: independent of data order and of the device
        self._gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + 0x17A0)

    def state_dict(self) -> Dict[str, Any]:
        """Step count, update records and the growth generator's state (for :func:`pags_core.train` checkpoints)."""
        return {"steps": self.steps, "records": [dataclasses.asdict(r) for r in self.records],
                "generator": self._gen.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.records = [UpdateRecord(**r) for r in state["records"]]
        self._gen.set_state(state["generator"])

    def death_rate_at(self, step: int) -> float:
        """Cosine decay: ``min + (rate - min) * (1 + cos(pi * step / total_steps)) / 2``."""
        frac = min(max(step / self.total_steps, 0.0), 1.0)
        return self.death_rate_min + (self.death_rate - self.death_rate_min) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def update_steps(self) -> List[int]:
        """The optimiser steps after which this callback will update the topology."""
        return list(range(self.update_interval, self.total_steps, self.update_interval))

    def __call__(self, step: int, model: nn.Module, optimizer: Any, mask: MutableMapping[str, torch.Tensor]) -> None:
        self.steps += 1
        t = self.steps
        if t % self.update_interval == 0 and t < self.total_steps:
            rec = self.update(model, optimizer, mask, step=t)
            if self.on_update is not None:
                self.on_update(rec, model, optimizer, mask)

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
        from .masks import Mask

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
    from .masks import Mask

    if isinstance(mask, Mask):
        return mask.clone().to("cpu")
    return Mask({k: v.detach().to("cpu", copy=True) for k, v in mask.items()})


def _cpu_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _planned_steps(data: Any, recipe: Any, epochs: Optional[int], max_iters: Optional[int]) -> int:
    """Optimiser steps the substrate's ``train`` will take: epochs x batches per epoch, capped by ``max_iters``."""
    from .training import get_recipe

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
    step_callback: Optional[Callable[[int, nn.Module, Any, MutableMapping], None]] = None,
    progress: Any = None,
    checkpoint: Any = None,
) -> ITOPRun:
    """ITOP-Rand dynamic sparse training of ``model`` (its current weights are θ0) on ``data``.

    The initial mask is ``mask`` or an exact-count ERK mask at ``density`` drawn with ``seed``.  Returns an
    :class:`ITOPRun` whose ``anchor`` is (M_0, θ0) and whose ``snapshots`` are (M_t, θ_t) after each update.

    ``on_snapshot(snapshot)`` is called with the anchor and then after every update (e.g. to persist it); when it
    returns a snapshot, that object is kept instead (a store can drop the tensors and keep the file paths).
    ``keep_snapshots=False`` keeps nothing in memory.  ``step_callback`` is chained after the ITOP update (same
    signature as :func:`pags_core.train`'s), e.g. to log the mask the loop is training with.

    ``checkpoint``: a file path for :func:`pags_core.train`'s per-epoch checkpoint, which here also holds the ITOP
    state (step count, update records, growth generator) and the snapshots emitted so far; a call that finds it
    resumes after its last epoch and returns the same run as an uninterrupted call (the anchor is emitted again from
    the ``model`` passed in, which must be θ0).  The state of a chained ``step_callback`` is not saved.
    """
    from .data import load_dataset
    from .pruning import generate_mask
    from .training import train

    if isinstance(data, str):
        data = load_dataset(data)
    if mask is None:
        mask = generate_mask(model, "erk", density, seed=seed, device=device)
    total = int(total_steps) if total_steps is not None else _planned_steps(data, recipe, epochs, max_iters)
    snaps: List[Snapshot] = []

    def _emit(s: Snapshot) -> Snapshot:
        kept = on_snapshot(s) if on_snapshot is not None else None
        return kept if kept is not None else s

    m0 = _clone_mask(mask)
    anchor = _emit(Snapshot(step=0, mask=m0, state=_cpu_state(model), death_rate=0.0, density=float(m0.density)))
    last_mask: Dict[str, Any] = {}

    def _on_update(rec: UpdateRecord, mdl: nn.Module, opt: Any, msk: MutableMapping) -> None:
        mt = _clone_mask(msk)
        s = _emit(Snapshot(step=rec.step, mask=mt, state=_cpu_state(mdl), death_rate=rec.death_rate,
                           density=float(mt.density)))
        if keep_snapshots:
            snaps.append(s)

    cb = ITOPRand(update_interval=update_interval, total_steps=total, death_rate=death_rate,
                  death_rate_min=death_rate_min, seed=seed, regrow_dead=regrow_dead, on_update=_on_update)

    def _callback(step, mdl, opt, msk):
        last_mask["m"] = msk
        cb(step, mdl, opt, msk)
        if step_callback is not None:
            step_callback(step, mdl, opt, msk)

    def _state():
        return {"itop": cb.state_dict(), "snapshots": list(snaps)}

    def _load(state):
        cb.load_state_dict(state["itop"])
        snaps[:] = state["snapshots"]

    _callback.state_dict, _callback.load_state_dict = _state, _load  # picked up by train()'s checkpoint

    result = train(model, data, recipe, mask=mask, device=device, seed=seed, epochs=epochs, max_iters=max_iters,
                   step_callback=_callback, progress=progress, checkpoint=checkpoint)
    final = _clone_mask(last_mask["m"]) if "m" in last_mask else _clone_mask(mask)
    return ITOPRun(anchor=anchor, snapshots=snaps, updates=list(cb.records), result=result, total_steps=total,
                   final_mask=final)


# ------------------------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------------------------
#: network-level metrics correlated with accuracy: layer means of Δr, λ, Δr_imdb, λ_imsg, FS (= the ℓ2 distance
#: from the origin, METHOD §5.4 default) and the anchor distances from (M_0, θ0) and from (M_t, θ0).
ITOP_METRICS: Dict[str, str] = {
    "ramanujan_gap": "Δr (topology)",
    "weighted_gap": "λ (weights)",
    "imdb": "Δr_imdb",
    "imsg": "λ_imsg",
    "full_spectrum": "FS = ℓ2 distance from the origin",
    "dist_initial": "ℓ2 distance from (M_0, θ0)",
    "dist_same_mask": "ℓ2 distance from (M_t, θ0)",
}

#: reference rows of the correlation table: the ITOP step itself.  Later snapshots have been trained longer before
#: their retraining, so a metric that merely grows with training time also correlates with accuracy.
ITOP_REFERENCES: Dict[str, str] = {"step": "ITOP step (training time; a confound check)"}

#: B-code's snapshot filter for VGG-D (METHOD §9): keep Δr_imdb > 0.05, FS < 6 and λ_imsg > 0.05.
BCODE_VGG_FILTER: Dict[str, tuple] = {"imdb": (">", 0.05), "full_spectrum": ("<", 6.0), "imsg": (">", 0.05)}

_RETRAIN_FROM = ("snapshot", "init")


@dataclasses.dataclass(frozen=True)
class ITOPConfig:
    """Everything that defines an ITOP study: one ITOP-Rand run per (model, seed) plus the static retrainings.

    ``epochs``/``retrain_epochs``: None = the recipe's.  ``snapshots``: how many update snapshots (evenly spaced,
    first and last included) are retrained; None = all.  ``download`` and ``device`` do not enter any run key.
    """

    profile: str
    models: tuple
    dataset: str
    width: float
    in_channels: int
    num_classes: int
    init: str
    density: float
    recipe: Any  # a RECIPES name, or a Recipe
    update_interval: int
    snapshots: Optional[int]
    seeds: tuple
    device: str = "auto"
    image_size: Optional[int] = None
    val_fraction: float = 0.1
    data_seed: int = 0
    epochs: Optional[int] = None
    retrain_epochs: Optional[int] = None
    max_iters: Optional[int] = None
    death_rate: float = 0.5
    death_rate_min: float = 0.0
    regrow_dead: bool = False
    retrain_from: str = "snapshot"
    convention: str = "neurips2023"
    include_anchor: bool = False
    download: bool = False

    @property
    def model(self) -> str:
        return self.models[0]

    def replace(self, **changes: Any) -> "ITOPConfig":
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One ``field = value`` line per field."""
        return "\n".join(f"{f.name:>16} = {getattr(self, f.name)!r}" for f in dataclasses.fields(self))

    def load_data(self):
        """The data set of this study (``load_dataset`` with the study's data settings)."""
        from .data import load_dataset

        opts: Dict[str, Any] = {"val_fraction": self.val_fraction, "seed": self.data_seed, "download": self.download}
        if self.image_size is not None:
            opts["image_size"] = self.image_size
        return load_dataset(self.dataset, **opts)


def _as_list(value: Any, name: str) -> Optional[list]:
    """``None``, a sequence, or a string as papermill's ``-p`` passes it (``"[0, 1]"``, ``"resnet18,resnet34"``)."""
    if value is None or not isinstance(value, str):
        return None if value is None else list(value)
    text = value.strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = [t.strip().strip("'\"") for t in text.strip("[]()").split(",") if t.strip()]
    parsed = parsed if isinstance(parsed, list) else [parsed]
    if not parsed:
        raise ValueError(f"{name} must name at least one value, got {value!r}")
    return parsed


def resolve_itop_config(
    profile: str = "book",
    *,
    model: Optional[str] = None,
    models: Optional[Sequence[str]] = None,
    dataset: Optional[str] = None,
    density: Optional[float] = None,
    update_interval: Optional[int] = None,
    snapshots: Optional[int] = None,
    seeds: Optional[Sequence[int]] = None,
    device: str = "auto",
    **overrides: Any,
) -> ITOPConfig:
    """The study configuration of ``profile`` (``"book"`` or ``"paper"``, see :data:`pags_core.PROFILES`) with
    the given overrides; every other :class:`ITOPConfig` field can be overridden by keyword.

    Defaults come from the profile: model, dataset, density, recipe, epochs, ``itop_update_every``,
    ``itop_snapshots``, ``itop_death_rate`` and the first seed.  ``models`` (several models, Fig 3) always starts
    with ``model``.  Unknown profiles, models, data sets or option values raise ``KeyError``/``ValueError`` that
    list the valid ones.  Overriding the data set loads it once to read its channel and class counts.
    ``models`` and ``seeds`` may also be strings as papermill's ``-p`` passes them (``"[0, 1]"``, ``"a,b"``).
    """
    from .data import DATASETS
    from .models import MODELS
    from .profiles import get_profile
    from .spectral import CONVENTIONS
    from .training import RECIPES

    prof = get_profile(profile)
    model = model or prof.model
    models, seeds = _as_list(models, "models"), _as_list(seeds, "seeds")
    names = [model] + [m for m in (models or []) if str(m).lower() != model.lower()]
    for m in names:
        MODELS[m]  # raises KeyError listing the valid models
    ds = (dataset or prof.dataset).lower()
    DATASETS[ds]  # raises KeyError listing the valid data sets
    if ds != prof.dataset.lower():
        data = prof.replace(dataset=ds, image_size=None).load_data(download=bool(overrides.get("download", False)))
        prof = prof.replace(dataset=ds, image_size=None, in_channels=data.in_channels, num_classes=data.num_classes)
    dens = float(density if density is not None else prof.density)
    if not 0.0 < dens <= 1.0:
        raise ValueError(f"density (kept fraction) must lie in (0, 1], got {density!r}")
    ui = update_interval if update_interval is not None else prof.itop_update_every
    if not isinstance(ui, (int, np.integer)) or ui < 1:
        raise ValueError(f"update_interval must be a positive int (optimiser steps), got {update_interval!r}")
    snaps = snapshots if snapshots is not None else prof.itop_snapshots
    if snaps is not None and (not isinstance(snaps, (int, np.integer)) or snaps < 2):
        raise ValueError(f"snapshots must be an int >= 2 (a correlation needs points) or None for all, got {snapshots!r}")
    sds = tuple(int(s) for s in (seeds if seeds is not None else tuple(prof.seeds)[:1]))
    if not sds:
        raise ValueError("seeds must name at least one seed")
    valid = {f.name for f in dataclasses.fields(ITOPConfig)}
    bad = sorted(set(overrides) - valid)
    if bad:
        raise TypeError(f"unknown ITOP option(s) {', '.join(bad)}; valid options: {', '.join(sorted(valid))}")
    cfg = ITOPConfig(
        profile=prof.name, models=tuple(m.lower() for m in names), dataset=ds, width=float(prof.width),
        in_channels=int(prof.in_channels), num_classes=int(prof.num_classes), init=str(prof.init), density=dens,
        recipe=prof.recipe, update_interval=int(ui), snapshots=None if snaps is None else int(snaps), seeds=sds,
        device=str(device), image_size=prof.image_size, val_fraction=float(prof.val_fraction),
        data_seed=int(prof.data_seed), epochs=prof.epochs, retrain_epochs=prof.epochs,
        death_rate=float(prof.itop_death_rate),
    ).replace(**overrides)
    if isinstance(cfg.recipe, str):
        RECIPES[cfg.recipe]  # raises KeyError listing the valid recipes
    if cfg.retrain_from not in _RETRAIN_FROM:
        raise ValueError(f"unknown retrain_from {cfg.retrain_from!r}; valid choices: {', '.join(_RETRAIN_FROM)}")
    if cfg.convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {cfg.convention!r}; valid choices: {', '.join(sorted(CONVENTIONS))}")
    from .device import resolve_device

    resolve_device(cfg.device)  # raises when CUDA is asked for but missing
    return cfg


# ------------------------------------------------------------------------------------------------------------------
# snapshots, metrics, correlations
# ------------------------------------------------------------------------------------------------------------------
def select_snapshots(steps: Sequence[int], count: Optional[int]) -> List[int]:
    """``count`` evenly spaced entries of ``steps`` (always the first and the last); all of them when ``count`` is
    None or not smaller than ``len(steps)``."""
    steps = list(steps)
    if count is None or count >= len(steps):
        return steps
    if count < 1:
        raise ValueError(f"count must be positive, got {count!r}")
    idx = sorted(set(int(round(i)) for i in np.linspace(0, len(steps) - 1, count)))
    return [steps[i] for i in idx]


def snapshot_metrics(
    model: nn.Module,
    mask: Mapping[str, torch.Tensor],
    *,
    weights: Any = "model",
    convention: str = "neurips2023",
    initial_weights: Optional[Mapping[str, torch.Tensor]] = None,
    initial_mask: Optional[Mapping[str, torch.Tensor]] = None,
    initial_reference: Optional[pd.DataFrame] = None,
) -> Dict[str, float]:
    """Network-level metrics of (mask, |W|) with W the model's weights (or ``weights``, a name -> tensor mapping):
    layer means (non-finite -> 0) of Δr, λ, Δr_imdb, λ_imsg and FS (FS = the ℓ2 distance from the origin).

    With ``initial_weights`` (θ0) it adds the anchor distances of METHOD §5.4 (full 4-vector, mean over layers):
    ``dist_same_mask`` from (M_t, θ0) and, with ``initial_mask`` (M_0) or a precomputed ``initial_reference``
    (:func:`pags_core.anchor_reference` with ``reference="initial"``), ``dist_initial`` from (M_0, θ0).
    """
    from .spectral import anchor_reference, fs_distance, model_spectrum, network_summary

    df = model_spectrum(model, mask, convention, weights=weights, progress=False)
    summ = network_summary(df)
    out = {k: float(summ[k]) for k in ("ramanujan_gap", "weighted_gap", "imdb", "imsg", "full_spectrum")}
    if initial_weights is not None:
        same = anchor_reference(model, mask, initial_weights=initial_weights, reference="same_mask",
                                convention=convention, progress=False)
        if initial_reference is None and initial_mask is not None:
            initial_reference = anchor_reference(model, mask, initial_weights=initial_weights, initial_mask=initial_mask,
                                                 reference="initial", convention=convention, progress=False)
        out["dist_initial"] = (fs_distance(df, initial_reference, distance="anchor")
                               if initial_reference is not None else math.nan)
        out["dist_same_mask"] = fs_distance(df, same, distance="anchor")
    return out


def _passes(value: float, op: str, bound: float) -> bool:
    return bool(np.isfinite(value) and (value > bound if op == ">" else value < bound))


def apply_bcode_filter(table: pd.DataFrame, rules: Mapping[str, tuple] = BCODE_VGG_FILTER) -> pd.DataFrame:
    """The rows of ``table`` that pass B-code's VGG snapshot filter (Δr_imdb > 0.05, FS < 6, λ_imsg > 0.05)."""
    keep = np.ones(len(table), dtype=bool)
    for col, (op, bound) in rules.items():
        if op not in (">", "<"):
            raise ValueError(f"filter operator must be '>' or '<', got {op!r}")
        keep &= np.array([_passes(v, op, bound) for v in table[col].to_numpy(float)], dtype=bool)
    return table.loc[keep]


def snapshot_correlations(
    table: pd.DataFrame,
    metrics: Optional[Sequence[str]] = None,
    *,
    target: str = "test_acc",
    by: Sequence[str] = ("model", "dataset", "seed"),
    control: Optional[str] = "step",
    confidence: float = 0.95,
    min_n: int = 3,
) -> pd.DataFrame:
    """Pearson r (95% Fisher-z CI, n, p) of each metric against ``target`` per ``by`` group, once on all
    snapshots (``filter="none"``) and once on those passing :data:`BCODE_VGG_FILTER` (``filter="bcode_vgg"``).

    ``metrics`` defaults to :data:`ITOP_METRICS` plus the reference rows of :data:`ITOP_REFERENCES`.  With
    ``control`` (default ``"step"``) the columns ``partial_r``, ``partial_ci_low``, ``partial_ci_high`` and
    ``partial_p_value`` hold the partial correlation given that column (:func:`pags_core.stats.partial_pearson`).
    Groups with fewer than ``min_n`` snapshots keep their ``n`` but get NaN elsewhere (two points always give
    r = ±1).
    """
    metrics = [m for m in (metrics or [*ITOP_METRICS, *ITOP_REFERENCES]) if m in table.columns]
    if target not in table.columns:
        raise KeyError(f"target column {target!r} is not in the table; it has: {', '.join(map(str, table.columns))}")
    by = [b for b in by if b in table.columns]
    use_control = control is not None and control in table.columns
    groups = table.groupby(by, sort=False) if by else [((), table)]
    rows = []
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        for filt, part in (("none", sub), ("bcode_vgg", apply_bcode_filter(sub))):
            y = part[target].to_numpy(float)
            for m in metrics:
                x = part[m].to_numpy(float)
                res = pearson(x, y, confidence=confidence)
                row = {**dict(zip(by, key)), "filter": filt, "metric": m, "r": res.r, "ci_low": res.ci_low,
                       "ci_high": res.ci_high, "n": res.n, "p_value": res.p_value}
                if use_control:
                    pr = (partial_pearson(x, y, part[control].to_numpy(float), confidence=confidence)
                          if m != control else None)
                    row.update(partial_r=pr.r if pr else np.nan, partial_ci_low=pr.ci_low if pr else np.nan,
                               partial_ci_high=pr.ci_high if pr else np.nan,
                               partial_p_value=pr.p_value if pr else np.nan)
                if res.n < min_n:
                    row.update({k: np.nan for k in row if k in ("r", "ci_low", "ci_high", "p_value") or
                                k.startswith("partial_")})
                rows.append(row)
    cols = [*by, "filter", "metric", "r", "ci_low", "ci_high", "n", "p_value"]
    if use_control:
        cols += ["partial_r", "partial_ci_low", "partial_ci_high", "partial_p_value"]
    return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------------------------------------------------------
# the study
# ------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ITOPStudy:
    """The result of :func:`itop_study`.  ``table`` has one row per retrained snapshot; ``correlations`` one row per
    (model, dataset, seed, filter, metric).  Unpacks as ``table, correlations = itop_study(...)``."""

    config: ITOPConfig
    table: pd.DataFrame
    correlations: pd.DataFrame
    dst: pd.DataFrame
    seconds: float = 0.0

    def __iter__(self):
        return iter((self.table, self.correlations))


def _dst_key(cfg: ITOPConfig, model: str, seed: int) -> dict:
    return {
        "kind": "itop_rand_dst", "version": _VERSION, "model": model, "dataset": cfg.dataset, "width": cfg.width,
        "in_channels": cfg.in_channels, "num_classes": cfg.num_classes, "init": cfg.init, "density": cfg.density,
        "image_size": cfg.image_size, "val_fraction": cfg.val_fraction, "data_seed": cfg.data_seed,
        "sparse_init": "erk", "recipe": cfg.recipe, "epochs": cfg.epochs, "max_iters": cfg.max_iters, "seed": seed,
        "update_interval": cfg.update_interval, "death": "magnitude", "growth": "random", "redistribution": "none",
        "death_rate": cfg.death_rate, "death_rate_min": cfg.death_rate_min, "decay": "cosine",
        "regrow_dead": cfg.regrow_dead,
    }


def _retrain_key(dst_key: dict, cfg: ITOPConfig, step: int) -> dict:
    return {"kind": "itop_retrain", "version": _VERSION, "dst": dst_key, "step": int(step),
            "retrain_from": cfg.retrain_from, "recipe": cfg.recipe, "epochs": cfg.retrain_epochs,
            "max_iters": cfg.max_iters, "seed": dst_key["seed"], "mask": "static"}


_TRAIN_FIELDS = ("test_acc", "best_val_acc", "best_epoch", "final_test_acc", "diverged", "seconds", "iters")


def _result_dict(res: Any) -> dict:
    out = {}
    for f in _TRAIN_FIELDS:
        v = getattr(res, f, None) if not isinstance(res, Mapping) else res.get(f)
        if v is not None:
            out[f] = v
    return out


class _Context:
    """Lazily loaded data (only when something must be trained) and model factory for one study."""

    def __init__(self, cfg: ITOPConfig, progress: Any):
        self.cfg = cfg
        self.progress = progress
        self._data = None

    @property
    def data(self):
        if self._data is None:
            self._data = self.cfg.load_data()
        return self._data

    def model(self, name: str, seed: int) -> nn.Module:
        from .models import make_model

        torch.manual_seed(seed)
        return make_model(name, num_classes=self.cfg.num_classes, in_channels=self.cfg.in_channels,
                          width=self.cfg.width, init=self.cfg.init)


def _run_dst(ctx: _Context, store, model_name: str, seed: int) -> dict:
    """The DST run of (model, seed): read from the store, or train it and persist the anchor, every snapshot and
    finally the run record (whose presence marks the run finished)."""
    cfg = ctx.cfg
    ns, key = "itop_dst", _dst_key(cfg, model_name, seed)
    if store.has(ns, key):
        return store.load(ns, key)

    def persist(s: Snapshot) -> Snapshot:
        mp = store.artefact(ns, key, f"step{s.step:07d}.mask")
        wp = store.artefact(ns, key, f"step{s.step:07d}.pt")
        s.mask.save(mp)
        torch.save(s.state, wp)
        return Snapshot(step=s.step, death_rate=s.death_rate, density=float(s.mask.density), mask_path=mp.name,
                        state_path=wp.name)

    model = ctx.model(model_name, seed)
    t0 = time.perf_counter()
    run = itop_train(model, ctx.data, cfg.recipe, density=cfg.density, update_interval=cfg.update_interval, seed=seed,
                     epochs=cfg.epochs, max_iters=cfg.max_iters, death_rate=cfg.death_rate,
                     death_rate_min=cfg.death_rate_min, regrow_dead=cfg.regrow_dead, device=cfg.device,
                     on_snapshot=persist, progress=ctx.progress, checkpoint=store.artefact(ns, key, "checkpoint.pt"))
    record = {
        "anchor": {"step": 0, "mask": run.anchor.mask_path, "state": run.anchor.state_path},
        "snapshots": [{"step": s.step, "death_rate": s.death_rate, "density": s.density, "mask": s.mask_path,
                       "state": s.state_path}
                      for s in run.snapshots],
        "updates": [{"step": u.step, "death_rate": u.death_rate, "removed": u.removed, "density": u.density}
                    for u in run.updates],
        "total_steps": run.total_steps,
        "initial_density": run.anchor.density,
        "final_density": float(run.final_mask.density),
        "wall_seconds": time.perf_counter() - t0,
        **{f"dst_{k}": v for k, v in _result_dict(run.result).items()},
    }
    store.save(ns, key, record)
    return store.load(ns, key)


def _load_snapshot(store, ns: str, key: dict, entry: Mapping) -> Snapshot:
    folder = store.path(ns, key)
    return Snapshot(step=int(entry["step"]), death_rate=float(entry.get("death_rate", 0.0)),
                    density=float(entry.get("density", math.nan)),
                    mask_path=str(folder / entry["mask"]), state_path=str(folder / entry["state"])).load()


def _model_with(ctx: _Context, name: str, seed: int, state: Mapping[str, torch.Tensor]) -> nn.Module:
    model = ctx.model(name, seed)
    model.load_state_dict(state)
    return model


def _retrain(ctx: _Context, name: str, seed: int, snap: Snapshot, anchor: Snapshot, checkpoint=None) -> dict:
    """Static sparse retraining of ``snap.mask`` from θ_t (or θ0); returns the run record.  ``checkpoint``: the
    per-epoch training checkpoint of :func:`pags_core.train` (an interrupted retraining resumes from it)."""
    from .models import prunable_parameters
    from .training import train

    cfg = ctx.cfg
    start = snap.state if cfg.retrain_from == "snapshot" else anchor.state
    model = _model_with(ctx, name, seed, start)
    mask = snap.mask.clone()
    res = train(model, ctx.data, cfg.recipe, mask=mask, device=cfg.device, seed=seed, epochs=cfg.retrain_epochs,
                max_iters=cfg.max_iters, progress=ctx.progress, checkpoint=checkpoint)
    # the trained nonzero pattern must lie inside the snapshot mask (the mask stayed static)
    outside = 0
    for n, p in prunable_parameters(model).items():
        outside += int(((p.detach().cpu() != 0) & ~snap.mask[n].cpu()).sum())
    return {**_result_dict(res), "nonzero_outside_mask": outside, "mask_density": float(snap.mask.density)}


def itop_study(
    config: Optional[ITOPConfig] = None,
    *,
    store: Any = None,
    progress: Any = None,
    **kwargs: Any,
) -> ITOPStudy:
    """Run (or resume) the ITOP-Rand correlation study of METHOD §9.

    Pass an :class:`ITOPConfig` (see :func:`resolve_itop_config`) or keyword arguments for it
    (``itop_study(profile="book", model="resnet18")``).  ``store`` defaults to ``pags_core.RunStore()``.

    Returns an :class:`ITOPStudy`: ``table`` (one row per retrained snapshot: model, dataset, seed, step,
    density, death_rate, the metrics of :data:`ITOP_METRICS`, test_acc, best_val_acc, ...) and ``correlations``
    (:func:`snapshot_correlations`).  Rerunning with the same configuration reads every finished run back.
    """
    from tqdm.auto import tqdm

    from .models import prunable_parameters
    from .spectral import anchor_reference
    from .store import RunStore

    def prunable_names(m: nn.Module) -> List[str]:
        return list(prunable_parameters(m))

    def bar(it, desc):
        return tqdm(it, desc=desc, leave=False, disable=None if progress is None else not progress)

    if config is not None and kwargs:
        raise TypeError("pass either an ITOPConfig or keyword arguments, not both")
    cfg = config if config is not None else resolve_itop_config(**kwargs)
    store = store if store is not None else RunStore()
    ctx = _Context(cfg, progress)
    t0 = time.perf_counter()
    rows, dst_rows = [], []
    for name in cfg.models:
        for seed in cfg.seeds:
            ns, key = "itop_dst", _dst_key(cfg, name, seed)
            rec = _run_dst(ctx, store, name, seed)
            dst_rows.append({"model": name, "dataset": cfg.dataset, "seed": seed,
                             **{k: v for k, v in rec.items() if k not in ("anchor", "snapshots", "updates")}})
            anchor = _load_snapshot(store, ns, key, rec["anchor"])
            entries = {int(e["step"]): e for e in rec["snapshots"]}
            steps = select_snapshots(sorted(entries), cfg.snapshots)
            if cfg.include_anchor:
                steps = [0, *steps]
            shell = ctx.model(name, seed)  # the architecture; weights are passed explicitly below
            w0 = {k: anchor.state[k] for k in prunable_names(shell)}
            ref_initial = anchor_reference(shell, anchor.mask, initial_weights=w0, initial_mask=anchor.mask,
                                           reference="initial", convention=cfg.convention, progress=False)
            for step in bar(steps, desc=f"ITOP snapshots ({name}, seed {seed})"):
                snap = anchor if step == 0 else _load_snapshot(store, ns, key, entries[step])
                wt = {k: snap.state[k] for k in w0}
                metrics = snapshot_metrics(shell, snap.mask, weights=wt, convention=cfg.convention,
                                           initial_weights=w0, initial_reference=ref_initial)
                rkey = _retrain_key(key, cfg, step)
                res = store.get_or_run("itop_retrain", rkey, lambda: _retrain(
                    ctx, name, seed, snap, anchor, checkpoint=store.artefact("itop_retrain", rkey, "checkpoint.pt")))
                rows.append({"model": name, "dataset": cfg.dataset, "seed": seed, "step": step,
                             "density": float(snap.mask.density), "death_rate": snap.death_rate, **metrics,
                             **{k: res.get(k) for k in _TRAIN_FIELDS if k in res},
                             "nonzero_outside_mask": res.get("nonzero_outside_mask")})
    table = pd.DataFrame(rows)
    if "seconds" in table.columns:
        table = table.rename(columns={"seconds": "retrain_seconds"})
    corr = snapshot_correlations(table)
    return ITOPStudy(config=cfg, table=table, correlations=corr, dst=pd.DataFrame(dst_rows),
                     seconds=time.perf_counter() - t0)

