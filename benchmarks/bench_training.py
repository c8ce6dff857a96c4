"""Training throughput (images/s) of masked vs unmasked CIFAR-style ResNet18 on 32x32 inputs.

Runs the real :func:`pags_core.train` loop (mask applied to the gradients before and the weights after every
optimiser step) on synthetic data, at width 1 and the book width 1/8.  Dense and masked runs are interleaved and
repeated, and the mask overhead is the ratio of their median throughputs measured in the same run.  On CUDA the loop
uses bf16 autocast and channels_last (``amp="auto"``, ``channels_last="auto"``).

    .venv/bin/python benchmarks/bench_training.py            # CPU here; CUDA too when a GPU is present
    .venv/bin/python benchmarks/bench_training.py --quick    # fewer steps
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_training.py   # on a CPU shared with other jobs

Writes ``benchmarks/results/training_<device>.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from pags_core import generate_mask, load_dataset, make_model, train
from pags_core.training import Recipe

HERE = Path(__file__).resolve().parent


def bench(device: str, width: float, batch: int, steps: int, reps: int, density: float) -> dict:
    data = load_dataset("synthetic", num_classes=10, in_channels=3, image_size=32, n_train=batch * steps,
                        n_test=batch, val_fraction=0.0, seed=0)
    # 2 epochs: the first is warm-up (allocator, cuDNN autotune); the second is timed
    rec = Recipe("bench", batch_size=batch, test_batch_size=batch, epochs=2, schedule="constant", milestones=(),
                 nesterov=True, augment=False)
    torch.manual_seed(0)
    proto = make_model("resnet18", num_classes=10, width=width)
    mask = generate_mask(proto, "erk", density, device="cpu")
    dense_ips, masked_ips = [], []
    for _ in range(reps):
        for masked, out in ((False, dense_ips), (True, masked_ips)):
            torch.manual_seed(0)
            model = make_model("resnet18", num_classes=10, width=width)
            res = train(model, data, rec, mask=mask if masked else None, device=device, seed=0,
                        eval_every_epoch=False, progress=False)
            out.append(batch * steps / res.history[-1]["seconds"])
    d, m = statistics.median(dense_ips), statistics.median(masked_ips)
    return {"width": width, "batch": batch, "steps": steps, "reps": reps, "dense": d, "masked": m,
            "overhead": d / m, "weights": mask.num_total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    ap.add_argument("--density", type=float, default=0.01, help="kept fraction of the ERK mask (default 0.01)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cpu, and cuda when available)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*pruned .* to nothing")
    devices = [args.device] if args.device else (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    env = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    cmd = env + ".venv/bin/python " + " ".join([os.path.relpath(__file__, HERE.parent)] + sys.argv[1:])
    for device in devices:
        if device == "cpu":
            configs = [(1.0, 32, 2, 2 if args.quick else 3), (1 / 8, 128, 4 if args.quick else 8, 3)]
        else:
            configs = [(1.0, 256, 20 if args.quick else 50, 3), (1 / 8, 256, 20 if args.quick else 50, 3)]
        rows = []
        for width, batch, steps, reps in configs:
            t = time.time()
            r = bench(device, width, batch, steps, reps, args.density)
            rows.append(r)
            print(f"  {device} width {width:g}: dense {r['dense']:.0f} img/s, masked {r['masked']:.0f} img/s "
                  f"({time.time() - t:.0f} s)", flush=True)
        name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        lines = [
            f"# Training throughput: masked vs dense ResNet18, 32x32 inputs ({device})",
            "",
            f"Command: `{cmd}`",
            "",
            f"torch {torch.__version__}, device {name}, threads {torch.get_num_threads()}, "
            f"{'bf16 autocast + channels_last' if device == 'cuda' else 'fp32'}, 1-min load average at the end {load:.1f}. "
            f"Mask: ERK at density {args.density:g}; SGD Nesterov; synthetic data; second (warm) epoch timed; "
            "median over interleaved repeats. Overhead = dense / masked throughput (1.00 = free).",
            "",
            "| width | prunable weights | batch | steps | repeats | dense img/s | masked img/s | mask overhead |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows:
            lines.append(f"| {r['width']:g} | {r['weights']:,} | {r['batch']} | {r['steps']} | {r['reps']} | "
                         f"{r['dense']:.0f} | {r['masked']:.0f} | {r['overhead']:.3f}x |")
        text = "\n".join(lines) + "\n"
        print(text)
        out = HERE / "results" / f"training_{device}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
