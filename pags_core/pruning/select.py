"""Top-k selection: the ONE place where scores become a mask.

``k = round(density * N_total)`` weights are kept, exactly (at least one).  The authors' codebases instead keep the
scores strictly greater than the k-th largest score, which keeps k-1 weights when there are no ties and fewer when
the k-th score is tied; the difference is one weight in ~10^5-10^7 at the paper's sizes.  Here every score above
the k-th largest is kept and ties *at* the k-th largest score are broken by position (lowest flat index in model
order first), so selection is deterministic.  Implemented with ``kthvalue`` (linear time), which matters for the
134M-weight torchvision VGG.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch

from ..masks import Mask

__all__ = ["check_density", "select_topk", "SCOPES"]

SCOPES = ("global", "local")


def check_density(density: float) -> float:
    """Return ``density`` as a float, or raise ``ValueError`` unless it lies in (0, 1]."""
    if isinstance(density, bool):
        raise ValueError(f"density must be a number in (0, 1] (the kept fraction), got {density!r}")
    try:
        d = float(density)
    except (TypeError, ValueError):
        raise ValueError(f"density must be a number in (0, 1] (the kept fraction), got {density!r}") from None
    if not (math.isfinite(d) and 0.0 < d <= 1.0):
        raise ValueError(f"density must be in (0, 1] (the kept fraction), got {density!r}")
    return d


def _num_keep(density: float, n: int) -> int:
    return min(n, max(1, int(round(density * n)))) if n > 0 else 0


def _float(flat: torch.Tensor) -> torch.Tensor:
    return flat if flat.is_floating_point() else flat.double()


def _refuse_nan(scores: Mapping[str, torch.Tensor]) -> None:
    bad = [f"{n} ({int(torch.isnan(s).sum())} NaN)" for n, s in scores.items()
           if s.is_floating_point() and bool(torch.isnan(s).any())]
    if bad:
        raise ValueError(f"scores hold NaN, which has no rank: {', '.join(bad[:8])}"
                         + (f", ... ({len(bad) - 8} more)" if len(bad) > 8 else "")
                         + "; generate_mask refuses them earlier, naming the cause")


def _keep_top(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of exactly ``k`` entries: every score above the k-th largest, then ties by lowest index."""
    n = flat.numel()
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=flat.device)
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool, device=flat.device)
    kth = torch.kthvalue(flat.cpu() if flat.device.type == "mps" else flat, n - k + 1).values.to(flat.device)
    keep = flat > kth
    need = k - int(keep.sum())
    if need > 0:
        ties = torch.nonzero(flat == kth).squeeze(1)[:need]
        keep[ties] = True
    return keep


def select_topk(scores: Mapping[str, torch.Tensor], density: float, *, scope: str = "global") -> Mask:
    """Keep the highest scores: ``scope="global"`` keeps exactly ``k = round(density * N_total)`` (at least 1) over
    the concatenation of all tensors; ``scope="local"`` keeps ``round(density * N_l)`` (at least 1) in every tensor.

    ``-inf`` marks a weight that must not be kept unless k forces it, ``+inf`` one that is kept first; a NaN score is
    a ``ValueError`` naming its layer (it has no rank).
    """
    density = check_density(density)
    if not isinstance(scope, str) or scope.lower() not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; valid choices: {', '.join(SCOPES)}")
    if not scores:
        raise ValueError("no scores to select from (the model has no prunable layers?)")
    _refuse_nan(scores)
    names = list(scores)
    if scope.lower() == "local":
        out = {}
        for n in names:
            s = scores[n]
            flat = _float(s.detach().reshape(-1))
            out[n] = _keep_top(flat, _num_keep(density, flat.numel())).view(s.shape)
        return Mask(out)
    device = scores[names[0]].device
    flats = [scores[n].detach().reshape(-1).to(device) for n in names]
    keep = _keep_top(_float(torch.cat(flats)), _num_keep(density, sum(f.numel() for f in flats)))
    out, start = {}, 0
    for n, f in zip(names, flats):
        out[n] = keep[start:start + f.numel()].view(scores[n].shape)
        start += f.numel()
    return Mask(out)
