"""The ITOP correlation study's analysis (paper B, Figs 2-4): network-level metrics of a snapshot, the authors' VGG
snapshot filter, the correlation tables (per trajectory and pooled over trajectories, with intervals that respect
dependent snapshots), the multiple-testing note and the reliability of the accuracy axis."""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..spectral import anchor_reference, fs_distance, model_spectrum, network_summary
from .comparisons import holm
from .correlation import block_bootstrap_pearson, within_pearson

__all__ = ["ITOP_METRICS", "ITOP_REFERENCES", "BCODE_VGG_FILTER", "snapshot_metrics", "apply_bcode_filter",
           "itop_correlations", "correlation_count_note", "accuracy_reliability"]

#: network-level metrics correlated with accuracy: layer means of Δr, λ, Δr_imdb, λ_imsg, FS (= the ℓ2 distance
#: from the origin, as in the authors' code) and the anchor distances from (M_0, θ0) and from (M_t, θ0).
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

#: The authors' code's snapshot filter for VGG-D: keep Δr_imdb > 0.05, FS < 6 and λ_imsg > 0.05.
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

    With ``initial_weights`` (θ0) it adds the anchor distances (paper B's "distance from its original
    initialization"; the full 4-vector, mean over layers):
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
    """The rows of ``table`` that pass paper B's code's VGG snapshot filter (Δr_imdb > 0.05, FS < 6, λ_imsg > 0.05).

    Report correlations with and without it: ``itop_correlations(table)`` and
    ``itop_correlations(apply_bcode_filter(table))`` (the filtered snapshots keep their order within a trajectory)."""
    keep = np.ones(len(table), dtype=bool)
    for col, (op, bound) in rules.items():
        if op not in (">", "<"):
            raise ValueError(f"filter operator must be '>' or '<', got {op!r}")
        keep &= np.array([_passes(v, op, bound) for v in table[col].to_numpy(float)], dtype=bool)
    return table.loc[keep]


_CORR_COLUMNS = ["n", "r", "fisher_low", "fisher_high", "fisher_p", "boot_low", "boot_high", "boot_p", "partial_r",
                 "partial_fisher_low", "partial_fisher_high", "partial_fisher_p", "partial_boot_low",
                 "partial_boot_high", "partial_boot_p"]


def _correlation_row(x: np.ndarray, y: np.ndarray, order: np.ndarray, groups: Optional[np.ndarray],
                     z: Optional[np.ndarray], boot: Mapping[str, Any], confidence: float) -> dict:
    """r and its two intervals (Fisher-z for independent points, moving-block bootstrap), then the same for the
    partial correlation given ``z``, on one trajectory (``groups`` None) or on within-trajectory deviations."""
    g = np.zeros(x.size, dtype=int) if groups is None else groups
    naive = within_pearson(x, y, g, confidence=confidence)
    bb = block_bootstrap_pearson(x, y, g, order=order, confidence=confidence, **boot)
    row = {"n": bb.n, "r": bb.r, "fisher_low": naive.ci_low, "fisher_high": naive.ci_high, "fisher_p": naive.p_value,
           "boot_low": bb.ci_low, "boot_high": bb.ci_high, "boot_p": bb.p_value}
    if z is not None:
        pn = within_pearson(x, y, g, z, confidence=confidence)
        pb = block_bootstrap_pearson(x, y, g, z=z, order=order, confidence=confidence, **boot)
        row.update(partial_r=pb.r, partial_fisher_low=pn.ci_low, partial_fisher_high=pn.ci_high,
                   partial_fisher_p=pn.p_value, partial_boot_low=pb.ci_low, partial_boot_high=pb.ci_high,
                   partial_boot_p=pb.p_value)
    return row


def itop_correlations(
    table: pd.DataFrame,
    metrics: Optional[Sequence[str]] = None,
    *,
    target: str = "test_acc",
    by: str = "model",
    trajectory: str = "seed",
    order: str = "step",
    control: Optional[str] = "step",
    per_trajectory: bool = True,
    pooled: bool = True,
    block: int = 3,
    n_boot: int = 2000,
    seed: int = 0,
    circular: bool = True,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Correlation of each metric with ``target``, long format: one row per (``by`` value, trajectory, metric).

    ``trajectory`` is ``"<trajectory column> <value>"`` for one trajectory's snapshots, or ``"pooled"`` for all
    trajectories of the ``by`` group together, correlated through their within-trajectory deviations (each
    trajectory's own mean removed, so trajectories at different levels cannot make a correlation).  The snapshots of
    one trajectory are not independent, so every r has two intervals: ``fisher_*`` (Fisher z and t-test, as if the
    points were independent; for ``pooled`` with the degrees of freedom of the removed means) and ``boot_*`` (the
    block bootstrap over the snapshots of each trajectory, in ``order``, blocks of ``block``, circular unless
    ``circular`` is False;
    :func:`~pags_core.analysis.block_bootstrap_pearson`).  With ``control`` the ``partial_*`` columns repeat both for
    the partial correlation given that column (NaN for the control itself).

    ``metrics`` defaults to :data:`ITOP_METRICS` plus :data:`ITOP_REFERENCES` (those present in ``table``).
    Columns: ``by``, ``trajectory``, ``metric``, then ``n``, ``r``, ``fisher_low``, ``fisher_high``, ``fisher_p``,
    ``boot_low``, ``boot_high``, ``boot_p`` and their ``partial_`` counterparts.
    """
    wanted = list(metrics) if metrics is not None else [*ITOP_METRICS, *ITOP_REFERENCES]
    need = [target, by, trajectory, order] + ([control] if control is not None else [])
    missing = [c for c in need if c not in table.columns]
    if metrics is not None:
        missing += [m for m in wanted if m not in table.columns]
    if missing:
        raise KeyError(f"columns {missing} are not in the table; it has: {', '.join(map(str, table.columns))}")
    if not (per_trajectory or pooled):
        raise ValueError("per_trajectory and pooled are both False: nothing to compute")
    wanted = [m for m in wanted if m in table.columns]
    boot = {"block": block, "n_boot": n_boot, "seed": seed, "circular": circular}
    rows = []
    for key, sub in table.groupby(by, sort=False):
        sub = sub.sort_values([trajectory, order], kind="stable")
        scopes = [(f"{trajectory} {t}", part, None) for t, part in sub.groupby(trajectory, sort=False)] \
            if per_trajectory else []
        if pooled:
            scopes.append(("pooled", sub, pd.factorize(sub[trajectory])[0]))
        for label, part, groups in scopes:
            y, o = part[target].to_numpy(float), part[order].to_numpy(float)
            z = part[control].to_numpy(float) if control is not None else None
            for m in wanted:
                zc = None if (z is None or m == control) else z
                row = _correlation_row(part[m].to_numpy(float), y, o, groups, zc, boot, confidence)
                rows.append({by: key, "trajectory": label, "metric": m,
                             **{c: row.get(c, np.nan) for c in _CORR_COLUMNS}})
    return pd.DataFrame(rows, columns=[by, "trajectory", "metric", *_CORR_COLUMNS])


def correlation_count_note(table: pd.DataFrame, alpha: float = 0.05, exclude: Sequence[str] = ("step",)) -> str:
    """One sentence on the multiple-testing situation of an :func:`itop_correlations` table: how many correlations
    (r and partial r, metrics not in ``exclude``) have a bootstrap test, how many bootstrap intervals exclude 0,
    how many chance alone would give at ``alpha``, and how many stay below ``alpha`` after the Holm correction of
    the bootstrap p-values over all of them."""
    t = table[~table["metric"].isin(list(exclude))]
    p = np.concatenate([t["boot_p"].to_numpy(float), t["partial_boot_p"].to_numpy(float)])
    lo = np.concatenate([t["boot_low"].to_numpy(float), t["partial_boot_low"].to_numpy(float)])
    hi = np.concatenate([t["boot_high"].to_numpy(float), t["partial_boot_high"].to_numpy(float)])
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return "No correlation had enough snapshots for a bootstrap interval."
    excl = int(((lo[ok] > 0) | (hi[ok] < 0)).sum())
    held = int((holm(p[ok]) < alpha).sum())
    return (f"{m} correlations have a bootstrap interval (r and partial r of every metric, per trajectory and "
            f"pooled); {excl} of the intervals exclude 0, where about {m * alpha:.1f} would by chance alone if no "
            f"metric were related to accuracy; {held} stay significant at {alpha:g} after the Holm correction for "
            f"{m} tests.")


def accuracy_reliability(
    table: pd.DataFrame,
    replicates: pd.DataFrame,
    *,
    target: str = "test_acc",
    by: str = "model",
    trajectory: str = "seed",
    snapshot: Sequence[str] = ("seed", "step"),
    confidence: float = 0.95,
) -> pd.DataFrame:
    """How much of the spread of the accuracy axis is retraining noise, and the highest correlation a metric could
    show with it.

    ``replicates`` holds every retraining of the snapshots retrained more than once (one row per retraining, the
    ``by`` and ``snapshot`` columns identify the snapshot).  The noise variance s_e² is their pooled
    within-snapshot variance (degrees of freedom Σ(k_i − 1), one value per ``by`` group, assumed the same for every
    snapshot), with a chi-square interval.  The observed variance s_y² is that of ``table[target]`` per trajectory
    and, for ``pooled``, of the within-trajectory deviations (degrees of freedom N − number of trajectories).  The
    reliability of the accuracy axis is 1 − s_e²/s_y² (clipped to [0, 1]); a metric measured without error can
    correlate with the observed accuracy at most sqrt(reliability) (``ceiling``), and ``ceiling_low`` /
    ``ceiling_high`` are that bound at the ends of the noise interval.

    One row per (``by``, trajectory): ``n``, ``sd``, ``noise_sd``, ``noise_df``, ``noise_sd_low``,
    ``noise_sd_high``, ``reliability``, ``ceiling``, ``ceiling_low``, ``ceiling_high``.
    """
    from scipy import stats as st

    keys = [by, *[c for c in snapshot if c != by]]
    missing = [c for c in [*keys, target] if c not in replicates.columns] + \
              [c for c in (by, trajectory, target) if c not in table.columns]
    if missing:
        raise KeyError(f"columns {sorted(set(missing))} are missing from the table or the replicates")

    def ceiling(noise_var: float, var: float) -> float:
        if not (np.isfinite(noise_var) and np.isfinite(var)) or var <= 0:
            return np.nan
        return float(np.sqrt(min(1.0, max(0.0, 1.0 - noise_var / var))))

    rows = []
    for key, sub in table.groupby(by, sort=False):
        rep = replicates[replicates[by] == key]
        dev = rep[target] - rep.groupby(keys)[target].transform("mean")
        k = rep.groupby(keys)[target].transform("size")
        df = int((rep.groupby(keys).size() - 1).clip(lower=0).sum())
        noise_var = float((dev[k > 1] ** 2).sum() / df) if df > 0 else np.nan
        if df > 0:
            a = (1 - confidence) / 2
            var_lo, var_hi = df * noise_var / st.chi2.ppf(1 - a, df), df * noise_var / st.chi2.ppf(a, df)
        else:
            var_lo = var_hi = np.nan
        within = (sub[target] - sub.groupby(trajectory, sort=False)[target].transform("mean")).to_numpy(float)
        scopes = [(f"{trajectory} {t}", within[(sub[trajectory] == t).to_numpy()], 1)
                  for t in sub[trajectory].unique()]
        scopes.append(("pooled", within, sub[trajectory].nunique()))
        for label, dev_y, means in scopes:  # deviations from each trajectory's mean; ``means`` of them removed
            dof = len(dev_y) - means
            var = float((dev_y ** 2).sum() / dof) if dof > 0 else np.nan
            c = ceiling(noise_var, var)
            rows.append({by: key, "trajectory": label, "n": len(dev_y), "sd": float(np.sqrt(var)),
                         "noise_sd": float(np.sqrt(noise_var)), "noise_df": df,
                         "noise_sd_low": float(np.sqrt(var_lo)), "noise_sd_high": float(np.sqrt(var_hi)),
                         "reliability": c ** 2, "ceiling": c,
                         "ceiling_low": ceiling(var_hi, var), "ceiling_high": ceiling(var_lo, var)})
    return pd.DataFrame(rows, columns=[by, "trajectory", "n", "sd", "noise_sd", "noise_df", "noise_sd_low",
                                       "noise_sd_high", "reliability", "ceiling", "ceiling_low", "ceiling_high"])

