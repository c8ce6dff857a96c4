"""Throughput of the PAGS population loop (issue 5): masks scored per second for ResNet18.

For each configuration a population of P masks is drawn by a generator at θ0 and scored with
``pags_core.score_population`` (convention neurips2023, |W| = θ0; the per-layer metric set PAGS selects on), exactly
as :func:`pags_core.pags` does it, in chunks:

* **scoring only**: ``score_population`` on P pre-generated masks (what the metrics cost);
* **generator + scoring**: ``pags_core.pags`` itself (P generator passes on fresh mini-batches + scoring + selection),
  without the baseline ticket (``baseline_mask`` is given) and without checkpoints.

Configurations: ResNet18 at the book width (1/8, MNIST-5k 1x14x14, density 0.02, 3 batches of 128 per SNIP sample)
and at width 1 (CIFAR shape 3x32x32 with 100 classes from the synthetic data set, density 0.01, 4 batches of 100, the
paper's setting).  The target on one H100 is P = 2000 SNIP masks for ResNet18 (width 1) in under 5 minutes, i.e.
at least 6.7 masks/s with the generator pass.

Command (writes benchmarks/results/pags_<device>.md and .csv):
    .venv/bin/python benchmarks/bench_pags.py [--device auto] [--population N] [--generators snip erk]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import pags_core as pc

HERE = Path(__file__).resolve().parent
COMMAND = ".venv/bin/python benchmarks/bench_pags.py"


def _setups(device):
    book = pc.get_profile("book")
    yield ("book: width 1/8, MNIST-5k 1x14x14", book.load_data(device=str(device)), 1 / 8, book.density,
           book.score_batches, book.score_batch_size)
    yield ("paper: width 1, 3x32x32, 100 classes", pc.load_dataset(
        "synthetic", num_classes=100, in_channels=3, image_size=32, n_train=800, n_test=100, device=str(device)),
           1.0, 0.01, 4, 100)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--population", type=int, default=None,
                    help="P per configuration (default: 2000 on CUDA; 16 (book) / 4 (width 1) on CPU)")
    ap.add_argument("--generators", nargs="+", default=["snip", "erk"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    dev = pc.resolve_device(args.device)
    if dev.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    warnings.filterwarnings("ignore", message=".*pruned .* layer\\(s\\) to nothing.*")
    rows = []
    for label, data, width, density, nb, bs in _setups(dev):
        P = args.population or (2000 if dev.type == "cuda" else (16 if width < 1 else 4))
        torch.manual_seed(0)
        model = pc.make_model("resnet18", num_classes=data.num_classes, in_channels=data.in_channels, width=width)
        n_w = sum(p.numel() for p in pc.prunable_parameters(model).values())
        for g in args.generators:
            gen_opts = {"input_shape": tuple(data.input_shape)} if g == "synflow" else {}
            batches = data.sample_batches(nb, bs, seed=0, device=dev) if pc.GENERATORS[g].needs_data else None
            base = pc.generate_mask(model, g, density, batches=batches, device=dev, progress=False, **gen_opts)
            # warm-up: one chunk through the whole path (kernels, caches)
            pc.pags(model, data, g, density, population=2, score_batches=nb, score_batch_size=bs, device=dev,
                    chunk=2, baseline_mask=base, progress=False, **gen_opts)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            res = pc.pags(model, data, g, density, population=P, score_batches=nb, score_batch_size=bs, device=dev,
                          chunk=50 if dev.type == "cuda" else 8, baseline_mask=base, progress=None, **gen_opts)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t_all = time.perf_counter() - t
            # scoring only: the same number of masks, pre-generated
            masks = [base] * min(P, 50 if dev.type == "cuda" else 8)
            t = time.perf_counter()
            pc.score_population(model, masks, device=dev, progress=False)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t_score = (time.perf_counter() - t) / len(masks)
            rows.append({
                "config": label, "prunable weights": n_w, "density": density, "generator": g, "P": P,
                "masks/s (generator + scoring)": round(P / t_all, 3),
                "masks/s (scoring only)": round(1 / t_score, 3),
                "generator s/mask": round(res.costs["generator_s"] / P, 4),
                "scoring s/mask (in PAGS)": round(res.costs["scoring_s"] / P, 4),
                "time for P=2000 (min)": round(2000 * t_all / P / 60, 1),
            })
            print(rows[-1], file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    md = table.to_markdown(index=False)
    if dev.type == "cuda":
        hw = f"GPU: {torch.cuda.get_device_name(dev)}"
    else:
        load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
        hw = (f"CPU: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), threads "
              f"{torch.get_num_threads()}, load average at the end {load[0]:.1f} (this benchmark's own threads count toward it)")
    cmd = f"{COMMAND} --device {args.device} --generators {' '.join(args.generators)}" + (
        f" --population {args.population}" if args.population else "")
    text = (f"# PAGS population throughput ({dev.type})\n\nCommand: `{cmd}`\n\n{hw}; torch {torch.__version__}, "
            f"numpy {np.__version__}.\n\nResNet18, θ0 from `make_model` (seed 0), convention `neurips2023`. "
            "\"generator + scoring\" = `pags_core.pags` with the baseline ticket given (P generator passes on fresh "
            "mini-batches, batched scoring in chunks, selection); \"scoring only\" = `score_population` on "
            "pre-generated masks. Target on one H100: 2000 SNIP masks of ResNet18 (width 1) in < 5 min.\n\n"
            f"{md}\n")
    print(md)
    out = Path(args.out) if args.out else HERE / "results" / f"pags_{dev.type}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    table.to_csv(out.with_suffix(".csv"), index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
