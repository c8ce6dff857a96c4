"""PAGS, PEGS and the LTH / Early-Bird baselines (METHOD §7–8).

The implementation lives in :mod:`pags_core.sampling` (selection rules, population sampler, sweep) and
:mod:`pags_core.baselines`; this module re-exports the public names so that ``from pags_core import pags`` works.
"""
from __future__ import annotations

from .baselines import EarlyBirdResult, LTHResult, early_bird, lth, lth_densities, mask_distance
from .sampling import *  # noqa: F401,F403
from .sampling import __all__ as _sampling_all

__all__ = [*_sampling_all, "lth", "early_bird", "LTHResult", "EarlyBirdResult", "lth_densities", "mask_distance"]
