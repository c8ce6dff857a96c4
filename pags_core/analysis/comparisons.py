"""Paired comparisons of two methods over seeds, with verdicts that cannot overstate.

Two methods trained from the same θ0 with the same data order and training seed are compared seed by seed: the
differences d_s = b_s − a_s are shown one by one and tested with a two-sided paired t-test (with its 95% t-interval)
and with the exact sign-flip permutation test (all 2^n sign patterns; it needs no normality and handles ties exactly).
The verdict of a row is

- ``"inconclusive (n = k)"`` when fewer than ``min_n`` (default 3) seeds are paired: a t-test with one degree of
  freedom has almost no power, so no statement is made either way;
- ``"identical (every difference is 0)"`` when both methods gave the same results on every seed;
- ``"inconclusive (no spread: every difference is +x)"`` when every seed gives the same nonzero difference: the
  t statistic is undefined (zero spread, whatever a floating-point residue says) and n equal signs are weak evidence
  (exact sign-flip p = 2/2^n);
- ``"gain"`` / ``"loss"`` when the paired t-test gives p < α;
- ``"not significant"`` otherwise.

The exact sign-flip p-value is shown next to the t-test as a check that needs no normality; note that with n seeds it
cannot fall below 2/2^n (0.125 for four seeds), so it never decides a verdict on its own.

:func:`holm` adjusts a column of p-values for the many tests a chapter runs, and :func:`multiple_comparison_note`
says in one sentence how many verdicts one would expect by chance.  :func:`comparison_table` runs a chapter's list of
comparisons with the Holm column; :func:`verdict_line` quotes one of its rows in prose.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

__all__ = ["paired_differences", "paired_comparison", "comparison_table", "verdict_line", "sign_flip_pvalue", "holm",
           "multiple_comparison_note"]


def _spread_is_zero(d: np.ndarray) -> bool:
    scale = max(1.0, float(np.max(np.abs(d)))) if d.size else 1.0
    return bool(np.ptp(d) <= 1e-9 * scale) if d.size else True


def sign_flip_pvalue(d: Sequence[float]) -> float:
    """Exact two-sided sign-flip permutation p-value of the mean of paired differences ``d``: the fraction of the 2^n
    sign patterns whose |mean| is at least the observed one (n ≤ 20; NaN for n = 0)."""
    d = np.asarray(d, dtype=float)
    n = d.size
    if n == 0:
        return math.nan
    if n > 20:
        raise ValueError(f"the exact sign-flip test enumerates 2^n patterns; n = {n} is too many (at most 20)")
    obs = abs(d.mean())
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    means = np.abs(signs @ d) / n
    return float(np.mean(means >= obs - 1e-12 * max(1.0, obs)))


def _fmt_diff(x: float) -> str:
    return f"{x:+.1f}".replace("-", "−")


def paired_differences(runs: pd.DataFrame, a: str, b: str, value: str = "test_acc",
                       by: str = "generator") -> pd.DataFrame:
    """One row per (``by`` group, seed) with ``a``, ``b`` and ``diff`` = b − a, for seeds present under both methods."""
    rows = []
    for g, sub in runs.groupby(by, sort=False):
        pa = sub[sub["method"] == a].set_index("seed")[value]
        pb = sub[sub["method"] == b].set_index("seed")[value]
        for s in sorted(set(pa.index) & set(pb.index)):
            rows.append({by: g, "seed": s, a: float(pa.loc[s]), b: float(pb.loc[s]),
                         "diff": float(pb.loc[s] - pa.loc[s])})
    return pd.DataFrame(rows, columns=[by, "seed", a, b, "diff"])


def paired_comparison(runs: pd.DataFrame, a: str = "baseline", b: str = "PAGS", value: str = "test_acc",
                      alpha: float = 0.05, min_n: int = 3, by: str = "generator") -> pd.DataFrame:
    """Per ``by`` group (default: generator): method ``b`` minus method ``a``, paired by seed.

    Columns: ``comparison``, ``n``, ``diffs`` (every seed's difference, in seed order), ``mean_diff``, ``std_diff``,
    ``ci_low``/``ci_high`` (95% t-interval of the mean difference), ``p_value`` (paired t-test), ``p_signflip``
    (exact), ``positive`` (seeds with b > a), ``verdict`` (see the module docstring)."""
    if not isinstance(min_n, int) or min_n < 2:
        raise ValueError(f"min_n must be an int >= 2, got {min_n!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    pairs = paired_differences(runs, a, b, value, by)
    rows = []
    for g, sub in pairs.groupby(by, sort=False):
        d = sub["diff"].to_numpy(float)
        n = d.size
        mean = float(d.mean())
        sd = float(d.std(ddof=1)) if n > 1 else math.nan
        p = p_perm = lo = hi = math.nan
        flat = _spread_is_zero(d)
        if n >= 2 and not flat:
            p = float(_st.ttest_1samp(d, 0.0).pvalue)
            half = float(_st.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
            lo, hi = mean - half, mean + half
        if n >= 1:
            p_perm = sign_flip_pvalue(d)
        if n < min_n:
            verdict = f"inconclusive (n = {n})"
        elif flat and abs(mean) <= 1e-9:
            verdict = "identical (every difference is 0)"
        elif flat:
            verdict = f"inconclusive (no spread: every difference is {_fmt_diff(mean)})"
        elif p < alpha:
            verdict = "gain" if mean > 0 else "loss"
        else:
            verdict = "not significant"
        rows.append({by: g, "comparison": f"{b} − {a}", "n": n, "diffs": ", ".join(_fmt_diff(x) for x in d),
                     "mean_diff": mean, "std_diff": sd, "ci_low": lo, "ci_high": hi, "p_value": p,
                     "p_signflip": p_perm, "positive": int((d > 0).sum()), "verdict": verdict})
    cols = [by, "comparison", "n", "diffs", "mean_diff", "std_diff", "ci_low", "ci_high", "p_value", "p_signflip",
            "positive", "verdict"]
    return pd.DataFrame(rows, columns=cols)


def comparison_table(runs: pd.DataFrame, pairs: Sequence[tuple[str, str]], value: str = "test_acc",
                     alpha: float = 0.05, min_n: int = 3, by: str = "generator") -> pd.DataFrame:
    """:func:`paired_comparison` of every pair ``(a, b)`` whose two methods are both in ``runs``, in one table, with
    ``p_holm``: the t-test p-values Holm-adjusted over all its rows (placed after ``p_signflip``)."""
    present = set(runs["method"])
    parts = [paired_comparison(runs, a, b, value, alpha, min_n, by) for a, b in pairs if {a, b} <= present]
    table = (pd.concat(parts, ignore_index=True) if parts
             else paired_comparison(runs.iloc[:0], value=value, alpha=alpha, min_n=min_n, by=by))
    table.insert(table.columns.get_loc("p_signflip") + 1, "p_holm", holm(table["p_value"]))
    return table


def verdict_line(table: pd.DataFrame, group: str, a: str, b: str, by: str = "generator") -> str | None:
    """The row of ``table`` (:func:`comparison_table`) for ``b − a`` in ``group``, as one line of prose: the mean
    difference, every seed's difference, n and the verdict; ``None`` when the table has no such row."""
    r = table[(table[by] == group) & (table["comparison"] == f"{b} − {a}")]
    if r.empty:
        return None
    r = r.iloc[0]
    return f"{b} − {a} {r.mean_diff:+.1f} points (seeds: {r.diffs}; n = {r.n}): **{r.verdict}**"


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (NaN entries stay NaN and do not count as tests)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def multiple_comparison_note(table: pd.DataFrame, alpha: float = 0.05, p_column: str = "p_value",
                             verdict_column: str = "verdict") -> str:
    """One sentence: how many tests the table ran, how many verdicts are gains/losses, how many a chance level of
    α per test would give, and how many survive the Holm correction."""
    p = table[p_column].to_numpy(float)
    m = int(np.isfinite(p).sum())
    if m == 0:
        return "No comparison had enough paired seeds to be tested."
    sig = int(table[verdict_column].isin(["gain", "loss"]).sum())
    held = int(((holm(p) < alpha) & table[verdict_column].isin(["gain", "loss"]).to_numpy()).sum())
    return (f"{m} paired tests at α = {alpha:g}: {sig} gave a gain or loss, where about {m * alpha:.1f} would by chance "
            f"alone; {held} remain significant after the Holm correction for {m} tests.")
