"""The batched Lanczos solver and its bookkeeping: problems that stop at different steps inside one batch, the
slot ranges the mat-vecs run over, compaction, the torch path, and the sparse helpers it builds on."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

import pags_core.spectral.lanczos as lz
from pags_core.spectral.svd import _components, csr_arrays, top2_many


def _mixed_batch(seed=0):
    """Connected-ish random matrices whose smaller side is above DENSE_MAX (the Lanczos path), of very different
    spectra, so their problems stop at different steps of one batch; one is rank 1 (σ2 = 0)."""
    rng = np.random.default_rng(seed)
    mats = []
    for i in range(14):
        n, m = int(rng.integers(60, 200)), int(rng.integers(40, 120))
        p = [0.04, 0.1, 0.3, 0.8][i % 4]
        B = (rng.random((n, m)) < p) * (rng.random((n, m)) + 0.1)
        B[np.arange(n), rng.integers(0, m, n)] = 1.0  # no empty row
        B[rng.integers(0, n, m), np.arange(m)] = 1.0  # no empty column
        mats.append(B)
    mats.append(np.outer(rng.random(90) + 0.5, rng.random(70) + 0.5))  # rank 1
    return mats


def _solve(mats, **kw):
    prob, row, col, val, ro, co = [], [], [], [], 0, 0
    for j, B in enumerate(mats):
        r, c = np.nonzero(B)
        prob.append(np.full(r.size, j)), row.append(r + ro), col.append(c + co), val.append(B[r, c])
        ro, co = ro + B.shape[0], co + B.shape[1]
    v = np.concatenate(val)
    return top2_many(*map(np.concatenate, (prob, row, col)), np.stack([v, np.sqrt(v)], 1), len(mats), **kw)


def _svd_top2(B):
    return np.r_[np.linalg.svd(B, compute_uv=False), 0.0][:2]


@pytest.mark.parametrize("settings", [
    {},  # defaults
    {"COMPACT_SHARE": 0.05, "MAX_RUNS": 1},  # compact at the first stop; one range bridging every gap
    {"COMPACT_SHARE": 2.0, "MAX_RUNS": 1},  # never compact: stopped rows iterate on zeros inside one range
    {"COMPACT_SHARE": 2.0, "MAX_RUNS": 64, "SPREAD": 1e9},  # never compact, one range per live stretch
    {"FIRST_CHECK": 5, "MAX_AHEAD": 1, "BATCH_ENTRIES": 600},  # tiny batches, a check at every step
])
def test_batches_with_stopped_problems_agree_with_svd(monkeypatch, settings):
    for k, v in settings.items():
        monkeypatch.setattr(lz, k, v)
    mats = _mixed_batch()
    s = _solve(mats)
    for j, B in enumerate(mats):
        for ch, Bc in enumerate((B, np.sqrt(B))):
            ref = _svd_top2(Bc)
            assert s[j, ch] == pytest.approx(ref, rel=1e-10, abs=1e-12 * ref[0]), (settings, j, ch)


def test_torch_path_with_stopped_problems_matches_numpy(monkeypatch):
    monkeypatch.setattr(lz, "COMPACT_SHARE", 0.5)
    monkeypatch.setattr(lz, "FIRST_CHECK_DEVICE", 12)
    mats = _mixed_batch(1)
    a = _solve(mats)
    b = _solve(mats, device=torch.device("cpu"))
    assert np.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_runs_cover_the_live_slots_and_bridge_the_lightest_gaps():
    nnz = np.array([5, 1, 9, 2, 7, 100, 3, 4, 1, 6])
    live = np.array([0, 2, 3, 6, 7, 9])  # gaps: slot 1 (1 entry), 4-5 (107), 8 (1)
    assert lz._runs(live, nnz, 8) == [(0, 1), (2, 4), (6, 8), (9, 10)]
    assert lz._runs(live, nnz, 2) == [(0, 4), (6, 10)]  # keeps the heaviest gap only
    assert lz._runs(live, nnz, 1) == [(0, 10)]
    assert lz._runs(np.array([4]), nnz, 3) == [(4, 5)]


def test_csr_arrays_matches_scipy_and_uses_int32():
    rng = np.random.default_rng(2)
    r, c = rng.integers(0, 50, 300), rng.integers(0, 70, 300)
    key = np.unique(r * 70 + c)
    r, c = key // 70, key % 70
    rng.shuffle(perm := np.arange(r.size))
    r, c = r[perm], c[perm]
    d = rng.random(r.size)
    ip, ix, dx = csr_arrays(50, r, c, d, n_cols=70)
    assert ip.dtype == np.int32 and ix.dtype == np.int32
    ref = sp.csr_matrix((d, (r, c)), shape=(50, 70))
    assert np.array_equal(sp.csr_matrix((dx, ix, ip), shape=(50, 70)).toarray(), ref.toarray())
    _, _, order = csr_arrays(50, r, c)  # the permutation into CSR order, stable within a row
    assert np.array_equal(r[order], np.sort(r, kind="stable")) and np.array_equal(order, np.argsort(r, kind="stable"))


def test_components_match_scipy():
    rng = np.random.default_rng(4)
    n_r, n_c = 400, 300
    r, c = rng.integers(0, n_r, 350), rng.integers(0, n_c, 350)  # sparse: many components, some nodes isolated
    n, lr, lc = _components(r, n_r, c, n_c)
    g = sp.csr_matrix((np.ones(r.size), (r, c + n_r)), shape=(n_r + n_c, n_r + n_c))
    n_ref, lab = connected_components(g, directed=False)
    assert n == n_ref
    same = lambda lab_a, lab_b: np.array_equal(lab_a[:, None] == lab_a[None, :], lab_b[:, None] == lab_b[None, :])  # noqa: E731
    assert same(np.r_[lr, lc], lab)
