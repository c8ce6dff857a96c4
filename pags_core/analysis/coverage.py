"""Which parameters of a model pags_core prunes, and why each of the others is left dense.

:func:`parameter_coverage` lists every parameter of a model with its role: a weight read as a bipartite graph
(:mod:`pags_core.models.prunable`) is pruned; biases, normalisation layers, embeddings and free parameters are never
pruned; a weight of a layer pags_core cannot read stays dense (``strict=True`` makes it an error).  The sum over the
rows says how much of a new architecture the masks and the spectral metrics actually cover.
"""
from __future__ import annotations

import math

import pandas as pd
from torch import nn

from ..models.prunable import find_prunable, unsupported_layers

__all__ = ["parameter_coverage", "ROLES"]

#: the roles of :func:`parameter_coverage`, in display order
ROLES = ("pruned", "bias", "normalisation", "embedding", "unsupported layer", "other parameter")

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def parameter_coverage(model: nn.Module) -> pd.DataFrame:
    """One row per parameter of ``model`` (``named_parameters`` order): ``parameter``, ``module`` (type of the module
    holding it), ``shape``, ``weights`` (entries), ``role`` (one of :data:`ROLES`) and ``detail`` (for a pruned
    weight its layer kind and groups; for an unsupported one what to do)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    pruned = {w.name: w for w in find_prunable(model)}
    unsupported = unsupported_layers(model)
    owner = {}
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            owner.setdefault(id(p), (module, pname))
    rows = []
    for name, p in model.named_parameters():
        module, pname = owner[id(p)]
        if name in pruned:
            w = pruned[name]
            role, detail = "pruned", w.kind + (f", groups {w.groups}" if w.groups > 1 else "")
        elif any(u.startswith(f"{name} (") for u in unsupported):
            role, detail = "unsupported layer", "left dense; strict=True makes it an error"
        elif pname.endswith("bias"):
            role, detail = "bias", ""
        elif isinstance(module, _NORMS):
            role, detail = "normalisation", ""
        elif isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            role, detail = "embedding", "a lookup table, not a map between units"
        else:
            role, detail = "other parameter", ""
        rows.append({"parameter": name, "module": type(module).__name__, "shape": tuple(p.shape),
                     "weights": math.prod(p.shape), "role": role, "detail": detail})
    return pd.DataFrame(rows, columns=["parameter", "module", "shape", "weights", "role", "detail"])
