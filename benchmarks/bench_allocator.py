"""The spectral engine's time against glibc's heap settings: page faults that a larger heap pad removes.

The engine builds and frees arrays of about a megabyte per layer batch.  With glibc's defaults the heap's top is
returned to the system and grown again between masks, and every new page faults on first touch.  This script runs
the engine (``model_spectrum`` on ResNet18, CIFAR-100 shapes, ERK at density 0.01, full metric set, one thread) in
fresh processes, alternating the default environment and ``MALLOC_TOP_PAD_`` (bytes kept at the heap's top when it
grows or shrinks), and reports per process the median CPU time per mask and the minor page faults per mask.

Command (writes benchmarks/results/allocator_cpu.md):
    .venv/bin/python benchmarks/bench_allocator.py [--processes 3] [--pad 67108864] [--masks 4] [--rounds 6]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench_spectral import load

HERE = Path(__file__).resolve().parent
COMMAND = ".venv/bin/python benchmarks/bench_allocator.py"

CHILD = """
import json, resource, sys, time
import numpy as np, torch
import pags_core
from pags_core.spectral import model_spectrum
torch.set_num_threads(1)
torch.manual_seed(0)
n_masks, rounds = int(sys.argv[1]), int(sys.argv[2])
model = pags_core.make_model("resnet18", num_classes=100)
masks = [pags_core.generate_mask(model, "erk", 0.01, seed=s) for s in range(n_masks)]
model_spectrum(model, masks[0])  # warm-up
times, faults = [], []
for _ in range(rounds):
    for m in masks:
        f, c = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
        model_spectrum(model, m)
        times.append(time.process_time() - c)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f)
print(json.dumps({"median_ms": 1e3 * float(np.median(times)), "min_ms": 1e3 * float(np.min(times)),
                  "faults": float(np.median(faults))}))
"""


def run_child(pad: int | None, masks: int, rounds: int) -> dict:
    """One fresh process scoring ``masks`` masks ``rounds`` times; ``pad``: MALLOC_TOP_PAD_ or None (default)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("MALLOC_TOP_PAD_", None)
    if pad is not None:
        env["MALLOC_TOP_PAD_"] = str(pad)
    out = subprocess.run([sys.executable, "-c", CHILD, str(masks), str(rounds)], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, default=3, help="processes per setting (alternating)")
    ap.add_argument("--pad", type=int, default=64 << 20, help="MALLOC_TOP_PAD_ in bytes (default 64 MiB)")
    ap.add_argument("--masks", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", default=str(HERE / "results" / "allocator_cpu.md"))
    args = ap.parse_args(argv)
    if not platform.libc_ver()[0] == "glibc":
        print("bench_allocator: skipped, MALLOC_TOP_PAD_ is a glibc setting and this is not glibc", file=sys.stderr)
        return 0
    load_start = load()
    rows = []
    for i in range(args.processes):
        for name, pad in (("default", None), (f"MALLOC_TOP_PAD_={args.pad}", args.pad)):
            r = run_child(pad, args.masks, args.rounds)
            rows.append({"setting": name, "process": i + 1, **r})
            print(rows[-1], file=sys.stderr)
    load_end = load()
    md = "| setting | process | median ms/mask | best ms/mask | minor page faults/mask (median) |\n|:--|--:|--:|--:|--:|\n"
    md += "".join(f"| {r['setting']} | {r['process']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['faults']:.0f} |\n"
                  for r in rows)
    med = {s: [r["median_ms"] for r in rows if r["setting"] == s] for s in dict.fromkeys(r["setting"] for r in rows)}
    (d_name, d), (p_name, p) = med.items()
    summary = (f"Per-process medians: {d_name} {min(d):.1f}–{max(d):.1f} ms per mask, {p_name} {min(p):.1f}–{max(p):.1f} "
               f"ms per mask (n = {args.processes} per setting, {args.masks} masks × {args.rounds} rounds per "
               f"process); median of the medians {np.median(d):.1f} against {np.median(p):.1f} ms.")
    text = (f"# Spectral engine and glibc's heap pad (CPU)\n\nCommand: `{COMMAND} --processes {args.processes} --pad "
            f"{args.pad} --masks {args.masks} --rounds {args.rounds}`\n\nResNet18 (CIFAR-style, 100 classes), ERK at "
            f"density 0.01, `model_spectrum` with the full metric set, one thread, CPU time of each process. Machine: "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"numpy {np.__version__}, {' '.join(platform.libc_ver())}; load average (1/5/15 min) {load_start} at the "
            f"start, {load_end} at the end.\n\n{md}\n{summary}\n")
    print(md)
    print(summary)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
