"""The book's training work run serially and on the process pool, as a ratio measured in one run.

Plans the PAGS chapter's table for the book profile (the generator tickets, PAGS, their layer-wise shuffles and the
dense network, for ``--seeds`` seeds), then runs the same plan twice, each time into a fresh temporary run store:
once with the ``serial`` executor and once with ``processes`` and ``--workers`` workers (one torch thread per run in
both, as the book runs).  It checks that both stores hold the same results (:meth:`~pags_core.store.RunStore.contents`)
and reports the wall times and their ratio.

    .venv/bin/python benchmarks/bench_executors.py               # 2 seeds, 2 workers
    .venv/bin/python benchmarks/bench_executors.py --seeds 1     # quicker

Writes ``benchmarks/results/executors_cpu.md``.  Run it on a quiet machine: the ratio is what a second core buys.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


from pags_core import experiments as ex
from pags_core.store import RunStore

HERE = Path(__file__).resolve().parent


def run(executor: str, workers: int, seeds: int, root: Path) -> tuple[float, dict, int]:
    cfg = ex.resolve("pags", profile="book", seeds=list(range(seeds)), executor=executor, workers=workers,
                     controls=["shuffle", "dense"], store=str(root))
    tp = ex.table_plan(cfg)
    t = time.perf_counter()
    ex.run_plan(tp.plan, progress=False, **cfg.execution())
    wall = time.perf_counter() - t
    return wall, RunStore(root).contents(), len(tp.plan)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=2, help="seeds of the PAGS table (default 2)")
    ap.add_argument("--workers", type=int, default=2, help="workers of the process pool (default 2)")
    ap.add_argument("--repeats", type=int, default=1, help="serial/pool pairs, in alternating order (default 1)")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    walls = {"serial": [], "processes": []}
    stored = {}
    for r in range(args.repeats):
        order = ("serial", "processes") if r % 2 == 0 else ("processes", "serial")
        for name in order:
            with tempfile.TemporaryDirectory() as root:
                t, contents, n = run(name, 1 if name == "serial" else args.workers, args.seeds, Path(root))
            walls[name].append(t)
            stored.setdefault(name, contents)
    same = stored["serial"] == stored["processes"]
    load1 = os.getloadavg()[0]
    t_serial, t_pool = statistics.median(walls["serial"]), statistics.median(walls["processes"])
    rows = [("serial (1 process)", t_serial), (f"processes ({args.workers} workers)", t_pool)]
    table = "\n".join([
        f"# Executors: the book's PAGS table, serial against the process pool",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; one torch thread per "
        f"run; load average {load0:.1f} before, {load1:.1f} after.",
        f"Plan: the PAGS chapter's table of the book profile for {args.seeds} seed(s): {n} runs (tickets and "
        "training), each executor into a fresh store.",
        "",
        f"Repeats: {args.repeats} (serial and pool alternate which goes first); the table gives medians; every wall "
        f"time: serial {', '.join(f'{t:.1f}' for t in walls['serial'])} s, pool "
        f"{', '.join(f'{t:.1f}' for t in walls['processes'])} s.",
        "",
        "| executor | wall seconds (median) | runs per minute |",
        "| --- | --- | --- |",
        *[f"| {name} | {t:.1f} | {60 * n / t:.1f} |" for name, t in rows],
        "",
        f"Speed-up of the pool: **{t_serial / t_pool:.2f}x**. Same stored results in both stores (every file, JSON "
        f"without wall-clock times, tensors bit for bit): **{same}**.",
        "",
        "Re-run: `.venv/bin/python benchmarks/bench_executors.py " + f"--seeds {args.seeds} --workers {args.workers} "
        f"--repeats {args.repeats}`.",
    ])
    print(table)
    out = HERE / "results" / "executors_cpu.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(table + "\n")
    if not same:
        sys.exit("the two executors stored different results")


if __name__ == "__main__":
    main()
