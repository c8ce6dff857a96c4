"""A tiny PEGS-chapter sweep run as its own process, for the tests that start, kill and compare sweeps
(``tests/test_determinism.py``, ``tests/test_kill_resume.py``).

``python tests/sweep_job.py STORE [--threads N] [--log FILE] [--table FILE] [--together FOLDER N]`` runs the
sweep of :func:`test_experiments.tiny` on the serial executor into the run store ``STORE`` (with ``--together``,
once N such processes are ready).  ``--log`` appends one line per
unit start and end (``start|end <kind> <key> pid=<pid> threads=<torch threads inside the unit>``), every stored run
(``saved <kind> <key> pid=<pid>``, once its ``result.json`` is written) and one ``process``
line with the thread count the process started with; ``--table`` writes the finished table as JSON.

:func:`stored_results` reads everything a store holds, minus wall-clock times, for exact comparison.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

TABLE_COLUMNS = ["seed", "generator", "method", "pretrain_iters", "test_acc", "final_test_acc", "best_val_acc",
                 "density_realised", "layers_replaced", "empty_layers", "diverged", "kept", "ticket_key"]


def sweep(store: str, threads: int = 1):
    """The tiny sweep's table plan and its store (the configuration of ``test_experiments.tiny``)."""
    from test_experiments import tiny

    from pags_core.experiments import table_plan
    from pags_core.store import RunStore

    cfg = tiny(Path(store), store=str(store), threads=threads)
    return table_plan(cfg), RunStore(cfg.store)


def table(tp, store) -> list:
    """The table's deterministic columns as plain rows."""
    from pags_core.experiments import table_runs

    return json.loads(table_runs(tp, store)[TABLE_COLUMNS].to_json(orient="records"))


def stored_results(root) -> dict:
    """Everything the store at ``root`` holds, minus wall-clock times (:meth:`RunStore.contents`)."""
    from pags_core.store import RunStore

    return RunStore(root).contents()


def _log_units(log: Path) -> None:
    """Wrap every unit kind's ``run`` to log its start and end, and ``RunStore.save`` to log every stored run (an
    ``O_APPEND`` write per line: lines of two processes never interleave)."""
    import torch

    from pags_core.experiments import units

    def write(line: str) -> None:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def wrap(cls):
        inner = cls.run

        def run(self, ctx):
            tag = f"{self.kind} {self.key} pid={os.getpid()} threads={torch.get_num_threads()}"
            write(f"start {tag}")
            out = inner(self, ctx)
            write(f"end {tag}")
            return out
        cls.run = run

    for cls in vars(units).values():
        if isinstance(cls, type) and issubclass(cls, units.Unit) and "run" in vars(cls):
            wrap(cls)
    from pags_core.store import RunStore

    save = RunStore.save

    def logged_save(self, namespace, config, result):
        folder = save(self, namespace, config, result)
        write(f"saved {namespace} {folder.name} pid={os.getpid()}")  # after result.json: the run is finished
        return folder
    RunStore.save = logged_save
    write(f"process pid={os.getpid()} threads={torch.get_num_threads()}")


def _meet(folder: Path, n: int, timeout: float = 120.0) -> None:
    """A barrier between processes: wait until ``n`` of them have put their file into ``folder``."""
    import time

    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    end = time.monotonic() + timeout
    while sum(1 for _ in folder.iterdir()) < n:
        if time.monotonic() > end:
            raise TimeoutError(f"only {sum(1 for _ in folder.iterdir())} of {n} processes reached {folder}")
        time.sleep(0.01)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log")
    ap.add_argument("--table")
    ap.add_argument("--together", nargs=2, metavar=("FOLDER", "N"),
                    help="wait until N processes have reached this point (files in FOLDER), then run at once")
    args = ap.parse_args(argv)
    import warnings

    from pags_core.experiments import run_plan

    warnings.filterwarnings("ignore", message=".*pruned .* layer\\(s\\) to nothing")
    if args.log:
        _log_units(Path(args.log))
    tp, store = sweep(args.store, args.threads)
    if args.together:
        _meet(Path(args.together[0]), int(args.together[1]))
    run_plan(tp.plan, "serial", store, progress=False, poll_s=0.2)
    if args.table:
        Path(args.table).write_text(json.dumps(table(tp, store)))


if __name__ == "__main__":
    main()
