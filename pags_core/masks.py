"""The :class:`Mask` type: parameter name -> bool tensor, kept separate from the model.

A mask never touches ``torch.nn.utils.prune``: the model keeps plain ``weight`` parameters and the mask is multiplied
into them (:meth:`Mask.apply_`) before training and after every optimiser step.

A mask is binary: a value other than 0/1/True/False is an error unless a ``threshold`` is given explicitly
(:class:`Mask`), and :func:`check_mask` refuses keys that name no prunable parameter of the model.
"""
from __future__ import annotations

import copy
import difflib
import math
import os
from collections.abc import MutableMapping
from typing import Any, Dict, Iterator, Mapping

import torch
from torch import nn

__all__ = ["Mask", "check_mask"]

_FORMAT = "pags_core.Mask/1"


class Mask(MutableMapping):
    """A mapping parameter name (as in ``model.named_parameters()``, e.g. ``layer1.0.conv1.weight``) -> bool tensor
    of that weight's shape.  ``True`` = kept.

    ``meta`` is a free dict of JSON-like metadata (generator, target density, seed, ...), saved with the mask.

    Values must be binary: bool tensors, or numeric tensors holding only 0 and 1 (stored as bool).  Any other
    value (a "soft" 0.5, a NaN) is a ``ValueError`` naming the tensor, unless ``threshold`` is given: then a
    non-bool tensor keeps exactly the entries ``> threshold`` (NaN entries are still an error).  Assignment
    (``mask[name] = t``) always requires binary values.

    >>> m = Mask.ones(model)                       # doctest: +SKIP
    >>> m.density, m.num_kept, m.num_total          # doctest: +SKIP
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor] | None = None, meta: Mapping[str, Any] | None = None, *,
                 threshold: float | None = None):
        self._t: Dict[str, torch.Tensor] = {}
        self.meta: Dict[str, Any] = dict(meta or {})
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
                raise ValueError(f"threshold must be a finite number (entries > threshold are kept), got {threshold!r}")
        for k, v in (tensors or {}).items():
            self._set(k, v, threshold)

    # ---- mapping protocol -------------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self._t[name]
        except KeyError:
            raise KeyError(f"mask has no tensor {name!r}; it holds {len(self._t)} tensors, e.g. {list(self._t)[:3]}") from None

    def __setitem__(self, name: str, value: torch.Tensor) -> None:
        self._set(name, value, None)

    def _set(self, name: str, value: torch.Tensor, threshold: float | None) -> None:
        if not isinstance(name, str):
            raise TypeError(f"mask keys are parameter names (str), got {type(name).__name__}")
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"mask values must be tensors, got {type(value).__name__} for {name!r}")
        self._t[name] = _as_bool(name, value, threshold)

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
        """An all-kept mask over every prunable weight of ``model`` (see :func:`~pags_core.prunable_parameters`)."""
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
    def check(self, model: nn.Module, *, complete: bool = False) -> "Mask":
        """:func:`check_mask` against ``model``; returns the mask."""
        check_mask(self, model, complete=complete)
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
        """The mask :meth:`state_dict` describes; ``ValueError`` for anything else (naming what is wrong)."""
        if not isinstance(state, Mapping) or state.get("format") != _FORMAT:
            fmt = state.get("format") if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"not a saved Mask (format {fmt!r}, expected {_FORMAT!r})")
        names, tensors = state.get("names"), state.get("tensors")
        if not isinstance(names, list) or not isinstance(tensors, Mapping):
            raise ValueError("saved Mask lacks its 'names' list or 'tensors' dict")
        missing = [k for k in names if k not in tensors]
        if missing:
            raise ValueError(f"saved Mask names tensor(s) it does not hold: {missing[:5]}")
        return cls({k: tensors[k].to(map_location) if map_location is not None else tensors[k] for k in names},
                   state.get("meta"))

    def save(self, path: str | os.PathLike) -> None:
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> "Mask":
        """Read a mask written by :meth:`save`.  A missing file is ``FileNotFoundError``; a file that is not a saved
        Mask (truncated, garbage, another object) is ``ValueError`` naming the path."""
        if not os.path.exists(path):
            raise FileNotFoundError(f"no saved Mask at {os.fspath(path)}")
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
            return cls.from_state_dict(state, map_location)
        except Exception as e:  # noqa: BLE001 - every way a file can be corrupt ends here, with its path
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise ValueError(f"{os.fspath(path)} is not a readable saved Mask ({type(e).__name__}: {first}); "
                             "delete it and regenerate the mask") from e


def _as_bool(name: str, value: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """``value`` as a bool tensor: bool as is, a 0/1 tensor converted, ``> threshold`` when one is given."""
    if value.dtype == torch.bool:
        return value
    if value.is_complex():
        raise ValueError(f"mask tensor {name!r} is complex ({value.dtype}); a mask holds 0/1 or True/False")
    if value.is_floating_point():
        nan = torch.isnan(value)
        if bool(nan.any()):
            raise ValueError(f"mask tensor {name!r} holds {int(nan.sum())} NaN value(s); a mask holds 0/1 or "
                             "True/False")
    if threshold is not None:
        return value > threshold
    off = (value != 0) & (value != 1)
    if bool(off.any()):
        example = value[off].reshape(-1)[0].item()
        raise ValueError(
            f"mask tensor {name!r} is not binary: {int(off.sum())} of {value.numel()} values are neither 0 nor 1 "
            f"(e.g. {example!r}). To binarise a soft mask, say where to cut: Mask(tensors, threshold=0.5) keeps the "
            "entries > 0.5")
    return value != 0


def check_mask(mask: Mapping[str, Any], model: "nn.Module | Mapping[str, Any]", *, complete: bool = False) -> None:
    """Raise ``ValueError`` unless ``mask`` fits ``model``: every key names a prunable parameter (see
    :func:`~pags_core.prunable_parameters`; ``model`` may also be a mapping name -> weight), every value has that
    weight's shape and is binary.

    Unmatched keys are listed together, with a hint when they carry the ``module.`` prefix of a
    ``DataParallel``/``DistributedDataParallel`` state, when they name a parameter that is not prunable (a bias, a
    norm layer, an unsupported layer) or look like a typo.  Prunable weights absent from the mask count as dense
    everywhere in pags_core; ``complete=True`` makes them an error too."""
    from .models import SUPPORTED_LAYERS, prunable_parameters

    if not isinstance(mask, Mapping):
        raise TypeError(f"a mask is a mapping parameter name -> bool tensor (e.g. a pags_core.Mask), got "
                        f"{type(mask).__name__}")
    if isinstance(model, nn.Module):
        shapes = {n: tuple(p.shape) for n, p in prunable_parameters(model).items()}
    elif isinstance(model, Mapping):
        shapes = {n: tuple(w.shape) for n, w in model.items()}
    else:
        raise TypeError(f"check a mask against a torch.nn.Module or a mapping name -> weight, got "
                        f"{type(model).__name__}")
    unknown = [k for k in mask if k not in shapes]
    if unknown:
        raise ValueError(_unknown_keys_message(unknown, len(mask), shapes, model, SUPPORTED_LAYERS))
    for name, t in mask.items():
        if tuple(t.shape) != shapes[name]:
            raise ValueError(f"mask for layer {name!r} has shape {tuple(t.shape)} but the model's weight has shape "
                             f"{shapes[name]}")
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        _as_bool(name, t, None)
    if complete:
        missing = [k for k in shapes if k not in mask]
        if missing:
            raise ValueError(f"mask lacks {len(missing)} prunable weight(s) of the model: {_few(missing)}")


def _few(names, n: int = 8) -> str:
    shown = ", ".join(repr(k) for k in names[:n])
    return shown + (f", ... ({len(names) - n} more)" if len(names) > n else "")


def _unknown_keys_message(unknown, n_keys, shapes, model, supported) -> str:
    hints = []
    prefixed = [k for k in unknown if k.startswith("module.")]
    if prefixed and any(k[len("module."):] in shapes for k in prefixed):
        hints.append("They carry the 'module.' prefix of a DataParallel/DistributedDataParallel model: strip it, "
                     "e.g. Mask({k.removeprefix('module.'): v for k, v in mask.items()}), or use the unwrapped model.")
    elif any("module." + k in shapes for k in unknown):
        hints.append("The model is wrapped (DataParallel/DistributedDataParallel): check the mask against "
                     "model.module.")
    params = {}
    if isinstance(model, nn.Module):
        params = {f"{m}.{p}" if m else p: mod for m, mod in model.named_modules()
                  for p, _ in mod.named_parameters(recurse=False)}
    typos = []
    for k in unknown[:8]:
        if k in params:
            hints.append(f"{k!r} is a parameter of a {type(params[k]).__name__}, which pags_core does not prune "
                         f"(supported: {supported}).")
        elif not k.startswith("module."):
            close = difflib.get_close_matches(k, list(shapes), n=1, cutoff=0.85)
            if close:
                typos.append(f"{k!r} -> {close[0]!r}")
    if typos:
        hints.append(f"Did you mean: {', '.join(typos)}?")
    if not hints:
        hints.append(f"The model's prunable parameters are {_few(list(shapes), 4)}; was the mask made for another "
                     "model?")
    return (f"{len(unknown)} of {n_keys} mask key(s) match no prunable parameter of the model: {_few(unknown)}. "
            + " ".join(hints))


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
