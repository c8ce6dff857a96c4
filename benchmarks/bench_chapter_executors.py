"""A whole chapter under papermill, serially and on the process pool, each into a fresh run store.

Runs ``papermill notebooks/<chapter>.ipynb`` twice with the book profile, once with ``-p executor serial`` and once
with ``-p executor processes -p workers N``, each with its own empty ``-p store`` folder, then checks that the two
stores hold the same files (:meth:`pags_core.store.RunStore.contents`): every JSON field except wall-clock times,
every stored tensor (masks, weights, checkpoints) bit for bit.

    .venv/bin/python benchmarks/bench_chapter_executors.py                  # the PEGS chapter, 2 workers
    .venv/bin/python benchmarks/bench_chapter_executors.py --chapter pags   # quicker

Writes ``benchmarks/results/chapter_executors_cpu.md``; the stores stay under ``_build/bench_chapter_executors/``.
Run it on a quiet machine: the ratio is what the pool buys.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pags_core.store import RunStore

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: Where the two stores and executed notebooks are kept (replaced at each run), so ``--compare-only`` can check again.
KEEP = ROOT / "_build" / "bench_chapter_executors"


def run_chapter(chapter: str, executor: str, workers: int, store: Path, out: Path) -> float:
    cmd = [sys.executable, "-m", "papermill", "--no-progress-bar", str(ROOT / "notebooks" / f"{chapter}.ipynb"),
           str(out), "-p", "executor", executor, "-p", "workers", str(workers), "-p", "store", str(store)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT / "notebooks", env={**os.environ, "MPLBACKEND": "Agg"})
    return time.perf_counter() - t


def compare_stores(a: Path, b: Path) -> tuple[int, int, list[str]]:
    """(runs, files compared, differences) between two run stores, by :meth:`RunStore.contents`."""
    ca, cb = RunStore(a).contents(), RunStore(b).contents()
    runs = {str(Path(k).parent) for k in ca.keys() & cb.keys() if k.endswith("/result.json")}
    diffs = [f"only in the serial store: {k}" for k in sorted(ca.keys() - cb.keys())]
    diffs += [f"only in the pool's store: {k}" for k in sorted(cb.keys() - ca.keys())]
    diffs += [f"{k} differs" for k in sorted(ca.keys() & cb.keys()) if ca[k] != cb[k]]
    return len(runs), len(ca.keys() & cb.keys()), diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chapter", default="pegs", choices=["pags", "pegs", "itop_correlation", "custom_architecture"],
                    help="the chapter notebook (default pegs)")
    ap.add_argument("--workers", type=int, default=2, help="workers of the process pool (default 2)")
    ap.add_argument("--compare-only", action="store_true",
                    help=f"compare the stores the last run left under {KEEP.relative_to(ROOT)}/ without running")
    args = ap.parse_args()
    if args.compare_only:
        n, files, diffs = compare_stores(KEEP / "store-serial", KEEP / "store-processes")
        print(f"{n} runs, {files} files compared; {len(diffs)} difference(s)", *diffs[:20], sep="\n")
        sys.exit(1 if diffs else 0)
    load0 = os.getloadavg()
    walls = {}
    shutil.rmtree(KEEP, ignore_errors=True)
    KEEP.mkdir(parents=True)
    for name, workers in (("serial", 1), ("processes", args.workers)):
        walls[name] = run_chapter(args.chapter, name, workers, KEEP / f"store-{name}", KEEP / f"{name}.ipynb")
        print(f"{name}: {walls[name]:.0f} s", flush=True)
    n, files, diffs = compare_stores(KEEP / "store-serial", KEEP / "store-processes")
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
        f"Both stores hold the same {n} runs with the same results ({files} files: every JSON field except wall-clock "
        f"times, every stored tensor bit for bit): **{same}**.",
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
