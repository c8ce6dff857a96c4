"""The two pruning-with-training baselines of the PEGS tables: LTH with rewinding and Early-Bird tickets.

**LTH** (iterative magnitude pruning with rewinding; Frankle & Carbin 2019, Frankle et al. 2020).  Round 0 trains the
dense network from θ0 with the full recipe and records θ_k, the weights after ``rewind_iter`` optimiser steps
(θ_0 when ``rewind_iter=0``).  After round r−1 the surviving trained weights are pruned by global magnitude to density
d_r = D^(r/R) (a geometric schedule reaching exactly D after R prunings), the weights are rewound to θ_k and round r
trains the sparse network.  R rounds of training are paid for; the final ticket θ_k ⊙ M is retrained by the caller.
*Deviation from LTH practice:* the usual schedule prunes 20 % per round (about 21 rounds to reach density 0.01); the
book uses a handful of rounds with the geometric schedule above and says so.

**Early-Bird** (You et al. 2020), adapted to unstructured masks.  The dense network trains with the full recipe; at the
end of every epoch e a global-magnitude mask M_e at density D is drawn from the current weights.  The search stops at
the first epoch whose mask is close to the previous epoch's:

    dist(M_e, M_{e−1}) = |M_e XOR M_{e−1}| / (2k)      (k = kept weights of either mask)

i.e. the fraction of kept weights that changed, in [0, 1], compared with ε (default 0.1, EB's value).  EB's original
distance compares channel masks, normalised by the number of channels, over a window of 5 epochs; with unstructured
masks normalising by all N weights would put every pair below ε at density ≤ 0.05, so the distance is normalised by
the 2k entries that can differ, and consecutive epochs (a window of 2) are compared.  If no epoch meets ε within
``max_epochs`` the last epoch's mask is used (``converged=False``).  The ticket is θ_e ⊙ M_e, retrained from θ_e (the
rewind-to-e semantics shared with PEGS).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from typing import Any, Callable, Mapping, Optional

import torch
from torch import nn

from .device import resolve_device
from .masks import Mask
from .pruning import check_density, generate_mask

__all__ = ["LTHResult", "EarlyBirdResult", "lth", "early_bird", "lth_densities", "mask_distance"]


def lth_densities(density: float, rounds: int) -> list[float]:
    """The geometric LTH schedule d_r = D^(r/R), r = 1..R (the last is exactly D)."""
    density = check_density(density)
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"LTH rounds must be a positive int, got {rounds!r}")
    return [density ** (r / rounds) if r < rounds else density for r in range(1, rounds + 1)]


def mask_distance(a: Mask, b: Mask) -> float:
    """Normalised Hamming distance |a XOR b| / (|a| + |b|): the fraction of kept weights that differ (0 = same)."""
    diff = sum(int((a[n].cpu() ^ b[n].cpu()).sum()) for n in a)
    kept = a.num_kept + b.num_kept
    return diff / kept if kept else 0.0


def _magnitude_mask(model: nn.Module, density: float, device) -> Mask:
    """Global magnitude mask of the current weights (empty layers are reported by ``Mask.empty_layers``, not warned)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pruned .* layer\\(s\\) to nothing.*")
        return generate_mask(model, "magnitude", density, device=device, progress=False).to("cpu")


def _state(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@dataclasses.dataclass
class LTHResult:
    """``mask`` at density D; ``rewind_state``: θ_k (state dict); ``densities``: d_1..d_R; ``rounds``: one dict per
    training round (round, density trained at, test_acc, iters, seconds); ``pretrain_iters``: optimiser steps of
    all search rounds; ``seconds``: wall time of the search."""

    mask: Mask
    rewind_state: dict
    rewind_iter: int
    densities: list
    rounds: list
    pretrain_iters: int
    seconds: float


def lth(model: nn.Module, data, density: float, *, rounds: int = 3, rewind_iter: int = 0, recipe="neurips2023",
        epochs: Optional[int] = None, seed: int = 0, device="auto", train_fn: Callable | None = None,
        store=None, store_config: Mapping[str, Any] | None = None, progress: Optional[bool] = None) -> LTHResult:
    """Find an LTH ticket at ``density`` by ``rounds`` rounds of train → global-magnitude prune → rewind to θ_k.

    ``model`` holds θ0 and is not modified.  ``train_fn`` replaces :func:`~pags_core.training.train`.  With
    ``store`` (a :class:`~pags_core.store.RunStore`) and ``store_config`` every finished round is persisted (namespace
    ``"pags_lth_round"``: the pruned mask and θ_k) and a rerun resumes after the last finished round.
    """
    from .training import get_recipe, train

    fn = train_fn or train
    dens = lth_densities(density, rounds)
    if not isinstance(rewind_iter, int) or rewind_iter < 0:
        raise ValueError(f"rewind_iter must be a non-negative int, got {rewind_iter!r}")
    rec = get_recipe(recipe)
    total = (rec.epochs if epochs is None else int(epochs)) * len(data.train_batches(rec.batch_size, seed=seed))
    if rewind_iter > total:
        raise ValueError(f"rewind_iter={rewind_iter} exceeds the {total} optimiser steps of a training run; "
                         "choose a smaller rewind iteration")
    dev = resolve_device(device)
    theta0 = _state(model)
    mask: Optional[Mask] = None
    rewind: Optional[dict] = theta0 if rewind_iter == 0 else None
    log: list = []
    t0 = time.perf_counter()
    spent = 0.0
    for r in range(rounds):
        rcfg = None
        if store is not None:
            rcfg = {**dict(store_config or {}), "kind": "pags_lth_round", "round": r, "rounds": rounds,
                    "rewind_iter": rewind_iter, "density": density}
            if store.has("pags_lth_round", rcfg):
                res = store.load("pags_lth_round", rcfg)
                mask = Mask.load(store.artefact("pags_lth_round", rcfg, "mask.pt"))
                rewind = torch.load(store.artefact("pags_lth_round", rcfg, "rewind.pt"), map_location="cpu",
                                    weights_only=True)
                log.append(res["log"])
                spent += float(res["seconds"])
                continue
        tr0 = time.perf_counter()
        net = copy.deepcopy(model)
        net.load_state_dict(theta0 if r == 0 else rewind)
        captured = {}

        def _cb(step, m, opt, mk, _cap=captured):
            if r == 0 and step == rewind_iter:
                _cap["state"] = _state(m)

        res = fn(net, data, recipe, mask=mask, device=dev, seed=seed, epochs=epochs, step_callback=_cb,
                 progress=progress)
        if r == 0 and rewind_iter > 0:
            if "state" not in captured:
                raise ValueError(f"rewind_iter={rewind_iter} exceeds the {getattr(res, 'iters', '?')} steps of a "
                                 "training run; choose a smaller rewind iteration")
            rewind = captured["state"]
        if mask is not None:
            mask.to(next(net.parameters()).device).apply_(net)
        mask = _magnitude_mask(net, dens[r], dev)
        entry = {"round": r, "trained_density": 1.0 if r == 0 else dens[r - 1], "pruned_to": dens[r],
                 "test_acc": float(getattr(res, "test_acc", float("nan"))), "iters": int(getattr(res, "iters", 0)),
                 "seconds": time.perf_counter() - tr0}
        log.append(entry)
        spent += entry["seconds"]
        if store is not None:
            mask.save(store.artefact("pags_lth_round", rcfg, "mask.pt"))
            torch.save(rewind, store.artefact("pags_lth_round", rcfg, "rewind.pt"))
            store.save("pags_lth_round", rcfg, {"log": entry, "seconds": entry["seconds"]})
    assert mask is not None and rewind is not None
    mask.meta.update({"method": "lth", "density": density, "rounds": rounds, "rewind_iter": rewind_iter})
    return LTHResult(mask=mask, rewind_state=rewind, rewind_iter=rewind_iter, densities=dens, rounds=log,
                     pretrain_iters=int(sum(e["iters"] for e in log)), seconds=spent)


@dataclasses.dataclass
class EarlyBirdResult:
    """``mask`` at density D drawn at epoch ``epoch`` (1-based); ``state``: θ_e; ``distances``: dist(M_e, M_{e−1}) per
    epoch from the second on; ``converged``: whether a distance fell below ε; ``pretrain_iters``/``seconds``: cost of
    the dense search."""

    mask: Mask
    state: dict
    epoch: int
    distances: list
    converged: bool
    epsilon: float
    pretrain_iters: int
    seconds: float


class _EarlyBirdFound(Exception):
    pass


def early_bird(model: nn.Module, data, density: float, *, epsilon: float = 0.1, max_epochs: Optional[int] = None,
               recipe="neurips2023", seed: int = 0, device="auto", train_fn: Callable | None = None,
               progress: Optional[bool] = None) -> EarlyBirdResult:
    """Early-Bird ticket search (see the module docstring for the exact rule).

    ``model`` holds θ0 and is not modified.  The dense run follows ``recipe`` for ``max_epochs`` epochs (default:
    the recipe's) and stops at the first epoch e ≥ 2 with dist(M_e, M_{e−1}) < ``epsilon``.
    """
    from .training import get_recipe, train

    fn = train_fn or train
    density = check_density(density)
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon <= 1):
        raise ValueError(f"epsilon must be in (0, 1], got {epsilon!r}")
    rec = get_recipe(recipe)
    dev = resolve_device(device)
    epochs = rec.epochs if max_epochs is None else int(max_epochs)
    spe = max(1, len(data.train_batches(rec.batch_size, seed=seed)))
    net = copy.deepcopy(model)
    found: dict = {"masks": [], "distances": [], "steps": 0}

    def _cb(step, m, opt, mk):
        found["steps"] = step
        if step % spe:
            return
        cur = _magnitude_mask(m, density, dev)
        if found["masks"]:
            d = mask_distance(found["masks"][-1], cur)
            found["distances"].append(d)
            found["masks"] = [cur]
            if d < epsilon:
                found["state"] = _state(m)
                raise _EarlyBirdFound
        else:
            found["masks"] = [cur]
        found["state"] = _state(m)

    t0 = time.perf_counter()
    converged = False
    try:
        res = fn(net, data, rec, mask=None, device=dev, seed=seed, epochs=epochs, step_callback=_cb,
                 progress=progress)
        found["steps"] = max(found["steps"], int(getattr(res, "iters", 0)))
    except _EarlyBirdFound:
        converged = True
    seconds = time.perf_counter() - t0
    if not found["masks"]:  # the loop never reached an epoch boundary (e.g. a stub train function)
        found["masks"] = [_magnitude_mask(net, density, dev)]
        found["state"] = _state(net)
    mask = found["masks"][-1]
    epoch = max(1, found["steps"] // spe)
    mask.meta.update({"method": "early_bird", "density": density, "epoch": epoch, "epsilon": float(epsilon),
                      "converged": converged})
    return EarlyBirdResult(mask=mask, state=found["state"], epoch=epoch, distances=list(found["distances"]),
                           converged=converged, epsilon=float(epsilon), pretrain_iters=int(found["steps"]),
                           seconds=seconds)
