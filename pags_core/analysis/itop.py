"""The ITOP correlation study's analysis: network-level metrics of a snapshot, paper B's VGG snapshot filter and the
per-run correlation table (paper B, Figs 2-4)."""
from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..spectral import anchor_reference, fs_distance, model_spectrum, network_summary
from .correlation import partial_pearson, pearson

__all__ = ["ITOP_METRICS", "ITOP_REFERENCES", "BCODE_VGG_FILTER", "snapshot_metrics", "apply_bcode_filter",
           "snapshot_correlations"]

#: network-level metrics correlated with accuracy: layer means of Δr, λ, Δr_imdb, λ_imsg, FS (= the ℓ2 distance
#: from the origin, as paper B correlates it) and the anchor distances from (M_0, θ0) and from (M_t, θ0).
ITOP_METRICS: Dict[str, str] = {
    "ramanujan_gap": "Δr (topology)",
    "weighted_gap": "λ (weights)",
    "imdb": "Δr_imdb",
    "imsg": "λ_imsg",
    "full_spectrum": "FS = ℓ2 distance from the origin",
    "dist_initial": "ℓ2 distance from (M_0, θ0)",
    "dist_same_mask": "ℓ2 distance from (M_t, θ0)",
}

#: reference rows of the correlation table: the ITOP step itself.  Later snapshots have been trained longer before
#: their retraining, so a metric that merely grows with training time also correlates with accuracy.
ITOP_REFERENCES: Dict[str, str] = {"step": "ITOP step (training time; a confound check)"}

#: the snapshot filter paper B's code applies to VGG-D: keep Δr_imdb > 0.05, FS < 6 and λ_imsg > 0.05.
BCODE_VGG_FILTER: Dict[str, tuple] = {"imdb": (">", 0.05), "full_spectrum": ("<", 6.0), "imsg": (">", 0.05)}

def snapshot_metrics(
    model: nn.Module,
    mask: Mapping[str, torch.Tensor],
    *,
    weights: Any = "model",
    convention: str = "neurips2023",
    initial_weights: Optional[Mapping[str, torch.Tensor]] = None,
    initial_mask: Optional[Mapping[str, torch.Tensor]] = None,
    initial_reference: Optional[pd.DataFrame] = None,
) -> Dict[str, float]:
    """Network-level metrics of (mask, |W|) with W the model's weights (or ``weights``, a name -> tensor mapping):
    layer means (non-finite -> 0) of Δr, λ, Δr_imdb, λ_imsg and FS (FS = the ℓ2 distance from the origin).

    With ``initial_weights`` (θ0) it adds two anchor distances (the ℓ2 distance of the full 4-vector from a reference,
    mean over layers):
    ``dist_same_mask`` from (M_t, θ0) and, with ``initial_mask`` (M_0) or a precomputed ``initial_reference``
    (:func:`pags_core.anchor_reference` with ``reference="initial"``), ``dist_initial`` from (M_0, θ0).
    """
    df = model_spectrum(model, mask, convention, weights=weights, progress=False)
    summ = network_summary(df)
    out = {k: float(summ[k]) for k in ("ramanujan_gap", "weighted_gap", "imdb", "imsg", "full_spectrum")}
    if initial_weights is not None:
        same = anchor_reference(model, mask, initial_weights=initial_weights, reference="same_mask",
                                convention=convention, progress=False)
        if initial_reference is None and initial_mask is not None:
            initial_reference = anchor_reference(model, mask, initial_weights=initial_weights, initial_mask=initial_mask,
                                                 reference="initial", convention=convention, progress=False)
        out["dist_initial"] = (fs_distance(df, initial_reference, distance="anchor")
                               if initial_reference is not None else math.nan)
        out["dist_same_mask"] = fs_distance(df, same, distance="anchor")
    return out


def _passes(value: float, op: str, bound: float) -> bool:
    return bool(np.isfinite(value) and (value > bound if op == ">" else value < bound))


def apply_bcode_filter(table: pd.DataFrame, rules: Mapping[str, tuple] = BCODE_VGG_FILTER) -> pd.DataFrame:
    """The rows of ``table`` that pass paper B's code's VGG snapshot filter (Δr_imdb > 0.05, FS < 6, λ_imsg > 0.05)."""
    keep = np.ones(len(table), dtype=bool)
    for col, (op, bound) in rules.items():
        if op not in (">", "<"):
            raise ValueError(f"filter operator must be '>' or '<', got {op!r}")
        keep &= np.array([_passes(v, op, bound) for v in table[col].to_numpy(float)], dtype=bool)
    return table.loc[keep]


def snapshot_correlations(
    table: pd.DataFrame,
    metrics: Optional[Sequence[str]] = None,
    *,
    target: str = "test_acc",
    by: Sequence[str] = ("model", "dataset", "seed"),
    control: Optional[str] = "step",
    confidence: float = 0.95,
    min_n: int = 3,
) -> pd.DataFrame:
    """Pearson r (95% Fisher-z CI, n, p) of each metric against ``target`` per ``by`` group, once on all
    snapshots (``filter="none"``) and once on those passing :data:`BCODE_VGG_FILTER` (``filter="bcode_vgg"``).

    ``metrics`` defaults to :data:`ITOP_METRICS` plus the reference rows of :data:`ITOP_REFERENCES`.  With
    ``control`` (default ``"step"``) the columns ``partial_r``, ``partial_ci_low``, ``partial_ci_high`` and
    ``partial_p_value`` hold the partial correlation given that column (:func:`pags_core.stats.partial_pearson`).
    Groups with fewer than ``min_n`` snapshots keep their ``n`` but get NaN elsewhere (two points always give
    r = ±1).
    """
    metrics = [m for m in (metrics or [*ITOP_METRICS, *ITOP_REFERENCES]) if m in table.columns]
    if target not in table.columns:
        raise KeyError(f"target column {target!r} is not in the table; it has: {', '.join(map(str, table.columns))}")
    by = [b for b in by if b in table.columns]
    use_control = control is not None and control in table.columns
    groups = table.groupby(by, sort=False) if by else [((), table)]
    rows = []
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        for filt, part in (("none", sub), ("bcode_vgg", apply_bcode_filter(sub))):
            y = part[target].to_numpy(float)
            for m in metrics:
                x = part[m].to_numpy(float)
                res = pearson(x, y, confidence=confidence)
                row = {**dict(zip(by, key)), "filter": filt, "metric": m, "r": res.r, "ci_low": res.ci_low,
                       "ci_high": res.ci_high, "n": res.n, "p_value": res.p_value}
                if use_control:
                    pr = (partial_pearson(x, y, part[control].to_numpy(float), confidence=confidence)
                          if m != control else None)
                    row.update(partial_r=pr.r if pr else np.nan, partial_ci_low=pr.ci_low if pr else np.nan,
                               partial_ci_high=pr.ci_high if pr else np.nan,
                               partial_p_value=pr.p_value if pr else np.nan)
                if res.n < min_n:
                    row.update({k: np.nan for k in row if k in ("r", "ci_low", "ci_high", "p_value") or
                                k.startswith("partial_")})
                rows.append(row)
    cols = [*by, "filter", "metric", "r", "ci_low", "ci_high", "n", "p_value"]
    if use_control:
        cols += ["partial_r", "partial_ci_low", "partial_ci_high", "partial_p_value"]
    return pd.DataFrame(rows, columns=cols)


