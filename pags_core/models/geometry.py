"""The geometry of a prunable layer: which weight tensor is pruned and how its entries connect inputs to outputs.

A prunable weight is read as a bipartite graph between its *input units* and its *output rows*:

- rows are the entries of dimension 0 of the weight (output channels of a ``Conv*d``, output features of a
  ``Linear`` or of an attention projection; for a transposed convolution, whose weight is stored
  (C_in, C_out/g, k...), the rows are its input channels, i.e. the graph is that of the convolution it is the
  adjoint of — singular values are the same either way);
- input units are the entries of ``prod(shape[1:])`` per group: with ``groups = g`` the rows split into g contiguous
  blocks and block b connects only to the b-th block of ``prod(shape[1:])`` input units, so the full biadjacency is
  block-diagonal, (shape[0]) × (g · prod(shape[1:])).  ``g = 1`` is the dense unrolling of every other layer.

Which weights are prunable is decided in :mod:`pags_core.models.prunable`.

:func:`layer_geometry` lists the geometry of every prunable weight of a model, keyed like a
:class:`~pags_core.masks.Mask` (parameter names).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from torch import nn

__all__ = ["LayerGeometry", "layer_geometry"]


@dataclass(frozen=True)
class LayerGeometry:
    """How one prunable weight of shape ``shape`` maps to a bipartite graph (see the module docstring).

    ``kind`` is ``"conv1d"``, ``"conv2d"``, ``"conv3d"``, ``"convtranspose1d"`` ... ``"convtranspose3d"``,
    ``"linear"`` (subclasses included) or ``"attention"`` (a ``MultiheadAttention`` input projection); ``groups`` is
    the convolution's ``groups`` (1 for every other layer)."""

    name: str
    kind: str
    shape: tuple
    groups: int = 1

    def __post_init__(self):
        if len(self.shape) < 2:
            raise ValueError(f"layer {self.name}: a prunable weight has at least 2 dimensions, got shape {self.shape}")
        if not isinstance(self.groups, int) or self.groups < 1 or self.shape[0] % self.groups:
            raise ValueError(f"layer {self.name}: groups={self.groups!r} must be a positive int dividing the "
                             f"{self.shape[0]} rows of weight shape {self.shape}")

    @property
    def n_outputs(self) -> int:
        """Rows of the biadjacency (right nodes): ``shape[0]``."""
        return int(self.shape[0])

    @property
    def n_inputs(self) -> int:
        """Input units (left nodes) of the true graph: ``groups · prod(shape[1:])``."""
        return int(self.groups * math.prod(self.shape[1:]))

    @property
    def fan_in(self) -> int:
        """Input units each output row can reach: ``prod(shape[1:])``."""
        return int(math.prod(self.shape[1:]))


def layer_geometry(model: nn.Module, *, strict: bool = False) -> "OrderedDict[str, LayerGeometry]":
    """Parameter name → :class:`LayerGeometry` of every prunable weight of ``model`` (the keys of
    :func:`~pags_core.models.prunable_parameters`, in the same order; ``strict`` as there)."""
    from .prunable import find_prunable

    return OrderedDict((w.name, LayerGeometry(w.name, w.kind, tuple(w.parameter.shape), w.groups))
                       for w in find_prunable(model, strict=strict))
