"""Which layers can pass the spectral gates, and at which density: read off each layer's true graph.

A layer's whole-layer gate looks at the mean degrees of the nodes that keep an edge: ``neurips2023`` (paper B's code)
asks for a mean output fan-in of at least 3 and a mean input fan-out above 1, ``iclr2023`` (paper A's) for at least
3 on both sides.  An output row of a layer can reach F = ``prod(shape[1:])`` input units, and an input unit reaches
the F_out = ``shape[0] / groups`` output rows of its group.  Keeping a fraction p of the layer's weights at random
positions gives an output row about p·F edges and an input unit about p·F_out, so

- a mean output fan-in of 3 needs p >= 3/F (the rule of thumb used here: it is what p·F >= 3 asks; removing the
  isolated rows first makes the mean over the surviving rows a little larger, so the true threshold lies a little
  below);
- ``neurips2023``'s mean input fan-out above 1 needs F_out >= 2: a depthwise layer (F_out = 1, every input unit
  reaches one output) fails at every density, even dense;
- ``iclr2023``'s mean input fan-out of 3 needs p >= 3/F_out as well.

A layer whose threshold exceeds 1 never passes.  :func:`gate_table` lists the thresholds with the densities that a
uniform allocation (Random, and SNIP-like global rankings on average) and ERK (Evci et al., ICML 2020) give every
layer at a global density; :func:`min_gate_density` is the smallest global density at which every layer that can
pass does, under either allocation.  A data-driven generator (SNIP, GraSP) allocates its own densities: compare its
mask's layer densities (``Mask.layer_densities()``) with the thresholds.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import pandas as pd
from torch import nn

from ..models import LayerGeometry, layer_geometry
from ..pruning.erk import erk_densities
from ..pruning.select import check_density
from ..spectral.conventions import get_convention

__all__ = ["ALLOCATIONS", "gate_density", "gate_table", "min_gate_density"]

#: how a global density is spread over the layers: the same density everywhere, or ERK's
ALLOCATIONS = ("uniform", "erk")


def gate_density(geometry: LayerGeometry, convention: str = "neurips2023") -> float:
    """The layer density at which ``geometry``'s layer passes ``convention``'s whole-layer gate (``math.inf`` when
    no density can): ``3 / fan_in``, and for ``iclr2023`` at least ``3 / fan_out`` too (see the module docstring)."""
    conv = get_convention(convention)
    fan_in = geometry.fan_in
    fan_out = geometry.n_outputs // geometry.groups
    need = [3.0 / fan_in]
    if conv.layer_left == "outputs":  # neurips2023: mean input fan-out > 1 needs two reachable outputs
        if fan_out < 2:
            return math.inf
    else:  # iclr2023: mean input fan-out >= 3
        need.append(3.0 / fan_out)
    p = max(need)
    return p if p <= 1.0 else math.inf


def _geometry(model) -> "Mapping[str, LayerGeometry]":
    if isinstance(model, nn.Module):
        return layer_geometry(model)
    if isinstance(model, Mapping) and all(isinstance(g, LayerGeometry) for g in model.values()) and model:
        return model
    raise TypeError(f"expected a torch.nn.Module or a non-empty mapping name -> LayerGeometry, got "
                    f"{type(model).__name__}")


def _allocation(geo: Mapping[str, LayerGeometry], density: float, allocation: str) -> dict:
    if allocation == "uniform":
        return {n: density for n in geo}
    if allocation == "erk":
        return erk_densities({n: g.shape for n, g in geo.items()}, density)
    raise ValueError(f"unknown allocation {allocation!r}; valid choices: {', '.join(ALLOCATIONS)}")


def gate_table(model, density: Optional[float] = None, *, convention: str = "neurips2023") -> pd.DataFrame:
    """One row per prunable layer of ``model`` (a module, or the mapping of :func:`~pags_core.layer_geometry`):
    ``layer``, ``kind``, ``groups``, ``weights``, ``fan_in`` (input units an output row reaches), ``fan_out`` (output
    rows an input unit reaches) and ``gate_density`` (:func:`gate_density`; inf: never).  With a global ``density``
    also, for each of :data:`ALLOCATIONS`, the layer's density (``uniform_density``, ``erk_density``) and whether
    it reaches the threshold (``uniform_passes``, ``erk_passes``)."""
    geo = _geometry(model)
    rows = [{"layer": n, "kind": g.kind, "groups": g.groups, "weights": math.prod(g.shape), "fan_in": g.fan_in,
             "fan_out": g.n_outputs // g.groups, "gate_density": gate_density(g, convention)} for n, g in geo.items()]
    df = pd.DataFrame(rows)
    if density is not None:
        density = check_density(density)
        for a in ALLOCATIONS:
            p = _allocation(geo, density, a)
            df[f"{a}_density"] = [p[n] for n in geo]
            df[f"{a}_passes"] = df[f"{a}_density"] >= df["gate_density"]
    return df


def min_gate_density(model, allocation: str = "erk", *, convention: str = "neurips2023", tol: float = 1e-6) -> float:
    """The smallest global density (within ``tol``, rounded up) at which every layer of ``model`` that can pass the
    gate reaches its :func:`gate_density` under ``allocation`` (``"uniform"`` or ``"erk"``); layers that never
    pass are left out (list them with :func:`gate_table`).  NaN when no layer can pass."""
    geo = _geometry(model)
    if allocation not in ALLOCATIONS:
        raise ValueError(f"unknown allocation {allocation!r}; valid choices: {', '.join(ALLOCATIONS)}")
    if not (isinstance(tol, (int, float)) and 0 < tol < 0.1):
        raise ValueError(f"tol must be a number in (0, 0.1), got {tol!r}")
    need = {n: gate_density(g, convention) for n, g in geo.items()}
    need = {n: p for n, p in need.items() if math.isfinite(p)}
    if not need:
        return math.nan

    def ok(d: float) -> bool:
        p = _allocation(geo, d, allocation)
        return all(p[n] >= need[n] * (1 - 1e-12) for n in need)

    if allocation == "uniform":
        return max(need.values())
    lo, hi = 0.0, 1.0  # ERK's layer densities grow with the global density: bisect
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi
