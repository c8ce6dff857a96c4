"""Paired comparisons and their verdicts against hand-computed expectations."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from pags_core.analysis import (comparison_table, holm, multiple_comparison_note, paired_comparison, paired_differences,
                                sign_flip_pvalue, verdict_line)


def runs(diffs_by_gen, base=90.0):
    rows = []
    for g, diffs in diffs_by_gen.items():
        for s, d in enumerate(diffs):
            rows.append({"generator": g, "seed": s, "method": "baseline", "test_acc": base + s})
            rows.append({"generator": g, "seed": s, "method": "PAGS", "test_acc": base + s + d})
    return pd.DataFrame(rows)


def test_identical_differences_are_never_a_gain():
    # the review's case: two seeds, both +1.2 (a floating-point residue gives np.std(d) = 7e-15 > 0)
    r = runs({"erk": [1.2, 1.2]}, base=94.2)
    row = paired_comparison(r).iloc[0]
    assert row.verdict == "inconclusive (n = 2)" and math.isnan(row.p_value)
    row = paired_comparison(runs({"erk": [1.2] * 5}, base=94.2)).iloc[0]
    assert row.verdict == "inconclusive (no spread: every difference is +1.2)" and math.isnan(row.p_value)
    assert row.p_signflip == pytest.approx(2 / 32)  # all five signs agree: 2 of 32 patterns
    row = paired_comparison(runs({"random": [0.0] * 4})).iloc[0]
    assert row.verdict == "identical (every difference is 0)"


def test_two_seeds_are_inconclusive_whatever_the_size():
    v = paired_comparison(runs({"random": [37.4, 41.0], "snip": [-9.2, -9.6]}))
    assert v.verdict.tolist() == ["inconclusive (n = 2)", "inconclusive (n = 2)"]
    assert v.diffs.tolist() == ["+37.4, +41.0", "−9.2, −9.6"]


def test_gain_loss_and_not_significant_by_hand():
    d = np.array([1.0, 2.0, 1.5, 2.5, 1.8, 2.2])
    v = paired_comparison(runs({"a": list(d), "b": list(-d), "c": [3.0, -2.0, 1.0, -1.5]}))
    t = st.ttest_1samp(d, 0.0)
    half = st.t.ppf(0.975, 5) * d.std(ddof=1) / math.sqrt(6)
    a = v.set_index("generator").loc["a"]
    assert a.verdict == "gain" and a.p_value == pytest.approx(t.pvalue) and a.p_signflip == pytest.approx(2 / 64)
    assert (a.ci_low, a.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert a.positive == 6 and a.n == 6
    assert v.set_index("generator").loc["b"].verdict == "loss"
    assert v.set_index("generator").loc["c"].verdict == "not significant"
    # four consistent seeds: the t-test decides; the exact sign-flip test cannot go below 2/16 with four seeds
    four = paired_comparison(runs({"x": [1.0, 1.1, 0.9, 1.05]})).iloc[0]
    assert four.p_value < 0.05 and four.p_signflip == pytest.approx(0.125) and four.verdict == "gain"


def test_sign_flip_pvalue_by_enumeration():
    assert sign_flip_pvalue([1.0, -1.0]) == 1.0
    assert sign_flip_pvalue([2.0, 1.0, 1.0]) == pytest.approx(2 / 8)  # only all-plus and all-minus reach |mean| 4/3
    # d = (3, 1, -1), |mean| 1: the flips give sums ±3, ±5, ±1, ±3 — all but (+,-,+) and (-,+,-) reach |sum| 3
    assert sign_flip_pvalue([3.0, 1.0, -1.0]) == pytest.approx(6 / 8)
    with pytest.raises(ValueError, match="at most 20"):
        sign_flip_pvalue(np.ones(21))


def test_paired_differences_pairs_by_seed_only():
    r = runs({"g": [1.0, 2.0, 3.0]})
    r = r[~((r.method == "PAGS") & (r.seed == 1))]
    pd_ = paired_differences(r, "baseline", "PAGS")
    assert pd_.seed.tolist() == [0, 2] and pd_["diff"].tolist() == [1.0, 3.0]


def test_holm_by_hand_and_the_note():
    p = [0.01, 0.04, 0.03, np.nan, 0.5]
    # sorted 0.01, 0.03, 0.04, 0.5 with m = 4: 0.04, max(0.04, 0.09), max(0.09, 0.08), max(0.09, 0.5)
    np.testing.assert_allclose(holm(p), [0.04, 0.09, 0.09, np.nan, 0.5])
    table = pd.DataFrame({"p_value": [0.01, 0.04, 0.03, np.nan, 0.5],
                          "verdict": ["gain", "loss", "gain", "inconclusive (n = 2)", "not significant"]})
    note = multiple_comparison_note(table)
    assert note == ("4 paired tests at α = 0.05: 3 gave a gain or loss, where about 0.2 would by chance alone; 1 remain "
                    "significant after the Holm correction for 4 tests.")
    assert "enough paired seeds" in multiple_comparison_note(table.iloc[3:4])


def test_comparison_table_runs_the_present_pairs_with_holm_over_all_rows():
    r = runs({"erk": [1.0, 2.0, 3.0, 2.0], "snip": [-1.0, 1.0, 0.5, -0.5]})
    shuffled = r[r.method == "PAGS"].assign(method="shuffle(PAGS)", test_acc=lambda d: d.test_acc - 1.0)
    r = pd.concat([r, shuffled], ignore_index=True)
    t = comparison_table(r, [("baseline", "PAGS"), ("shuffle(PAGS)", "PAGS"), ("PAGS", "PEGS@8")])  # no PEGS runs
    assert t.comparison.tolist() == ["PAGS − baseline"] * 2 + ["PAGS − shuffle(PAGS)"] * 2
    assert list(t.columns).index("p_holm") == list(t.columns).index("p_signflip") + 1
    # by hand: erk's differences 1, 2, 3, 2 give t = 2 / (0.8165 / 2) = 4.899 on 3 df; shuffle(PAGS) − PAGS is
    # exactly +1 on every seed (no spread: no t-test), so Holm adjusts the two finite p-values of the first rows
    p_erk = 2 * st.t.sf(2 / (np.std([1, 2, 3, 2], ddof=1) / 2), 3)
    assert t.p_value.iloc[0] == pytest.approx(p_erk)
    assert t.p_holm.iloc[:2].tolist() == pytest.approx(list(holm(t.p_value.iloc[:2])))
    assert t.p_holm.iloc[2:].isna().all()
    assert comparison_table(r, [("PAGS", "PEGS@8")]).empty


def test_verdict_line_quotes_a_row_with_its_seeds_and_n():
    t = comparison_table(runs({"erk": [1.0, 2.0, 3.0, 2.0]}), [("baseline", "PAGS")])
    assert verdict_line(t, "erk", "baseline", "PAGS") == (
        "PAGS − baseline +2.0 points (seeds: +1.0, +2.0, +3.0, +2.0; n = 4): **gain**")
    assert verdict_line(t, "snip", "baseline", "PAGS") is None
    assert verdict_line(t, "erk", "PAGS", "baseline") is None
