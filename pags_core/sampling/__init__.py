"""PAGS / PEGS graph sampling: pure selection rules (:mod:`.selection`), the population sampler and PEGS
(:mod:`.population`), and the resumable paper-shaped sweep (:mod:`.sweep`)."""
from __future__ import annotations

from .selection import *  # noqa: F401,F403
from .selection import __all__ as _sel_all
from .population import *  # noqa: F401,F403
from .population import __all__ as _pop_all
from .sweep import *  # noqa: F401,F403
from .sweep import __all__ as _sweep_all

__all__ = [*_sel_all, *_pop_all, *_sweep_all]
