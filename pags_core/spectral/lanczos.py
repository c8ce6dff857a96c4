"""Batched Lanczos iteration: the two largest eigenvalues of many Gram matrices BᵀB at once (the engine's path for
connected components whose smaller side has more than :data:`~pags_core.spectral.svd.DENSE_MAX` nodes).

Components are taken in order of size and cut into batches, each padded to its largest smaller side m.  In a batch
the matrices are laid out block-diagonally in one CSR matrix S (and its transpose), so each Lanczos step costs one
sparse mat-vec pair for the whole batch; the Krylov bases of all components live in one (N, K, m) array and are kept
orthogonal by full reorthogonalisation (classical Gram–Schmidt after the three-term recurrence, a second pass where
the first removed much) with batched matrix products.  One start vector per component suffices because every
component is connected: its largest eigenvalue is simple (Perron–Frobenius).

Stopping: every few steps the top-3 Ritz values of each active component's tridiagonal T_k come from LAPACK
``dstemr``; a component stops when both wanted values have error bounds min(r, r²/gap) ≤ 1e-11 of their size
(r = β_k·|last entry of the Ritz vector|, the residual norm; gap from the neighbouring Ritz values), when its Krylov
space is exhausted, or — after :data:`MAX_STEPS` — by a dense fallback.  Stopped components are dropped from the
batch.  Runs with numpy on the CPU, or with torch on a CUDA device (the small tridiagonal problems stay on the CPU).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.linalg.lapack import dstemr as _dstemr

__all__ = ["lanczos_top2", "TOL", "MAX_STEPS"]

#: Relative error bound on each wanted eigenvalue of BᵀB (σ then carries about half of it).
TOL = 1e-11
#: Steps before the first convergence check; the assumed decay rate (per step, natural log) of the error bound and
#: the farthest a next check is scheduled ahead (a check costs about as much as two steps of one problem).
FIRST_CHECK, RATE, MAX_AHEAD = 30, 0.7, 12
#: On a device a step of a whole batch is cheap and the checks (LAPACK on the CPU) are not: check later and less often.
FIRST_CHECK_DEVICE, MIN_AHEAD_DEVICE = 40, 6
#: Steps after which a component still unconverged is solved densely.
MAX_STEPS = 500
#: A new Lanczos vector whose norm falls below this fraction of the matrix norm estimate is dropped (an invariant
#: subspace was found: the eigenvalues of T are then exact).
DEFLATE = 1e-12
#: Problems per batch are limited to this many vector entries (N·mp): on the CPU the Krylov bases of a batch
#: (N·mp·steps floats) then stay near the caches, which the reorthogonalisation streams through at every step; on a
#: device, batches are as large as memory allows, since every step costs a fixed number of kernel launches.
BATCH_ENTRIES, BATCH_ENTRIES_DEVICE = 16384, 1 << 22
#: λ2/λ1 below which the two Ritz vectors are kept for the Rayleigh–Ritz recomputation of σ2.
RANK_TOL = 1e-6

try:
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover
    _csr_matvec = None

_START = np.random.default_rng(20230501).standard_normal(1024)


def _start_block(N: int, mp: int, m_each: np.ndarray) -> np.ndarray:
    """Normalised start vectors (N, mp): a fixed pseudo-random vector cut to each component's size, so a
    component's result does not depend on which other components share its batch."""
    global _START
    if _START.size < mp:
        _START = np.random.default_rng(20230501).standard_normal(int(mp))
    X = np.broadcast_to(_START[:mp], (N, mp)).copy()
    X[np.arange(mp)[None, :] >= m_each[:, None]] = 0.0
    X /= np.sqrt((X * X).sum(1))[:, None]
    return X


class _NumpyOps:
    """The array operations of the iteration, numpy on the CPU."""

    def __init__(self):
        self.xp = np

    def matrix(self, n_rows, n_cols, indptr, indices, data):
        return (int(n_rows), int(n_cols), indptr, indices, data)

    def mv(self, A, x):
        n, m, ip, ix, dt = A
        if _csr_matvec is None:  # pragma: no cover
            import scipy.sparse as sp
            return sp.csr_matrix((dt, ix, ip), shape=(n, m)) @ x
        y = np.zeros(n)
        _csr_matvec(n, m, ip, ix, dt, x, y)
        return y

    def asarray(self, x):
        return np.asarray(x, dtype=np.float64)

    def zeros(self, shape):
        return np.zeros(shape)

    def numpy(self, x):
        return x

    def concat_k(self, Q, extra):
        return np.concatenate([Q, np.zeros((Q.shape[0], extra, Q.shape[2]))], axis=1)

    def take(self, x, keep):
        return x[keep]


class _TorchOps:
    """The same operations with torch tensors on a device (CUDA); the CSR matrices become torch sparse tensors."""

    def __init__(self, device):
        import torch
        self.torch = torch
        self.device = device
        self.xp = torch

    def matrix(self, n_rows, n_cols, indptr, indices, data):
        import warnings

        t = self.torch
        with warnings.catch_warnings():  # "sparse CSR support is in beta": the CSR mat-vec is all that is used
            warnings.simplefilter("ignore", UserWarning)
            return t.sparse_csr_tensor(t.as_tensor(indptr, device=self.device), t.as_tensor(indices, device=self.device),
                                       t.as_tensor(data, dtype=t.float64, device=self.device),
                                       size=(int(n_rows), int(n_cols)), check_invariants=False)

    def mv(self, A, x):
        return (A @ x.unsqueeze(1)).squeeze(1)

    def asarray(self, x):
        return self.torch.as_tensor(x, dtype=self.torch.float64, device=self.device)

    def zeros(self, shape):
        return self.torch.zeros(shape, dtype=self.torch.float64, device=self.device)

    def numpy(self, x):
        return x.detach().cpu().numpy()

    def concat_k(self, Q, extra):
        return self.torch.cat([Q, self.zeros((Q.shape[0], extra, Q.shape[2]))], dim=1)

    def take(self, x, keep):
        return x[self.torch.as_tensor(keep, device=self.device)]


def _ops(device):
    """numpy for ``None``; torch on that device for a ``torch.device`` (also a CPU one, which the tests use)."""
    return _NumpyOps() if device is None else _TorchOps(device)


def _test(alpha_i, beta_i, k: int, exhausted: bool):
    """Convergence test of one problem after k steps: (excess, θ1, θ2, top-2 eigenvectors of T_k or None).

    The top-3 Ritz values of T_k = tridiag(alpha[:k], beta[:k-1]) and their eigenvectors come from LAPACK
    ``dstemr``.  ``excess`` = max over the two wanted values of bound_i / (TOL·scale_i), with bound_i =
    min(r_i, r_i²/gap_i) and r_i = β_k·|last entry of the Ritz vector| (see the module docstring): <= 1 means
    converged.  The eigenvectors are returned only when the test passes."""
    mf, w, z, info = _dstemr(alpha_i[:k], beta_i[:k].copy(), 2, 0.0, 0.0, max(1, k - 2), k)
    if info != 0:  # pragma: no cover - dstemr failing on a small tridiagonal would be a LAPACK bug
        T = np.diag(alpha_i[:k]) + np.diag(beta_i[:k - 1], 1) + np.diag(beta_i[:k - 1], -1)
        w, z = np.linalg.eigh(T)
        mf = k
    t1 = float(w[mf - 1])
    t2 = float(w[mf - 2]) if mf > 1 else 0.0
    t3 = float(w[mf - 3]) if mf > 2 else 0.0
    ex = 0.0
    bk = float(beta_i[k - 1])
    if not exhausted and bk != 0.0:
        r1 = abs(bk * float(z[k - 1, mf - 1]))
        r2 = abs(bk * float(z[k - 1, mf - 2])) if mf > 1 else 0.0
        g1, g2 = t1 - t2, min(t1 - t2, t2 - t3)
        b1 = min(r1, r1 * r1 / g1) if g1 > 0 else r1
        b2 = min(r2, r2 * r2 / g2) if g2 > 0 else r2
        s2 = max(t2, RANK_TOL * t1)
        ex = max(b1 / (TOL * t1) if t1 > 0 else math.inf, b2 / (TOL * s2) if s2 > 0 else math.inf)
    if ex > 1.0:
        return ex, t1, t2, None
    V = np.zeros((k, 2))
    V[:, 0] = z[:k, mf - 1]
    if mf > 1:
        V[:, 1] = z[:k, mf - 2]
    return ex, t1, t2, V


def _next_check(k: int, excess: float, previous, min_ahead: int = 1) -> int:
    """The step of a problem's next convergence check, extrapolating the decay of its error bound: from the rate
    observed since the previous check, or :data:`RATE` without one; between 1 and :data:`MAX_AHEAD` steps ahead."""
    rate = RATE
    if previous is not None and previous[1] > excess:
        rate = max(rate, (math.log(previous[1]) - math.log(excess)) / max(k - previous[0], 1))
    return k + int(min(MAX_AHEAD, max(min_ahead, math.ceil(math.log(excess) / rate))))


def _take_blocks(ip, ix, dt, starts, lengths, shifts):
    """Rows ``starts[i] .. starts[i]+lengths[i]-1`` of a CSR matrix, block after block, with ``shifts[i]`` added
    to the column indices of block i.  Returns (indptr, indices, data)."""
    n = int(lengths.sum())
    offs = np.cumsum(lengths) - lengths
    rows = np.repeat(starts - offs, lengths) + np.arange(n)
    rl = ip[rows + 1] - ip[rows]
    new_ip = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(rl, out=new_ip[1:])
    pos = np.repeat(ip[rows] - new_ip[:-1], rl) + np.arange(int(new_ip[-1]))
    shift = np.repeat(np.repeat(shifts, lengths), rl)
    return new_ip, ix[pos] + shift, dt[pos]


class _Batch:
    """N problems of one size class laid out block-diagonally: problem q owns the tall rows toff[q]..toff[q+1]-1
    of S and the columns q·mp .. q·mp+mp-1 (its first m_q are used); S and Sᵀ are kept as CSR arrays."""

    def __init__(self, ops, mp, n_rows, S, St):
        self.ops, self.mp, self.n_rows = ops, int(mp), np.asarray(n_rows, dtype=np.int64)
        self.N = self.n_rows.size
        self.toff = np.concatenate(([0], np.cumsum(self.n_rows)))
        self.S_csr, self.St_csr = S, St
        self.S = ops.matrix(int(self.toff[-1]), self.N * self.mp, *S)
        self.St = ops.matrix(self.N * self.mp, int(self.toff[-1]), *St)

    @classmethod
    def build(cls, ops, mp, n_rows, rows, cols, data):
        from .svd import csr_arrays

        n_rows = np.asarray(n_rows, dtype=np.int64)
        total = int(n_rows.sum())
        return cls(ops, mp, n_rows, csr_arrays(total, rows, cols, data), csr_arrays(n_rows.size * int(mp), cols, rows, data))

    def gram_mv(self, X):
        """BᵀB x for every problem at once; X is (N, mp)."""
        ops = self.ops
        return ops.mv(self.St, ops.mv(self.S, X.reshape(-1))).reshape(self.N, self.mp)

    def subset(self, keep: np.ndarray) -> "_Batch":
        """The batch restricted to the problems ``keep`` (increasing indices), renumbered in that order."""
        mp, n = self.mp, self.n_rows[keep]
        new_toff = np.concatenate(([0], np.cumsum(n)))[:-1]
        S = _take_blocks(*self.S_csr, self.toff[keep], n, (np.arange(keep.size) - keep) * mp)
        St = _take_blocks(*self.St_csr, keep * mp, np.full(keep.size, mp), new_toff - self.toff[keep])
        return _Batch(self.ops, mp, n, S, St)

    def dense(self, q: int) -> np.ndarray:
        """Problem q's matrix B (n_q × mp) as a dense array (fallback and Rayleigh–Ritz paths)."""
        ip, ix, dt = self.S_csr
        a, b = int(self.toff[q]), int(self.toff[q + 1])
        B = np.zeros((b - a, self.mp))
        rl = np.diff(ip[a:b + 1])
        B[np.repeat(np.arange(b - a), rl), ix[ip[a]:ip[b]] - q * self.mp] = dt[ip[a]:ip[b]]
        return B


def _run(batch: _Batch, m_each: np.ndarray, out: np.ndarray, vecs_out: dict, ids: np.ndarray):
    """Lanczos on every problem of ``batch``; writes (λ1, λ2) into ``out[ids]`` and, where λ2 is tiny, the two Ritz
    vectors (2, mp) into ``vecs_out[id]``."""
    ops, xp = batch.ops, batch.ops.xp
    N, mp = batch.N, batch.mp
    kcap = int(min(MAX_STEPS, m_each.max() + 1))
    Q = ops.zeros((N, min(kcap, 48) + 1, mp))
    Q[:, 0] = ops.asarray(_start_block(N, mp, m_each))
    alpha = np.zeros((N, kcap + 1))
    beta = np.zeros((N, kcap + 1))
    scale = np.zeros(N)
    live = np.ones(N, dtype=bool)
    on_device = not isinstance(ops, _NumpyOps)
    first, min_ahead = (FIRST_CHECK_DEVICE, MIN_AHEAD_DEVICE) if on_device else (FIRST_CHECK, 1)
    due = np.minimum(first, m_each + 1)  # step of every problem's next convergence check
    next_due = int(due.min())
    last: list = [None] * N  # (step, excess) of the previous check
    k = 0
    bprev = ops.zeros((N, 1))  # β_{k-1} as a column, for the three-term recurrence
    while True:
        q = Q[:, k]
        w = batch.gram_mv(q)
        a = xp.einsum("ij,ij->i", q, w)
        w -= a[:, None] * q
        if k:
            w -= bprev * Q[:, k - 1]
        basis = Q[:, :k + 1]
        check_loss = k % 4 == 0  # a second pass is never needed on layer graphs; look for it every 4th step
        if check_loss:
            norm0 = xp.einsum("ij,ij->i", w, w)
        for _ in range(2):  # full reorthogonalisation (classical Gram–Schmidt; twice where the first removed much)
            h = basis @ w[:, :, None]
            w -= (h.swapaxes(1, 2) @ basis)[:, 0]
            a += h[:, k, 0]
            norm1 = xp.einsum("ij,ij->i", w, w)
            if not (check_loss and bool((norm1 < 0.5 * norm0).any())):
                break
            norm0 = norm1
        b = np.sqrt(ops.numpy(norm1))
        a_np = ops.numpy(a)
        scale = np.maximum(scale, a_np + b + beta[:, k - 1])  # a Gershgorin bound of T: α >= 0 for a Gram matrix
        b[b <= DEFLATE * scale] = 0.0
        alpha[:, k], beta[:, k] = a_np, b
        k += 1
        if k >= Q.shape[1] - 1 and k < kcap:
            Q = ops.concat_k(Q, min(Q.shape[1], kcap + 1 - Q.shape[1]))
        bcol = b[:, None]
        bprev = ops.asarray(bcol)
        Q[:, k] = w * ops.asarray(np.divide(1.0, bcol, out=np.zeros_like(bcol), where=bcol > 0))
        if k < next_due and k < kcap:
            continue
        for i in np.flatnonzero(live & ((due <= k) | (k >= kcap))):
            ex, t1, t2, V = _test(alpha[i], beta[i], k, k >= m_each[i])
            if V is None:
                due[i] = _next_check(k, ex, last[i], min_ahead)
                last[i] = (k, ex)
                continue
            live[i] = False
            out[ids[i]] = (t1, t2)
            if t2 < RANK_TOL * t1:
                vecs_out[ids[i]] = V.T @ ops.numpy(Q[i, :k])
        if k >= kcap and live.any():  # pragma: no cover - not observed on layer graphs; exact fallback
            for i in np.flatnonzero(live):
                B = batch.dense(i)
                w_, V_ = np.linalg.eigh(B.T @ B)
                out[ids[i]] = w_[::-1][:2]
                if w_[-2] < RANK_TOL * w_[-1]:
                    vecs_out[ids[i]] = V_[:, ::-1][:, :2].T
            live[:] = False
        if not live.any():
            return
        next_due = int(due[live].min())
        if (~live).sum() >= 0.5 * N:  # drop the finished problems from the batch
            keep = np.flatnonzero(live)
            batch = batch.subset(keep)
            Q, bprev = ops.take(Q, keep), ops.take(bprev, keep)
            alpha, beta, scale, m_each, ids, due = alpha[keep], beta[keep], scale[keep], m_each[keep], ids[keep], due[keep]
            last = [last[i] for i in keep]
            N = keep.size
            live = np.ones(N, dtype=bool)


def lanczos_top2(tall, short, vals, piece, n_piece, m, n_tall, *, device=None) -> np.ndarray:
    """(σ1, σ2) of every connected piece and channel, shape (n_piece, C, 2).

    Per edge: ``tall`` its tall-side index within its piece (0..n_tall-1), ``short`` its smaller-side index
    (0..m-1), ``vals`` (E, C) > 0 its values, ``piece`` its piece; per piece: ``m`` and ``n_tall``.  Pieces are
    taken in order of size and cut into batches of at most :data:`BATCH_ENTRIES` vector entries (on a device
    :data:`BATCH_ENTRIES_DEVICE`), each padded to its largest piece."""
    from .svd import csr_arrays

    vals = np.asarray(vals, dtype=np.float64)
    C = vals.shape[1]
    out = np.zeros((n_piece, C, 2))
    ops = _ops(device)
    limit = BATCH_ENTRIES if device is None else BATCH_ENTRIES_DEVICE
    by_size = np.argsort(m, kind="stable")
    rank = np.empty(n_piece, dtype=np.int64)
    rank[by_size] = np.arange(n_piece)
    eptr, _, eorder = csr_arrays(n_piece, rank[piece], short)  # edges grouped by the size rank of their piece
    start = 0
    while start < n_piece:
        end = start + 1
        while end < n_piece and (end - start + 1) * C * m[by_size[end]] <= limit:
            end += 1
        e = eorder[eptr[start]:eptr[end]]
        _solve_batch(by_size[start:end], int(m[by_size[end - 1]]), tall[e], short[e], vals[e], rank[piece[e]] - start,
                     m, n_tall, out, ops)
        start = end
    return out


def _solve_batch(sel, mp, tall, short, vals, slot, m, n_tall, out, ops):
    """Solve the pieces ``sel`` (their edges given, ``slot`` = position of the edge's piece in ``sel``), padded to
    ``mp``, for every channel, into ``out``."""
    C = vals.shape[1]
    n_rows = np.repeat(n_tall[sel], C)  # one problem per (piece, channel): q = slot * C + channel
    toff = np.concatenate(([0], np.cumsum(n_rows)))
    q = (slot[:, None] * C + np.arange(C)[None, :]).reshape(-1)
    rows = toff[q] + np.repeat(tall, C)
    cols = q * mp + np.repeat(short, C)
    data = vals.reshape(-1)
    batch = _Batch.build(ops, mp, n_rows, rows, cols, data)
    lam = np.zeros((sel.size * C, 2))
    vecs: dict = {}
    _run(batch, np.repeat(m[sel], C), lam, vecs, np.arange(sel.size * C))
    s = np.sqrt(np.clip(lam, 0.0, None))
    if vecs:
        full = _Batch.build(_NumpyOps(), mp, n_rows, rows, cols, data)
        for i, V in vecs.items():  # Rayleigh–Ritz: singular values of B·[v1 v2]
            s[i] = np.linalg.svd(full.dense(i) @ V.T, compute_uv=False)[:2]
    out[sel] = s.reshape(sel.size, C, 2)
