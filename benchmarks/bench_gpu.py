"""GPU figures in one prepared run (at most 5 minutes on an H100/H200).

Sections, each time-boxed so the whole run stays within ``--budget`` seconds (a section that runs out of time
reports the P it measured, never an extrapolation presented as a measurement):

1. **population scoring** — ``score_population(resnet18, masks, device=<device>)`` per mask at P = 256 and P = 2000
   (ERK masks at density 0.01, CIFAR-100 shapes, convention ``neurips2023`` with weights and degree groups); masks
   are drawn in chunks outside the timed region; the Lanczos iterations run on the device.
2. **PAGS all-in** — ``pags_core.pags(model, data, "snip", 0.01, population=2000, device=<device>)`` on CIFAR-shaped
   synthetic data (3×32×32, 100 classes): the baseline ticket's full pass, 4 × 100-image SNIP passes per sample,
   scoring and selection, wall-clock.  A short calibration run (P = 20) first estimates whether P = 2000 fits the
   remaining budget; if not, the largest P that fits is run and reported as such.
3. **training throughput** — masked (ERK 0.01) vs dense ResNet18 at 32×32 through ``pags_core.train`` (bf16 autocast
   and channels_last on CUDA), images/s and the mask overhead (:mod:`bench_training`'s measurement).
4. **executors** — the PAGS chapter's plan in the paper profile on CIFAR-shaped synthetic data (one epoch of a few
   steps, a small population) through the ``processes`` executor with one worker per GPU (each worker pinned to its
   GPU with ``CUDA_VISIBLE_DEVICES``), wall-clock for the whole plan.

``--smoke`` shrinks everything (ResNet18 at width 1/8, P = 4 and 8, PAGS P = 4, two training steps) so the script can
be checked end to end on a CPU.  Writes ``benchmarks/results/gpu_<device>[_smoke].md`` and ``.csv``.

    .venv/bin/python benchmarks/bench_gpu.py --device cuda            # on the GPU machine
    .venv/bin/python benchmarks/bench_gpu.py --device cpu --smoke     # end-to-end check on a CPU
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pags_core  # noqa: E402
from bench_training import bench as training_bench  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/bench_gpu.py"


class Clock:
    """The run's deadline: sections ask how much time is left."""

    def __init__(self, budget: float):
        self.t0, self.budget = time.perf_counter(), budget

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def scoring(cfg, dev, clock, share) -> list[dict]:
    """Section 1: batched population scoring per mask at each P in cfg["populations"]."""
    torch.manual_seed(0)
    model = pags_core.make_model("resnet18", num_classes=100, width=cfg["width"]).to(dev)
    rows = []
    for P in cfg["populations"]:
        deadline = time.perf_counter() + share * max(clock.left(), 0.0)
        done, spent, seed = 0, 0.0, 0
        while done < P and time.perf_counter() < deadline:
            n = min(cfg["chunk"], P - done)
            masks = [pags_core.generate_mask(model, "erk", cfg["density"], seed=seed + i, device=dev) for i in range(n)]
            seed += n
            sync(dev)
            t = time.perf_counter()
            pags_core.score_population(model, masks, device=dev, progress=False)
            sync(dev)
            spent += time.perf_counter() - t
            done += n
        rows.append({"section": "population scoring", "what": f"ResNet18 ERK {cfg['density']}, P = {P}",
                     "P measured": done, "seconds": spent, "ms/mask": 1e3 * spent / max(done, 1),
                     "target": "<= 10 ms/mask"})
        print(rows[-1], flush=True)
    return rows


def pags_all_in(cfg, dev, clock) -> list[dict]:
    """Section 2: PAGS with SNIP, generator passes included."""
    data = pags_core.load_dataset("synthetic", num_classes=100, in_channels=3, image_size=32, n_train=cfg["n_train"],
                                  n_test=cfg["n_test"], device=str(dev))
    torch.manual_seed(0)
    model = pags_core.make_model("resnet18", num_classes=100, width=cfg["width"]).to(dev)

    def run(P):
        sync(dev)
        t = time.perf_counter()
        res = pags_core.pags(model, data, "snip", cfg["density"], population=P, device=dev, progress=False,
                             chunk=cfg["pags_chunk"])
        sync(dev)
        return time.perf_counter() - t, res

    t_cal, _ = run(cfg["calibration"])  # includes the baseline ticket's full pass
    per_mask = t_cal / cfg["calibration"]
    P = cfg["pags_population"]
    fits = int(max(cfg["calibration"], min(P, 0.95 * clock.left() / max(per_mask, 1e-9))))
    wall, res = run(fits)
    row = {"section": "PAGS all-in", "what": f"SNIP, ResNet18, D = {cfg['density']}, P = {P}", "P measured": fits,
           "seconds": wall, "ms/mask": 1e3 * wall / fits, "target": "P = 2000 in <= 300 s",
           "generator s": res.costs.get("generator_s"), "scoring s": res.costs.get("scoring_s"),
           "baseline generator s": res.costs.get("baseline_generator_s")}
    print(row, flush=True)
    return [row]


def training(cfg, dev) -> list[dict]:
    """Section 3: masked vs dense training throughput (bf16 autocast and channels_last on CUDA)."""
    r = training_bench(str(dev), cfg["width"], cfg["train_batch"], cfg["train_steps"], cfg["train_reps"], cfg["density"])
    precision = "bf16 autocast" if dev.type == "cuda" else "fp32"
    row = {"section": "training", "what": f"ResNet18 32x32, batch {r['batch']}, {precision}", "P measured": None,
           "seconds": None, "ms/mask": None, "target": ">= 20,000 img/s, overhead <= 10 %",
           "dense img/s": r["dense"], "masked img/s": r["masked"], "mask overhead": r["overhead"]}
    print(row, flush=True)
    return [row]


def executors(cfg, dev) -> list[dict]:
    """Section 4: the paper-profile PAGS plan through the process pool, one worker per GPU."""
    import dataclasses
    import tempfile

    from pags_core import experiments as ex

    gpus = torch.cuda.device_count() if dev.type == "cuda" else 1
    with tempfile.TemporaryDirectory() as store:
        c = ex.resolve("pags", profile="paper", dataset="synthetic", device=dev.type, epochs=1, premise_masks=0,
                       data_options={"image_size": 32, "num_classes": 100, "n_train": cfg["n_train"],
                                     "n_test": cfg["n_test"]},
                       seeds=list(range(max(2, gpus))), generators=["erk", "snip"], population=cfg["exec_population"],
                       controls=["dense"], executor="processes", workers=gpus, store=store)
        c = c.replace(model=dataclasses.replace(c.model, width=cfg["width"]))
        tp = ex.table_plan(c, methods=["baseline", "PAGS", "dense"])
        t = time.perf_counter()
        report = ex.run_plan(tp.plan, progress=False, **c.execution())
        wall = time.perf_counter() - t
    row = {"section": "executors", "what": f"paper-profile PAGS plan ({report.units} runs), processes x {gpus} "
           f"(one worker per GPU)", "P measured": cfg["exec_population"], "seconds": wall, "ms/mask": None,
           "target": "runs; timing recorded"}
    print(row, flush=True)
    return [row]


CONFIGS = {
    "full": dict(width=1.0, density=0.01, populations=[256, 2000], chunk=128, n_train=5000, n_test=500,
                 calibration=20, pags_population=2000, pags_chunk=50, train_batch=256, train_steps=40, train_reps=2,
                 exec_population=16),
    "smoke": dict(width=1 / 8, density=0.05, populations=[4, 8], chunk=4, n_train=200, n_test=50, calibration=2,
                  pags_population=4, pags_chunk=2, train_batch=16, train_steps=2, train_reps=1, exec_population=2),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--smoke", action="store_true", help="shrink everything (an end-to-end check on a CPU)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 280, smoke 600)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    dev = pags_core.resolve_device(args.device)
    if dev.type != "cuda" and not args.smoke:
        print(f"bench_gpu: device {dev} is not a GPU; run with --device cuda on a GPU machine, or --smoke for the "
              "end-to-end check on a CPU.  Nothing measured.")
        return 0
    cfg = CONFIGS["smoke" if args.smoke else "full"]
    clock = Clock(args.budget if args.budget is not None else (600.0 if args.smoke else 280.0))
    warnings.filterwarnings("ignore", message=".*pruned .* to nothing.*")
    if dev.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows = []
    rows += scoring(cfg, dev, clock, share=0.3)
    rows += pags_all_in(cfg, dev, lambda_clock(clock, reserve=90.0 if not args.smoke else 0.0))
    rows += training(cfg, dev)
    rows += executors(cfg, dev)
    table = pd.DataFrame(rows)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or platform.machine())
    suffix = f"{dev.type}{'_smoke' if args.smoke else ''}"
    out = Path(args.out) if args.out else HERE / "results" / f"gpu_{suffix}"
    md = table.to_markdown(index=False, floatfmt=".4g")
    text = (f"# GPU figures{' — SMOKE run, shrunk sizes' if args.smoke else ''}\n\n"
            f"Command: `{COMMAND} --device {args.device}{' --smoke' if args.smoke else ''}`\n\n"
            f"Device: {name}; torch {torch.__version__}; total wall-clock {time.perf_counter() - clock.t0:.0f} s; "
            f"configuration {cfg}.\n\n{md}\n")
    print(md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    table.to_csv(out.with_suffix(".csv"), index=False)
    return 0


def lambda_clock(clock: Clock, reserve: float) -> Clock:
    """The clock as seen by a section that must leave ``reserve`` seconds for the sections after it."""
    c = Clock(clock.budget - reserve)
    c.t0 = clock.t0
    return c


if __name__ == "__main__":
    raise SystemExit(main())
