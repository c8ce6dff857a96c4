"""Training recipes (METHOD §11, PILOT)."""
from __future__ import annotations

import dataclasses
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

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **changes)

    def milestone_epochs(self, epochs: Optional[int] = None) -> list[int]:
        e = self.epochs if epochs is None else epochs
        return [int(f * e) for f in self.milestones]


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
