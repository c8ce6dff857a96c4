"""Training: recipes (``iclr2023``, ``neurips2023``, ``book``), the masked training loop, best-validation selection."""
from __future__ import annotations

from .loop import TrainResult, evaluate, train
from .recipes import RECIPES, Recipe, get_recipe

__all__ = ["train", "evaluate", "TrainResult", "Recipe", "RECIPES", "get_recipe"]
