"""Early-Bird tickets (You et al. 2020), adapted to unstructured masks: the second training-based baseline of the PEGS
tables.

The dense network trains with the full recipe; at the end of every epoch e a global-magnitude mask M_e at density D
is drawn from the current weights.  The search stops at the first epoch whose mask is close to the previous epoch's:

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
import time
from typing import Any, Dict, Optional

from torch import nn

from ..device import resolve_device
from ..masks import Mask
from ..pruning import check_density
from ..training import Callback, TrainState, train
from ..training.callbacks import cpu_state
from .lth import magnitude_mask, mask_distance

__all__ = ["EarlyBirdResult", "EarlyBirdSearch", "early_bird"]


class EarlyBirdSearch(Callback):
    """The stopping rule as a training callback: after every epoch, draw M_e and stop once dist(M_e, M_{e−1}) < ε.

    ``mask``/``state``/``epoch`` hold the latest epoch's mask, weights θ_e and number; ``distances`` the distance of
    every epoch from the second on; ``converged`` whether the rule fired."""

    def __init__(self, density: float, epsilon: float = 0.1):
        self.density = check_density(density)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 < epsilon <= 1:
            raise ValueError(f"epsilon must be in (0, 1], got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.mask: Optional[Mask] = None
        self.state: Optional[dict] = None
        self.epoch = 0
        self.distances: list = []
        self.converged = False

    def on_epoch_end(self, state: TrainState) -> bool:
        cur = magnitude_mask(state.model, self.density, state.device)
        stop = False
        if self.mask is not None:
            d = mask_distance(self.mask, cur)
            self.distances.append(d)
            stop = self.converged = d < self.epsilon
        self.mask, self.state, self.epoch = cur, cpu_state(state.model), state.epoch
        return stop

    def state_dict(self) -> Dict[str, Any]:
        return {"mask": None if self.mask is None else self.mask.state_dict(), "state": self.state,
                "epoch": self.epoch, "distances": list(self.distances), "converged": self.converged}

    def load_state_dict(self, s: Dict[str, Any]) -> None:
        self.mask = None if s["mask"] is None else Mask.from_state_dict(s["mask"])
        self.state, self.epoch = s["state"], int(s["epoch"])
        self.distances, self.converged = list(s["distances"]), bool(s["converged"])


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


def early_bird(model: nn.Module, data, density: float, *, epsilon: float = 0.1, max_epochs: Optional[int] = None,
               recipe="neurips2023", seed: int = 0, device="auto", checkpoint=None,
               progress: Optional[bool] = None) -> EarlyBirdResult:
    """Early-Bird ticket search (see the module docstring for the rule).  ``model`` holds θ0 and is not modified; the
    dense run follows ``recipe`` for at most ``max_epochs`` epochs (default: the recipe's).  ``checkpoint``: the
    per-epoch training checkpoint (the search resumes from it)."""
    search = EarlyBirdSearch(density, epsilon)
    net = copy.deepcopy(model)
    t0 = time.perf_counter()
    res = train(net, data, recipe, mask=None, device=resolve_device(device), seed=seed, epochs=max_epochs,
                callbacks=[search], progress=progress, checkpoint=checkpoint)
    if search.mask is None:
        raise ValueError("the Early-Bird search ended before its first epoch finished (max_iters or a divergence)")
    mask = search.mask
    mask.meta.update({"method": "early_bird", "density": search.density, "epoch": search.epoch,
                      "epsilon": search.epsilon, "converged": search.converged})
    return EarlyBirdResult(mask=mask, state=search.state, epoch=search.epoch, distances=list(search.distances),
                           converged=search.converged, epsilon=search.epsilon, pretrain_iters=int(res.iters),
                           seconds=time.perf_counter() - t0)
