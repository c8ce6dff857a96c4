"""Benchmark of the spectral engine against the dense-eigendecomposition baseline (issue 3).

For CIFAR-style ResNet18 (21 prunable layers) and ResNet34 (37) at ERK density 0.01, the full per-layer metric set
(binary + weighted Δr, λ, IMDB, IMSG, FS and the rest; convention neurips2023, weights = θ0) is computed
  * fast:     pags_core.model_spectrum (sparse top-2 singular values), averaged over several ERK masks, and
  * baseline: pags_core.spectral.reference_layer_spectrum on every layer (numpy eigvalsh of every full
              (|L'|+|R'|)² adjacency: whole layers and every degree group, binary and weighted), timed in the same run.
The values of the first mask are compared: relative difference |a−b|/|b| where |b| ≥ 1e-8, absolute difference for
values that are zero up to rounding (|b| < 1e-8, e.g. μ̂ of a dense layer); +inf/NaN must coincide.

Command (writes benchmarks/results/spectral_cpu.md and .csv):
    .venv/bin/python benchmarks/bench_spectral.py [--models resnet18 resnet34] [--masks 5] [--density 0.01]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import pags_core
from pags_core.spectral import METRIC_FIELDS, model_spectrum, reference_layer_spectrum

HERE = Path(__file__).resolve().parent
COMMAND = ".venv/bin/python benchmarks/bench_spectral.py"


def compare(fast: pd.DataFrame, ref: pd.DataFrame) -> tuple[float, int, bool]:
    """(max difference as defined in the module docstring, number of finite values compared, inf/NaN patterns equal)."""
    cols = [c for c in METRIC_FIELDS if c != "valid"]
    a = fast[cols].to_numpy(np.float64)
    b = ref.loc[fast.index, cols].to_numpy(np.float64)
    fin = np.isfinite(b)
    same_pattern = bool(np.array_equal(np.isnan(a), np.isnan(b)) and np.array_equal(np.isinf(a) & (a > 0), np.isinf(b) & (b > 0)))
    diff = np.abs(a[fin] - b[fin])
    scale = np.abs(b[fin])
    rel = np.where(scale >= 1e-8, diff / np.where(scale >= 1e-8, scale, 1.0), diff)
    return (float(rel.max()) if rel.size else 0.0), int(fin.sum()), same_pattern


def reference_frame(model, mask) -> pd.DataFrame:
    rows = {}
    for name, w in pags_core.spectral.prunable_weights(model).items():
        rows[name] = reference_layer_spectrum(mask[name], w.detach(), "neurips2023")
    return pd.DataFrame.from_dict(rows, orient="index")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet18", "resnet34"])
    ap.add_argument("--masks", type=int, default=5, help="ERK masks timed on the fast path (seeds 0..masks-1)")
    ap.add_argument("--density", type=float, default=0.01)
    ap.add_argument("--out", default=str(HERE / "results" / "spectral_cpu"))
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    rows = []
    for mname in args.models:
        torch.manual_seed(0)
        model = pags_core.make_model(mname, num_classes=10)
        masks = [pags_core.generate_mask(model, "erk", args.density, seed=s) for s in range(args.masks)]
        n_layers = len(pags_core.spectral.prunable_weights(model))
        model_spectrum(model, masks[0], progress=False)  # warm-up (imports, caches)
        t = time.perf_counter()
        fast = [model_spectrum(model, mk, progress=False) for mk in masks]
        t_fast = (time.perf_counter() - t) / len(masks)
        t = time.perf_counter()
        ref = reference_frame(model, masks[0])
        t_ref = time.perf_counter() - t
        err, n_vals, pattern = compare(fast[0], ref)
        rows.append({
            "model": mname, "layers": n_layers, "density": args.density,
            "baseline s/mask (dense eigvalsh)": round(t_ref, 2), "fast s/mask": round(t_fast, 3),
            "speed-up": round(t_ref / t_fast, 1), "masks timed (fast)": len(masks),
            "max rel diff": f"{err:.1e}", "values compared": n_vals, "inf/NaN equal": pattern,
        })
        print(f"{mname}: baseline {t_ref:.2f} s, fast {t_fast:.3f} s/mask, x{t_ref / t_fast:.1f}, max diff {err:.1e}",
              file=sys.stderr)
    table = pd.DataFrame(rows)
    md = table.to_markdown(index=False)
    env = (f"CPU: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
           f"numpy {np.__version__}, threads {torch.get_num_threads()}; shared machine, timings are wall-clock.")
    text = (f"# Spectral engine vs dense baseline (CPU)\n\nCommand: `{COMMAND} "
            f"--models {' '.join(args.models)} --masks {args.masks} --density {args.density}`\n\n"
            f"ERK masks at density {args.density} on CIFAR-style models (10 classes, θ0 = `make_model` init), convention "
            f"`neurips2023`, full metric set per layer (binary + weighted). Baseline = `reference_layer_spectrum` "
            f"(numpy eigvalsh of every full adjacency), one mask, same run. {env}\n\n"
            "max rel diff: |a−b|/|b| over all finite values of the first mask (absolute difference where |b| < 1e-8).\n\n"
            f"{md}\n")
    print(md)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".md").write_text(text)
    table.to_csv(args.out + ".csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
