"""The ``slurm`` executor: units run as Slurm jobs through submitit.

One wave of a plan is one job array (:meth:`SlurmExecutor.wave`); a unit submitted outside a wave is one job.  Each
job gets ``cpus_per_job`` CPUs (and as many torch/OpenMP threads), ``gpus_per_job`` GPUs (``--gres=gpu:N``) and a
time limit of ``time_min`` minutes.  On preemption or shortly before its time limit Slurm signals the job; submitit
then requeues the *same call* (:class:`_RequeuedCall` is a submitit checkpointable), and the unit resumes from the
per-epoch checkpoint it keeps in the run store.  Job scripts, pickles and logs are kept under ``folder``, one
sub-folder per executor session (job ids restart on a freshly set up cluster).

The futures are :class:`concurrent.futures.Future` objects filled in by a watcher thread: from the job's result file
when it exists, otherwise from the job's state in ``squeue`` (which works without an accounting database).  A unit
that raises re-raises its own exception type in the driver, with a note naming the job id and its logs; a job that
ends without a result (cancelled, killed, out of time too often), or whose exception does not pickle, raises
:class:`SlurmJobFailed`, whose message names the job id and its logs.

submitit is an optional dependency (``pip install "pags_core[cluster]"``), imported when an executor is created.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
import traceback
import warnings
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from ..store import RunStore, atomic_write, default_store_root
from .executors import Executor, _redirect_output

__all__ = ["SlurmExecutor", "SlurmFuture", "SlurmJobFailed", "INSTALL_HINT"]

INSTALL_HINT = 'pip install "pags_core[cluster]"'

# Job states after which no result will come (squeue --states=all); anything else may still produce one.
_ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
          "REVOKED", "SPECIAL_EXIT", "TIMEOUT"}

# submitit Slurm parameters this executor sets from its own options (``extra`` may not set them)
_OWN_PARAMETERS = {"array_parallelism", "cpus_per_task", "gpus_per_node", "gpus_per_task", "gres", "job_name",
                   "mem", "partition", "setup", "signal_delay_s", "time"}


def _import_submitit():
    try:
        import submitit
    except ImportError as e:
        raise ImportError(f"the slurm executor needs submitit, which is not installed: {INSTALL_HINT} ({e})") from e
    return submitit


class SlurmJobFailed(RuntimeError):
    """A Slurm job ended without a result (cancelled, killed, node failure, out of time too often), or its unit
    raised an exception that cannot be raised again here (it does not pickle); the message holds its traceback.

    ``job_id`` is the Slurm job id (``<array>_<index>`` for a wave), ``logs`` the job's stdout/stderr files and the
    unit's own log when it had one."""

    def __init__(self, message: str, job_id: str, logs: list):
        super().__init__(message)
        self.job_id = job_id
        self.logs = logs


class _RequeuedCall:
    """What a job runs: ``fn(*args, **kwargs)`` with the unit's output appended to ``log``.

    submitit requeues a job whose callable has a ``checkpoint`` method when the job is preempted or about to time
    out; this one requeues the same call unchanged, so the unit restarts and resumes from its own checkpoint."""

    def __init__(self, fn: Callable[..., Any], log: Optional[str]):
        self.fn = fn
        self.log = log

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        print(f"pags: running {getattr(self.fn, '__qualname__', self.fn)!s}"
              + (f"; its output goes to {self.log}" if self.log else ""), flush=True)
        with _redirect_output(self.log):
            print(f"pags: Slurm job {_job_id_here()} (restart {os.environ.get('SLURM_RESTART_COUNT', '0')}) on "
                  f"{os.uname().nodename}, pid {os.getpid()}", flush=True)
            try:
                return self.fn(*args, **kwargs)
            except Exception as e:
                traceback.print_exc()
                _keep_exception(e)
                raise

    def checkpoint(self, *args: Any, **kwargs: Any):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


_EXCEPTION_FILE = "unit_exception.pkl"  # in the job's folder: the unit's exception, so the driver re-raises its type


def _keep_exception(exc: Exception) -> None:
    """Pickle the unit's exception beside the job's result (submitit keeps only its traceback text), when it survives
    a round trip through pickle; the driver then raises the same type (e.g. the store's ``LeaseHeld``)."""
    import pickle

    import cloudpickle
    from submitit import JobEnvironment

    try:
        data = cloudpickle.dumps(exc)
        pickle.loads(data)
        atomic_write(JobEnvironment().paths.folder / _EXCEPTION_FILE, data)
    except Exception:  # noqa: BLE001 - then the driver raises SlurmJobFailed with the traceback text
        pass


def _job_id_here() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "?")


def _python_path() -> list[str]:
    """The driver's import path beyond the interpreter's own (a notebook's folder, a reader's model module): jobs
    unpickle their unit before any code of ours runs, so it goes into ``PYTHONPATH``."""
    own = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    out = []
    for p in sys.path:
        p = os.path.realpath(p or os.getcwd())
        if os.path.isdir(p) and not any(p == o or p.startswith(o + os.sep) for o in own) and p not in out:
            out.append(p)
    return out


class SlurmFuture(Future):
    """The future of one Slurm job.  ``job`` is the submitit job (its ``job_id`` is known once its wave is
    submitted), ``log`` the unit's own log."""

    def __init__(self, job, log: Optional[str]):
        super().__init__()
        self.job = job
        self.log = log
        self._ended_since: Optional[float] = None

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)

    def logs(self) -> list:
        """The job's stdout and stderr files (Slurm's and submitit's output), then the unit's log."""
        paths = [str(self.job.paths.stdout), str(self.job.paths.stderr)]
        return paths + ([self.log] if self.log else [])

    def _describe_logs(self) -> str:
        return "its logs: " + ", ".join(self.logs())


def _check_int(name: str, value: Any, low: int, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}{' or None' if allow_none else ''}, got {value!r}")


class SlurmExecutor(Executor):
    """Run units as Slurm jobs through submitit (see the module docstring).

    partition       the Slurm partition (``None``: the cluster's default)
    gpus_per_job    GPUs per job (``--gres=gpu:N``); with 0, units declared ``"auto"`` run on the CPU
    cpus_per_job    CPUs per job, and the job's ``OMP_NUM_THREADS``
    time_min        time limit of one job in minutes; a job near its limit is requeued and resumes
    array_parallelism  at most this many jobs of a wave run at once (``None``: as many as the cluster runs)
    folder          job scripts and logs (default: ``slurm/`` beside the run store); must be on a filesystem the
                    compute nodes share, like the run store
    mem_gb          memory per job in GB (``None``: the partition's default)
    extra           further submitit Slurm parameters, e.g. ``{"account": "lab", "qos": "high", "setup": ["module
                    load cuda"], "additional_parameters": {"reservation": "r1"}}`` (``setup``: shell lines run
                    before each job's unit)
    max_timeouts    how often one job may be requeued after reaching its time limit (preemptions do not count)
    signal_delay_s  seconds before the time limit at which the job is told to stop and requeue
    store           the run store (a :class:`~pags_core.store.RunStore` or its root) the default ``folder`` sits beside
    workers, threads  the options every executor takes: ``array_parallelism`` and ``cpus_per_job`` when those are
                    not given
    poll_s          seconds between checks of the jobs' result files (``squeue`` is asked every ``5 * poll_s``)
    grace_s         seconds a job may have ended without its result file appearing (a shared filesystem's delay)
    """

    name = "slurm"

    def __init__(self, partition: Optional[str] = None, gpus_per_job: int = 0, cpus_per_job: Optional[int] = None,
                 time_min: int = 60, array_parallelism: Optional[int] = None,
                 folder: "str | os.PathLike | None" = None, mem_gb: Optional[float] = None,
                 extra: Optional[Mapping[str, Any]] = None, max_timeouts: int = 3, signal_delay_s: int = 90,
                 store: "RunStore | str | os.PathLike | None" = None, workers: Optional[int] = None,
                 threads: Optional[int] = None, poll_s: float = 1.0, grace_s: float = 30.0):
        if partition is not None and (not isinstance(partition, str) or not partition):
            raise ValueError(f"partition must be a non-empty string or None, got {partition!r}")
        _check_int("gpus_per_job", gpus_per_job, 0)
        _check_int("threads", threads, 1, allow_none=True)
        _check_int("workers", workers, 1, allow_none=True)
        cpus_per_job = threads if cpus_per_job is None else cpus_per_job
        cpus_per_job = 1 if cpus_per_job is None else cpus_per_job
        _check_int("cpus_per_job", cpus_per_job, 1)
        _check_int("time_min", time_min, 1)
        array_parallelism = workers if array_parallelism is None else array_parallelism
        _check_int("array_parallelism", array_parallelism, 1, allow_none=True)
        _check_int("max_timeouts", max_timeouts, 0)
        _check_int("signal_delay_s", signal_delay_s, 1)
        if mem_gb is not None and (isinstance(mem_gb, bool) or not isinstance(mem_gb, (int, float)) or mem_gb <= 0):
            raise ValueError(f"mem_gb must be a positive number or None, got {mem_gb!r}")
        if extra is not None and not isinstance(extra, Mapping):
            raise ValueError(f"extra must be a mapping of submitit Slurm parameters, got {type(extra).__name__}")
        if not (poll_s > 0 and grace_s >= 0):
            raise ValueError(f"poll_s must be > 0 and grace_s >= 0, got poll_s={poll_s!r}, grace_s={grace_s!r}")

        submitit = _import_submitit()
        missing = [c for c in ("sbatch", "squeue", "srun") if shutil.which(c) is None]
        if missing:
            raise RuntimeError(f"the slurm executor needs Slurm's commands on PATH ({', '.join(missing)} missing): "
                               f"run the driver on a login node of the cluster")

        self.partition, self.gpus_per_job, self.cpus_per_job = partition, gpus_per_job, cpus_per_job
        self.time_min, self.array_parallelism, self.mem_gb = time_min, array_parallelism, mem_gb
        self.workers = array_parallelism  # None: the cluster decides how many run at once
        self.threads = cpus_per_job
        if folder is None:
            root = store.root if isinstance(store, RunStore) else Path(store or default_store_root())
            folder = Path(root).expanduser().absolute().parent / "slurm"
        self.folder = Path(folder).expanduser().absolute()
        self.session_folder = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        self.poll_s, self.grace_s = float(poll_s), float(grace_s)

        self._ex = submitit.SlurmExecutor(folder=self.session_folder / "%j", max_num_timeout=max_timeouts)
        params: dict = {"time": time_min, "cpus_per_task": cpus_per_job, "signal_delay_s": signal_delay_s,
                        "job_name": "pags"}
        if partition is not None:
            params["partition"] = partition
        if gpus_per_job:
            params["gres"] = f"gpu:{gpus_per_job}"
        if mem_gb is not None:
            params["mem"] = f"{int(round(mem_gb * 1024))}MB"
        if array_parallelism is not None:
            params["array_parallelism"] = array_parallelism
        extra = dict(extra or {})
        setup = extra.pop("setup", None) or []
        if isinstance(setup, str) or not all(isinstance(line, str) for line in setup):
            raise ValueError(f"extra['setup'] must be a list of shell lines, got {setup!r}")
        self._user_setup = list(setup)
        for key, value in extra.items():
            if key in _OWN_PARAMETERS:
                raise ValueError(f"extra must not set {key!r}: this executor sets it from its options "
                                 f"({', '.join(sorted(_OWN_PARAMETERS))})")
            params[key] = value
        try:
            self._ex.update_parameters(**params)
        except ValueError as e:
            raise ValueError(f"invalid Slurm parameter in extra: {e}") from None
        self._lock = threading.Lock()
        self._live: list[SlurmFuture] = []  # submitted, not finished
        self._wave: Optional[list] = None  # futures of the open wave, not yet submitted
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self._wake = threading.Event()

    # -- the seam -------------------------------------------------------------------------------------------------
    def device(self, declared: str) -> str:
        d = str(declared).lower()
        kind = d.split(":")[0]
        if d == "auto":
            return "cuda" if self.gpus_per_job > 0 else "cpu"
        if kind == "cuda" and self.gpus_per_job == 0:
            raise ValueError(f"a unit declared for device {declared!r} needs a GPU: give the slurm executor "
                             f"gpus_per_job >= 1 (it has 0), or declare device 'auto' or 'cpu'")
        return kind

    def describe(self) -> str:
        at_once = f"at most {self.array_parallelism} at once" if self.array_parallelism else "as many as fit"
        return (f"slurm (partition {self.partition or '<default>'}, {self.gpus_per_job} GPU and {self.cpus_per_job} "
                f"CPU per job, {self.time_min} min per job, {at_once}; job logs in {self.session_folder})")

    def _setup_lines(self) -> list[str]:
        n = self.cpus_per_job
        lines = self._user_setup + [f"export OMP_NUM_THREADS={n} MKL_NUM_THREADS={n}"]
        path = _python_path()
        if path:
            lines.append(f"export PYTHONPATH={shlex.quote(os.pathsep.join(path))}${{PYTHONPATH:+:$PYTHONPATH}}")
        return lines

    def submit(self, fn: Callable[..., Any], *args: Any, log: "str | os.PathLike | None" = None,
               **kwargs: Any) -> SlurmFuture:
        if self._closed:
            raise RuntimeError("this slurm executor has been shut down")
        log = None if log is None else str(Path(log).expanduser().absolute())
        if self._wave is None:  # a wave sets its parameters when it opens (submitit forbids changes inside)
            self._ex.update_parameters(setup=self._setup_lines())
        job = self._ex.submit(_RequeuedCall(fn, log), *args, **kwargs)
        fut = SlurmFuture(job, log)
        fut.set_running_or_notify_cancel()
        if self._wave is not None:
            self._wave.append(fut)  # its job id exists once the wave is submitted
        else:
            self._watch([fut])
        return fut

    @contextlib.contextmanager
    def wave(self, name: str = "wave"):
        """Submit the units of the block as one job array named ``pags-<name>`` when the block ends."""
        if self._wave is not None:
            raise RuntimeError("slurm waves cannot be nested: end the current wave before starting another")
        self._ex.update_parameters(job_name=f"pags-{name}", setup=self._setup_lines())
        self._wave = pending = []
        try:
            with warnings.catch_warnings():  # a wave whose units are all in the store already submits nothing
                warnings.filterwarnings("ignore", message="No submission happened", category=RuntimeWarning)
                with self._ex.batch():
                    yield self
        except BaseException as e:
            for fut in pending:
                fut.set_exception(RuntimeError(f"wave {name!r} was not submitted: {type(e).__name__}: {e}"))
            raise
        finally:
            self._wave = None
            self._ex.update_parameters(job_name="pags")
        self._watch(pending)

    def shutdown(self, cancel: bool = False) -> None:
        """Stop watching.  Jobs still queued or running keep going on the cluster (their results land in the run
        store) unless ``cancel``; their futures fail with an error that names them."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            left, self._live = [f for f in self._live if not f.done()], []
        if cancel and left:
            subprocess.run(["scancel", *[f.job_id for f in left]], capture_output=True, timeout=60)
        fate = "was cancelled" if cancel else f"keeps going on the cluster (scancel {{}} stops it)"
        for fut in left:
            fut.set_exception(SlurmJobFailed(
                f"the slurm executor was shut down while job {fut.job_id} was still queued or running; it "
                f"{fate.format(fut.job_id)}; {fut._describe_logs()}", fut.job_id, fut.logs()))

    # -- watching the jobs ----------------------------------------------------------------------------------------
    def _watch(self, futures: list) -> None:
        if not futures:
            return
        with self._lock:
            self._live.extend(futures)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watcher, name="pags-slurm-watcher", daemon=True)
                self._thread.start()
        self._wake.set()

    def _watcher(self) -> None:
        last_queue_check = 0.0
        while not self._closed:
            try:
                last_queue_check = self._check(last_queue_check)
            except Exception as e:  # noqa: BLE001 - e.g. a shared filesystem that hiccups: try again next round
                print(f"pags slurm executor: checking the jobs failed ({type(e).__name__}: {e}); retrying",
                      file=sys.stderr)
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _check(self, last_queue_check: float) -> float:
        """One round of the watcher: finish the futures whose result file exists; every ``5 * poll_s`` ask squeue
        about the others and fail those that ended without a result ``grace_s`` ago."""
        with self._lock:
            live = [f for f in self._live if not f.done()]
            self._live = live
        waiting = []
        for fut in live:
            if fut.job.paths.result_pickle.exists():
                self._finish(fut)
            else:
                waiting.append(fut)
        now = time.monotonic()
        if not waiting or now - last_queue_check < 5 * self.poll_s:
            return last_queue_check
        states = _queue_states({f.job_id.split("_")[0] for f in waiting})
        if states is None:
            return now
        for fut in waiting:
            state = states.get(fut.job_id)
            if state is not None and state not in _ENDED:
                fut._ended_since = None
                continue
            fut._ended_since = fut._ended_since or now
            if now - fut._ended_since >= self.grace_s and not fut.job.paths.result_pickle.exists():
                fut.set_exception(SlurmJobFailed(
                    f"Slurm job {fut.job_id} ended ({state or 'no longer known to Slurm'}) without a result; "
                    f"{fut._describe_logs()}", fut.job_id, fut.logs()))
        return now

    def _finish(self, fut: SlurmFuture) -> None:
        import pickle

        from submitit.core.utils import FailedJobError, UncompletedJobError

        try:
            fut.set_result(fut.job.result())
        except (FailedJobError, UncompletedJobError) as e:
            try:  # the unit's own exception, raised again with the job and its logs in a note
                original = pickle.loads((fut.job.paths.folder / _EXCEPTION_FILE).read_bytes())
            except Exception:  # noqa: BLE001 - none kept (it did not pickle), or the job died outside the unit
                original = None
            if isinstance(original, Exception):
                if hasattr(original, "add_note"):
                    original.add_note(f"in Slurm job {fut.job_id}; {fut._describe_logs()}\n{e}")
                fut.set_exception(original)
            else:
                fut.set_exception(SlurmJobFailed(f"Slurm job {fut.job_id} failed; {fut._describe_logs()}\n{e}",
                                                 fut.job_id, fut.logs()))
        except Exception as e:  # noqa: BLE001 - e.g. a result file that cannot be unpickled here
            fut.set_exception(SlurmJobFailed(f"the result of Slurm job {fut.job_id} cannot be read "
                                             f"({type(e).__name__}: {e}); {fut._describe_logs()}",
                                             fut.job_id, fut.logs()))


def _queue_states(array_ids: set) -> Optional[dict]:
    """``{job id: state}`` of the given jobs (array tasks as ``<array>_<index>``) from ``squeue``, finished jobs
    included while the controller still remembers them; ``None`` when squeue cannot be asked right now."""
    cmd = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", "--jobs", ",".join(sorted(array_ids))]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        # every id unknown (purged after MinJobAge): an empty answer; anything else: ask again later
        return {} if "Invalid job id" in out.stderr else None
    states = {}
    for line in out.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id:
            states[job_id] = state.split()[0] if state else ""
    return states
