"""Methods: PAGS/PEGS graph sampling and its pure selection rules, the LTH and Early-Bird baselines, ITOP-Rand
dynamic sparse training."""
from __future__ import annotations

from .early_bird import EarlyBirdResult, EarlyBirdSearch, early_bird
from .itop import ITOPRand, ITOPRun, Snapshot, UpdateRecord, itop_train
from .lth import LTHResult, LTHRound, lth, lth_densities, lth_round, magnitude_mask, mask_distance
from .pags import PAGSResult, baseline_ticket, default_noise, mask_metrics, pags, pegs, pretrain, pretrain_recipe
from .selection import RULES, SELECTION_METRICS, SELECTIONS, Selection, SelectionState, select, stitched_density

__all__ = [
    "EarlyBirdResult", "EarlyBirdSearch", "early_bird",
    "ITOPRand", "ITOPRun", "Snapshot", "UpdateRecord", "itop_train",
    "LTHResult", "LTHRound", "lth", "lth_densities", "lth_round", "magnitude_mask", "mask_distance",
    "PAGSResult", "baseline_ticket", "default_noise", "mask_metrics", "pags", "pegs", "pretrain", "pretrain_recipe",
    "RULES", "SELECTION_METRICS", "SELECTIONS", "Selection", "SelectionState", "select", "stitched_density",
]
