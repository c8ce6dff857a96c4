"""The executor seam: a process-pool worker killed mid-run fails only its unit and a rerun computes only that unit;
executors are chosen by name and reject bad options before anything runs.  (The ``slurm`` executor on a real
cluster: ``tests/test_cluster.py``.)"""
from __future__ import annotations

import os
import re
import signal
import sys

import pytest

from pags_core.experiments import ProcessExecutor, SerialExecutor, WorkerDied, make_executor
from pags_core.store import RunStore

import toy_unit as toy

EPOCHS = 4
SEEDS = (0, 1, 2)


def _started_epochs(events: list, pid: int) -> list:
    return [int(m[1]) for e in events if (m := re.match(rf"epoch (\d+) attempt=\d+ pid={pid}$", e))]


def test_killed_worker_fails_only_its_unit_and_a_rerun_computes_only_that_unit(tmp_path):
    root = str(tmp_path / "store")
    with ProcessExecutor(workers=2) as ex:
        futs = {s: ex.submit(toy.train_toy, root, s, epochs=EPOCHS, epoch_s=0.5, log=tmp_path / f"{s}.log")
                for s in SEEDS}
        toy.wait_for(lambda: toy.checkpointed_epoch(root, 0, EPOCHS) >= 1, 120, "the first checkpoint of seed 0")
        pid = toy.started_pid(toy.read_events(root, 0, EPOCHS))
        os.kill(pid, signal.SIGKILL)
        killed_at = toy.checkpointed_epoch(root, 0, EPOCHS)
        assert killed_at < EPOCHS, "seed 0 finished before its worker was killed"
        with pytest.raises(WorkerDied, match=rf"pid {pid}\).*log: {re.escape(str(tmp_path / '0.log'))}"):
            futs[0].result(timeout=120)
        others = {s: futs[s].result(timeout=120) for s in SEEDS[1:]}
    assert {s: r["w"] for s, r in others.items()} == {s: toy.toy_reference(s, EPOCHS) for s in SEEDS[1:]}

    store = RunStore(root)
    missing = [s for s in SEEDS if not store.has(toy.NAMESPACE, toy.toy_config(s, EPOCHS))]
    assert missing == [0]
    before = {s: toy.read_events(root, s, EPOCHS) for s in SEEDS}
    with ProcessExecutor(workers=1) as ex:  # the whole sweep again: finished units come back from the store
        again = {s: ex.submit(toy.train_toy, root, s, epochs=EPOCHS).result(timeout=120) for s in SEEDS}
    after = {s: toy.read_events(root, s, EPOCHS) for s in SEEDS}
    assert all(after[s] == before[s] for s in SEEDS[1:]), "a finished unit was computed again"
    new = after[0][len(before[0]):]
    rerun_pid = toy.started_pid(new)
    assert new[0].startswith(f"start from={killed_at} ")  # resumed from the checkpoint the killed worker left
    assert _started_epochs(new, rerun_pid) == list(range(killed_at + 1, EPOCHS + 1))
    assert _started_epochs(before[0], pid) == list(range(1, len(_started_epochs(before[0], pid)) + 1))

    # the same results as a serial run of the same sweep
    serial_root = str(tmp_path / "serial")
    serial = SerialExecutor()
    for s in SEEDS:
        serial.submit(toy.train_toy, serial_root, s, epochs=EPOCHS).result()
    assert store.runs(toy.NAMESPACE) == RunStore(serial_root).runs(toy.NAMESPACE)
    assert {s: r["w"] for s, r in again.items()} == {s: toy.toy_reference(s, EPOCHS) for s in SEEDS}


def test_a_unit_that_raises_fails_only_its_future(tmp_path):
    root = str(tmp_path / "store")
    with ProcessExecutor(workers=1) as ex:
        bad = ex.submit(toy.train_toy, root, 3, epochs=2, fail_at=1, log=tmp_path / "bad.log")
        good = ex.submit(toy.train_toy, root, 4, epochs=2)
        with pytest.raises(RuntimeError, match="toy unit 3 fails on purpose in epoch 1"):
            bad.result(timeout=120)
        assert good.result(timeout=120)["w"] == toy.toy_reference(4, 2)


def test_an_exception_that_does_not_unpickle_fails_its_unit_not_the_pool():
    with ProcessExecutor(workers=1) as ex:
        with pytest.raises(RuntimeError, match="StubbornError: the stubborn unit failed: on purpose"):
            ex.submit(toy.raise_stubborn).result(timeout=120)
        assert ex.submit(toy.toy_reference, 3, 2).result(timeout=60) == toy.toy_reference(3, 2)


def test_executors_by_name_and_their_bad_options():
    with pytest.raises(KeyError, match="processes, serial, slurm"):
        make_executor("threads")
    with pytest.raises(TypeError, match="executor must be a name"):
        make_executor(42)
    ex = SerialExecutor()
    assert make_executor(ex) is ex
    with pytest.raises(ValueError, match="workers must be a positive int"):
        make_executor("processes", workers=0)
    # the slurm executor checks its options before it needs submitit or a cluster
    for bad, name in [({"gpus_per_job": -1}, "gpus_per_job"), ({"cpus_per_job": "2"}, "cpus_per_job"),
                      ({"time_min": 0}, "time_min"), ({"array_parallelism": 0}, "array_parallelism"),
                      ({"partition": ""}, "partition"), ({"mem_gb": -4}, "mem_gb"), ({"extra": ["qos"]}, "extra")]:
        with pytest.raises(ValueError, match=name):
            make_executor("slurm", **bad)


def test_slurm_executor_without_submitit_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit now raises ImportError
    with pytest.raises(ImportError, match=re.escape('pip install "pags_core[cluster]"')):
        make_executor("slurm")
