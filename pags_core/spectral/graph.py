"""A prunable layer read as its true bipartite graph (issue 13): which input unit every kept weight
connects to which output row.

A weight of shape (R, *rest) with ``groups = g`` (any ndim >= 2: Linear, Conv1d/2d/3d, transposed convolutions —
see :mod:`pags_core.models.geometry`) has R output rows (right nodes) and g·F input units (left nodes), F =
prod(rest).  Rows split into g contiguous blocks of R/g; entry (o, j) of the weight unrolled to (R, F) joins output o
to input unit ``(o // (R/g))·F + j``.  The biadjacency (inputs × outputs) is therefore block-diagonal, and for
g = 1 it is the plain unrolling M̃ᵀ (the kernel is never summed).  The weighted graph carries |W| on the same
edges; a weight that is exactly 0 inside the mask is an absent edge of the weighted graph (as in the NeurIPS-2023 code).

This module also reads masks and weights, refusing what would silently give a wrong graph: a mask entry that is
neither 0 nor 1 (unless a threshold is given), a NaN mask entry, and a NaN/inf weight inside the mask.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["to_numpy", "check_shapes", "check_groups", "n_input_units", "input_units", "kept_indices",
           "check_threshold", "LayerInput", "layer_input"]


def to_numpy(x, dtype=None) -> np.ndarray:
    """A torch tensor (any device) or array-like as a numpy array (optionally cast to ``dtype``)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu")
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.to(torch.float32)
        x = x.numpy()
    x = np.asarray(x)
    return x.astype(dtype, copy=False) if dtype is not None else x


def _label(name) -> str:
    return name or "<unnamed>"


def check_shapes(mask, weight, name=None) -> None:
    """Raise ``ValueError`` naming the layer and both shapes when the mask does not match the weight."""
    if weight is None or mask is None:
        return
    ms, ws = tuple(mask.shape), tuple(weight.shape)
    if ms != ws:
        raise ValueError(f"layer {_label(name)}: mask shape {ms} does not match weight shape {ws}")


def check_groups(shape, groups, name=None) -> int:
    """Validate a layer's ``groups`` against its weight shape (at least 2-D, groups a positive int dividing dim 0)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"layer {_label(name)}: a prunable weight has at least 2 dimensions (rows × inputs), "
                         f"got shape {shape}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1 or shape[0] % groups:
        raise ValueError(f"layer {_label(name)}: groups={groups!r} must be a positive int dividing the {shape[0]} "
                         f"rows of weight shape {shape}")
    return int(groups)


def n_input_units(shape, groups: int = 1) -> int:
    """Left nodes of the true graph: ``groups · prod(shape[1:])``."""
    return int(groups) * int(math.prod(shape[1:]))


def input_units(flat: np.ndarray, shape, groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(input unit, output row) of every weight entry given by its flat (row-major) index."""
    F = int(math.prod(shape[1:]))
    o = flat // F
    u = (o // (int(shape[0]) // int(groups))) * F + (flat - o * F)
    return u, o


def check_threshold(threshold) -> float | None:
    """Validate a mask threshold (``None`` or a finite number)."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(threshold)):
        raise ValueError(f"mask_threshold={threshold!r}: use None (masks must be 0/1) or a finite number "
                         "(entries greater than it are kept)")
    return float(threshold)


def kept_indices(mask, name=None, threshold: float | None = None) -> np.ndarray:
    """Flat indices (sorted, int64) of the kept entries of one layer's mask.

    A bool mask is used as is.  A numeric mask must hold only 0 and 1 unless ``threshold`` is given, in which case
    the entries greater than it are kept; a NaN entry is always an error.  ``ValueError`` names the layer, the count
    of offending entries and an example value."""
    if isinstance(mask, torch.Tensor):
        if mask.dtype == torch.bool and mask.device.type != "cpu":  # transfer the indices, not the mask
            return torch.nonzero(mask.reshape(-1)).reshape(-1).cpu().numpy().astype(np.int64)
        m = to_numpy(mask)
    else:
        m = np.asarray(mask)
    if m.dtype == np.bool_:
        return np.flatnonzero(m).astype(np.int64)
    if not np.issubdtype(m.dtype, np.number):
        raise ValueError(f"layer {_label(name)}: mask has dtype {m.dtype}; use a bool or 0/1 tensor")
    flat = m.reshape(-1)
    nan = np.isnan(flat) if np.issubdtype(m.dtype, np.floating) else np.zeros(flat.shape, dtype=bool)
    if nan.any():
        raise ValueError(f"layer {_label(name)}: mask holds {int(nan.sum())} NaN entries; a mask must be 0/1")
    if threshold is not None:
        return np.flatnonzero(flat > threshold).astype(np.int64)
    bad = (flat != 0) & (flat != 1)
    if bad.any():
        raise ValueError(
            f"layer {_label(name)}: mask holds {int(bad.sum())} entries that are neither 0 nor 1 (e.g. "
            f"{flat[np.flatnonzero(bad)[0]].item()!r}); a soft mask is not a graph — pass mask_threshold=t to keep the "
            "entries greater than t")
    return np.flatnonzero(flat).astype(np.int64)


@dataclass
class LayerInput:
    """One layer under P masks, as the engine reads it.

    ``shape``/``groups``: the weight's shape and its convolution groups; ``sample``/``flat``: the sample and the flat
    weight index of every kept entry of every mask (int64, length E); ``values``: |W| at those entries (float64,
    length E) or ``None`` for the binary graph only."""

    name: str | None
    shape: tuple
    groups: int
    n_samples: int
    sample: np.ndarray
    flat: np.ndarray
    values: np.ndarray | None = None


def layer_input(name, shape, groups, masks, weight=None, threshold: float | None = None) -> LayerInput:
    """Read one layer under a list of masks (tensors/arrays of the weight's shape; ``None`` = dense) and an
    optional weight shared by all of them.

    Raises ``ValueError`` naming the layer for a mask of the wrong shape, a mask that is not 0/1 (see
    :func:`kept_indices`), and a NaN or ±inf weight inside any of the masks (with the count; outside the masks it
    is irrelevant and ignored)."""
    shape = tuple(int(v) for v in shape)
    total = math.prod(shape)
    flats = []
    for i, m in enumerate(masks):
        if m is None:
            flats.append(np.arange(total, dtype=np.int64))
            continue
        if tuple(m.shape) != shape:
            where = f" (sample {i})" if len(masks) > 1 else ""
            raise ValueError(f"layer {_label(name)}{where}: mask shape {tuple(m.shape)} does not match weight shape {shape}")
        flats.append(kept_indices(m, name, threshold))
    sample = np.repeat(np.arange(len(flats), dtype=np.int64), [f.size for f in flats])
    flat = np.concatenate(flats) if flats else np.zeros(0, dtype=np.int64)
    values = None
    if weight is not None:
        if tuple(weight.shape) != shape:
            raise ValueError(f"layer {_label(name)}: weight shape {tuple(weight.shape)} does not match {shape}")
        w = to_numpy(weight).reshape(-1)
        values = np.abs(w[flat].astype(np.float64))
        bad = ~np.isfinite(values)
        if bad.any():
            idx = np.unique(flat[bad])
            kinds = ", ".join(f"{int(k.sum())} {lab}" for k, lab in ((np.isnan(w[idx]), "NaN"), (np.isinf(w[idx]), "inf"))
                              if k.any())
            raise ValueError(f"layer {_label(name)}: {idx.size} non-finite weights inside the mask ({kinds}); the "
                             "weighted graph |W ⊙ M| is undefined (diverged training or fp16 overflow?)")
    return LayerInput(name=name, shape=shape, groups=int(groups), n_samples=len(flats), sample=sample, flat=flat,
                      values=values)
