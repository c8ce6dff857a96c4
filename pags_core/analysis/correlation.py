"""Correlations with intervals: Pearson's r with a Fisher-z confidence interval, Spearman's rho, partial and
within-group correlations, correlation tables, and a moving-block bootstrap for points that are not independent.

The ITOP study (paper B, Figs 2-4) correlates a metric with the retrained test accuracy across the snapshots of a
training run.  With n = 10 snapshots a correlation is only an indication, so every value comes with its sample size
and a 95% confidence interval:

    z = atanh(r),  se = 1 / sqrt(n - 3),  CI = tanh(z -/+ z_{(1+c)/2} * se)

(the Fisher transformation; this is also what ``scipy.stats.pearsonr(...).confidence_interval()`` returns), and a
two-sided p-value from Student's t with n - 2 degrees of freedom, t = r * sqrt((n - 2) / (1 - r^2)).  Both assume
independent pairs.  The snapshots of one trajectory are not independent (each one continues the previous one), so
:func:`block_bootstrap_pearson` resamples them in blocks of consecutive snapshots instead.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

__all__ = ["CorrelationResult", "pearson", "partial_pearson", "spearman", "fisher_z_interval", "correlation_table",
           "block_bootstrap_pearson", "block_resamples", "within_group", "within_pearson"]


@dataclasses.dataclass(frozen=True)
class CorrelationResult:
    """A correlation coefficient with its sample size, confidence interval and two-sided p-value.

    ``r`` is NaN when it is undefined (fewer than 2 finite pairs, or a constant input).  The interval is NaN for
    n < 3 and the uninformative (-1, 1) for n = 3, as in scipy.
    """

    r: float
    n: int
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float = 0.95
    method: str = "pearson"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:  # e.g. "0.56 [-0.12, 0.88] (n=10)"
        if not math.isfinite(self.r):
            return f"nan (n={self.n})"
        return f"{self.r:.2f} [{self.ci_low:.2f}, {self.ci_high:.2f}] (n={self.n})"


def fisher_z_interval(r: float, n: int, confidence: float = 0.95, *, se_scale: float = 1.0) -> tuple[float, float]:
    """The Fisher-z confidence interval of a correlation ``r`` from ``n`` pairs.

    ``se_scale`` multiplies the standard error 1/sqrt(n-3) (1.0 for Pearson; sqrt(1.06) is the Fieller et al.
    correction used for Spearman).  Returns (nan, nan) when r is NaN or n < 3; (-1, 1) when n == 3.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if not math.isfinite(r) or n < 3:
        return (math.nan, math.nan)
    if n == 3:
        return (-1.0, 1.0)
    r = max(-1.0, min(1.0, float(r)))
    z = math.atanh(r) if abs(r) < 1.0 else math.copysign(math.inf, r)
    half = _st.norm.ppf(0.5 + confidence / 2.0) * se_scale / math.sqrt(n - 3)
    return (math.tanh(z - half), math.tanh(z + half))


def _pairs(x: Iterable[float], y: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    xa = np.asarray(x if hasattr(x, "__len__") else list(x), dtype=float).ravel()
    ya = np.asarray(y if hasattr(y, "__len__") else list(y), dtype=float).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must have the same length, got {xa.size} and {ya.size}")
    keep = np.isfinite(xa) & np.isfinite(ya)  # pairs with a NaN/inf on either side are dropped
    return xa[keep], ya[keep]


def _r_and_p(xa: np.ndarray, ya: np.ndarray) -> tuple[float, float]:
    n = xa.size
    if n < 2:
        return math.nan, math.nan
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:  # a constant input has no correlation (scipy also returns NaN)
        return math.nan, math.nan
    dx, dy = xa - xa.mean(), ya - ya.mean()
    sxx, syy = float(dx @ dx), float(dy @ dy)
    r = float(dx @ dy) / math.sqrt(sxx * syy)
    r = max(-1.0, min(1.0, r))
    if n == 2:
        return r, 1.0
    if abs(r) == 1.0:
        return r, 0.0
    df = n - 2
    t = r * math.sqrt(df / ((1.0 - r) * (1.0 + r)))
    return r, float(2.0 * _st.t.sf(abs(t), df))


def pearson(x: Sequence[float], y: Sequence[float], *, confidence: float = 0.95) -> CorrelationResult:
    """Pearson's r of the finite pairs of ``x`` and ``y`` with a Fisher-z interval and a t-test p-value.

    >>> res = pearson([1, 2, 3, 4], [1, 3, 2, 4])
    >>> round(res.r, 6), res.n
    (0.8, 4)
    """
    xa, ya = _pairs(x, y)
    r, p = _r_and_p(xa, ya)
    lo, hi = fisher_z_interval(r, xa.size, confidence)
    return CorrelationResult(r, int(xa.size), lo, hi, p, confidence, "pearson")


def partial_pearson(x: Sequence[float], y: Sequence[float], z: Sequence[float] | Sequence[Sequence[float]], *,
                    confidence: float = 0.95) -> CorrelationResult:
    """Partial Pearson correlation of ``x`` and ``y`` given the covariate(s) ``z`` (one sequence, or a sequence of
    them): the correlation of the residuals of ``x`` and ``y`` after a least-squares fit on ``z`` plus an
    intercept.  With k covariates the interval uses se = 1/sqrt(n - 3 - k) and the p-value n - 2 - k degrees of
    freedom.  For one covariate r = (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)).
    """
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    za = np.asarray(z, dtype=float)
    za = za.reshape(-1, 1) if za.ndim == 1 else za.T if za.shape[0] != xa.size else za
    if za.shape[0] != xa.size or ya.size != xa.size:
        raise ValueError(f"x, y and z must have the same length, got {xa.size}, {ya.size} and {za.shape[0]}")
    keep = np.isfinite(xa) & np.isfinite(ya) & np.isfinite(za).all(axis=1)
    xa, ya, za = xa[keep], ya[keep], za[keep]
    n, k = xa.size, za.shape[1]
    nan = CorrelationResult(math.nan, int(n), math.nan, math.nan, math.nan, confidence, "partial_pearson")
    if n < k + 3:
        return nan
    design = np.column_stack([np.ones(n), za])
    rx = xa - design @ np.linalg.lstsq(design, xa, rcond=None)[0]
    ry = ya - design @ np.linalg.lstsq(design, ya, rcond=None)[0]
    def explained(res: np.ndarray, v: np.ndarray) -> bool:  # v is (numerically) a function of z
        return float(np.sqrt(res @ res)) <= 1e-12 * max(1.0, float(np.abs(v).max())) * math.sqrt(n)

    if explained(rx, xa) or explained(ry, ya):
        return nan
    r = float(max(-1.0, min(1.0, (rx @ ry) / math.sqrt((rx @ rx) * (ry @ ry)))))
    df = n - 2 - k
    if abs(r) == 1.0:
        p = 0.0
    else:
        p = float(2.0 * _st.t.sf(abs(r) * math.sqrt(df / ((1.0 - r) * (1.0 + r))), df))
    lo, hi = fisher_z_interval(r, n - k, confidence)
    return CorrelationResult(r, int(n), lo, hi, p, confidence, "partial_pearson")


def spearman(x: Sequence[float], y: Sequence[float], *, confidence: float = 0.95) -> CorrelationResult:
    """Spearman's rho (Pearson on average ranks) with a Fisher-z interval (Fieller standard error sqrt(1.06/(n-3)))
    and the t-approximation p-value that ``scipy.stats.spearmanr`` also uses."""
    xa, ya = _pairs(x, y)
    rx, ry = _st.rankdata(xa), _st.rankdata(ya)
    r, p = _r_and_p(rx, ry)
    lo, hi = fisher_z_interval(r, xa.size, confidence, se_scale=math.sqrt(1.06))
    return CorrelationResult(r, int(xa.size), lo, hi, p, confidence, "spearman")


_METHODS = {"pearson": pearson, "spearman": spearman}


def correlation_table(
    df: pd.DataFrame,
    metrics: Sequence[str],
    target: str = "test_acc",
    *,
    by: Sequence[str] | str | None = None,
    method: str = "pearson",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per (group, metric): the correlation of ``df[metric]`` with ``df[target]``.

    Columns: the ``by`` columns, ``metric``, ``r``, ``ci_low``, ``ci_high``, ``n``, ``p_value``, ``method``.
    """
    if method not in _METHODS:
        raise ValueError(f"unknown correlation method {method!r}; valid choices: {', '.join(sorted(_METHODS))}")
    missing = [c for c in [*metrics, target] if c not in df.columns]
    if missing:
        raise KeyError(f"columns {missing} are not in the table; it has: {', '.join(map(str, df.columns))}")
    by = [by] if isinstance(by, str) else list(by or [])
    groups = df.groupby(by, sort=False, dropna=False) if by else [((), df)]
    rows = []
    for key, sub in groups:
        key = key if isinstance(key, tuple) else (key,)
        for m in metrics:
            res = _METHODS[method](sub[m].to_numpy(float), sub[target].to_numpy(float), confidence=confidence)
            rows.append({**dict(zip(by, key)), "metric": m, "r": res.r, "ci_low": res.ci_low, "ci_high": res.ci_high,
                         "n": res.n, "p_value": res.p_value, "method": method})
    return pd.DataFrame(rows, columns=[*by, "metric", "r", "ci_low", "ci_high", "n", "p_value", "method"])


def within_group(values: Sequence[float], groups: Sequence) -> np.ndarray:
    """``values`` minus the mean of their group: what is left of a trajectory's values once its own level is taken
    out (pooling trajectories without it would let their different levels make a correlation)."""
    v = np.asarray(values, dtype=float)
    g = pd.Series(np.asarray(groups))
    return v - pd.Series(v).groupby(g.values).transform("mean").to_numpy()


def within_pearson(x: Sequence[float], y: Sequence[float], groups: Sequence, z: Sequence[float] | None = None, *,
                   confidence: float = 0.95) -> CorrelationResult:
    """Pearson r of the within-group deviations of ``x`` and ``y`` (each group's own mean taken out, as
    :func:`within_group`), given ``z`` too when it is set, with the Fisher-z interval and t-test of independent
    points: :func:`partial_pearson` on the group indicators (and ``z``), so the degrees of freedom lost to the group
    means are counted.  One group gives :func:`pearson` (or :func:`partial_pearson` on ``z``)."""
    xa = np.asarray(x, dtype=float).ravel()
    codes = pd.factorize(np.asarray(groups))[0]
    if codes.size != xa.size:
        raise ValueError(f"x and groups must have the same length, got {xa.size} and {codes.size}")
    dummies = (codes[:, None] == np.arange(1, codes.max() + 1)[None, :]).astype(float)
    cov = dummies if z is None else np.column_stack([dummies, np.asarray(z, dtype=float).ravel()])
    res = partial_pearson(xa, y, cov, confidence=confidence)
    return dataclasses.replace(res, method="within_pearson")


def _center(a: np.ndarray, columns: list) -> np.ndarray:
    """Rows of ``a`` (resamples x points) with the mean of each group of columns taken out."""
    out = a.copy()
    for cols in columns:
        out[:, cols] -= out[:, cols].mean(axis=1, keepdims=True)
    return out


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _rowwise_r(x: np.ndarray, y: np.ndarray, z: np.ndarray | None, columns: list) -> np.ndarray:
    """Pearson r of each row of ``x`` and ``y`` (resamples x points) after centring every group of ``columns`` and,
    with ``z``, removing the least-squares fit on the centred ``z``; NaN where a side has no variance left (a
    residual sum of squares below 1e-20 of the raw one: constant, or an exact function of ``z``)."""
    tiny = 1e-20
    scale = [_dot(a, a) for a in (x, y)]
    xc, yc = _center(x, columns), _center(y, columns)
    dead = np.zeros(x.shape[0], dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        if z is not None:
            zc = _center(z, columns)
            zz = _dot(zc, zc)
            dead |= zz <= tiny * _dot(z, z)
            xc = xc - (_dot(xc, zc) / zz)[:, None] * zc
            yc = yc - (_dot(yc, zc) / zz)[:, None] * zc
        sxx, syy = _dot(xc, xc), _dot(yc, yc)
        dead |= (sxx <= tiny * scale[0]) | (syy <= tiny * scale[1])
        r = _dot(xc, yc) / np.sqrt(sxx * syy)
    r = np.clip(r, -1.0, 1.0)
    r[dead | ~np.isfinite(r)] = np.nan
    return r


def block_resamples(groups: Sequence[np.ndarray], n: int, block: int, n_boot: int, rng: np.random.Generator,
                    circular: bool = True) -> np.ndarray:
    """``n_boot`` block-bootstrap resamples of ``n`` ordered points as an (n_boot, n) index array: each group (an
    array of the positions of its points, in order) is rebuilt from ceil(m / block) blocks of ``block`` consecutive
    points with uniformly drawn starts, truncated to its size m, and stays in its own positions.  ``circular``
    (Politis and Romano's circular block bootstrap) lets a block run past the last point into the first, so every
    point is drawn equally often; otherwise (Künsch's moving blocks) a block starts only where it fits, and the
    first and last points are drawn less often than the others."""
    idx = np.empty((n_boot, n), dtype=int)
    for ix in groups:
        m = len(ix)
        starts = rng.integers(0, m if circular else m - block + 1, size=(n_boot, math.ceil(m / block)))
        pos = (starts[:, :, None] + np.arange(block)).reshape(n_boot, -1)[:, :m] % m
        idx[:, ix] = ix[pos]
    return idx


def block_bootstrap_pearson(x: Sequence[float], y: Sequence[float], groups: Sequence | None = None, *,
                            z: Sequence[float] | None = None, order: Sequence[float] | None = None, block: int = 3,
                            n_boot: int = 2000, seed: int = 0, confidence: float = 0.95,
                            center: bool = True, circular: bool = True) -> CorrelationResult:
    """Pearson r of ordered, dependent points (the snapshots of training trajectories) with a moving-block bootstrap
    interval; with ``z``, the partial correlation given ``z``.

    Within each group (a trajectory; one group when ``groups`` is None) the points are kept in their order (the
    given order, or ascending ``order``) and resampled as blocks of ``block`` consecutive points
    (:func:`block_resamples`), so neighbouring snapshots, which resemble each other, are never treated as
    independent draws; every group keeps its size.  The blocks are circular by default: the first and last snapshots
    of a trajectory, usually its most extreme ones, are then drawn as often as the others (with ``circular=False``,
    Künsch's moving blocks, they are drawn less often, which pulls a correlation carried by the ends of a trajectory
    toward 0).  With ``center`` the statistic is computed on within-group deviations
    (:func:`within_group`, on every resample again), so pooled groups cannot correlate through their different
    levels; without it only the overall mean is taken out.  With ``z`` (one covariate) both sides are first
    residualised on ``z`` (after the same centring).

    The interval is the percentile interval of r over the ``n_boot`` resamples; ``p_value`` is the matching
    percentile-bootstrap p-value, 2·min(#{r* ≤ 0} + 1, #{r* ≥ 0} + 1) / (B + 1) over the B finite resamples (the
    level at which the interval would just reach 0).  r is reported whenever it is defined; the interval and p are
    NaN when a group has fewer than ``block + 1`` points or fewer than half of the resamples give a defined r."""
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be a positive int, got {block!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    xa, ya = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    ga = np.zeros(xa.size, dtype=int) if groups is None else pd.factorize(np.asarray(groups))[0]
    za = None if z is None else np.asarray(z, dtype=float).ravel()
    oa = np.arange(xa.size, dtype=float) if order is None else np.asarray(order, dtype=float).ravel()
    sizes = {"x": xa.size, "y": ya.size, "groups": ga.size, "order": oa.size}
    if za is not None:
        sizes["z"] = za.size
    if len(set(sizes.values())) != 1:
        raise ValueError("x, y, groups, order and z must have the same length, got "
                         + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    keep = np.isfinite(xa) & np.isfinite(ya) & np.isfinite(oa) & (np.isfinite(za) if za is not None else True)
    xa, ya, ga, oa = xa[keep], ya[keep], ga[keep], oa[keep]
    za = za[keep] if za is not None else None
    perm = np.lexsort((oa, ga))  # groups contiguous, each in its order
    xa, ya, ga = xa[perm], ya[perm], ga[perm]
    za = za[perm] if za is not None else None
    n = int(xa.size)
    columns = [np.flatnonzero(ga == g) for g in np.unique(ga)] if center else [np.arange(n)]

    def stat(idx: np.ndarray) -> np.ndarray:
        return _rowwise_r(xa[idx], ya[idx], None if za is None else za[idx], columns)

    method = "block_bootstrap" if za is None else "block_bootstrap_partial"
    r = float(stat(np.arange(n)[None, :])[0]) if n >= 2 else math.nan
    nan = CorrelationResult(r, n, math.nan, math.nan, math.nan, confidence, method)
    by_group = [np.flatnonzero(ga == g) for g in np.unique(ga)]
    if not math.isfinite(r) or any(len(ix) <= block for ix in by_group):
        return nan
    rs = stat(block_resamples(by_group, n, block, n_boot, np.random.default_rng(seed), circular))
    rs = rs[np.isfinite(rs)]
    if rs.size < max(1, n_boot // 2):
        return nan
    lo, hi = np.quantile(rs, [(1 - confidence) / 2, (1 + confidence) / 2])
    p = min(1.0, 2.0 * min(int((rs <= 0).sum()) + 1, int((rs >= 0).sum()) + 1) / (rs.size + 1))
    return CorrelationResult(r, n, float(lo), float(hi), float(p), confidence, method)
