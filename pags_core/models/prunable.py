"""What is prunable: the weight parameters of a model that masks prune, scores rank and the spectral metrics graph.

A weight is prunable when pags_core can read it as a bipartite graph (see :mod:`pags_core.models.geometry`):

- the ``weight`` of ``Conv1d``, ``Conv2d``, ``Conv3d`` (any ``groups``; rows = output channels, input units =
  input channel x kernel position), of ``ConvTranspose1d/2d/3d`` (the weight is stored (C_in, C_out/g, k...), so rows
  = *input* channels and input units = output channel x kernel position: the graph of the convolution it is the
  adjoint of, with the same singular values) and of ``Linear`` (rows = output features), subclasses included
  (e.g. ``NonDynamicallyQuantizableLinear``, the ``out_proj`` of ``nn.MultiheadAttention``);
- the input projection of ``nn.MultiheadAttention``: ``in_proj_weight`` (3E x E), **one** layer, the E -> 3E linear
  map that produces queries, keys and values, when query, key and value share the embedding size; otherwise its
  three separate linear maps ``q_proj_weight`` (E x E), ``k_proj_weight`` (E x kdim) and ``v_proj_weight``
  (E x vdim), three layers.

Biases, normalisation layers, embeddings (lookup tables) and free parameters such as a ViT's class token are never
pruned.  A module pags_core cannot read that still holds a 2-D or larger ``weight*`` parameter (``nn.Bilinear``,
recurrent layers, a custom layer with its own weight shape) is *unsupported*: it stays dense, ``strict=True`` makes
it an error, and :func:`~pags_core.generate_mask` warns about it.  A covered layer whose weight is computed
(``weight_norm``, ``spectral_norm``, a parametrization) or not yet materialised (a lazy module) is always an error.

Names are those of ``model.named_parameters()`` (e.g. ``layer1.0.conv1.weight``,
``encoder.layers.encoder_layer_0.self_attention.in_proj_weight``): they are the keys of a
:class:`~pags_core.masks.Mask`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import List

from torch import nn
from torch.nn.parameter import is_lazy

__all__ = ["PrunableWeight", "SUPPORTED_LAYERS", "find_prunable", "prunable_layers", "prunable_parameters",
           "unsupported_layers", "require_prunable"]

#: What pags_core prunes, in words (used by every error message about unsupported layers).
SUPPORTED_LAYERS = ("Conv1d/Conv2d/Conv3d and ConvTranspose1d/2d/3d .weight (any groups), Linear .weight "
                    "(subclasses included), MultiheadAttention in_proj_weight or q/k/v_proj_weight")

_KINDS = tuple((cls, cls.__name__.lower()) for cls in (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear))
_NOT_PRUNED = (nn.Embedding, nn.EmbeddingBag)  # lookup tables: read, never multiplied as a map between units


@dataclass(frozen=True)
class PrunableWeight:
    """One prunable weight: its parameter name, the module holding it (and that module's name), the attribute of
    the module it lives in, a canonical ``kind`` (``conv1d`` ... ``convtranspose3d``, ``linear``, ``attention``) and
    the convolution's ``groups`` (1 otherwise)."""

    name: str
    module_name: str
    module: nn.Module
    attr: str
    kind: str
    groups: int

    @property
    def parameter(self) -> nn.Parameter:
        return getattr(self.module, self.attr)


def _attrs_and_kind(module: nn.Module):
    """(weight attribute names, kind) of a covered module, or None."""
    if isinstance(module, nn.MultiheadAttention):
        if module._qkv_same_embed_dim:
            return ("in_proj_weight",), "attention"
        return ("q_proj_weight", "k_proj_weight", "v_proj_weight"), "attention"
    for cls, kind in _KINDS:
        if isinstance(module, cls):
            return ("weight",), kind
    return None


def _describe(mname: str, module: nn.Module) -> str:
    return f"{mname or '<model>'} ({type(module).__name__})"


def unsupported_layers(model: nn.Module) -> List[str]:
    """Modules that hold a weight pags_core cannot read and therefore leaves dense, as ``"name (Type, param shape)"``.

    Listed: a module that is not covered (see the module docstring) and not an embedding, with a parameter of two or
    more dimensions named ``weight`` or ``weight_*`` (``nn.Bilinear``, ``nn.LSTM``, a custom layer).  A custom
    layer that names its weight otherwise (``kernel``) cannot be told from a free parameter and is not listed."""
    out = []
    for mname, module in model.named_modules():
        if _attrs_and_kind(module) is not None or isinstance(module, _NOT_PRUNED):
            continue
        for pname, p in module.named_parameters(recurse=False):
            if (pname == "weight" or pname.startswith("weight_")) and p.dim() >= 2:
                out.append(f"{mname or '<model>'}.{pname} ({type(module).__name__}, {tuple(p.shape)})")
    return out


def find_prunable(model: nn.Module, *, strict: bool = False) -> "List[PrunableWeight]":
    """Every prunable weight of ``model`` as a :class:`PrunableWeight`, in ``named_modules`` order (for an attention
    module: in, then its ``out_proj``).  A weight shared by several modules is listed once, under its
    ``named_parameters`` name.

    ``strict=True`` raises ``ValueError`` naming every :func:`unsupported_layers` entry.  A covered layer whose
    weight is not a plain parameter of the model (a parametrization, ``weight_norm``) or is still lazy is always a
    ``ValueError`` naming it."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    if strict:
        bad = unsupported_layers(model)
        if bad:
            raise ValueError(f"{len(bad)} layer(s) hold a weight pags_core cannot read: {'; '.join(bad)}. "
                             f"Supported: {SUPPORTED_LAYERS}. Rebuild them from supported layers, or pass "
                             "strict=False to leave them dense.")
    names = {id(p): n for n, p in model.named_parameters()}
    out, seen = [], set()
    for mname, module in model.named_modules():
        found = _attrs_and_kind(module)
        if found is None:
            continue
        attrs, kind = found
        for attr in attrs:
            w = getattr(module, attr, None)
            if w is None:
                continue
            if is_lazy(w):
                raise ValueError(f"layer {_describe(mname, module)} is lazy: its weight has no shape yet; run one "
                                 "forward pass (or build it with explicit sizes) before pruning")
            if id(w) not in names:
                raise ValueError(
                    f"layer {_describe(mname, module)}: its {attr} is computed (weight_norm, spectral_norm or a "
                    "parametrization), not a parameter of the model, so a mask cannot hold it at zero; remove the "
                    "reparametrization first (torch.nn.utils.parametrize.remove_parametrizations). "
                    f"Supported: {SUPPORTED_LAYERS}")
            if id(w) in seen:
                continue
            seen.add(id(w))
            out.append(PrunableWeight(names[id(w)], mname, module, attr, kind, int(getattr(module, "groups", 1))))
    return out


def prunable_layers(model: nn.Module, *, strict: bool = False) -> "OrderedDict[str, nn.Module]":
    """Module name -> module of every layer holding a prunable weight (Conv/ConvTranspose 1-3d, Linear and their
    subclasses, MultiheadAttention), in ``named_modules`` order.  See :func:`prunable_parameters` for the weights
    themselves and ``strict``."""
    return OrderedDict((w.module_name, w.module) for w in find_prunable(model, strict=strict))


def prunable_parameters(model: nn.Module, *, strict: bool = False) -> "OrderedDict[str, nn.Parameter]":
    """Parameter name (as in ``model.named_parameters()``) -> prunable weight, in model order.  These names are the
    keys of a :class:`~pags_core.masks.Mask`.  ``strict=True``: unsupported weight-bearing layers are an error."""
    return OrderedDict((w.name, w.parameter) for w in find_prunable(model, strict=strict))


def require_prunable(model: nn.Module, *, strict: bool = False) -> "OrderedDict[str, nn.Parameter]":
    """:func:`prunable_parameters`, or ``ValueError`` naming the model and what is supported when it has none."""
    params = prunable_parameters(model, strict=strict)
    if not params:
        extra = unsupported_layers(model)
        raise ValueError(f"{type(model).__name__} has no prunable layer, nothing to prune or graph. Supported: "
                         f"{SUPPORTED_LAYERS}" + (f"; unsupported layers found: {'; '.join(extra)}" if extra else ""))
    return params
