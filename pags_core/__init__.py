"""pags_core: Ramanujan-graph spectral metrics, pruning-at-initialization generators, sparse training, PAGS/PEGS
graph sampling and the experiment layer that runs the book's sweeps.  See CONTRIBUTING.md for the module map and the
book for the story.

The top level holds the pipeline (the public names of :mod:`.spectral`, :mod:`.models`, :mod:`.data`, :mod:`.masks`,
:mod:`.pruning`, :mod:`.training` and :mod:`.methods`).  The experiment layer (specs, plans, executors, profiles) is
:mod:`pags_core.experiments`; statistics and tables are :mod:`pags_core.analysis`."""

__version__ = "0.2.0"

from .registry import Registry
from .store import RunStore
from .device import resolve_device
from .spectral import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .data import *  # noqa: F401,F403
from .masks import *  # noqa: F401,F403
from .pruning import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403
from .methods import *  # noqa: F401,F403
from . import analysis, experiments
from .experiments import PROFILES, get_profile
