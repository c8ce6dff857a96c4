"""pags_core: Ramanujan-graph spectral metrics, pruning-at-initialization generators, sparse training and
PAGS/PEGS graph sampling.  See CONTRIBUTING.md for the module map and the book for the story."""

__version__ = "0.1.0"

from .registry import Registry
from .store import RunStore
from .spectral import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .data import *  # noqa: F401,F403
from .masks import *  # noqa: F401,F403
from .pruning import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403
from .profiles import *  # noqa: F401,F403
from .pags import *  # noqa: F401,F403
from .itop import *  # noqa: F401,F403
from .device import resolve_device
