"""pags_core.analysis.correlation: Pearson r and its Fisher-z interval against scipy and closed forms."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from pags_core.analysis.correlation import correlation_table, fisher_z_interval, partial_pearson, pearson, spearman


def test_pearson_closed_form():
    # x = 1..4, y = (1, 3, 2, 4): centred dot product 4, both sums of squares 5 -> r = 0.8
    res = pearson([1, 2, 3, 4], [1, 3, 2, 4])
    assert res.n == 4 and res.r == pytest.approx(0.8, abs=1e-15)
    z, half = math.atanh(0.8), 1.959963984540054 / math.sqrt(4 - 3)
    assert res.ci_low == pytest.approx(math.tanh(z - half), rel=1e-12)
    assert res.ci_high == pytest.approx(math.tanh(z + half), rel=1e-12)
    # t = r sqrt(n-2)/sqrt(1-r^2) = 0.8*sqrt(2)/0.6 with 2 degrees of freedom: p = 1 - t/sqrt(t^2+2)
    t = 0.8 * math.sqrt(2) / 0.6
    assert res.p_value == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-12)


@pytest.mark.parametrize("n,seed", [(4, 0), (10, 1), (75, 2)])
def test_pearson_matches_scipy(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 0.5 * x + rng.normal(size=n)
    ref = st.pearsonr(x, y)
    ci = ref.confidence_interval(0.95)
    res = pearson(x, y)
    assert res.r == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    ci90 = ref.confidence_interval(0.9)
    assert fisher_z_interval(res.r, n, 0.9) == pytest.approx((ci90.low, ci90.high), rel=1e-9)


def test_pearson_edge_cases():
    assert math.isnan(pearson([1, 2, 3], [5, 5, 5]).r)  # constant input: undefined
    one = pearson([1], [2])
    assert one.n == 1 and math.isnan(one.r) and math.isnan(one.ci_low)
    three = pearson([1, 2, 3], [1, 3, 2])
    assert (three.ci_low, three.ci_high) == (-1.0, 1.0)  # n = 3: scipy gives the whole range too
    perfect = pearson(np.arange(6.0), 2 * np.arange(6.0) + 1)
    assert perfect.r == pytest.approx(1.0) and perfect.p_value == 0.0 and perfect.ci_high == pytest.approx(1.0)
    # non-finite pairs are dropped before anything else
    nanres = pearson([1, 2, np.nan, 3, 4, np.inf], [1, 3, 7, 2, 4, 0])
    assert nanres.n == 4 and nanres.r == pytest.approx(0.8)
    with pytest.raises(ValueError, match="same length"):
        pearson([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="confidence"):
        fisher_z_interval(0.5, 10, 1.5)


def test_spearman_matches_scipy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=12)
    y = np.round(x + rng.normal(size=12), 0)  # ties in y
    ref = st.spearmanr(x, y)
    res = spearman(x, y)
    assert res.r == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert res.ci_low < res.r < res.ci_high


def test_correlation_table_groups_and_rejects_unknown_columns():
    df = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 4, "m": [1, 2, 3, 4, 1, 2, 3, 4],
                       "acc": [1, 3, 2, 4, 4, 3, 2, 1]})
    out = correlation_table(df, ["m"], "acc", by="g")
    assert list(out["g"]) == ["a", "b"]
    assert out["r"].tolist() == pytest.approx([0.8, -1.0])
    assert out["n"].tolist() == [4, 4]
    with pytest.raises(KeyError, match="nope"):
        correlation_table(df, ["nope"], "acc")
    with pytest.raises(ValueError, match="valid choices"):
        correlation_table(df, ["m"], "acc", method="kendall")


def test_partial_pearson_closed_form_and_residual_route():
    rng = np.random.default_rng(4)
    z = rng.normal(size=15)
    x, y = z + rng.normal(size=15), 0.5 * z + rng.normal(size=15)
    rxy, rxz, ryz = pearson(x, y).r, pearson(x, z).r, pearson(y, z).r
    res = partial_pearson(x, y, z)
    assert res.r == pytest.approx((rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2)), rel=1e-10)
    assert (res.ci_low, res.ci_high) == pytest.approx(fisher_z_interval(res.r, 15 - 1), rel=1e-12)
    t = res.r * math.sqrt((15 - 3) / (1 - res.r**2))
    assert res.p_value == pytest.approx(2 * st.t.sf(abs(t), 15 - 3), rel=1e-10)
    # x and y both driven by z only: nothing left once z is removed
    assert math.isnan(partial_pearson(2 * z + 1, z, z).r)
    assert math.isnan(partial_pearson([1, 2, 3], [2, 1, 3], [0, 1, 1]).r)  # n < k + 3
