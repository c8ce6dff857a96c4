"""Training: recipes (``iclr2023``, ``neurips2023``, ``book``), the masked training loop with its callback protocol,
best-validation selection."""
from __future__ import annotations

from .callbacks import Callback, CaptureWeights, TrainState
from .loop import TrainResult, evaluate, train
from .recipes import RECIPES, Recipe, get_recipe

__all__ = ["train", "evaluate", "TrainResult", "Callback", "TrainState", "CaptureWeights", "Recipe", "RECIPES",
           "get_recipe"]
