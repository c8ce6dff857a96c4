"""Kill and resume keep holding: a sweep SIGKILLed at random points and run again ends with exactly the store and
table of an uninterrupted run; two sweeps on one store at once both finish with that table and compute every unit
exactly once (counted from a per-unit start/end log)."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest

from pags_core.experiments import run_plan

import sweep_job

JOB = Path(sweep_job.__file__)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted sweep, run here: (its table, everything its store holds, its number of units)."""
    root = tmp_path_factory.mktemp("reference") / "store"
    tp, store = sweep_job.sweep(str(root))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pruned .* layer\\(s\\) to nothing")
        run_plan(tp.plan, "serial", store, progress=False)
    return sweep_job.table(tp, store), sweep_job.stored_results(root), len(tp.plan)


def start(store: Path, log: Path, table: Path | None = None, tag: str = "", together: tuple = ()) -> subprocess.Popen:
    args = [sys.executable, str(JOB), str(store), "--log", str(log)] + (["--table", str(table)] if table else [])
    args += ["--together", *map(str, together)] if together else []
    out = open(store.parent / f"job{tag}.out", "a")
    return subprocess.Popen(args, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=out, stderr=subprocess.STDOUT)


def finished(store: Path) -> int:
    return sum(1 for _ in store.rglob("result.json")) if store.is_dir() else 0


def events(log: Path) -> list:
    """(event, kind, key, pid) of every unit start and end and every stored run in the log."""
    out = []
    for line in log.read_text().splitlines():
        what, *rest = line.split()
        if what in ("start", "end", "saved"):
            out.append((what, rest[0], rest[1], rest[2]))
    return out


def _kill_at_random_points(store: Path, log: Path, rng: random.Random, attempts: int = 3) -> list:
    """Start the sweep ``attempts`` times, each time SIGKILLing it at a random point after at least one more unit
    has finished; returns the number of finished units at every kill."""
    kills = []
    for attempt in range(attempts):
        before = finished(store)
        proc = start(store, log, tag=str(attempt))
        deadline = time.monotonic() + 120
        while finished(store) <= before and proc.poll() is None:  # at least one more unit finishes in each run
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))  # then a random point: inside a unit, between units, inside a write
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills.append(finished(store))
        proc.wait(timeout=60)
    return kills


def test_sigkill_at_random_points_then_a_rerun_gives_the_uninterrupted_store_and_table(tmp_path, reference):
    ref_table, ref_store, n_units = reference
    rng = random.Random(15)
    for trial in range(4):  # a fast machine can finish every unit between two kills: then start on an empty store
        store, log = tmp_path / f"store{trial}", tmp_path / f"units{trial}.log"
        kills = _kill_at_random_points(store, log, rng)
        if len(kills) >= 2 and finished(store) < n_units:
            break
    else:
        pytest.fail(f"the sweep was not interrupted twice before it finished in 4 trials (last kills at {kills})")
    table = tmp_path / "table.json"
    proc = start(store, log, table, tag="final")
    assert proc.wait(timeout=300) == 0, (tmp_path / "jobfinal.out").read_text()[-3000:]
    assert json.loads(table.read_text()) == ref_table
    got = sweep_job.stored_results(store)
    assert sorted(got) == sorted(ref_store)
    assert [k for k in got if got[k] != ref_store[k]] == []  # bit-identical results, masks, weights, populations
    # a finished run (its result.json written) is never computed again, so never stored twice; a unit killed after
    # its computation but before its result was stored is computed again (it may end twice), and a kill between a
    # store and its log line hides that line
    saved = Counter(key for what, _, key, _ in events(log) if what == "saved")
    assert set(saved.values()) <= {1}, f"runs stored twice: {[k for k, n in saved.items() if n > 1]}"
    assert len(saved) >= n_units - len(kills)


def test_two_sweeps_on_one_store_at_once_compute_every_unit_once(tmp_path, reference):
    ref_table, ref_store, n_units = reference
    store, log = tmp_path / "store", tmp_path / "units.log"
    procs = [start(store, log, tmp_path / f"table{i}.json", tag=str(i), together=(tmp_path / "ready", 2))
             for i in range(2)]  # both sweeps start their plan at the same moment
    for i, proc in enumerate(procs):
        assert proc.wait(timeout=300) == 0, (tmp_path / f"job{i}.out").read_text()[-3000:]
    tables = [json.loads((tmp_path / f"table{i}.json").read_text()) for i in range(2)]
    assert tables[0] == tables[1] == ref_table
    ev = events(log)
    starts = Counter(key for what, _, key, _ in ev if what == "start")
    ends = Counter(key for what, _, key, _ in ev if what == "end")
    assert len(starts) == n_units and set(starts.values()) == {1} and starts == ends, \
        f"units computed twice: {[k for k, n in starts.items() if n > 1]}"
    assert len({pid for *_, pid in ev}) == 2  # both sweeps computed some of the units
    got = sweep_job.stored_results(store)
    assert [k for k in sorted(set(got) | set(ref_store)) if got.get(k) != ref_store.get(k)] == []
