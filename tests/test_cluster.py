"""The ``slurm`` executor on a real single-node Slurm cluster started by ``scripts/slurm_cluster.sh``.

Run through ``make test-cluster`` (part of ``make test``).  The cluster is started for this module (or a running one
is reused and left running) and every daemon it started is stopped by PID at the end, also when a test fails.
Without root and without Slurm installed the tests are skipped with one line saying why; with ``CI=true`` that is a
failure instead.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import time
import warnings
from pathlib import Path

import pytest

from pags_core.experiments import SerialExecutor, make_executor
from pags_core.store import RunStore

import toy_unit as toy

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm_cluster.sh"
STATE = Path(os.environ.get("PAGS_SLURM_STATE", ROOT / "_build" / "slurm"))
DAEMONS = ("munged", "slurmctld", "slurmd")
EXIT_CANNOT = 3  # scripts/slurm_cluster.sh: Slurm missing and not root
EPOCHS = 4


def _daemon_alive(name: str, pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip().startswith(name)
    except OSError:
        return False


def _cannot_run(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the cluster tests must run in CI: {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def cluster():
    """``SLURM_CONF`` of a running test cluster; yields the daemons' PIDs."""
    if os.geteuid() != 0 and shutil.which("slurmctld") is None:
        _cannot_run("no Slurm cluster test: Slurm is not installed and installing it needs root")
    STATE.mkdir(parents=True, exist_ok=True)
    lock = open(STATE.parent / "slurm-test.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # one test session at a time uses (and stops) this cluster
    saved_conf = os.environ.get("SLURM_CONF")
    started = False
    try:
        running = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0
        if not running:
            out = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=600)
            started = out.returncode == 0
            if out.returncode == EXIT_CANNOT:
                _cannot_run(out.stdout.strip().splitlines()[-1])
            assert out.returncode == 0, f"scripts/slurm_cluster.sh start failed:\n{out.stdout}\n{out.stderr}"
        pids = {d: int((STATE / "pids" / f"{d}.pid").read_text()) for d in DAEMONS}
        os.environ["SLURM_CONF"] = str(STATE / "etc" / "slurm.conf")
        yield pids
    finally:
        if saved_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved_conf
        try:
            if started:
                out = subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120)
                left = [f"{d} (pid {p})" for d, p in pids.items() if _daemon_alive(d, p)]
                assert out.returncode == 0 and not left, f"daemons still running: {left}\n{out.stdout}{out.stderr}"
        finally:
            lock.close()


def _executor(store: Path, **opts):
    opts = {"store": store, "time_min": 60, "poll_s": 0.5, "grace_s": 5, **opts}
    return make_executor("slurm", **opts)


def _preempt(pid: int) -> None:
    """Signal a unit's process as Slurm does when it preempts the job, like submitit's own tests
    (``SlurmJob._interrupt``): SIGTERM, then the USR2 on which submitit checkpoints and requeues the job.

    The signals go straight to the process (the cluster is this machine): ``scancel --signal`` retries its request
    every 5 s when it fails, and it fails when the job requeues itself before slurmctld answers, so the retry
    interrupted the requeued run as well."""
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.2)
    os.kill(pid, signal.SIGUSR2)


def _epochs(events: list) -> list:
    """``[(epoch, attempt), ...]`` of the epochs a unit started, in order."""
    return [(int(m[1]), int(m[2])) for e in events if (m := re.match(r"epoch (\d+) attempt=(\d+)", e))]


def test_sweep_resumes_after_preemption_and_equals_the_serial_run(cluster, tmp_path):
    store = tmp_path / "store"
    seeds = (0, 1, 2)
    ex = _executor(store)
    try:
        with ex.wave("toy"):
            futs = {s: ex.submit(toy.train_toy, str(store), s, epochs=EPOCHS, epoch_s=1.0,
                                 log=tmp_path / "logs" / f"{s}.log") for s in seeds}
        assert len({f.job_id.split("_")[0] for f in futs.values()}) == 1, "a wave is one job array"
        toy.wait_for(lambda: toy.checkpointed_epoch(str(store), 0, EPOCHS) >= 1, 120, "the first checkpoint of seed 0")
        _preempt(toy.started_pid(toy.read_events(str(store), 0, EPOCHS)))
        assert toy.checkpointed_epoch(str(store), 0, EPOCHS) < EPOCHS, "seed 0 finished before it was preempted"
        results = {s: f.result(timeout=180) for s, f in futs.items()}
    finally:
        ex.shutdown(cancel=True)

    # the preempted job was requeued (same job, restart 1) and resumed from its checkpoint instead of epoch 1
    events = toy.read_events(str(store), 0, EPOCHS)
    epochs = _epochs(events)
    first = [e for e, a in epochs if a == 0]
    second = [e for e, a in epochs if a == 1]
    resumed_from = int(re.match(r"start from=(\d+) attempt=1", [e for e in events if "attempt=1" in e][0])[1])
    assert {a for _, a in epochs} == {0, 1}, events
    assert first == list(range(1, len(first) + 1)) and resumed_from >= 1, events
    assert second == list(range(resumed_from + 1, EPOCHS + 1)), events
    # epochs computed: all of them once, plus at most the one in flight when the signal came
    recomputed = first[-1] - resumed_from
    assert recomputed in (0, 1) and len(epochs) == EPOCHS + recomputed, events
    for s in (1, 2):
        assert _epochs(toy.read_events(str(store), s, EPOCHS)) == [(e, 0) for e in range(1, EPOCHS + 1)]

    # the same sweep run serially gives the same store and the closed-form results
    serial_store = tmp_path / "serial"
    serial = SerialExecutor()
    for s in seeds:
        serial.submit(toy.train_toy, str(serial_store), s, epochs=EPOCHS).result()
    assert RunStore(store).runs(toy.NAMESPACE) == RunStore(serial_store).runs(toy.NAMESPACE)
    assert {s: r["w"] for s, r in results.items()} == {s: toy.toy_reference(s, EPOCHS) for s in seeds}


def test_failing_job_is_reported_with_its_logs(cluster, tmp_path):
    from pags_core.experiments.slurm import SlurmJobFailed

    store = tmp_path / "store"
    ex = _executor(store)
    try:
        with ex.wave("mixed"):
            good = ex.submit(toy.train_toy, str(store), 5, epochs=2, log=tmp_path / "good.log")
            bad = ex.submit(toy.train_toy, str(store), 6, epochs=3, fail_at=2, log=tmp_path / "bad.log")
        assert good.result(timeout=120)["w"] == toy.toy_reference(5, 2)
        stubborn = ex.submit(toy.raise_stubborn, log=tmp_path / "stubborn.log")
        # the unit's own exception comes back, with the job and its logs in a note
        with pytest.raises(RuntimeError, match="toy unit 6 fails on purpose in epoch 2") as info:
            bad.result(timeout=120)
        # an exception that cannot cross a process boundary: SlurmJobFailed with its traceback
        with pytest.raises(SlurmJobFailed, match="StubbornError: the stubborn unit failed: on purpose") as failed:
            stubborn.result(timeout=120)
    finally:
        ex.shutdown(cancel=True)
    note = "\n".join(getattr(info.value, "__notes__", []))
    assert f"in Slurm job {bad.job_id}" in note and str(tmp_path / "bad.log") in bad.logs()
    for path in bad.logs():
        assert path in note and Path(path).is_file(), path
    assert "RuntimeError: toy unit 6 fails on purpose in epoch 2" in (tmp_path / "bad.log").read_text()
    err = failed.value
    assert err.job_id == stubborn.job_id and f"Slurm job {stubborn.job_id} failed" in str(err)
    for path in err.logs:
        assert path in str(err) and Path(path).is_file(), path
    assert not RunStore(store).has(toy.NAMESPACE, toy.toy_config(6, 3))
    assert toy.checkpointed_epoch(str(store), 6, 3) == 1  # what a rerun would resume from


def test_cancelled_job_is_reported_without_accounting(cluster, tmp_path):
    """No slurmdbd here (sacct knows nothing): the job's end is seen in squeue."""
    from pags_core.experiments.slurm import SlurmJobFailed

    store = tmp_path / "store"
    ex = _executor(store, grace_s=2)
    try:
        fut = ex.submit(toy.train_toy, str(store), 9, epochs=60, epoch_s=1.0, log=tmp_path / "long.log")
        toy.wait_for(lambda: toy.read_events(str(store), 9, 60), 120, "the long job to start")
        subprocess.run(["scancel", fut.job_id], check=True)
        with pytest.raises(SlurmJobFailed, match=rf"Slurm job {fut.job_id} ended \(CANCELLED\) without a result"):
            fut.result(timeout=60)
    finally:
        ex.shutdown(cancel=True)


def test_gpu_job_lands_on_a_fake_gpu_with_its_threads(cluster, tmp_path):
    ex = _executor(tmp_path / "store", gpus_per_job=1, cpus_per_job=2,
                   extra={"setup": ["export PAGS_TEST_SETUP=ran"]})
    try:
        assert ex.device("auto") == "cuda"
        env = ex.submit(toy.job_environment).result(timeout=120)
    finally:
        ex.shutdown(cancel=True)
    assert env["CUDA_VISIBLE_DEVICES"] in {"0", "1"} and env["SLURM_JOB_GPUS"] == env["CUDA_VISIBLE_DEVICES"], env
    assert env["OMP_NUM_THREADS"] == "2" and env["SLURM_CPUS_PER_TASK"] == "2", env  # the driver has 1
    assert env["PAGS_TEST_SETUP"] == "ran", env

    cpu = _executor(tmp_path / "store")
    assert cpu.device("auto") == "cpu" and cpu.device("cpu") == "cpu"
    with pytest.raises(ValueError, match="gpus_per_job"):
        cpu.device("cuda")


def test_options_reach_slurm_and_bad_ones_fail_early(cluster, tmp_path):
    with pytest.raises(ValueError, match="invalid Slurm parameter in extra.*no_such_option"):
        _executor(tmp_path / "store", extra={"no_such_option": 1})
    with pytest.raises(ValueError, match="must not set 'gres'"):
        _executor(tmp_path / "store", extra={"gres": "gpu:4"})
    with pytest.raises(ValueError, match="list of shell lines"):
        _executor(tmp_path / "store", extra={"setup": "module load cuda"})
    ex = _executor(tmp_path / "store", partition="no-such-partition")
    with pytest.raises(Exception, match="(?i)invalid partition"):
        with ex.wave("bad"):
            ex.submit(toy.job_environment)
    ex.shutdown()
    # a wave whose units are all done already submits nothing, silently
    ex = _executor(tmp_path / "store")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ex.wave("empty"):
            pass
    assert ex.folder == (tmp_path / "slurm").absolute() and "1 CPU per job" in ex.describe()
    ex.shutdown()


def test_a_chapter_sweep_survives_preemption_and_equals_the_serial_table(cluster, tmp_path):
    """The PAGS chapter's plan (tiny: synthetic data, width 1/8) through the slurm executor; a training job is
    preempted after its first epoch checkpoint, is requeued, resumes from that checkpoint, and the table equals the one
    the same plan gives serially."""
    import dataclasses
    import threading

    from pags_core import experiments as ex

    def config(store, executor):
        cfg = ex.resolve("pags", profile="book", dataset="synthetic", seeds=[0], generators=["erk"], population=2,
                         epochs=4, controls=["dense"], executor=executor, store=str(store),
                         data_options={"image_size": 8, "n_train": 1536, "n_test": 128})
        return cfg.replace(model=dataclasses.replace(cfg.model, width=1 / 8))

    store = tmp_path / "store"
    cfg = config(store, "slurm")
    tp = ex.table_plan(cfg, methods=["baseline", "PAGS", "dense"])
    errors = []

    def drive():
        try:
            ex.run_plan(tp.plan, progress=False, **{**cfg.execution(), "time_min": 60, "poll_s": 0.5, "grace_s": 5})
        except Exception as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    driver = threading.Thread(target=drive)
    driver.start()
    trains = [r.train for r in tp.rows]

    def checkpointed():
        return next((u for u in trains if (u.folder(RunStore(store)) / "checkpoint.pt").is_file()), None)

    toy.wait_for(lambda: checkpointed() is not None, 300, "a training run's first epoch checkpoint")
    victim = checkpointed()
    log = victim.folder(RunStore(store)) / "log.txt"
    pid = int(re.search(r"Slurm job \S+ \(restart 0\) on \S+, pid (\d+)", log.read_text())[1])
    _preempt(pid)
    driver.join(timeout=600)
    assert not driver.is_alive() and not errors, errors
    text = log.read_text()
    assert "(restart 1)" in text, text
    assert re.search(r"train: resuming from the checkpoint .* after epoch [1-3]", text), text

    serial = config(tmp_path / "serial", "serial")
    ex.run_plan(tp.plan, progress=False, **serial.execution())
    cols = ["seed", "generator", "method", "test_acc", "best_val_acc", "density_realised", "ticket_key"]
    slurm_table = ex.table_runs(tp, RunStore(store))[cols]
    assert slurm_table.equals(ex.table_runs(tp, RunStore(tmp_path / "serial"))[cols]), slurm_table
