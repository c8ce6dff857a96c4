"""What compiled code could still gain: the spectral engine's own Lanczos eigenproblems of ResNet18 masks, solved again
by a numba implementation of the same algorithm, and the least CPU time an engine using those iterations needs,
against the budget of 30x the authors' method (issue 14).

The engine solves the larger eigenproblems of a mask (connected pieces whose smaller side has more than
``DENSE_MAX`` nodes, binary and weighted channel) with a batched Lanczos iteration written in numpy.  This script
records those problems as the engine meets them (``pags_core.spectral.svd.lanczos_top2`` wrapped) and solves them
again with compiled code: per piece the Gram matrix BᵀB on its smaller side, both channels iterated together over
one read of the piece's indices (they share the edges), full reorthogonalisation, the engine's stopping rule (top
Ritz values of T_k, error bounds min(r, r²/gap) ≤ 1e-11 of their size) and its check schedule.  Its results check
the recording (they must equal the engine's) and give the steps each piece and channel needs.  Then it times only
the Gram products of those steps in the compiled kernel, the engine's own sparse products (scipy's kernels, timed
inside the engine), and reading the masks: a Lanczos iteration with this stopping rule needs the products, and any
engine reads the masks, whatever else it does faster.

Rows (CPU time per mask, best and median of ``--rounds`` interleaved rounds, one thread): the authors' method (as
``bench_spectral.py`` re-implements it) and 30x below it; the engine (``model_spectrum``), the part of it spent
inside ``lanczos_top2``, inside its sparse products, and everything else (Lanczos stubbed out); the compiled Gram
products; reading the masks (``np.flatnonzero`` of every layer); the faster products plus reading the masks.

Needs numba (not a dependency of pags_core): ``.venv/bin/python -m pip install numba``.  Without it the script says
so and exits 0, so that ``make bench`` runs the other benchmarks.

Command (writes benchmarks/results/compiled_lanczos_cpu.md):
    .venv/bin/python benchmarks/bench_compiled_lanczos.py [--masks 2] [--density 0.01] [--rounds 5]
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import pags_core
from pags_core.spectral import lanczos, model_spectrum, svd
from pags_core.spectral.svd import csr_arrays

from bench_spectral import _StageClock, authors_frame, blas_one_thread, limits, load, per_mask

HERE = Path(__file__).resolve().parent
COMMAND = ".venv/bin/python benchmarks/bench_compiled_lanczos.py"

try:
    import numba
except ImportError:  # pragma: no cover - optional
    numba = None


# ---- the engine's Lanczos problems, as it meets them ----------------------------------------------------------
class Problems:
    """The pieces of every ``lanczos_top2`` call of the engine, laid out for the compiled solver: the rows of every
    piece's smaller side in one CSR (``ip``; ``ix`` the tall node within the piece; ``dt`` (E, 2) the binary and the
    weighted channel), piece p owning rows ``moff[p]``.. and ``toff[p+1] - toff[p]`` tall nodes.  Also kept: the
    engine's σ (piece, channel, top-2)."""

    def __init__(self):
        self.calls = []

    def record(self, tall, short, vals, piece, m, n_tall, sigma, edges=None):
        if vals.shape[1] != 2:
            raise ValueError("bench_compiled_lanczos expects the binary and the weighted channel together (weights "
                             "without zeros inside the mask)")
        e = np.arange(piece.size) if edges is None else edges
        p, s, t = piece[e], short[e], tall[e]
        moff, toff = (np.concatenate(([0], np.cumsum(v, dtype=np.int64))) for v in (m, n_tall))
        ip, ix, order = csr_arrays(int(moff[-1]), moff[p] + s, t)  # counting sort: rows keep the edge order
        self.calls.append(dict(moff=moff, toff=toff, ip=ip, ix=ix, dt=np.ascontiguousarray(vals[e][order]),
                               sigma=sigma))

    def wrap(self):
        """Record every ``lanczos_top2`` call until the returned original is put back."""
        saved = svd.lanczos_top2

        def recording(tall, short, vals, piece, n_piece, m, n_tall, *, device=None, edges=None):
            sigma = saved(tall, short, vals, piece, n_piece, m, n_tall, device=device, edges=edges)
            self.record(tall, short, vals, piece, m, n_tall, sigma, edges)
            return sigma
        svd.lanczos_top2 = recording
        return saved


# ---- the compiled solver ------------------------------------------------------------------------------------------
def build_kernels():
    """The numba kernels (compiled on first call, then cached beside this file)."""
    TOL, RANK_TOL, RATE, MAX_AHEAD = lanczos.TOL, lanczos.RANK_TOL, lanczos.RATE, lanczos.MAX_AHEAD
    FIRST, SLOPE, MAX_STEPS = lanczos.FIRST_CHECK, lanczos.FIRST_CHECK_SLOPE, lanczos.MAX_STEPS
    njit = numba.njit(cache=True)

    @njit
    def gram(c, p, X, u, Y, ch):
        """Y[:, k] = BᵀB X[:, k] for piece p, both channels (``ch`` < 0) or channel ``ch`` only: u = B X as a scatter
        and Y = Bᵀ u as a gather, both over the rows of the smaller side (few, long rows), as scipy's kernels do."""
        ip, ix, dt, moff, toff = c
        r0, m = moff[p], moff[p + 1] - moff[p]
        u[:toff[p + 1] - toff[p]] = 0.0
        for j in range(m):
            for e in range(ip[r0 + j], ip[r0 + j + 1]):
                t = ix[e]
                if ch < 0:
                    u[t, 0] += dt[e, 0] * X[j, 0]
                    u[t, 1] += dt[e, 1] * X[j, 1]
                else:
                    u[t, ch] += dt[e, ch] * X[j, ch]
        for j in range(m):
            s0, s1 = 0.0, 0.0
            for e in range(ip[r0 + j], ip[r0 + j + 1]):
                t = ix[e]
                if ch < 0:
                    s0 += dt[e, 0] * u[t, 0]
                    s1 += dt[e, 1] * u[t, 1]
                else:
                    s0 += dt[e, ch] * u[t, ch]
            if ch < 0:
                Y[j, 0], Y[j, 1] = s0, s1
            else:
                Y[j, ch] = s0

    @njit
    def test(alpha, beta, k):
        """(excess, θ1, θ2) of T_k: excess <= 1 means both wanted values have converged (the engine's rule)."""
        T = np.zeros((k, k))
        for i in range(k):
            T[i, i] = alpha[i]
            if i + 1 < k:
                T[i, i + 1] = beta[i]
                T[i + 1, i] = beta[i]
        w, V = np.linalg.eigh(T)
        t1 = w[k - 1]
        t2 = w[k - 2] if k > 1 else 0.0
        t3 = w[k - 3] if k > 2 else 0.0
        bk = beta[k - 1]
        r1 = abs(bk * V[k - 1, k - 1])
        r2 = abs(bk * V[k - 1, k - 2]) if k > 1 else 0.0
        g1, g2 = t1 - t2, min(t1 - t2, t2 - t3)
        b1 = min(r1, r1 * r1 / g1) if g1 > 0 else r1
        b2 = min(r2, r2 * r2 / g2) if g2 > 0 else r2
        s2 = max(t2, RANK_TOL * t1)
        ex1 = b1 / (TOL * t1) if t1 > 0 else np.inf
        ex2 = b2 / (TOL * s2) if s2 > 0 else np.inf
        return max(ex1, ex2), t1, t2

    @njit
    def solve(c, start, lam, steps):
        """Lanczos with full reorthogonalisation on every piece: λ1, λ2 of BᵀB per piece and channel into ``lam``,
        the steps each channel took into ``steps``."""
        moff, toff = c[3], c[4]
        n = moff.size - 1
        u = np.zeros((max(1, np.max(toff[1:] - toff[:-1])), 2))
        for p in range(n):
            m = moff[p + 1] - moff[p]
            kcap = min(MAX_STEPS, m)
            cap = min(kcap, 64) + 1
            Q = np.empty((2, cap, m))
            for ch in range(2):
                Q[ch, 0] = start[:m] / np.sqrt(np.dot(start[:m], start[:m]))
            alpha, beta = np.zeros((2, kcap + 1)), np.zeros((2, kcap + 1))
            X, W = np.zeros((m, 2)), np.zeros((m, 2))
            live = np.ones(2, dtype=np.bool_)
            due = np.full(2, FIRST + int(round(SLOPE * math.log2(max(m, 32) / 32.0))))
            last_k, last_ex = np.full(2, -1), np.zeros(2)
            k = 0
            while True:
                for ch in range(2):
                    X[:, ch] = Q[ch, k]
                gram(c, p, X, u, W, -1 if live[0] and live[1] else (0 if live[0] else 1))
                if k + 1 >= cap:  # a longer basis
                    Q2 = np.empty((2, min(2 * cap, kcap + 1), m))
                    Q2[:, :cap] = Q
                    Q, cap = Q2, Q2.shape[1]
                for ch in range(2):
                    if not live[ch]:
                        continue
                    w = W[:, ch].copy()
                    a = np.dot(Q[ch, k], w)
                    w -= a * Q[ch, k]
                    if k:
                        w -= beta[ch, k - 1] * Q[ch, k - 1]
                    n0 = np.dot(w, w)
                    n1 = n0
                    for _ in range(2):  # classical Gram-Schmidt against the basis; twice where it removed much
                        h = Q[ch, :k + 1] @ w
                        w -= h @ Q[ch, :k + 1]
                        a += h[k]
                        n1 = np.dot(w, w)
                        if n1 >= 0.5 * n0:
                            break
                        n0 = n1
                    b = math.sqrt(n1)
                    alpha[ch, k], beta[ch, k] = a, b
                    Q[ch, k + 1] = w / b if b > 1e-12 * a else 0.0 * w
                k += 1
                for ch in range(2):
                    if not live[ch]:
                        continue
                    done = k >= kcap or beta[ch, k - 1] <= 1e-12 * alpha[ch, k - 1]
                    if k < due[ch] and not done:
                        continue
                    ex, t1, t2 = test(alpha[ch], beta[ch], k)
                    if ex <= 1.0 or done:
                        live[ch] = False
                        lam[p, ch, 0], lam[p, ch, 1], steps[p, ch] = t1, t2, k
                        continue
                    rate = RATE
                    if last_k[ch] >= 0 and last_ex[ch] > ex:
                        rate = max(rate, (math.log(last_ex[ch]) - math.log(ex)) / max(k - last_k[ch], 1))
                    due[ch] = k + int(min(MAX_AHEAD, max(1, math.ceil(math.log(ex) / rate))))
                    last_k[ch], last_ex[ch] = k, ex
                if not live[0] and not live[1]:
                    break

    @njit
    def matvecs(c, steps):
        """Only the Gram products: piece p's both channels together for min(steps[p]) steps, then the channel still
        iterating alone, as many as it took."""
        moff, toff = c[3], c[4]
        u = np.zeros((max(1, np.max(toff[1:] - toff[:-1])), 2))
        for p in range(moff.size - 1):
            m = moff[p + 1] - moff[p]
            X, W = np.ones((m, 2)), np.empty((m, 2))
            s0, s1 = steps[p, 0], steps[p, 1]
            for _ in range(min(s0, s1)):
                gram(c, p, X, u, W, -1)
            for _ in range(abs(s0 - s1)):
                gram(c, p, X, u, W, 0 if s0 > s1 else 1)

    return solve, matvecs


def arrays(c):
    """The tuple of arrays the kernels read."""
    return c["ip"], c["ix"], c["dt"], c["moff"], c["toff"]


def compiled(kernels, calls):
    """Solve every recorded call: [(λ per piece, channel and top-2; steps per piece and channel)] per call."""
    solve, _ = kernels
    out = []
    for c in calls:
        m = np.diff(c["moff"])
        n, M = m.size, int(m.max())
        lam, steps = np.zeros((n, 2, 2)), np.zeros((n, 2), dtype=np.int64)
        start = lanczos._start_block(1, M, np.array([M]))[0]  # the engine's start vector, cut per piece in `solve`
        solve(arrays(c), start, lam, steps)
        out.append((lam, steps))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--masks", type=int, default=2)
    ap.add_argument("--density", type=float, default=0.01)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results" / "compiled_lanczos_cpu.md"))
    args = ap.parse_args(argv)
    if numba is None:
        print("bench_compiled_lanczos: skipped, numba is not installed (.venv/bin/python -m pip install numba); "
              "pags_core does not need it", file=sys.stderr)
        return 0
    torch.set_num_threads(1)
    load_start = load()
    with blas_one_thread():
        torch.manual_seed(0)
        model = pags_core.make_model("resnet18", num_classes=100)
        masks = [pags_core.generate_mask(model, "erk", args.density, seed=s) for s in range(args.masks)]
        probs = Problems()
        saved = probs.wrap()
        try:
            for mk in masks:
                model_spectrum(model, mk)
        finally:
            svd.lanczos_top2 = saved
        kernels = build_kernels()
        t = time.perf_counter()
        res = compiled(kernels, probs.calls)  # compiles on the first call (or loads numba's cache)
        kernels[1](arrays(probs.calls[0]), res[0][1])  # and the products-only kernel
        t_compile = time.perf_counter() - t
        worst, n_steps, n_pieces = 0.0, np.concatenate([st.reshape(-1) for _, st in res]), 0
        for c, (lam, _) in zip(probs.calls, res):
            sig, ref = np.sqrt(np.clip(lam, 0.0, None)), c["sigma"]
            ok = ref[..., 1] >= 1e-3 * ref[..., 0]  # σ2 the engine did not recompute by Rayleigh–Ritz
            worst = max(worst, float(np.max(np.abs(sig[..., 0] - ref[..., 0]) / ref[..., 0])),
                        float(np.max(np.abs(sig[..., 1] - ref[..., 1])[ok] / ref[..., 0][ok], initial=0.0)))
            n_pieces += c["moff"].size - 1
        _, matvecs = kernels
        flat = [[v.numpy().reshape(-1) for v in mk.values()] for mk in masks]
        MV, READ = "compiled Gram products alone (numba), the same step counts", "reading the masks (np.flatnonzero)"
        timed = {  # functions of the list of masks, timed per mask
            "authors' method": lambda ms: [authors_frame(model, mk) for mk in ms],
            "engine (model_spectrum)": lambda ms: [model_spectrum(model, mk) for mk in ms],
            MV: lambda ms: [matvecs(arrays(c), st) for c, (_, st) in zip(probs.calls, res)],
            READ: lambda ms: [[np.flatnonzero(v) for v in f] for f in flat],
        }
        stages = {"lanczos": [(svd, "lanczos_top2")], "products": [(lanczos, "_csr_mv_into"),
                                                                   (lanczos, "_csrT_mv_into")]}
        runs = {k: [] for k in [*timed, *stages]}
        for _ in range(args.rounds):  # rounds interleave the paths, so a burst of load hits all of them alike
            for k, fn in timed.items():
                runs[k].append(per_mask(fn, masks)[1])
            for k, targets in stages.items():  # one stage per pass: its wrappers' clock reads land in no other
                with _StageClock(dict(enumerate(targets))) as clock:
                    for mk in masks:
                        model_spectrum(model, mk)
                runs[k].append(sum(clock.seconds.values()) / len(masks))
        floor, _ = limits(model, masks, args.rounds, chunk_masks=())
    load_end = load()
    best = {k: min(v) for k, v in runs.items()}
    med = {k: float(np.median(v)) for k, v in runs.items()}
    budget = best["authors' method"] / 30
    lower = min(best[MV], best["products"]) + best[READ]
    rows = [("authors' method", best["authors' method"], med["authors' method"]),
            ("budget: 30x faster than the authors' method", budget, med["authors' method"] / 30),
            ("engine (model_spectrum)", best["engine (model_spectrum)"], med["engine (model_spectrum)"]),
            ("engine: its Lanczos iterations (inside lanczos_top2)", best["lanczos"], med["lanczos"]),
            ("engine: its sparse products (scipy's kernels, inside the Lanczos iterations)", best["products"],
             med["products"]),
            ("engine: everything else (Lanczos stubbed out)", floor, math.nan),
            (MV, best[MV], med[MV]),
            (READ, best[READ], med[READ]),
            ("the faster of the two products + reading the masks: least time of an engine using these iterations",
             lower, math.nan)]
    md = "| CPU time per ResNet18 mask | best round, ms | median round, ms |\n|:--|--:|--:|\n" + "".join(
        f"| {k} | {1e3 * b:.1f} | {'' if math.isnan(m) else f'{1e3 * m:.1f}'} |\n" for k, b, m in rows)
    checks = [f"compiled Lanczos vs the engine: max relative difference of σ1, σ2 over {n_pieces // args.masks} "
              f"pieces per mask, binary and weighted, {worst:.1e}",
              f"steps the compiled Lanczos took per piece and channel: median {np.median(n_steps):.0f}, "
              f"max {int(n_steps.max())}",
              f"numba compile (or cache load) of the kernels: {t_compile:.1f} s",
              f"Sparse products + reading the masks {1e3 * lower:.1f} ms against the budget of {1e3 * budget:.1f} ms per mask: " +
              ("the sparse products and reading the masks alone exceed the budget" if lower > budget else
               f"{1e3 * (budget - lower):.1f} ms would be left for everything else the engine does")]
    machine = (f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, numpy "
               f"{np.__version__}, numba {numba.__version__}; one thread (torch and BLAS); load average (1/5/15 min) "
               f"{load_start} at the start, {load_end} at the end; {args.rounds} interleaved rounds, CPU time of "
               "this process")
    text = (f"# Compiled Lanczos: the least time against the 30x budget (CPU)\n\nCommand: `{COMMAND} --masks "
            f"{args.masks} --density {args.density} --rounds {args.rounds}`\n\nResNet18 (CIFAR-style, 100 classes, "
            f"θ0 = init), ERK at density {args.density}, convention `neurips2023`, full metric set. Machine: "
            f"{machine}.\n\n{md}\nChecks in the same run:\n\n" + "".join(f"- {c}\n" for c in checks))
    print(md)
    print("\n".join(checks))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
