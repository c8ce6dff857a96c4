"""The :class:`Mask` type: parameter name -> bool tensor, kept separate from the model.

A mask never touches ``torch.nn.utils.prune``: the model keeps plain ``weight`` parameters and the mask is multiplied
into them (:meth:`Mask.apply_`) before training and after every optimiser step.
"""
from __future__ import annotations

import copy
import os
from collections.abc import MutableMapping
from typing import Any, Dict, Iterator, Mapping

import torch
from torch import nn

__all__ = ["Mask"]

_FORMAT = "pags_core.Mask/1"


class Mask(MutableMapping):
    """A mapping parameter name (as in ``model.named_parameters()``, e.g. ``layer1.0.conv1.weight``) -> bool tensor
    of that weight's shape.  ``True`` = kept.

    ``meta`` is a free dict of JSON-like metadata (generator, target density, seed, ...), saved with the mask.

    >>> m = Mask.ones(model)                       # doctest: +SKIP
    >>> m.density, m.num_kept, m.num_total          # doctest: +SKIP
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor] | None = None, meta: Mapping[str, Any] | None = None):
        self._t: Dict[str, torch.Tensor] = {}
        self.meta: Dict[str, Any] = dict(meta or {})
        for k, v in (tensors or {}).items():
            self[k] = v

    # ---- mapping protocol -------------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self._t[name]
        except KeyError:
            raise KeyError(f"mask has no tensor {name!r}; it holds {len(self._t)} tensors, e.g. {list(self._t)[:3]}") from None

    def __setitem__(self, name: str, value: torch.Tensor) -> None:
        if not isinstance(name, str):
            raise TypeError(f"mask keys are parameter names (str), got {type(name).__name__}")
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"mask values must be tensors, got {type(value).__name__} for {name!r}")
        self._t[name] = value if value.dtype == torch.bool else value != 0

    def __delitem__(self, name: str) -> None:
        del self._t[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._t)

    def __len__(self) -> int:
        return len(self._t)

    def __repr__(self) -> str:
        if not self._t:
            return "Mask(empty)"
        return f"Mask({len(self)} tensors, density={self.density:.6g}, kept={self.num_kept}/{self.num_total})"

    # ---- construction -----------------------------------------------------------------------------------------
    @classmethod
    def ones(cls, model: nn.Module, *, device: str | torch.device | None = None) -> "Mask":
        """An all-kept mask over every prunable weight of ``model`` (every Conv2d and Linear weight)."""
        from .models import prunable_parameters

        return cls({n: torch.ones(p.shape, dtype=torch.bool, device=device if device is not None else p.device)
                    for n, p in prunable_parameters(model).items()})

    @classmethod
    def from_weights(cls, model: nn.Module) -> "Mask":
        """The non-zero pattern of the prunable weights of ``model``."""
        from .models import prunable_parameters

        return cls({n: p.detach() != 0 for n, p in prunable_parameters(model).items()})

    # ---- accounting -------------------------------------------------------------------------------------------
    @property
    def num_kept(self) -> int:
        return int(sum(int(t.sum()) for t in self._t.values()))

    @property
    def num_total(self) -> int:
        return int(sum(t.numel() for t in self._t.values()))

    @property
    def density(self) -> float:
        """Global kept fraction over all the mask's tensors."""
        total = self.num_total
        if total == 0:
            raise ValueError("the mask is empty (no tensors); its density is undefined")
        return self.num_kept / total

    def layer_densities(self) -> Dict[str, float]:
        """Parameter name -> kept fraction of that tensor."""
        return {k: float(t.sum()) / max(t.numel(), 1) for k, t in self._t.items()}

    def layer_counts(self) -> Dict[str, tuple]:
        """Parameter name -> (kept, total)."""
        return {k: (int(t.sum()), t.numel()) for k, t in self._t.items()}

    def empty_layers(self) -> list[str]:
        """Names of the tensors pruned to nothing."""
        return [k for k, t in self._t.items() if not bool(t.any())]

    # ---- model interaction ------------------------------------------------------------------------------------
    def check(self, model: nn.Module) -> "Mask":
        """Raise ``ValueError`` if a tensor names a parameter the model lacks or does not fit its shape."""
        params = dict(model.named_parameters())
        for name, t in self._t.items():
            if name not in params:
                raise ValueError(
                    f"mask tensor {name!r} names no parameter of the model "
                    f"(e.g. {', '.join(list(params)[:4])}, ...); was the mask made for another architecture?")
            if tuple(t.shape) != tuple(params[name].shape):
                raise ValueError(f"mask for layer {name!r} has shape {tuple(t.shape)} but the model's weight has shape "
                                 f"{tuple(params[name].shape)}")
        return self

    def _pairs(self, model: nn.Module):
        params = dict(model.named_parameters())
        for name, t in self._t.items():
            p = params.get(name)
            if p is None or p.shape != t.shape:
                self.check(model)  # raises with a clear message
            yield p, t

    @torch.no_grad()
    def apply_(self, model: nn.Module) -> nn.Module:
        """Zero the pruned weights of ``model`` in place (under ``no_grad``) and return the model."""
        pairs = list(self._pairs(model))
        _mul_(([p for p, _ in pairs]), [t.to(p.device, non_blocking=True) for p, t in pairs])
        return model

    @torch.no_grad()
    def apply_grads_(self, model: nn.Module) -> nn.Module:
        """Zero the gradients of the pruned weights (parameters without ``.grad`` are skipped)."""
        pairs = [(p.grad, t) for p, t in self._pairs(model) if p.grad is not None]
        _mul_([g for g, _ in pairs], [t.to(g.device, non_blocking=True) for g, t in pairs])
        return model

    # ---- copies, devices, persistence ---------------------------------------------------------------------------
    def to(self, device: str | torch.device) -> "Mask":
        """A mask on ``device``; returns ``self`` when every tensor is already there (like ``Tensor.to``)."""
        device = torch.device(device)
        if all(_same_device(t.device, device) for t in self._t.values()):
            return self
        return Mask({k: t.to(device) for k, t in self._t.items()}, copy.deepcopy(self.meta))

    def clone(self) -> "Mask":
        return Mask({k: t.clone() for k, t in self._t.items()}, copy.deepcopy(self.meta))

    def __deepcopy__(self, memo) -> "Mask":
        return self.clone()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask):
            return NotImplemented
        return list(self._t) == list(other._t) and all(
            a.shape == b.shape and bool(torch.equal(a.cpu(), b.cpu())) for a, b in zip(self._t.values(), other._t.values()))

    __hash__ = None  # mutable

    def state_dict(self) -> dict:
        """A plain dict (bool CPU tensors + metadata) that ``torch.save`` can write and ``torch.load`` can read
        with ``weights_only=True``."""
        return {"format": _FORMAT, "names": list(self._t), "tensors": {k: t.detach().cpu() for k, t in self._t.items()},
                "meta": copy.deepcopy(self.meta)}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], map_location: str | torch.device | None = "cpu") -> "Mask":
        if state.get("format") != _FORMAT:
            raise ValueError(f"not a saved Mask (format {state.get('format')!r}, expected {_FORMAT!r})")
        names = state["names"]
        tensors = state["tensors"]
        return cls({k: tensors[k].to(map_location) if map_location is not None else tensors[k] for k in names},
                   state.get("meta"))

    def save(self, path: str | os.PathLike) -> None:
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> "Mask":
        return cls.from_state_dict(torch.load(path, map_location=map_location, weights_only=True), map_location)


def _mul_(tensors: list, masks: list) -> None:
    """In-place ``tensor *= mask`` for every pair: one fused ``_foreach_mul_`` where possible (fewer GPU launches)."""
    if not tensors:
        return
    try:
        torch._foreach_mul_(tensors, masks)
    except (RuntimeError, TypeError):  # e.g. sparse or mixed-device lists
        for t, m in zip(tensors, masks):
            t.mul_(m)


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type == "cuda" and b.index is not None and a.index != b.index:
        return False
    return True
