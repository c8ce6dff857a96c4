"""Batched Lanczos iteration: the two largest eigenvalues of many Gram matrices BᵀB at once (the engine's path for
connected components whose smaller side has more than :data:`~pags_core.spectral.svd.DENSE_MAX` nodes).

Components are taken in order of size and cut into batches of similar size (padding at most :data:`SPREAD`-fold on
the CPU), each padded to its largest smaller side m.  In a batch the matrices are laid out block-diagonally in one
sparse matrix S, kept as the CSR arrays of Sᵀ (S x is their transposed product), so each Lanczos step costs one
sparse mat-vec pair over the same arrays for the whole batch; the Krylov bases of all components live in one
(N, K, m) array and are kept orthogonal by full reorthogonalisation (classical Gram–Schmidt after the three-term
recurrence, a second pass where the first removed much) with batched matrix products.  One start vector per component suffices because every component is connected: its largest eigenvalue is
simple (Perron–Frobenius).

Stopping: a component's convergence is first checked after :data:`FIRST_CHECK` steps (more for larger components),
then at steps extrapolated from the decay of its error bound: the top-3 Ritz values of its tridiagonal T_k come from
LAPACK ``dstemr``, and it stops when both wanted values have error bounds min(r, r²/gap) ≤ 1e-11 of their size
(r = β_k·|last entry of the Ritz vector|, the residual norm; gap from the neighbouring Ritz values), when its Krylov
space is exhausted, or — after :data:`MAX_STEPS` — by a dense fallback.  A stopped component costs nothing more in
the mat-vecs, which run over the ranges of the batch still iterating (slices of its CSR arrays, never rebuilt); it
keeps its row of the Krylov arrays, with zero vectors, until stopped rows make up :data:`COMPACT_SHARE` of them, when
the last live rows move into their places.  Runs with numpy on the CPU, or with torch on a CUDA device (the small
tridiagonal problems stay on the CPU).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.linalg.lapack import dstemr as _dstemr

__all__ = ["lanczos_top2", "TOL", "MAX_STEPS"]

#: Relative error bound on each wanted eigenvalue of BᵀB (σ then carries about half of it).
TOL = 1e-11
#: Steps before the first convergence check (at m = 32, plus FIRST_CHECK_SLOPE per doubling of the problem size m);
#: the assumed decay rate (per step, natural log) of the error bound and the farthest a next check is scheduled ahead
#: (a check costs about as much as two steps of one problem).
FIRST_CHECK, FIRST_CHECK_SLOPE, RATE, MAX_AHEAD = 18, 3.0, 1.4, 12
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
BATCH_ENTRIES, BATCH_ENTRIES_DEVICE = 8192, 1 << 22
#: On the CPU a batch holds components whose smaller sides differ at most this much (largest / smallest), so that
#: padding to the largest wastes little reorthogonalisation work, unless it holds fewer than SPLIT_MIN vector entries
#: (then another batch would cost more in per-step overhead than the padding); a device takes every size in one batch.
SPREAD, SPLIT_MIN = 2.0, 4096
#: Stopped problems leave the iteration's arrays when they make up this share of its rows; the mat-vecs skip them
#: at once, multiplying at most :data:`MAX_RUNS` contiguous ranges of the batch.
COMPACT_SHARE, MAX_RUNS = 0.3, 8
#: λ2/λ1 below which the two Ritz vectors are kept for the Rayleigh–Ritz recomputation of σ2.
RANK_TOL = 1e-6

try:
    from scipy.sparse._sparsetools import csc_matvec as _csc_matvec, csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover
    _csc_matvec = _csr_matvec = None

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


def _csr_mv_into(n_rows: int, n_cols: int, ip, ix, dt, x, y) -> None:
    """y += A x for the CSR arrays of A (its first ``n_rows`` rows: ``ip`` may be a slice of a larger indptr)."""
    if _csr_matvec is None:  # pragma: no cover
        import scipy.sparse as sp
        lo, hi = int(ip[0]), int(ip[n_rows])
        y += sp.csr_matrix((dt[lo:hi], ix[lo:hi], ip[:n_rows + 1] - lo), shape=(n_rows, n_cols)) @ x
        return
    _csr_matvec(n_rows, n_cols, ip, ix, dt, x, y)


def _csrT_mv_into(n_rows: int, n_cols: int, ip, ix, dt, x, y) -> None:
    """y += Aᵀ x for the CSR arrays of A (``n_rows`` rows from the slice ``ip``; ``x`` holds those rows' entries,
    ``y`` is indexed by A's column indices), i.e. a CSC product of Aᵀ."""
    if _csc_matvec is None:  # pragma: no cover
        import scipy.sparse as sp
        lo, hi = int(ip[0]), int(ip[n_rows])
        y += sp.csr_matrix((dt[lo:hi], ix[lo:hi], ip[:n_rows + 1] - lo), shape=(n_rows, n_cols)).T @ x
        return
    _csc_matvec(n_cols, n_rows, ip, ix, dt, x, y)


class _NumpyOps:
    """The array operations of the iteration, numpy on the CPU."""

    xp = np
    on_device = False

    def gram(self, batch, X, slot, runs, direct, gslot):
        """BᵀB x for the problems in ``slot`` (X: (n, mp), row i for problem ``slot[i]``); only the slot ranges
        ``runs`` are multiplied, and row i reads the result of slot ``gslot[i]`` (a row outside the ranges is
        zeroed by the caller).  ``direct``: slot[i] == i for every row."""
        mp, toff, N = batch.mp, batch.toff, batch.N
        ipt, ixt, dtt = batch.St_csr  # Sᵀ only: S x is its transposed product, over the same (cached) arrays
        end = runs[-1][1]
        if direct:
            x = X.reshape(-1)
        else:
            x = batch.xbuf
            x.reshape(N, mp)[slot] = X
        u = batch.ubuf[:int(toff[end])]
        for a, b in runs:
            u[int(toff[a]):int(toff[b])] = 0.0
            _csrT_mv_into((b - a) * mp, u.size, ipt[a * mp:b * mp + 1], ixt, dtt, x[a * mp:b * mp], u)
        y = np.zeros((X.shape[0] if direct else end) * mp)
        for a, b in runs:
            _csr_mv_into((b - a) * mp, u.size, ipt[a * mp:b * mp + 1], ixt, dtt, u, y[a * mp:b * mp])
        return y.reshape(-1, mp) if direct else y.reshape(-1, mp)[gslot]

    def asarray(self, x):
        return np.asarray(x, dtype=np.float64)

    def empty(self, shape):
        return np.empty(shape)

    def numpy(self, x):
        return x

    def index(self, idx):
        return idx


class _TorchOps:
    """The same operations with torch tensors on a device (CUDA); the CSR matrices become torch sparse tensors.  On
    a device every step multiplies the whole batch (stopped problems with zero vectors): the work of a kernel
    launch hardly depends on its size."""

    on_device = True

    def __init__(self, device):
        import torch
        self.torch = torch
        self.device = device
        self.xp = torch

    def _csr(self, ip, ix, dt, n_rows, n_cols):
        import warnings

        t = self.torch
        with warnings.catch_warnings():  # "sparse CSR support is in beta": the CSR mat-vec is all that is used
            warnings.simplefilter("ignore", UserWarning)
            return t.sparse_csr_tensor(*(t.as_tensor(v, device=self.device) for v in (ip, ix, dt)),
                                       size=(int(n_rows), int(n_cols)), check_invariants=False)

    def gram(self, batch, X, slot, runs, direct, gslot):
        t = self.torch
        N, mp = batch.N, batch.mp
        if batch.device_arrays is None:  # the CSR matrices on the device, once per batch
            rows = int(batch.toff[-1])
            batch.device_arrays = (self._csr(*batch.S_csr, rows, N * mp), self._csr(*batch.St_csr, N * mp, rows))
        S, St = batch.device_arrays
        if direct and X.shape[0] == N:
            x = X.reshape(-1, 1)
        else:
            x = t.zeros((N, mp), dtype=X.dtype, device=X.device)
            x[t.as_tensor(slot, device=X.device)] = X
            x = x.reshape(-1, 1)
        y = (St @ (S @ x)).reshape(N, mp)
        return y if direct and X.shape[0] == N else y[t.as_tensor(slot, device=X.device)]

    def asarray(self, x):
        return self.torch.as_tensor(x, dtype=self.torch.float64, device=self.device)

    def empty(self, shape):
        return self.torch.empty(shape, dtype=self.torch.float64, device=self.device)

    def numpy(self, x):
        return x.detach().cpu().numpy()

    def index(self, idx):
        return self.torch.as_tensor(idx, device=self.device)


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


def _first_check_extra(m: np.ndarray) -> np.ndarray:
    """Steps added to :data:`FIRST_CHECK` for problems of size m: larger problems take longer to converge (measured on
    layer graphs: about 22 steps at m = 50 and 34 at m = 400, ±4), and a failed check costs about two steps."""
    return np.round(FIRST_CHECK_SLOPE * np.log2(np.maximum(m, 32) / 32.0)).astype(np.int64)


def _next_check(k: int, excess: float, prev_k: int, prev_ex: float, min_ahead: int = 1) -> int:
    """The step of a problem's next convergence check, extrapolating the decay of its error bound: from the rate
    observed since the previous check (``prev_k`` < 0: none), or :data:`RATE` without one; between ``min_ahead``
    and :data:`MAX_AHEAD` steps ahead."""
    rate = RATE
    if prev_k >= 0 and prev_ex > excess:
        rate = max(rate, (math.log(prev_ex) - math.log(excess)) / max(k - prev_k, 1))
    return k + int(min(MAX_AHEAD, max(min_ahead, math.ceil(math.log(excess) / rate))))


class _Batch:
    """N problems of one size class laid out block-diagonally: problem q owns the tall rows toff[q]..toff[q+1]-1
    of S and the columns q·mp .. q·mp+mp-1 (its first m_q are used).  Sᵀ is kept as CSR arrays (S x is their
    transposed product), and a range of problems is multiplied through slices of them."""

    def __init__(self, ops, mp, n_rows, St):
        self.ops, self.mp, self.n_rows = ops, int(mp), np.asarray(n_rows, dtype=np.int64)
        self.N = self.n_rows.size
        self.toff = np.concatenate(([0], np.cumsum(self.n_rows)))
        self.St_csr = St
        self.nnz = np.diff(St[0][::self.mp]).astype(np.int64)  # entries of every problem
        if not ops.on_device:  # the vectors scattered to the slots, and S x
            self.xbuf, self.ubuf = np.zeros(self.N * self.mp), np.empty(int(self.toff[-1]))
        self.device_arrays = None

    @classmethod
    def build(cls, ops, mp, n_rows, rows, cols, data):
        from .svd import csr_arrays

        n_rows = np.asarray(n_rows, dtype=np.int64)
        return cls(ops, mp, n_rows, csr_arrays(n_rows.size * int(mp), cols, rows, data, n_cols=int(n_rows.sum())))

    @property
    def S_csr(self):
        """The CSR arrays of S itself (the device path multiplies with both)."""
        from .svd import csr_arrays

        ip, ix, dt = self.St_csr
        rows = np.repeat(np.arange(self.N * self.mp, dtype=ix.dtype), np.diff(ip))
        return csr_arrays(int(self.toff[-1]), ix, rows, dt, n_cols=self.N * self.mp)

    def gram_mv(self, X, slot, runs, direct, gslot):
        """BᵀB x for the problems ``slot`` (X: (len(slot), mp)); see :meth:`_NumpyOps.gram`."""
        return self.ops.gram(self, X, slot, runs, direct, gslot)

    def dense(self, q: int) -> np.ndarray:
        """Problem q's matrix B (n_q × mp) as a dense array (fallback and Rayleigh–Ritz paths)."""
        ip, ix, dt = self.St_csr
        a, b, mp = q * self.mp, (q + 1) * self.mp, self.mp
        B = np.zeros((int(self.n_rows[q]), mp))
        lo, hi = int(ip[a]), int(ip[b])
        B[ix[lo:hi] - int(self.toff[q]), np.repeat(np.arange(mp), np.diff(ip[a:b + 1]))] = dt[lo:hi]
        return B


def _runs(live_slots: np.ndarray, nnz: np.ndarray, most: int) -> list:
    """Contiguous ranges [a, b) of slots covering ``live_slots`` (sorted): at most ``most`` of them, bridging the gaps
    that hold the fewest entries (a bridged stopped problem is multiplied with a zero vector)."""
    lo, hi = int(live_slots[0]), int(live_slots[-1]) + 1
    if hi - lo == live_slots.size:  # no gap
        return [(lo, hi)]
    br = np.flatnonzero(np.diff(live_slots) > 1)  # a gap after live_slots[br]
    if br.size >= most:
        cs = np.concatenate(([0], np.cumsum(nnz)))
        gap = cs[live_slots[br + 1]] - cs[live_slots[br] + 1]
        br = np.sort(br[np.argsort(-gap, kind="stable")[:most - 1]])
    ends = live_slots[br].tolist()
    starts = live_slots[br + 1].tolist()
    return list(zip([lo] + starts, [e + 1 for e in ends] + [hi]))


def _run(batch: _Batch, m_each: np.ndarray, out: np.ndarray, vecs_out: dict, ids: np.ndarray):
    """Lanczos on every problem of ``batch``; writes (λ1, λ2) into ``out[ids]`` and, where λ2 is tiny, the two Ritz
    vectors (2, mp) into ``vecs_out[id]``.

    Row i of the iteration's arrays is problem ``slot[i]`` of the batch.  A problem that stops keeps its row, with
    zero vectors, until stopped rows make up :data:`COMPACT_SHARE` of them; the mat-vecs skip it from the start
    (they run over the ranges of slots still iterating)."""
    ops, xp = batch.ops, batch.ops.xp
    N, mp = batch.N, batch.mp
    kcap = int(min(MAX_STEPS, m_each.max() + 1))
    Q = ops.empty((N, min(kcap, 48) + 1, mp))
    q = ops.asarray(_start_block(N, mp, m_each))  # the current Lanczos vectors, (rows, mp)
    Q[:, 0] = q
    qprev = bprev = None  # the previous vectors and β_{k-1} as a column, for the three-term recurrence
    alpha = np.zeros((N, kcap + 1))
    beta = np.zeros((N, kcap + 1))
    scale = np.zeros(N)
    slot = np.arange(N)
    dead = np.zeros(N, dtype=bool)  # rows whose problem has stopped
    runs, direct, n_dead, gslot = [(0, N)], True, 0, slot
    first, min_ahead = (FIRST_CHECK_DEVICE, MIN_AHEAD_DEVICE) if ops.on_device else (FIRST_CHECK, 1)
    due = np.minimum(first + (0 if ops.on_device else _first_check_extra(m_each)), m_each + 1)  # next check
    last_k, last_ex = np.full(N, -1), np.zeros(N)  # step and excess of the previous check
    next_due = int(due.min())
    k = 0
    while True:
        w = batch.gram_mv(q, slot, runs, direct, gslot)
        if n_dead:
            w[ops.asarray(dead).bool() if ops.on_device else dead] = 0.0
        a = xp.einsum("ij,ij->i", q, w)
        w -= a[:, None] * q
        if k:
            w -= bprev * qprev
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
        np.maximum(scale, a_np + b + beta[:, k - 1], out=scale)  # a Gershgorin bound of T: α >= 0 (a Gram matrix)
        keep_b = b > DEFLATE * scale
        inv = np.divide(1.0, b, out=np.zeros_like(b), where=keep_b)
        alpha[:, k] = a_np
        beta[:, k] = b * keep_b
        k += 1
        if k >= Q.shape[1] - 1 and k < kcap:  # a longer basis
            Q2 = ops.empty((Q.shape[0], min(2 * Q.shape[1], kcap + 1), mp))
            Q2[:, :k] = Q[:, :k]
            Q = Q2
        qprev, q = q, w
        if ops.on_device:
            bprev = ops.asarray(beta[:, k - 1, None])
            q.mul_(ops.asarray(inv[:, None]))
        else:
            bprev = beta[:, k - 1, None]
            np.multiply(q, inv[:, None], out=q)
        Q[:, k] = q
        if k < next_due and k < kcap:
            continue
        stopped = []
        for i in np.flatnonzero(~dead & ((due <= k) | (k >= kcap))):
            ex, t1, t2, V = _test(alpha[i], beta[i], k, k >= m_each[i])
            if V is None:
                due[i] = _next_check(k, ex, int(last_k[i]), float(last_ex[i]), min_ahead)
                last_k[i], last_ex[i] = k, ex
                continue
            stopped.append(i)
            out[ids[i]] = (t1, t2)
            if t2 < RANK_TOL * t1:
                vecs_out[ids[i]] = V.T @ ops.numpy(Q[i, :k])
        if k >= kcap and not dead.all():  # pragma: no cover - not observed on layer graphs; exact fallback
            for i in np.flatnonzero(~dead):
                B = batch.dense(int(slot[i]))
                w_, V_ = np.linalg.eigh(B.T @ B)
                out[ids[i]] = w_[::-1][:2]
                if w_[-2] < RANK_TOL * w_[-1]:
                    vecs_out[ids[i]] = V_[:, ::-1][:, :2].T
            return
        if not stopped:
            next_due = int(due[~dead].min())
            continue
        dead[stopped] = True
        n_dead = int(dead.sum())
        if n_dead == dead.size:
            return
        if n_dead >= COMPACT_SHARE * dead.size:  # drop the stopped rows: the last live rows move into their places
            n = dead.size - n_dead
            holes, movers = np.flatnonzero(dead[:n]), n + np.flatnonzero(~dead[n:])
            if holes.size:
                hi, mi = ops.index(holes), ops.index(movers)
                Q[hi, :k + 1] = Q[mi, :k + 1]
                for v in (q, qprev, bprev):
                    v[hi] = v[mi]
                for v in (alpha, beta, scale, m_each, ids, due, slot, last_k, last_ex):
                    v[holes] = v[movers]
            Q, q, qprev, bprev = Q[:n], q[:n], qprev[:n], bprev[:n]
            alpha, beta, scale, m_each, ids, due, slot, last_k, last_ex = (
                v[:n] for v in (alpha, beta, scale, m_each, ids, due, slot, last_k, last_ex))
            dead, n_dead = np.zeros(n, dtype=bool), 0
        else:  # a stopped row iterates on zero vectors
            z = ops.asarray(dead).bool() if ops.on_device else dead
            q[z], qprev[z], bprev[z] = 0.0, 0.0, 0.0
        runs = _runs(np.sort(slot[~dead]), batch.nnz, MAX_RUNS)
        direct = bool(np.array_equal(slot, np.arange(slot.size)))
        gslot = np.minimum(slot, runs[-1][1] - 1)  # where a row reads its product (a stopped row's is zeroed)
        next_due = int(due[~dead].min())


def lanczos_top2(tall, short, vals, piece, n_piece, m, n_tall, *, device=None, edges=None) -> np.ndarray:
    """(σ1, σ2) of every connected piece and channel, shape (n_piece, C, 2).

    Per edge: ``tall`` its tall-side index within its piece (0..n_tall-1), ``short`` its smaller-side index
    (0..m-1), ``vals`` (E, C) > 0 its values, ``piece`` its piece; per piece: ``m`` and ``n_tall``.  With ``edges``
    (indices), only those entries of the per-edge arrays are used.  Pieces are taken in order of size and cut into
    batches of at most :data:`BATCH_ENTRIES` vector entries (on a device :data:`BATCH_ENTRIES_DEVICE`) and, on the
    CPU, sizes within :data:`SPREAD`, each padded to its largest piece."""
    from .svd import csr_arrays

    vals = np.asarray(vals, dtype=np.float64)
    C = vals.shape[1]
    out = np.zeros((n_piece, C, 2))
    ops = _ops(device)
    limit, spread = (BATCH_ENTRIES, SPREAD) if device is None else (BATCH_ENTRIES_DEVICE, math.inf)
    by_size = np.argsort(m, kind="stable")
    rank = np.empty(n_piece, dtype=np.int64)
    rank[by_size] = np.arange(n_piece)
    edge_rank = rank[piece if edges is None else piece[edges]]
    eptr, _, eorder = csr_arrays(n_piece, edge_rank, np.zeros(edge_rank.size, dtype=np.int8), n_cols=1)
    if edges is not None:  # edges grouped by the size rank of their piece, as indices into the full arrays
        eorder = edges[eorder]
    ms = m[by_size]
    start = 0
    while start < n_piece:
        end = start + 1
        while end < n_piece and (end - start + 1) * C * ms[end] <= limit and \
                (ms[end] <= spread * ms[start] or (end - start) * C * ms[end - 1] < SPLIT_MIN):
            end += 1
        e = eorder[eptr[start]:eptr[end]]
        # in the batch the largest pieces come first: they tend to stop last
        _solve_batch(by_size[start:end][::-1], int(ms[end - 1]), tall[e], short[e], vals[e], end - 1 - rank[piece[e]],
                     m, n_tall, out, ops)
        start = end
    return out


def _solve_batch(sel, mp, tall, short, vals, slot, m, n_tall, out, ops):
    """Solve the pieces ``sel`` (their edges given, ``slot`` = position of the edge's piece in ``sel``), padded to
    ``mp``, for every channel, into ``out``."""
    C = vals.shape[1]
    n_rows = np.repeat(n_tall[sel], C)  # one problem per (piece, channel): q = slot * C + channel
    toff = np.concatenate(([0], np.cumsum(n_rows)))
    it = np.int32 if max(int(toff[-1]), n_rows.size * mp) < 2 ** 31 - 1 else np.int64
    q = slot.astype(it)[:, None] * C + np.arange(C, dtype=it)[None, :]
    rows = (toff[:-1].astype(it)[q] + tall.astype(it)[:, None]).reshape(-1)
    cols = (q * it(mp) + short.astype(it)[:, None]).reshape(-1)
    batch = _Batch.build(ops, mp, n_rows, rows, cols, vals.reshape(-1))
    lam = np.zeros((sel.size * C, 2))
    vecs: dict = {}
    _run(batch, np.repeat(m[sel], C), lam, vecs, np.arange(sel.size * C))
    s = np.sqrt(np.clip(lam, 0.0, None))
    if vecs:
        full = batch if not ops.on_device else _Batch(_NumpyOps(), mp, n_rows, batch.St_csr)
        for i, V in vecs.items():  # Rayleigh–Ritz: singular values of B·[v1 v2]
            s[i] = np.linalg.svd(full.dense(i) @ V.T, compute_uv=False)[:2]
    out[sel] = s.reshape(sel.size, C, 2)
