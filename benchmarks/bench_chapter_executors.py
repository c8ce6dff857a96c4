"""A whole chapter under papermill, serially and on the process pool, each into a fresh run store.

Runs ``papermill notebooks/<chapter>.ipynb`` twice with the book profile, once with ``-p executor serial`` and once
with ``-p executor processes -p workers N``, each with its own empty ``-p store`` folder, then checks that the two
stores hold the same runs (the same namespaces and keys) with the same results: every field of every
``result.json`` except the timings, and every stored tensor (masks, weights, checkpoints) bit for bit.

    .venv/bin/python benchmarks/bench_chapter_executors.py                  # the PEGS chapter, 2 workers
    .venv/bin/python benchmarks/bench_chapter_executors.py --chapter pags   # quicker

Writes ``benchmarks/results/chapter_executors_cpu.md``; the stores stay under ``_build/bench_chapter_executors/``.  Run it on a quiet machine: the ratio is what the pool buys.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: Where the two stores and executed notebooks are kept (replaced at each run), so ``--compare-only`` can check again.
KEEP = ROOT / "_build" / "bench_chapter_executors"


def is_timing(field: str) -> bool:
    """Wall-clock fields of a result (``seconds``, ``unit_seconds``, ``generator_s``, ...): they differ run to run."""
    return field.endswith("seconds") or field.endswith("_s")


def without_timings(obj):
    """A result with every timing field removed, at any depth (a training history holds one per epoch)."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if not is_timing(k)}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def run_chapter(chapter: str, executor: str, workers: int, store: Path, out: Path) -> float:
    cmd = [sys.executable, "-m", "papermill", "--no-progress-bar", str(ROOT / "notebooks" / f"{chapter}.ipynb"),
           str(out), "-p", "executor", executor, "-p", "workers", str(workers), "-p", "store", str(store)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT / "notebooks", env={**os.environ, "MPLBACKEND": "Agg"})
    return time.perf_counter() - t


def _tensors(path: Path) -> dict:
    obj = torch.load(path, map_location="cpu", weights_only=False)
    return obj if isinstance(obj, dict) else {"": obj}


def _same_tensors(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x, y):
                return False
        elif isinstance(x, dict) and isinstance(y, dict):
            if not _same_tensors(x, y):
                return False
        elif x != y:
            return False
    return True


def compare_stores(a: Path, b: Path) -> tuple[int, int, list[str]]:
    """(runs, tensor files compared, differences) between two run stores."""
    def runs(root: Path) -> set[str]:
        return {str(p.parent.relative_to(root)) for p in root.glob("*/*/result.json")}

    ra, rb = runs(a), runs(b)
    diffs = [f"only in the serial store: {k}" for k in sorted(ra - rb)]
    diffs += [f"only in the pool's store: {k}" for k in sorted(rb - ra)]
    tensors = 0
    for key in sorted(ra & rb):
        res = [json.loads((root / key / "result.json").read_text()) for root in (a, b)]
        res = [without_timings(r) for r in res]
        if res[0] != res[1]:
            fields = sorted(k for k in res[0].keys() | res[1].keys() if res[0].get(k) != res[1].get(k))
            diffs.append(f"{key}: result fields differ: {', '.join(fields)}")
        for f in sorted((a / key).glob("*.pt")):
            tensors += 1
            g = b / key / f.name
            if not g.is_file() or not _same_tensors(_tensors(f), _tensors(g)):
                diffs.append(f"{key}/{f.name}: tensors differ")
    return len(ra & rb), tensors, diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chapter", default="pegs", choices=["pags", "pegs", "itop_correlation", "custom_architecture"],
                    help="the chapter notebook (default pegs)")
    ap.add_argument("--workers", type=int, default=2, help="workers of the process pool (default 2)")
    ap.add_argument("--compare-only", action="store_true",
                    help=f"compare the stores the last run left under {KEEP.relative_to(ROOT)}/ without running")
    args = ap.parse_args()
    if args.compare_only:
        n, tensors, diffs = compare_stores(KEEP / "store-serial", KEEP / "store-processes")
        print(f"{n} runs, {tensors} tensor files compared; {len(diffs)} difference(s)", *diffs[:20], sep="\n")
        sys.exit(1 if diffs else 0)
    load0 = os.getloadavg()
    walls = {}
    shutil.rmtree(KEEP, ignore_errors=True)
    KEEP.mkdir(parents=True)
    for name, workers in (("serial", 1), ("processes", args.workers)):
        walls[name] = run_chapter(args.chapter, name, workers, KEEP / f"store-{name}", KEEP / f"{name}.ipynb")
        print(f"{name}: {walls[name]:.0f} s", flush=True)
    n, tensors, diffs = compare_stores(KEEP / "store-serial", KEEP / "store-processes")
    load1 = os.getloadavg()
    same = not diffs
    text = "\n".join([
        f"# The {args.chapter} chapter under papermill: serial against the process pool",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; book profile, one "
        f"torch thread per run; load average (1/5/15 min) {'/'.join(f'{x:.1f}' for x in load0)} before, "
        f"{'/'.join(f'{x:.1f}' for x in load1)} after.",
        "Each executor ran the whole notebook (`papermill ... -p executor E -p workers W -p store S`) into its own "
        "empty run store; the wall time includes the kernel's start and every cell.",
        "",
        "| executor | wall seconds |",
        "| --- | --- |",
        f"| serial (1 process) | {walls['serial']:.0f} |",
        f"| processes ({args.workers} workers) | {walls['processes']:.0f} |",
        "",
        f"Speed-up of the pool: **{walls['serial'] / walls['processes']:.2f}x**.",
        f"Both stores hold the same {n} runs with the same results (every `result.json` field except timings, and "
        f"{tensors} stored tensor files bit for bit): **{same}**.",
        *[f"- {d}" for d in diffs[:20]],
        *([f"- ... and {len(diffs) - 20} more"] if len(diffs) > 20 else []),
        "",
        f"Re-run: `.venv/bin/python benchmarks/bench_chapter_executors.py --chapter {args.chapter} "
        f"--workers {args.workers}`.",
    ])
    print(text)
    out = HERE / "results" / "chapter_executors_cpu.md"
    out.write_text(text + "\n")
    if not same:
        sys.exit("the two executors stored different results")


if __name__ == "__main__":
    main()
