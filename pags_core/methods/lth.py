"""The lottery-ticket baseline of the PEGS tables: iterative magnitude pruning with rewinding (Frankle & Carbin 2019;
Frankle et al. 2020).

Round 0 trains the dense network from θ0 with the full recipe and records θ_k, the weights after ``rewind_iter``
optimiser steps (θ0 itself when ``rewind_iter=0``).  After round r−1 the surviving trained weights are pruned by
global magnitude to density d_r = D^(r/R) (a geometric schedule that reaches exactly D after R prunings), the weights
are rewound to θ_k and round r trains the sparse network.  R rounds of training are paid for; the final ticket is
θ_k ⊙ M and is retrained by the caller.  *Deviation from LTH practice:* the usual schedule prunes 20 % per round (about
21 rounds to reach density 0.01); the book uses a handful of rounds with the geometric schedule and says so.

:func:`lth_round` is one round (a unit of the experiment layer); :func:`lth` runs them all.
"""
from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from typing import Any, Optional

import torch
from torch import nn

from ..device import resolve_device
from ..masks import Mask
from ..pruning import check_density, generate_mask
from ..training import CaptureWeights, get_recipe, train
from ..training.callbacks import cpu_state

__all__ = ["LTHResult", "LTHRound", "lth", "lth_round", "lth_densities", "magnitude_mask", "mask_distance"]


def lth_densities(density: float, rounds: int) -> list[float]:
    """The geometric LTH schedule d_r = D^(r/R), r = 1..R (the last is exactly D)."""
    density = check_density(density)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"LTH rounds must be a positive int, got {rounds!r}")
    return [density ** (r / rounds) if r < rounds else density for r in range(1, rounds + 1)]


def mask_distance(a: Mask, b: Mask) -> float:
    """Normalised Hamming distance |a XOR b| / (|a| + |b|): the fraction of kept weights that differ (0 = same)."""
    if list(a) != list(b):
        raise ValueError("the two masks cover different layers")
    bad = [f"{n} {tuple(a[n].shape)} vs {tuple(b[n].shape)}" for n in a if a[n].shape != b[n].shape]
    if bad:
        raise ValueError(f"the two masks' layers differ in shape: {'; '.join(bad[:5])}")
    diff = sum(int((a[n].cpu() ^ b[n].cpu()).sum()) for n in a)
    kept = a.num_kept + b.num_kept
    return diff / kept if kept else 0.0


def magnitude_mask(model: nn.Module, density: float, device="cpu") -> Mask:
    """Global magnitude mask of the model's current weights, on the CPU (layers pruned to nothing are reported by
    :meth:`Mask.empty_layers`, not warned about)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pruned .* layer\\(s\\) to nothing.*")
        return generate_mask(model, "magnitude", density, device=device, progress=False).to("cpu")


@dataclasses.dataclass
class LTHRound:
    """One LTH round: ``mask`` (the pruned mask at ``pruned_to``), ``rewind_state`` (θ_k: captured in round 0, passed
    through afterwards), ``trained_density`` (1.0 in round 0), the round's test accuracy, optimiser steps and seconds."""

    round: int
    mask: Mask
    rewind_state: dict
    trained_density: float
    pruned_to: float
    test_acc: float
    iters: int
    seconds: float

    def log(self) -> dict:
        return {"round": self.round, "trained_density": self.trained_density, "pruned_to": self.pruned_to,
                "test_acc": self.test_acc, "iters": self.iters, "seconds": self.seconds}


def lth_round(model: nn.Module, data, r: int, densities: list, *, mask: Optional[Mask] = None,
              rewind_state: Optional[dict] = None, rewind_iter: int = 0, recipe="neurips2023",
              epochs: Optional[int] = None, seed: int = 0, device="auto", checkpoint=None,
              progress: Optional[bool] = None) -> LTHRound:
    """Round ``r`` of :func:`lth`.  ``model`` holds θ0 and is not modified.

    Round 0 (``mask=None``) trains the dense network from θ0 and captures θ_k after ``rewind_iter`` steps; round
    r > 0 trains θ_k (``rewind_state``) masked by the previous round's ``mask``.  Either way the trained weights are then
    pruned by global magnitude to ``densities[r]``."""
    if not isinstance(densities, (list, tuple)) or not densities:
        raise ValueError(f"densities must be the non-empty schedule d_1..d_R (see lth_densities), got {densities!r}")
    densities = [check_density(d) for d in densities]
    if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < len(densities):
        raise ValueError(f"round r must be an int in [0, {len(densities) - 1}] (one per density of the schedule), "
                         f"got {r!r}")
    if r == 0 and mask is not None:
        raise ValueError("round 0 trains the dense network: pass mask=None")
    if r > 0 and (mask is None or rewind_state is None):
        raise ValueError(f"round {r} needs the previous round's mask and the rewind weights θ_k")
    t0 = time.perf_counter()
    net = copy.deepcopy(model)
    capture = None
    if r == 0:
        theta0 = cpu_state(model)
        if rewind_iter > 0:
            capture = CaptureWeights(rewind_iter)
    else:
        net.load_state_dict(rewind_state)
    res = train(net, data, recipe, mask=None if mask is None else mask.clone(), device=device, seed=seed,
                epochs=epochs, callbacks=[capture] if capture is not None else None, progress=progress,
                checkpoint=checkpoint)
    if r == 0:
        if capture is not None and capture.weights is None:
            raise ValueError(f"rewind_iter={rewind_iter} exceeds the {res.iters} optimiser steps of the dense run; "
                             "choose a smaller rewind iteration")
        rewind_state = capture.weights if capture is not None else theta0
    pruned = magnitude_mask(net, densities[r], resolve_device(device))
    return LTHRound(round=r, mask=pruned, rewind_state=rewind_state,
                    trained_density=1.0 if r == 0 else float(densities[r - 1]), pruned_to=float(densities[r]),
                    test_acc=float(res.test_acc), iters=int(res.iters), seconds=time.perf_counter() - t0)


@dataclasses.dataclass
class LTHResult:
    """``mask`` at density D; ``rewind_state``: θ_k (state dict); ``densities``: d_1..d_R; ``rounds``: one dict per
    training round (round, density trained at, pruned to, test_acc, iters, seconds); ``pretrain_iters``: optimiser steps
    of all rounds; ``seconds``: wall time of the search."""

    mask: Mask
    rewind_state: dict
    rewind_iter: int
    densities: list
    rounds: list
    pretrain_iters: int
    seconds: float


def lth(model: nn.Module, data, density: float, *, rounds: int = 3, rewind_iter: int = 0, recipe="neurips2023",
        epochs: Optional[int] = None, seed: int = 0, device="auto", progress: Optional[bool] = None) -> LTHResult:
    """Find an LTH ticket at ``density`` by ``rounds`` rounds of train → global-magnitude prune → rewind to θ_k
    (:func:`lth_round` for each).  ``model`` holds θ0 and is not modified."""
    dens = lth_densities(density, rounds)
    if isinstance(rewind_iter, bool) or not isinstance(rewind_iter, int) or rewind_iter < 0:
        raise ValueError(f"rewind_iter must be a non-negative int, got {rewind_iter!r}")
    rec = get_recipe(recipe)
    total = (rec.epochs if epochs is None else int(epochs)) * len(data.train_batches(rec.batch_size, seed=seed))
    if rewind_iter > total:
        raise ValueError(f"rewind_iter={rewind_iter} exceeds the {total} optimiser steps of a training run; "
                         "choose a smaller rewind iteration")
    mask, rewind, log = None, None, []
    for r in range(rounds):
        out = lth_round(model, data, r, dens, mask=mask, rewind_state=rewind, rewind_iter=rewind_iter, recipe=recipe,
                        epochs=epochs, seed=seed, device=device, progress=progress)
        mask, rewind = out.mask, out.rewind_state
        log.append(out.log())
    mask.meta.update({"method": "lth", "density": density, "rounds": rounds, "rewind_iter": rewind_iter})
    return LTHResult(mask=mask, rewind_state=rewind, rewind_iter=rewind_iter, densities=dens, rounds=log,
                     pretrain_iters=int(sum(e["iters"] for e in log)), seconds=float(sum(e["seconds"] for e in log)))
