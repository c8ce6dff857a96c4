"""Speed of the spectral engine against a re-implementation of the authors' published method, measured in one run on
the same masks (issue 14), and agreement with the dense oracle.

Setting: CIFAR-style ResNet18 and ResNet34 with 100 classes (``make_model(name, num_classes=100)``, θ0 = its
init), ERK masks at density 0.01 (seeds 0, 1, ...), convention ``neurips2023``, the full per-layer metric set with
weights and degree groups (binary and weighted Δr, λ, Δr_imdb, λ_imsg, FS, μ's, mixing terms).  Rows:

* **engine, per mask** — ``model_spectrum`` (all eigenproblems of one mask solved together);
* **engine, batched P = 8 / 64** — ``score_population`` on P masks, time per mask;
* **layer_spectrum per layer** — one ``layer_spectrum`` call per layer (the per-layer path);
* **authors' method** — this file's re-implementation of the published procedure: per layer and per degree group,
  the (|L'|+|R'|)² adjacency [[0, B], [Bᵀ, 0]] as a float32 scipy sparse matrix and ``eigsh(A, k=3, which="LM")``
  with scipy's defaults as the published code calls it (default tolerance and ``ncv``, eigenvectors returned),
  |eigenvalues| sorted, μ0 at position 0 and μ̂ at position 2, binary and weighted graphs, then the same formulas;
* **dense oracle** — ``reference_layer_spectrum`` (numpy eigvalsh of every full adjacency) on a small model
  (ResNet18 at width 1/8), where it is affordable, against the engine on the same masks.

Every timed path runs single-threaded (torch and BLAS limited to one thread), in ``--rounds`` rounds that interleave
the paths; the table reports each path's best round, wall-clock and CPU time separately (CPU time of the process:
the machine is shared), and the checks also the median round.  Agreement: max relative difference
over all finite metric values (absolute where the reference is below 1e-8 in size), and whether the +inf/NaN
patterns coincide; the float32 baseline agrees to about 1e-4, the oracle to about 1e-12.

Command (writes benchmarks/results/spectral_cpu.md and .csv):
    .venv/bin/python benchmarks/bench_spectral.py [--models resnet18 resnet34] [--masks 4] [--baseline-masks 2]
        [--population 8 64] [--density 0.01] [--rounds 3] [--chunk-masks 1 4 16]

It ends with what bounds the engine on the CPU: the time of everything but the Lanczos iterations (solver stubbed
out) and ``score_population`` with 1, 4 and 16 masks per chunk.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import torch

import pags_core
from pags_core.models import layer_geometry, prunable_parameters
from pags_core.spectral import (METRIC_FIELDS, layer_spectrum, model_spectrum, reference_layer_spectrum,
                                score_population)

HERE = Path(__file__).resolve().parent
COMMAND = ".venv/bin/python benchmarks/bench_spectral.py"
COORDS = ("ramanujan_gap", "weighted_gap", "imdb", "imsg", "full_spectrum", "mu0", "mu_hat", "weighted_mu0",
          "weighted_mu_hat")


# ---- the authors' published method, re-implemented (neurips2023, layer graph left = outputs for the gate) --------
def _eigsh_top(B: sp.csr_matrix) -> tuple[float, float]:
    """(μ0, μ̂) of a biadjacency via ``eigsh(A, k=3, which="LM")`` of its float32 (|L'|+|R'|)² adjacency A, built as
    the published code builds it (a COO array holding both directions of every edge, isolated nodes removed)."""
    B = B.tocoo()
    if B.nnz == 0:
        return 0.0, 0.0
    left, rows = np.unique(B.row, return_inverse=True)
    right, cols = np.unique(B.col, return_inverse=True)
    nl, n = left.size, left.size + right.size
    A = sp.coo_array((np.concatenate([B.data, B.data]), (np.concatenate([rows, cols + nl]), np.concatenate([cols + nl, rows]))),
                     shape=(n, n), dtype=np.float32)
    if n <= 3:  # eigsh needs k < n
        a = np.sort(np.abs(np.linalg.eigvalsh(A.toarray())))[::-1]
    else:
        a = np.sort(np.abs(sla.eigsh(A, k=3, which="LM")[0]))[::-1]  # the published call: defaults, vectors too
    return float(a[0]), float(a[2]) if a.size > 2 else 0.0


def _n_cols(B: sp.csr_matrix) -> int:
    return int(np.unique(B.indices).size)


def authors_layer(mask: np.ndarray, weight: np.ndarray) -> dict:
    """The NeurIPS-2023 metric set of one layer, the published way (one eigsh per graph): the biadjacency (inputs ×
    outputs) as a sparse matrix, the degree groups as its row slices."""
    R, F = mask.shape[0], int(np.prod(mask.shape[1:]))
    flat = np.flatnonzero(mask.reshape(-1))
    o, j = flat // F, flat % F
    wv = np.abs(weight.reshape(-1)[flat]).astype(np.float32)
    Bb = sp.csr_matrix((np.ones(flat.size, dtype=np.float32), (j, o)), shape=(F, R))
    Bw = sp.csr_matrix((wv, (j, o)), shape=(F, R))
    Bw.eliminate_zeros()  # a zero weight inside the mask is no edge of the weighted graph
    fo, fi = np.diff(Bb.indptr), np.bincount(o, minlength=R)
    e, nl, nr = int(flat.size), int((fo > 0).sum()), int((fi > 0).sum())
    d_in, d_out = (e / nl if nl else math.nan), (e / nr if nr else math.nan)
    ok = e > 0 and d_out >= 3 and d_in > 1
    mu0, mu_hat = _eigsh_top(Bb)
    r = {"mu0": mu0 if e else math.nan, "mu_hat": mu_hat if e else math.nan}
    r["ramanujan_gap"] = (math.sqrt(d_in - 1) + math.sqrt(d_out - 1) - mu_hat) if ok else math.inf
    ew, nlw, nrw = int(Bw.nnz), int((np.diff(Bw.indptr) > 0).sum()), _n_cols(Bw)
    w0, wh = _eigsh_top(Bw)
    r["weighted_mu0"], r["weighted_mu_hat"] = (w0, wh) if ew else (math.nan, math.nan)
    okw = ew > 0 and ew / nrw >= 3 and ew / nlw > 1
    r["weighted_gap"] = (w0 - wh) if okw else math.inf
    drs, lams = [], []
    for d in np.unique(fo[fo > 0]):
        members = np.flatnonzero(fo == d)
        n = members.size
        if n < 2:
            continue
        Bg = Bb[members]
        rg = _n_cols(Bg)
        if not (d >= 3 and d * n / rg > 1):
            continue
        g0, gh = _eigsh_top(Bg)
        c = max(n, rg) / (n + rg - 1)
        drs.append(c * (math.sqrt(d - 1) + math.sqrt(d * n / rg - 1) - gh))
        Wg = Bw[members]
        gew = int(Wg.nnz)
        if gew and gew / (np.diff(Wg.indptr) > 0).sum() >= 3 and gew / _n_cols(Wg) > 1:
            a0, ah = _eigsh_top(Wg)
            lams.append(c * (a0 - ah))
        else:
            lams.append(math.inf)
    r["imdb"] = float(np.mean(drs)) if drs else 0.0
    r["imsg"] = float(np.mean(lams)) if lams else 0.0
    v = np.array([r["ramanujan_gap"], r["weighted_gap"], r["imdb"], r["imsg"]])
    r["full_spectrum"] = float(np.linalg.norm(np.where(np.isfinite(v), v, 0.0)))
    return r


def authors_frame(model, mask) -> pd.DataFrame:
    return pd.DataFrame.from_dict({n: authors_layer(mask[n].numpy(), w.detach().numpy())
                                   for n, w in prunable_parameters(model).items()}, orient="index")


# ---- helpers ---------------------------------------------------------------------------------------------------
def compare(fast: pd.DataFrame, ref: pd.DataFrame, cols) -> tuple[float, bool]:
    """(max relative difference over finite reference values — absolute below 1e-8 —, inf/NaN patterns equal)."""
    a = fast.loc[ref.index, list(cols)].to_numpy(np.float64)
    b = ref[list(cols)].to_numpy(np.float64)
    fin = np.isfinite(b)
    same = bool(np.array_equal(np.isnan(a), np.isnan(b)) and np.array_equal(np.isposinf(a), np.isposinf(b)))
    diff, scale = np.abs(a[fin] - b[fin]), np.abs(b[fin])
    rel = np.where(scale >= 1e-8, diff / np.where(scale >= 1e-8, scale, 1.0), diff)
    return (float(rel.max()) if rel.size else 0.0), same


def per_mask(fn, masks) -> tuple[float, float]:
    """(wall-clock, CPU) seconds per mask of ``fn(masks)``."""
    t, c = time.perf_counter(), time.process_time()
    fn(masks)
    return (time.perf_counter() - t) / len(masks), (time.process_time() - c) / len(masks)


class _StageClock:
    """CPU seconds spent inside chosen functions of the engine, by wrapping them where they are looked up (a few
    hundred calls per mask: far less overhead than a profiler, which inflates every numpy call)."""

    def __init__(self, targets: dict):
        self.targets, self.seconds, self.saved = targets, dict.fromkeys(targets, 0.0), []

    def __enter__(self):
        for name, (owner, attr) in self.targets.items():
            fn = getattr(owner, attr)
            self.saved.append((owner, attr, fn))

            def timed(*a, _fn=fn, _name=name, **k):
                t = time.process_time()
                try:
                    return _fn(*a, **k)
                finally:
                    self.seconds[_name] += time.process_time() - t
            setattr(owner, attr, timed)
        return self

    def __exit__(self, *exc):
        for owner, attr, fn in reversed(self.saved):
            setattr(owner, attr, fn)


def breakdown(model, masks) -> pd.DataFrame:
    """Where a mask's CPU time goes: the engine's stages (``model_spectrum``, timed inside the functions that carry
    them) and the authors' method's ``eigsh`` calls against everything else it does."""
    from pags_core.spectral import lanczos, network, stats, svd

    targets = {"mv": (lanczos, "_csr_mv_into"), "mvT": (lanczos, "_csrT_mv_into"), "checks": (lanczos, "_test"),
               "run": (lanczos, "_run"), "lanczos": (svd, "lanczos_top2"), "top2": (stats, "top2_many"),
               "stats": (network, "layer_stats"), "input": (network, "layer_input")}
    with _StageClock(targets) as clock:
        t = time.process_time()
        for m in masks:
            model_spectrum(model, m)
        total = time.process_time() - t
    c = clock.seconds
    mv = c["mv"] + c["mvT"]
    stages = {"sparse mat-vecs (Lanczos)": mv, "convergence checks (dstemr)": c["checks"],
              "rest of the Lanczos steps (reorthogonalisation, vector updates, bookkeeping)": c["run"] - mv - c["checks"],
              "Lanczos set-up (batches, CSR arrays)": c["lanczos"] - c["run"],
              "connected components, dense small problems, merging": c["top2"] - c["lanczos"],
              "graph statistics and degree groups (without the solver)": c["stats"] - c["top2"],
              "reading masks and weights": c["input"],
              "rest (layers of the model, metrics, DataFrame)": total - c["stats"] - c["input"]}
    rows = [{"path": "engine", "stage": k, "ms/mask": 1e3 * v / len(masks), "share": v / total} for k, v in stages.items()]
    with _StageClock({"eigsh": (sla, "eigsh")}) as clock:
        t = time.process_time()
        authors_frame(model, masks[0])
        total_a = time.process_time() - t
    eig = clock.seconds["eigsh"]
    rows += [{"path": "authors' method", "stage": "eigsh (ARPACK)", "ms/mask": 1e3 * eig, "share": eig / total_a},
             {"path": "authors' method", "stage": "graphs, degree groups, adjacency set-up, metrics",
              "ms/mask": 1e3 * (total_a - eig), "share": 1 - eig / total_a}]
    return pd.DataFrame(rows)


def limits(model, masks, rounds: int, chunk_masks=(1, 4, 16)) -> tuple[float, pd.DataFrame]:
    """What bounds the engine on the CPU: (CPU seconds per mask of ``model_spectrum`` with the Lanczos iterations
    replaced by a stub returning ones, i.e. everything else the engine does; ``score_population`` CPU seconds per
    mask on ``len(masks)`` masks solved in chunks of each of ``chunk_masks`` masks)."""
    from pags_core.spectral import population, svd

    def best(fn):  # CPU seconds per mask, best of the rounds
        return min(per_mask(fn, masks)[1] for _ in range(rounds))

    saved = svd.lanczos_top2
    svd.lanczos_top2 = lambda tall, short, vals, piece, n_piece, *a, **k: np.ones((n_piece, vals.shape[1], 2))
    try:
        floor = best(lambda ms: [model_spectrum(model, m) for m in ms])
    finally:
        svd.lanczos_top2 = saved
    kept = int(sum(int(v.sum()) for v in masks[0].values()))
    rows, saved_chunk = [], population.CHUNK_EDGES
    try:
        for c in chunk_masks:
            population.CHUNK_EDGES = kept * c + c  # score_population then takes c masks per chunk
            rows.append({"masks per chunk": c, "s/mask": best(
                lambda ms: score_population(model, ms, device="cpu", progress=False))})
    finally:
        population.CHUNK_EDGES = saved_chunk
    return floor, pd.DataFrame(rows)


def blas_one_thread():
    from threadpoolctl import threadpool_limits
    return threadpool_limits(1)


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet18", "resnet34"])
    ap.add_argument("--masks", type=int, default=4, help="masks timed per mask on the engine and per-layer paths")
    ap.add_argument("--baseline-masks", type=int, default=2, help="masks timed on the authors' method")
    ap.add_argument("--population", type=int, nargs="+", default=[8, 64], help="P of the batched rows (ResNet18)")
    ap.add_argument("--density", type=float, default=0.01)
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds; the table reports the best round")
    ap.add_argument("--chunk-masks", type=int, nargs="+", default=[1, 4, 16],
                    help="masks per chunk of score_population in the limits section (ResNet18)")
    ap.add_argument("--out", default=str(HERE / "results" / "spectral_cpu"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load_start = load()
    rows, checks, spread, prof, lim = [], [], {}, None, None
    with blas_one_thread():
        for mname in args.models:
            torch.manual_seed(0)
            model = pags_core.make_model(mname, num_classes=100)
            n_masks = max([args.masks, args.baseline_masks] +
                          (args.population + args.chunk_masks if mname == "resnet18" else []))
            masks = [pags_core.generate_mask(model, "erk", args.density, seed=s) for s in range(n_masks)]
            params = prunable_parameters(model)
            geo = layer_geometry(model)
            model_spectrum(model, masks[0])  # warm-up (imports, caches)
            base = []
            paths = {  # name -> (function of a list of masks, the masks); time per mask
                "authors' method": (lambda ms: base.append([authors_frame(model, m) for m in ms]),
                                    masks[:args.baseline_masks]),
                "layer_spectrum per layer": (lambda ms: [[layer_spectrum(m[n], w.detach(), name=n, groups=geo[n].groups)
                                                          for n, w in params.items()] for m in ms], masks[:args.masks]),
                "engine per mask": (lambda ms: [model_spectrum(model, m) for m in ms], masks[:args.masks]),
            }
            for P in (args.population if mname == "resnet18" else []):
                paths[f"batched P={P}"] = (lambda ms: score_population(model, ms, device="cpu", progress=False),
                                           masks[:P])
            runs = {k: [] for k in paths}
            for _ in range(args.rounds):  # rounds interleave the paths, so a burst of load hits all of them alike
                for k, (fn, ms) in paths.items():
                    runs[k].append(per_mask(fn, ms))
            timed = {k: tuple(min(r[i] for r in v) for i in (0, 1)) for k, v in runs.items()}  # best round, per clock
            spread[mname] = {k: tuple(float(np.median([r[i] for r in v])) for i in (0, 1)) for k, v in runs.items()}
            t_base, t_engine = timed["authors' method"], timed["engine per mask"]
            if mname == "resnet18":
                prof = breakdown(model, masks[:args.masks])
                lim = limits(model, masks[:max(args.chunk_masks)], args.rounds, args.chunk_masks)
            err, same = compare(model_spectrum(model, masks[0]), base[0][0], COORDS)
            checks.append(f"{mname}: engine vs authors' method (float32) max rel diff {err:.1e}, inf/NaN equal {same}")
            for clock, i in (("wall", 0), ("CPU", 1)):
                res = {"model": mname, "clock": clock, "layers": len(params),
                       "edges/mask": int(sum(int(masks[0][n].sum()) for n in params))}
                res.update({f"{k} s/mask": v[i] for k, v in timed.items()})
                res["engine vs authors"] = t_base[i] / t_engine[i]
                rows.append(res)
                print(res, file=sys.stderr)
        # the dense oracle on a small model, against the engine on the same masks
        torch.manual_seed(0)
        small = pags_core.make_model("resnet18", num_classes=100, width=1 / 8)
        smasks = [pags_core.generate_mask(small, "erk", 0.05, seed=s) for s in range(2)]
        sp_params = prunable_parameters(small)
        oracle = []
        t_oracle = per_mask(lambda ms: oracle.extend(pd.DataFrame.from_dict(
            {n: reference_layer_spectrum(m[n], w.detach()) for n, w in sp_params.items()}, orient="index") for m in ms),
            smasks)[1]
        t_small = min(per_mask(lambda ms: [model_spectrum(small, m) for m in ms], smasks)[1] for _ in range(args.rounds))
        worst = max(compare(model_spectrum(small, m), o, [c for c in METRIC_FIELDS if c != "valid"])[0]
                    for m, o in zip(smasks, oracle))
        same = all(compare(model_spectrum(small, m), o, [c for c in METRIC_FIELDS if c != "valid"])[1]
                   for m, o in zip(smasks, oracle))
        checks.append(f"resnet18 width 1/8, ERK 0.05: engine vs dense oracle max rel diff {worst:.1e} over every metric, "
                      f"inf/NaN equal {same}; CPU time: oracle {t_oracle:.2f} s/mask, engine {t_small * 1e3:.1f} ms/mask "
                      f"(x{t_oracle / t_small:.0f})")
    load_end = load()
    table = pd.DataFrame(rows)
    for r in rows:  # the targets, read off this run
        if r["model"] != "resnet18":
            continue
        verdict = [f"engine {r['engine per mask s/mask']:.3f} s/mask (target <= 0.1)",
                   f"{r['engine vs authors']:.1f}x the authors' method (target >= 30x)"]
        for P, want in ((8, 1.0), (64, 2.0)):
            key = f"batched P={P} s/mask"
            if key in r:
                verdict.append(f"P={P}: per-layer path / batched = {r['layer_spectrum per layer s/mask'] / r[key]:.2f} "
                               f"(target >= {want:g})")
        i = 0 if r["clock"] == "wall" else 1
        med = spread["resnet18"]
        verdict.append("median round: engine {:.3f} s/mask, {:.1f}x the authors' method{}".format(
            med["engine per mask"][i], med["authors' method"][i] / med["engine per mask"][i],
            "".join(f", P={P} ratio {med['layer_spectrum per layer'][i] / med[f'batched P={P}'][i]:.2f}"
                    for P in (8, 64) if f"batched P={P}" in med)))
        checks.append(f"resnet18 targets ({r['clock']} time): " + "; ".join(verdict))
    fmt = table.copy()
    for c in fmt.columns:
        if c.endswith("s/mask"):
            fmt[c] = fmt[c].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    fmt["engine vs authors"] = table["engine vs authors"].map(lambda v: f"{v:.0f}x")
    md = fmt.to_markdown(index=False)
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
               f"torch {torch.__version__}, numpy {np.__version__}; one thread (torch and BLAS); load average "
               f"(1/5/15 min) {load_start} at the start, {load_end} at the end. The machine is shared: with more "
               "runnable processes than cores, wall-clock time also counts time waiting for a core, so each row is "
               "given in wall-clock and in CPU time of this process (equal on an idle machine). Every path is timed "
               f"in {args.rounds} rounds that interleave the paths; the table gives each path's best round (per clock), "
               "the checks also the median round")
    text = (f"# Spectral engine vs the authors' method (CPU)\n\nCommand: `{COMMAND} --models {' '.join(args.models)} "
            f"--masks {args.masks} --baseline-masks {args.baseline_masks} --population "
            f"{' '.join(map(str, args.population))} --density {args.density} --rounds {args.rounds} "
            f"--chunk-masks {' '.join(map(str, args.chunk_masks))}`\n\n"
            f"ERK masks at density {args.density}, CIFAR-style models with 100 classes (θ0 = `make_model` init), "
            "convention `neurips2023`, full per-layer metric set with weights and degree groups. Machine: "
            f"{machine}.\n\n{md}\n\nChecks in the same run:\n\n" + "".join(f"- {c}\n" for c in checks))
    if prof is not None:
        pf = prof.copy()
        pf["ms/mask"] = pf["ms/mask"].map(lambda v: f"{v:.1f}")
        pf["share"] = pf["share"].map(lambda v: f"{100 * v:.0f} %")
        text += ("\nWhere a ResNet18 mask's CPU time goes (the engine's masks and one mask of the authors' method, "
                 "timed once more inside the functions that carry each stage):\n\n"
                 + pf.to_markdown(index=False) + "\n")
    if lim is not None:
        floor, sweep = lim
        base18 = next(r for r in rows if r["model"] == "resnet18" and r["clock"] == "CPU")
        need = base18["authors' method s/mask"] / 30
        sw = sweep.copy()
        sw["s/mask"] = sw["s/mask"].map(lambda v: f"{v:.3f}")
        text += ("\nWhat bounds the engine (ResNet18, CPU time, best of the rounds): with the Lanczos iterations replaced "
                 f"by a stub, everything else the engine does takes {floor * 1e3:.1f} ms per mask, against "
                 f"{need * 1e3:.1f} ms per mask for 30x the authors' method measured above. Batching masks: "
                 f"`score_population` on {max(args.chunk_masks)} masks solved in chunks of a given number of masks "
                 "(one mask per chunk is the default on the CPU):\n\n" + sw.to_markdown(index=False) + "\n")
        checks.append(f"resnet18: engine without its Lanczos iterations {floor * 1e3:.1f} ms/mask; 30x the authors' "
                      f"method needs <= {need * 1e3:.1f} ms/mask")
    print(md)
    print("\n".join(checks))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".md").write_text(text)
    table.to_csv(args.out + ".csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
