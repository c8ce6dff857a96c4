"""Top-2 singular values of a biadjacency, in float64 (METHOD §3, pitfall 14).

σ1 and σ2 of B are the square roots of the two largest eigenvalues of the Gram matrix on B's smaller side
(B Bᵀ or Bᵀ B).  Small Grams are solved densely (``numpy.linalg.eigvalsh``, or ``torch.linalg.eigvalsh`` for a batch on a
GPU); large ones with ARPACK Lanczos (``scipy.sparse.linalg.eigsh``, relative residual tolerance 1e-10).

Squaring loses σ2 when it is tiny next to σ1 (a nearly rank-1 B, e.g. a dense layer K(a,b) with σ2 = 0): there the
values are recomputed by a Rayleigh–Ritz step, the singular values of B·V with V the top-2 Gram eigenvectors, which
is accurate to about machine precision times σ1.  The full (|L|+|R|)² adjacency is never formed here; see
:mod:`pags_core.spectral.reference` for that slow oracle.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import torch

__all__ = ["DENSE_MAX", "top2_csr", "top2_sparse", "top2_dense_batch", "single_thread_blas"]

try:  # threadpoolctl ships with scikit-learn; without it BLAS keeps its own thread count
    from threadpoolctl import ThreadpoolController as _ThreadpoolController
except ImportError:  # pragma: no cover
    _ThreadpoolController = None
_CONTROLLER = None


def single_thread_blas():
    """Context manager limiting BLAS/LAPACK to one thread: the many small eigenproblems of the sparse path run
    faster single-threaded, and a shared CPU is not oversubscribed.  A no-op when threadpoolctl is missing."""
    global _CONTROLLER
    if _ThreadpoolController is None:
        import contextlib
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        _CONTROLLER = _ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")

#: Gram side at or below which the dense eigensolver is used instead of Lanczos (on a 2-core CPU eigvalsh(128) ≈ 0.4 ms,
#: ARPACK ≈ 0.9 ms; they break even near 250).
DENSE_MAX = 160
#: λ2/λ1 below which σ2 is refined by Rayleigh–Ritz (σ2/σ1 < 1e-3).
_RANK_TOL = 1e-6
#: ARPACK residual tolerance (relative); observed eigenvalue errors are ~1e-15 at this setting.
_ARPACK_TOL = 1e-10


def _start_vector(k: int) -> np.ndarray:
    return np.random.default_rng(12345).uniform(0.5, 1.5, size=k)


try:  # the raw CSR mat-vec kernel: ARPACK calls the operator ~60 times per problem, so wrapper overhead matters
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover
    _csr_matvec = None


class _NormalOperator(sla.LinearOperator):
    """x -> Sᵀ(S x) for a CSR matrix S given with its transpose, without forming the Gram matrix."""

    def __init__(self, S, St):
        super().__init__(dtype=np.float64, shape=(S[3][1], S[3][1]))
        self._S, self._St = S, St

    def _matvec(self, x):
        x = np.ascontiguousarray(x, dtype=np.float64).ravel()
        (ip, ix, dt, (n, m)), (tip, tix, tdt, _) = self._S, self._St
        y = np.zeros(n)
        z = np.zeros(m)
        if _csr_matvec is None:  # pragma: no cover
            y = sp.csr_matrix((dt, ix, ip), shape=(n, m)) @ x
            return sp.csr_matrix((tdt, tix, tip), shape=(m, n)) @ y
        _csr_matvec(n, m, ip, ix, dt, x, y)
        _csr_matvec(m, n, tip, tix, tdt, y, z)
        return z

    matvec = _matvec


def _transpose(ip, ix, dt, n, m):
    """CSR of the transpose of an n×m CSR matrix (plain numpy, stable)."""
    rows = np.repeat(np.arange(n), np.diff(ip))
    order = np.argsort(ix, kind="stable")
    tip = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(ix, minlength=m), out=tip[1:])
    return tip, rows[order], dt[order]


def _dense_gram(ip, ix, dt, n, m) -> np.ndarray:
    """SᵀS (m×m) of an n×m CSR matrix, dense, from the products of entry pairs within each row."""
    rl = np.diff(ip)
    row_of = np.repeat(np.arange(n), rl)
    cnt = rl[row_of]
    first = np.repeat(np.arange(ix.size), cnt)
    block = np.repeat(np.cumsum(cnt) - cnt, cnt)
    partner = ip[row_of[first]] + (np.arange(first.size) - block)
    G = np.bincount(ix[first] * m + ix[partner], weights=dt[first] * dt[partner], minlength=m * m)
    return G.reshape(m, m)


def _top2_eig(S, St, vectors: bool):
    """Two largest eigenpairs (descending) of SᵀS for S = (ip, ix, dt, (n, m)) with its transpose St."""
    ip, ix, dt, (n, m) = S
    if m <= DENSE_MAX:
        A = _dense_gram(ip, ix, dt, n, m)
        if vectors:
            w, V = np.linalg.eigh(A)
            return w[::-1][:2], V[:, ::-1][:, :2]
        return np.linalg.eigvalsh(A)[::-1][:2], None
    try:
        out = sla.eigsh(_NormalOperator(S, St), k=2, which="LA", tol=_ARPACK_TOL, v0=_start_vector(m),
                        return_eigenvectors=vectors, ncv=min(m - 1, 12))
    except sla.ArpackNoConvergence:  # pragma: no cover - rare; fall back to the dense solver
        w, V = np.linalg.eigh(_dense_gram(ip, ix, dt, n, m))
        return w[::-1][:2], (V[:, ::-1][:, :2] if vectors else None)
    if vectors:
        w, V = out
        o = np.argsort(w)[::-1]
        return w[o], V[:, o]
    return np.sort(out)[::-1], None


def top2_csr(indptr, indices, data) -> tuple[float, float]:
    """(σ1, σ2) of the CSR matrix (indptr, indices, data), float64.

    Empty rows and columns are dropped first (they only add zero singular values); explicit zeros in ``data`` are
    harmless.  Returns (0, 0) for an all-zero matrix and σ2 = 0 for a single row or column.  The eigenproblem is
    solved on the smaller side: a dense Gram (side ≤ DENSE_MAX) or ARPACK on the operator x -> Sᵀ(Sx)."""
    data = np.asarray(data, dtype=np.float64)
    if data.size == 0 or not np.any(data):
        return 0.0, 0.0
    indptr = np.asarray(indptr, dtype=np.int64)
    rl = np.diff(indptr)
    if not rl.all():
        indptr = np.concatenate(([0], np.cumsum(rl[rl > 0])))
    cols, inv = np.unique(indices, return_inverse=True)
    inv = inv.ravel().astype(np.int64)
    n, m = indptr.size - 1, cols.size
    if min(n, m) == 1:
        return float(np.sqrt(np.sum(data ** 2))), 0.0
    A = (indptr, inv, data, (n, m))
    T = _transpose(indptr, inv, data, n, m) + ((m, n),)
    S, St = (A, T) if m <= n else (T, A)  # eigen-solve SᵀS on the smaller side
    w, _ = _top2_eig(S, St, vectors=False)
    l1, l2 = float(w[0]), float(w[1])
    if l2 < _RANK_TOL * l1:  # nearly rank 1: recover σ2 by Rayleigh–Ritz instead of √λ2
        _, V = _top2_eig(S, St, vectors=True)
        ip, ix, dt, (nn, mm) = S
        Y = sp.csr_matrix((dt, ix, ip), shape=(nn, mm)) @ V
        sv = np.linalg.svd(np.asarray(Y), compute_uv=False)
        return float(sv[0]), float(sv[1])
    return float(np.sqrt(max(l1, 0.0))), float(np.sqrt(max(l2, 0.0)))


def top2_sparse(S) -> tuple[float, float]:
    """(σ1, σ2) of one matrix (scipy sparse or dense array), float64.  Empty rows/columns are ignored.

    Returns (0, 0) for an empty matrix and σ2 = 0 when the matrix (after removing empty rows/columns) is a single
    row or column."""
    S = sp.csr_matrix(S, dtype=np.float64)
    S.eliminate_zeros()
    S.sort_indices()
    return top2_csr(S.indptr, S.indices, S.data)


def _eigvalsh_batch(G: torch.Tensor) -> torch.Tensor:
    """Ascending eigenvalues of a batch of symmetric matrices, float64, on G's device."""
    if G.device.type == "cpu":
        return torch.from_numpy(np.linalg.eigvalsh(G.numpy()))
    return torch.linalg.eigvalsh(G)


def _eigh_batch(G: torch.Tensor):
    if G.device.type == "cpu":
        w, V = np.linalg.eigh(G.numpy())
        return torch.from_numpy(w), torch.from_numpy(V)
    return torch.linalg.eigh(G)


def top2_dense_batch(X: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """(σ1, σ2) of every matrix of a batch X of shape (N, n, m), float64, computed on X's device.

    The Gram is taken on the smaller side; zero rows/columns (padding, isolated nodes) only add zero eigenvalues and
    do not change the result.  Returns a tensor of shape (N, 2)."""
    X = X.to(torch.float64)
    N, n, m = X.shape
    out = torch.zeros((N, 2), dtype=torch.float64, device=X.device)
    if N == 0:
        return out
    if min(n, m) == 1:
        out[:, 0] = X.reshape(N, -1).norm(dim=1)
        return out
    for a in range(0, N, chunk):
        Xc = X[a:a + chunk]
        G = Xc @ Xc.transpose(1, 2) if n <= m else Xc.transpose(1, 2) @ Xc
        w = _eigvalsh_batch(G).to(X.device)
        l1, l2 = w[:, -1], w[:, -2]
        s = torch.sqrt(torch.clamp(torch.stack([l1, l2], dim=1), min=0.0))
        bad = (l2 < _RANK_TOL * l1) & (l1 > 0)
        if bool(bad.any()):
            idx = torch.nonzero(bad).flatten()
            _, V = _eigh_batch(G[idx])
            V = V.to(X.device)[:, :, -2:]
            Xb = Xc[idx]
            Y = Xb.transpose(1, 2) @ V if n <= m else Xb @ V
            s[idx] = torch.linalg.svdvals(Y)
        out[a:a + chunk] = s
    return out
