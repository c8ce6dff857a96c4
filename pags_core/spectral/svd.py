"""Top-2 singular values of many nonnegative sparse matrices at once, in float64 (the engine's eigen-solver).

Input is one edge list holding every matrix of a batch (all layers, degree groups, binary and weighted graphs of
one or many masks): an entry is ``(problem, row node, column node, values)``, where node ids are global (two
matrices never share a node) and ``values`` has one column per *channel* (channel c of problem p is one matrix; the
binary and the weighted graph of a layer are two channels on the same edges).  The solver

1. splits every matrix into its connected components (one :func:`scipy.sparse.csgraph.connected_components` call
   for the whole batch).  Within a component the Gram matrix on either side is irreducible and nonnegative, so its
   largest eigenvalue is simple (Perron–Frobenius): single-vector Krylov methods cannot miss a repeated σ1, and a
   matrix's (σ1, σ2) are the two largest of its components' values — two equally strong components (identical
   blocks of a grouped convolution, a perfect matching) give σ2 = σ1, as the dense oracle does;
2. solves each component on its smaller side m: a closed form for m = 1 (σ1 = ‖values‖₂, σ2 = 0); for
   m ≤ :data:`DENSE_MAX` a dense Gram matrix and one batched ``eigvalsh`` per size class; above that a batched Lanczos
   iteration (one vector per component, full reorthogonalisation, one sparse mat-vec pair for the components of a
   batch still iterating per step, residual-based stopping) — :mod:`pags_core.spectral.lanczos`;
3. recomputes σ2 by a Rayleigh–Ritz step (the singular values of B·[v1 v2]) where it is tiny next to σ1, since the
   square root of a Gram eigenvalue loses it there (a dense layer K(a, b) has σ2 = 0).

Results agree with the dense (|L|+|R|)² adjacency eigendecomposition of :mod:`pags_core.spectral.reference` to
about 1e-11 relative (the Lanczos stopping bound is 1e-11 on eigenvalues; σ2 absolutely to ~1e-15·σ1 where it is
~0).
"""
from __future__ import annotations

import contextlib

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .lanczos import lanczos_top2

__all__ = ["DENSE_MAX", "top2_many", "top2_sparse", "single_thread_blas", "csr_arrays"]

#: Components whose smaller side is at most this many nodes are solved with a dense Gram + batched eigvalsh.
DENSE_MAX = 32
#: λ2/λ1 below which σ2 is recomputed by Rayleigh–Ritz (σ2/σ1 < 1e-3), where √λ2 would lose digits.
RANK_TOL = 1e-6

try:  # threadpoolctl ships with scikit-learn; without it BLAS keeps its own thread count
    from threadpoolctl import ThreadpoolController as _ThreadpoolController
except ImportError:  # pragma: no cover
    _ThreadpoolController = None
_CONTROLLER = None

try:  # scipy's connected components of an undirected graph given as CSR and its transpose, without the conversions
    from scipy.sparse.csgraph._traversal import _connected_components_undirected as _cc_undirected
except ImportError:  # pragma: no cover
    _cc_undirected = None

try:  # scipy's O(nnz) counting sort from COO to CSR (what ``coo_matrix.tocsr`` calls), without the duplicate check
    from scipy.sparse._sparsetools import coo_tocsr as _coo_tocsr
except ImportError:  # pragma: no cover
    _coo_tocsr = None


def single_thread_blas():
    """Context manager limiting BLAS/LAPACK to one thread: the engine's many small products run faster
    single-threaded, results do not depend on the thread count, and a shared CPU is not oversubscribed.
    A no-op when threadpoolctl is missing."""
    global _CONTROLLER
    if _ThreadpoolController is None:  # pragma: no cover
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        _CONTROLLER = _ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


def csr_arrays(n_rows: int, rows: np.ndarray, cols: np.ndarray, data: np.ndarray | None = None, *,
               n_cols: int | None = None):
    """(indptr, indices, data or order) of the CSR matrix with the given COO entries (no duplicates expected).

    Entries keep their input order within a row (counting sort).  With ``data=None`` the returned third array is
    the permutation that sorts the entries into CSR order.  Index arrays are int32 when every index fits (half the
    memory traffic of a mat-vec), int64 otherwise; ``n_cols`` (default: the largest column + 1) bounds the columns."""
    nnz = int(np.size(rows))
    payload = np.arange(nnz, dtype=np.int64) if data is None else np.asarray(data)
    if n_cols is None:
        n_cols = int(cols.max()) + 1 if nnz else 1
    idx = np.int32 if max(n_rows, n_cols, nnz) < 2 ** 31 - 1 else np.int64
    rows = np.asarray(rows, dtype=idx)
    indptr = np.zeros(n_rows + 1, dtype=idx)
    if _coo_tocsr is not None and nnz:
        ix = np.empty(nnz, dtype=idx)
        dx = np.empty(nnz, dtype=payload.dtype)
        _coo_tocsr(int(n_rows), int(max(n_cols, 1)), nnz, rows, np.asarray(cols, dtype=idx), payload, indptr, ix, dx)
        return indptr, ix, dx
    order = np.argsort(rows, kind="stable")  # pragma: no cover - fallback without scipy's private kernel
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr, np.asarray(cols, dtype=idx)[order], payload[order]


def _compact(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Relabel nonnegative ids to 0..k-1 in increasing id order; returns (new ids, k)."""
    if ids.size == 0:
        return ids.astype(np.int64), 0
    mark = np.zeros(int(ids.max()) + 1, dtype=bool)
    mark[ids] = True
    new = np.cumsum(mark, dtype=np.int64) - 1
    return new[ids], int(new[-1]) + 1


def _rank_within(labels: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """(position of every item among the items with its label, in item order; count per label)."""
    ip, _, order = csr_arrays(n_labels, labels, np.zeros(labels.size, dtype=np.int8), n_cols=1)  # stable
    counts = np.diff(ip).astype(np.int64)
    rank = np.empty(labels.size, dtype=np.int64)
    rank[order] = np.arange(labels.size, dtype=np.int64) - np.repeat(ip[:-1].astype(np.int64), counts)
    return rank, counts


def _components(r: np.ndarray, n_r: int, c: np.ndarray, n_c: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected components of the bipartite graph with edges (row r[i], column c[i]): (count, label of every row,
    label of every column)."""
    n = n_r + n_c
    cn = c + n_r
    if _cc_undirected is not None and n < 2 ** 31 - 1 and r.size < 2 ** 31 - 1:
        one = np.zeros(r.size, dtype=np.int8)
        ip, ix, _ = csr_arrays(n, r, cn, one, n_cols=n)  # row -> column edges ...
        ipt, ixt, _ = csr_arrays(n, cn, r, one, n_cols=n)  # ... and their transpose: an undirected graph
        labels = np.empty(n, dtype=np.int32)
        n_comp = int(_cc_undirected(ix, ip, ixt, ipt, labels))
    else:  # pragma: no cover - without scipy's private traversal kernel
        graph = sp.csr_matrix((np.ones(r.size, dtype=np.int8), (r, cn)), shape=(n, n))
        n_comp, labels = connected_components(graph, directed=False)
    labels = labels.astype(np.int64)
    return n_comp, labels[:n_r], labels[n_r:]


def _size_class(m: np.ndarray, first: int) -> np.ndarray:
    """Padded size of every m: the smallest power of two >= m (and >= first)."""
    return np.maximum(first, 1 << np.ceil(np.log2(np.maximum(m, 1))).astype(np.int64))


def _dense_top2(tall, short, vals, piece, n_piece, m_of_piece, n_tall):
    """(σ1, σ2) of small pieces (smaller side m <= DENSE_MAX) for every channel: Gram matrices on the smaller side
    from the products of entry pairs sharing a tall-side node, one batched eigvalsh per size class, Rayleigh–Ritz
    where σ2/σ1 is tiny.  ``tall``: global tall-node id per edge; ``short``: local short-side index; returns
    (n_piece, C, 2)."""
    C = vals.shape[1]
    out = np.zeros((n_piece, C, 2))
    if n_piece == 0:
        return out
    indptr, _, order = csr_arrays(n_tall, tall, short)  # edges grouped by tall node
    sh, vv, pc = short[order], vals[order], piece[order]
    deg = np.diff(indptr)
    tall_of = np.repeat(np.arange(n_tall), deg)
    cnt = deg[tall_of]  # every edge pairs with every edge of its tall node
    first = np.repeat(np.arange(sh.size), cnt)
    block = np.repeat(np.cumsum(cnt) - cnt, cnt)
    partner = indptr[tall_of[first]] + (np.arange(first.size) - block)
    pad = _size_class(m_of_piece, 2)
    for mp in np.unique(pad):
        sel = np.flatnonzero(pad == mp)
        slot = np.full(n_piece, -1, dtype=np.int64)
        slot[sel] = np.arange(sel.size)
        keep = slot[pc[first]] >= 0
        f, p = first[keep], partner[keep]
        base = (slot[pc[f]] * mp + sh[f]) * mp + sh[p]
        G = np.empty((sel.size, C, mp, mp))
        for c in range(C):
            G[:, c] = np.bincount(base, weights=vv[f, c] * vv[p, c], minlength=sel.size * mp * mp).reshape(sel.size, mp, mp)
        w = np.linalg.eigvalsh(G)  # ascending, (n, C, mp)
        l1, l2 = w[..., -1], w[..., -2]
        s = np.sqrt(np.clip(np.stack([l1, l2], axis=-1), 0.0, None))
        bad = (l2 < RANK_TOL * l1) & (l1 > 0)
        if bad.any():
            bi, bc = np.nonzero(bad)
            _, V = np.linalg.eigh(G[bi, bc])
            s[bi, bc] = _rayleigh_ritz(V[:, :, -2:], sel[bi], bc, piece, tall, short, vals)
        out[sel] = s
    return out


def _rayleigh_ritz(V, pieces, channels, piece, tall, short, vals):
    """Singular values of B_j·V_j (B_j: piece ``pieces[j]`` in channel ``channels[j]``, V_j: (m, 2) orthonormal),
    which carry σ1, σ2 to full absolute precision when V_j spans the top-2 right singular vectors."""
    out = np.zeros((len(pieces), 2))
    for j, (p, c) in enumerate(zip(pieces, channels)):
        e = np.flatnonzero(piece == p)  # rare path (near-rank-1 pieces): a scan per piece is fine
        t, _ = _compact(tall[e])
        Z = np.zeros((int(t.max()) + 1, 2))
        np.add.at(Z, t, vals[e, c][:, None] * V[j][short[e]])
        out[j] = np.linalg.svd(Z, compute_uv=False)[:2]
    return out


def top2_many(problem, row, col, vals, n_problems: int, *, device=None) -> np.ndarray:
    """(σ1, σ2) of every matrix of a batch, float64, as an array of shape (n_problems, C, 2).

    Parameters
    ----------
    problem, row, col:
        int arrays of length E: the matrix each entry belongs to (0..n_problems-1), and its row and column node
        ids.  Node ids are global and never shared by two matrices; they need not be compact.
    vals:
        float array (E,) or (E, C): the entry's value in each channel, all > 0 (an absent edge is not listed).
    device:
        ``None`` runs the Lanczos iterations with numpy; a ``torch.device`` runs them with torch on that device
        (everything else stays on the CPU).

    A matrix with no entry gets (0, 0); one with a single row or column σ2 = 0.
    """
    problem = np.asarray(problem, dtype=np.int64)
    vals = np.asarray(vals, dtype=np.float64)
    if vals.ndim == 1:
        vals = vals[:, None]
    C = vals.shape[1]
    out = np.zeros((n_problems, C, 2))
    if problem.size == 0:
        return out
    if not (np.all(vals > 0) and np.all(np.isfinite(vals))):
        raise ValueError("top2_many: every entry value must be finite and > 0 (absent edges are not listed)")
    r, n_r = _compact(np.asarray(row, dtype=np.int64))
    c, n_c = _compact(np.asarray(col, dtype=np.int64))
    n_comp, lab_r, lab_c = _components(r, n_r, c, n_c)
    rank_r, cnt_r = _rank_within(lab_r, n_comp)
    rank_c, cnt_c = _rank_within(lab_c, n_comp)
    comp = lab_r[r]
    comp_problem = np.zeros(n_comp, dtype=np.int64)
    comp_problem[comp] = problem
    cols_short = cnt_c <= cnt_r  # Gram on the column side (m = number of column nodes)
    m = np.where(cols_short, cnt_c, cnt_r)
    edge_cs = cols_short[comp]
    rr, rc = rank_r[r], rank_c[c]
    short = np.where(edge_cs, rc, rr)
    tall_rank = np.where(edge_cs, rr, rc)  # tall-node index within its component
    sv = np.zeros((n_comp, C, 2))
    # m == 1: a star (or a single edge): σ1 = ‖values‖₂, σ2 = 0
    one = m == 1
    if one.any():
        e1 = one[comp]
        for ch in range(C):
            sv[:, ch, 0] = np.sqrt(np.bincount(comp[e1], weights=vals[e1, ch] ** 2, minlength=n_comp))
    for small in (True, False):
        cls = (m > 1) & ((m <= DENSE_MAX) if small else (m > DENSE_MAX))
        if not cls.any():
            continue
        pid, n_piece = _compact(np.flatnonzero(cls))
        slot = np.full(n_comp, -1, dtype=np.int64)
        slot[np.flatnonzero(cls)] = pid
        e = np.flatnonzero(cls[comp])
        if small:
            t, n_t = _compact(np.where(edge_cs[e], r[e], c[e] + n_r))  # tall nodes (rows and columns in one id space)
            sv[cls] = _dense_top2(t, short[e], vals[e], slot[comp[e]], n_piece, m[cls], n_t)
        else:
            n_tall = np.where(cols_short, cnt_r, cnt_c)[cls]
            sv[cls] = lanczos_top2(tall_rank, short, vals, slot[comp], n_piece, m[cls], n_tall, device=device,
                                   edges=e)
    # merge: a matrix's (σ1, σ2) are the two largest of its components' (σ1, σ2)
    for ch in range(C):
        v = sv[:, ch, :].reshape(-1)
        p = np.repeat(comp_problem, 2)
        o = np.lexsort((-v, p))
        v, p = v[o], p[o]
        starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
        out[p[starts], ch, 0] = v[starts]
        nxt = starts + 1
        ok = nxt < p.size
        ok[ok] = p[nxt[ok]] == p[starts[ok]]
        out[p[starts[ok]], ch, 1] = v[nxt[ok]]
    return out


def top2_sparse(S) -> tuple[float, float]:
    """(σ1, σ2) of one nonnegative matrix (scipy sparse or dense array), float64; empty rows/columns are ignored.

    Returns (0, 0) for an all-zero matrix and σ2 = 0 for a single row or column."""
    S = sp.coo_matrix(S, dtype=np.float64)
    keep = S.data != 0
    if not keep.any():
        return 0.0, 0.0
    if np.any(S.data[keep] < 0):
        raise ValueError("top2_sparse expects a nonnegative matrix (a biadjacency)")
    s = top2_many(np.zeros(int(keep.sum()), dtype=np.int64), S.row[keep], S.col[keep], S.data[keep], 1)
    return float(s[0, 0, 0]), float(s[0, 0, 1])
