"""Erdős–Rényi-Kernel layer densities (Evci et al., ICML 2020, as both papers use them) and exact per-layer counts.

ERK reads a layer's weight *shape*.  For a grouped convolution the shape is (C_out, C_in/g, kh, kw): its second
dimension is already the number of input channels each output channel really reads (the true per-output fan-in is
C_in/g·kh·kw = prod(shape[1:])), and prod(shape) is the number of edges of the layer's true, block-diagonal graph.
So ERK needs no correction for groups: a depthwise 3x3 convolution with C channels has raw = (C + 1 + 3 + 3)/(9C),
not the (2C + 6)/(9C²) of a dense convolution with the same channels.  A transposed convolution is read the same way
from its stored shape (C_in, C_out/g, k...); a MultiheadAttention ``in_proj_weight`` is one (3E, E) layer, while
separate q/k/v projections are three layers of their own shapes.
"""
from __future__ import annotations

import math
from typing import Dict, Mapping, Sequence

import torch

from .select import check_density

__all__ = ["erk_densities", "erk_counts"]


def erk_densities(shapes: Mapping[str, Sequence[int]], density: float, *, power: float = 1.0) -> Dict[str, float]:
    """Per-layer ERK densities p_l = min(1, eps * raw_l) with raw_l = (sum of dims / product of dims)^power.

    eps makes the expected kept count equal ``density * sum_l N_l``:
    eps = [D * sum_{l not in S} N_l - (1 - D) * sum_{l in S} N_l] / sum_{l not in S} raw_l * N_l,
    where S, the set of dense layers, grows (the layer(s) with the largest raw_l first) while max eps*raw_l > 1.

    Raises ``ValueError`` for an empty ``shapes``, a layer with a zero-size dimension (its raw_l is undefined) and a
    ``power`` that is not a finite number >= 0.
    """
    from .checks import OPTION_CHECKS, check_layer_sizes

    if not shapes:
        raise ValueError("ERK needs at least one layer shape")
    check_layer_sizes({n: tuple(s) for n, s in shapes.items()})
    power = OPTION_CHECKS["power"](power)
    density = check_density(density)
    names = list(shapes)
    N = {n: math.prod(shapes[n]) for n in names}
    raw = {n: (sum(shapes[n]) / N[n]) ** power for n in names}
    dense: set[str] = set()
    while True:
        rhs = sum(density * N[n] for n in names if n not in dense) - sum((1 - density) * N[n] for n in dense)
        div = sum(raw[n] * N[n] for n in names if n not in dense)
        if div == 0:  # every layer dense
            return {n: 1.0 for n in names}
        eps = rhs / div
        free = [n for n in names if n not in dense]
        max_raw = max(raw[n] for n in free)
        if eps * max_raw > 1.0 and len(free) > 0:
            dense.update(n for n in free if raw[n] == max_raw)
            continue
        return {n: (1.0 if n in dense else eps * raw[n]) for n in names}


def erk_counts(shapes: Mapping[str, Sequence[int]], density: float, *, power: float = 1.0) -> Dict[str, int]:
    """Exact per-layer kept counts: ``round(p_l * N_l)`` with balanced (largest-remainder) rounding so that the
    total is exactly ``round(density * sum N_l)``."""
    p = erk_densities(shapes, density, power=power)
    N = {n: math.prod(shapes[n]) for n in shapes}
    target = int(round(density * sum(N.values())))
    ideal = {n: min(p[n], 1.0) * N[n] for n in shapes}
    counts = {n: int(math.floor(ideal[n])) for n in shapes}
    rem = target - sum(counts.values())
    # hand out (or take back) single weights by largest (smallest) fractional part, never exceeding N_l or going < 0
    order = sorted(shapes, key=lambda n: ideal[n] - counts[n], reverse=rem > 0)
    i = 0
    while rem != 0 and order:
        n = order[i % len(order)]
        if rem > 0 and counts[n] < N[n]:
            counts[n] += 1
            rem -= 1
        elif rem < 0 and counts[n] > 0:
            counts[n] -= 1
            rem += 1
        i += 1
        if i > 4 * len(order) + abs(rem) * len(order):  # cannot happen for 0 < density <= 1; guard against loops
            break
    return counts


def random_positions(shape: Sequence[int], count: int, generator: torch.Generator) -> torch.Tensor:
    """A bool tensor of ``shape`` with exactly ``count`` uniformly random True entries (drawn on the CPU).

    For ``count`` well below the layer size, positions come from repeated i.i.d. draws, de-duplicated, of which a
    uniformly random subset of size ``count`` is kept (uniform over subsets by exchangeability), which avoids a
    ``randperm`` of the whole layer (seconds for the 102M-weight torchvision VGG classifier)."""
    n = math.prod(shape)
    count = max(0, min(int(count), n))
    keep = torch.zeros(n, dtype=torch.bool)
    if count * 4 >= n:
        keep[torch.randperm(n, generator=generator)[:count]] = True
    elif count > 0:
        got = torch.empty(0, dtype=torch.long)
        while got.numel() < count:
            draw = torch.randint(0, n, (int((count - got.numel()) * 1.3) + 16,), generator=generator)
            got = torch.unique(torch.cat([got, draw]))
        keep[got[torch.randperm(got.numel(), generator=generator)[:count]]] = True
    return keep.view(*shape)
