"""Pruning-at-initialization generators behind one scoring interface, with global top-k in one place
(:func:`~pags_core.pruning.select.select_topk`)."""
from __future__ import annotations

from .erk import erk_counts, erk_densities
from .generate import GENERATORS, Generator, compute_scores, generate_mask
from .scoring import ScoringContext
from .select import check_density, select_topk

__all__ = ["GENERATORS", "Generator", "generate_mask", "compute_scores", "select_topk", "check_density",
           "erk_densities", "erk_counts", "ScoringContext"]
