"""The slow dense oracle (tests and the benchmark baseline).

A layer's graph is built here independently of the engine: :func:`biadjacency` places the transposed weight block of
every convolution group on the diagonal of an explicit dense (g·F) × R matrix (F = prod(shape[1:])).  Every spectrum
here comes from ``numpy.linalg.eigvalsh`` of the full (|L′|+|R′|)² adjacency A = [[0, B′], [B′ᵀ, 0]]: the
|eigenvalues| are sorted in descending order and μ0 is taken at position 0 and μ̂ at position 2 (positions 0 and 1
are ±μ0, as in both reference implementations).  The metric formulas are written out again, plainly and per group,
from the two papers rather than shared with :mod:`pags_core.spectral.metrics`, so that tests compare two independent
implementations.  This path costs O((|L|+|R|)³) per graph; never use it at population scale.
"""
from __future__ import annotations

import math

import numpy as np

from .conventions import check_bound, get_convention
from .graph import check_shapes, to_numpy

__all__ = ["biadjacency", "reference_top2", "reference_layer_spectrum", "adjacency_eigenvalues"]


def biadjacency(values, groups: int = 1) -> np.ndarray:
    """The dense biadjacency (input units × output rows) of a layer whose weight-shaped ``values`` (a mask or |W|)
    has ``groups`` convolution groups: block b holds rows b·R/g..(b+1)·R/g against input units b·F..(b+1)·F."""
    v = to_numpy(values).astype(np.float64)
    R = v.shape[0]
    F = int(np.prod(v.shape[1:]))
    rows = R // groups
    B = np.zeros((groups * F, R))
    for b in range(groups):
        B[b * F:(b + 1) * F, b * rows:(b + 1) * rows] = v[b * rows:(b + 1) * rows].reshape(rows, F).T
    return B


def _graphs(mask, weight, groups):
    """(binary biadjacency, weighted biadjacency |W ⊙ M| or None)."""
    M = (biadjacency(to_numpy(mask) != 0, groups) != 0).astype(np.float64)
    W = None if weight is None else biadjacency(np.abs(to_numpy(weight).astype(np.float64)), groups) * M
    return M, W


def adjacency_eigenvalues(mask, weight=None, groups: int = 1) -> np.ndarray:
    """All eigenvalues (descending) of the full adjacency A = [[0, B′], [B′ᵀ, 0]] of a layer's graph, isolated nodes
    removed; ``weight`` gives the weighted graph |W ⊙ M|.  They come in ± pairs (σ_i of B′) plus zeros."""
    M, W = _graphs(mask, weight, groups)
    M = W if W is not None else M
    M = M[np.any(M != 0, axis=1)][:, np.any(M != 0, axis=0)]
    nl, nr = M.shape
    A = np.zeros((nl + nr, nl + nr))
    A[:nl, nl:] = M
    A[nl:, :nl] = M.T
    return np.linalg.eigvalsh(A)[::-1]


def reference_top2(B) -> tuple[float, float]:
    """(μ0, μ̂) of a (weighted) biadjacency B via eigvalsh of the full adjacency, isolated nodes removed."""
    B = np.asarray(B, dtype=np.float64)
    B = B[np.any(B != 0, axis=1)][:, np.any(B != 0, axis=0)]
    nl, nr = B.shape
    N = nl + nr
    if N == 0 or not np.any(B):
        return 0.0, 0.0
    A = np.zeros((N, N))
    A[:nl, nl:] = B
    A[nl:, :nl] = B.T
    a = np.sort(np.abs(np.linalg.eigvalsh(A)))[::-1]
    return float(a[0]), float(a[2]) if N >= 3 else 0.0


def _sq(x):
    return math.sqrt(x) if x >= 0 else math.nan


def _bound(bound, d_in, d_out, d_left, mu0, e, nl, nr):
    if bound == "bipartite":
        return _sq(d_in - 1) + _sq(d_out - 1)
    if bound == "regular":
        return 2 * _sq(d_left - 1)
    if bound == "spectral":
        return 2 * _sq(mu0 - 1)
    return 2 * _sq(2 * e / (nl + nr) - 1)


def _counts(B):
    """(edges, surviving left, surviving right) of a dense biadjacency."""
    nz = B != 0
    return int(nz.sum()), int(np.any(nz, axis=1).sum()), int(np.any(nz, axis=0).sum())


def reference_layer_spectrum(mask, weight=None, convention="neurips2023", *, bound="bipartite", softness=0.0,
                             groups: int = 1) -> dict:
    """The metric set of :func:`~pags_core.spectral.layer_spectrum` computed the slow, dense way.

    Returns a dict with the same metric keys as :class:`~pags_core.spectral.LayerSpectrum` (no ``name``)."""
    conv = get_convention(convention)
    check_bound(bound)
    if mask is None:
        mask = np.ones(tuple(weight.shape), dtype=bool)
    check_shapes(mask, weight, None)
    M, Wm = _graphs(mask, weight if conv.weighted else None, groups)  # (inputs, outputs)
    lin, cout = M.shape
    neur = conv.name == "neurips2023"
    fail = math.inf if neur else math.nan
    nan = math.nan
    r = {k: nan for k in ("weighted_mu0", "weighted_mu_hat", "weighted_gap", "weighted_mixing", "mixing",
                          "spectral_gap", "sm_ub", "random_factor", "expansion", "imdb_norm", "ism", "ism_norm",
                          "imax_ep", "i_mean_ep", "imsg")}
    e, nl, nr = _counts(M)
    mu0, mu_hat = reference_top2(M)
    d_in = e / nl if nl else nan
    d_out = e / nr if nr else nan

    def layer_ok(a_in, a_out, edges):
        if edges == 0:
            return False
        if neur:  # left = outputs: mean output fan-in >= 3, mean input fan-out > 1
            return a_out >= 3 and a_in > 1
        return a_in >= 3 and a_out >= 3

    ok = layer_ok(d_in, d_out, e)
    bnd = _bound(bound, d_in, d_out, d_out if neur else d_in, mu0, e, nl, nr) if e else nan
    r.update(mu0=mu0 if e else nan, mu_hat=mu_hat if e else nan, d_left=d_in, d_right=d_out, n_left=nl, n_right=nr,
             n_edges=e, density=e / math.prod(tuple(mask.shape)), valid=ok, rm_ub=bnd if ok else nan,
             ramanujan_gap=(bnd + softness - mu_hat) if ok else fail)
    if neur:
        nt = nl + nr
        r["mixing"] = ((mu_hat * math.sqrt(nl * nr) - abs(2 * e - d_out * nl * nr / nt)) / nt) if ok else fail
        if Wm is not None:
            ew, nlw, nrw = _counts(Wm)
            w0, wh = reference_top2(Wm)
            okw = layer_ok(ew / nlw if nlw else nan, ew / nrw if nrw else nan, ew)
            r["weighted_mu0"] = w0 if ew else nan
            r["weighted_mu_hat"] = wh if ew else nan
            r["weighted_gap"] = (w0 - wh) if okw else fail
            if okw:
                ntw = nlw + nrw
                r["weighted_mixing"] = (wh * math.sqrt(nlw * nrw) - abs(2 * ew - (ew / nrw) * nlw * nrw / ntw)) / ntw
            else:
                r["weighted_mixing"] = fail
    elif ok:
        r["sm_ub"] = 2 * _sq(mu0 - 1)
        r["spectral_gap"] = r["sm_ub"] - mu_hat
        r["expansion"] = nr / nl
        r["random_factor"] = ((mu_hat ** 2 / 4 + 1) * math.sqrt(nl * nr)
                              - abs(2 * e - (d_in / cout) * nl * nr)) / (lin * cout)

    # nested d-left-regular groups: input units grouped by exact fan-out
    fan_out = M.sum(axis=1).astype(int)
    drs, dss, drn, dsn, eps, lams = [], [], [], [], [], []
    for d in sorted(set(fan_out.tolist())):
        members = np.flatnonzero(fan_out == d)
        n = members.size
        if d == 0 or n < conv.group_min_size:
            continue
        Bg = M[members]
        rg = int(np.any(Bg != 0, axis=0).sum())
        dR = d * n / rg
        gate = d >= 3 and (dR > 1 if neur else dR >= 3)
        if not gate:
            continue
        g0, gh = reference_top2(Bg)
        bg = _bound(bound, d, dR, d, g0, d * n, n, rg)
        c = max(n, rg) / (n + rg - 1) if neur else 1.0
        drs.append(c * (bg + softness - gh))
        drn.append((bg + softness - gh) / bg if bg else nan)
        sub = 2 * _sq(g0 - 1)
        dss.append(sub - gh)
        dsn.append((sub - gh) / sub if sub else nan)
        eps.append(rg / n)
        if Wm is not None:
            Bgw = Wm[members]
            ew, nlw, nrw = _counts(Bgw)
            okw = ew > 0 and ew / nlw >= 3 and ew / nrw > 1
            if okw:
                a0, ah = reference_top2(Bgw)
                lams.append(c * (a0 - ah))
            else:
                lams.append(math.inf)
    empty = 0.0 if neur else nan
    r["n_groups"] = len(drs)
    r["imdb"] = float(np.mean(drs)) if drs else empty
    if Wm is not None:
        r["imsg"] = float(np.mean(lams)) if lams else empty
    if not neur and drs:
        r.update(ism=float(np.mean(dss)), imdb_norm=float(np.mean(drn)), ism_norm=float(np.mean(dsn)),
                 imax_ep=max(eps), i_mean_ep=float(np.mean(eps)))
    v = np.array([r["ramanujan_gap"], r["weighted_gap"], r["imdb"], r["imsg"]], dtype=np.float64)
    v[~np.isfinite(v)] = 0.0
    r["full_spectrum"] = float(np.linalg.norm(v))
    return r
