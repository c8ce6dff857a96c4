"""Training recipes: paper A's (``iclr2023``), paper B's and the ITOP code's (``neurips2023``) and the book's CPU
recipe (``book``)."""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Optional, Tuple

from ..registry import Registry

__all__ = ["Recipe", "RECIPES", "get_recipe"]

_SCHEDULES = ("multistep", "cosine", "constant")


@dataclass(frozen=True)
class Recipe:
    """An SGD training recipe.

    ``schedule``: ``"multistep"`` multiplies the lr by ``gamma`` at epochs ``floor(f * epochs)`` for ``f`` in
    ``milestones`` (stepped per epoch; at 250 epochs (0.5, 0.75) gives 125 and 187, the ICLR and ITOP milestones);
    ``"cosine"`` decays per optimiser step from ``lr`` to 0 over all ``epochs`` steps; ``"constant"`` keeps ``lr``.
    ``augment=None`` uses the data set's default augmentation.

    Every field is checked when the recipe is made (a ``ValueError`` naming the field and the value): ``lr`` and
    ``gamma`` finite and > 0, ``momentum`` in [0, 1] (> 0 with ``nesterov``), ``weight_decay`` finite and >= 0,
    batch sizes and ``epochs`` positive ints, ``milestones`` fractions in (0, 1].
    """

    name: str
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    batch_size: int = 128
    test_batch_size: int = 128
    epochs: int = 250
    schedule: str = "multistep"
    milestones: Tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    augment: Optional[bool] = None

    def __post_init__(self):
        if self.schedule not in _SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid choices: {', '.join(_SCHEDULES)}")
        bad = []
        for f, lo, hi, open_lo in (("lr", 0.0, math.inf, True), ("momentum", 0.0, 1.0, False),
                                   ("weight_decay", 0.0, math.inf, False), ("gamma", 0.0, math.inf, True)):
            v = getattr(self, f)
            if not (_real(v) and math.isfinite(v) and lo <= v <= hi and not (open_lo and v == lo)):
                bad.append(f"{f} must be a finite number {'>' if open_lo else '>='} {lo:g}"
                           + (f" and <= {hi:g}" if math.isfinite(hi) else "") + f", got {v!r}")
        for f in ("batch_size", "test_batch_size", "epochs"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                bad.append(f"{f} must be a positive int, got {v!r}")
        if not isinstance(self.nesterov, bool):
            bad.append(f"nesterov must be True or False, got {self.nesterov!r}")
        elif self.nesterov and not bad and self.momentum == 0:
            bad.append("nesterov=True needs momentum > 0, got momentum=0")
        if self.augment is not None and not isinstance(self.augment, bool):
            bad.append(f"augment must be None, True or False, got {self.augment!r}")
        ms = self.milestones
        if not isinstance(ms, (tuple, list)) or not all(_real(f) and 0 < f <= 1 for f in ms):
            bad.append(f"milestones must be fractions of the epochs in (0, 1], got {ms!r}")
        if bad:
            raise ValueError(f"recipe {self.name!r}: " + "; ".join(bad))
        object.__setattr__(self, "milestones", tuple(ms))

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **changes)

    def milestone_epochs(self, epochs: Optional[int] = None) -> list[int]:
        e = self.epochs if epochs is None else epochs
        return [int(f * e) for f in self.milestones]


def _real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


RECIPES: Registry = Registry("recipe")
RECIPES.register("iclr2023", Recipe("iclr2023", nesterov=False, batch_size=256, test_batch_size=128, epochs=250,
                                    schedule="multistep", milestones=(0.5, 0.75)))
RECIPES.register("neurips2023", Recipe("neurips2023", nesterov=True, batch_size=100, test_batch_size=100, epochs=250,
                                       schedule="multistep", milestones=(0.5, 0.75)))
RECIPES.register("book", Recipe("book", nesterov=True, batch_size=128, test_batch_size=500, epochs=5,
                                schedule="cosine", milestones=(), augment=False))


def get_recipe(recipe: "str | Recipe") -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    return RECIPES[recipe]
