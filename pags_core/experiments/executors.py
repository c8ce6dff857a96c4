"""The executor seam: where the units of a plan run.

An executor is anything with ``submit(fn, *args, log=path) -> future`` whose future has ``.result()``.  Three are
registered in :data:`EXECUTORS`:

- ``serial``: in this process, one unit after the other (``submit`` runs the unit and returns a finished future);
- ``processes``: a local pool of ``workers`` spawned processes, each with ``threads`` torch threads; on a machine with
  GPUs every worker is pinned to one of them through ``CUDA_VISIBLE_DEVICES``.  A worker that dies (killed, out of
  memory) fails only the unit it was running, with :class:`WorkerDied`; a fresh worker takes its place;
- ``slurm``: a Slurm cluster through submitit (:mod:`pags_core.experiments.slurm`, optional extra ``cluster``).

:meth:`Executor.wave` groups the submissions of one wave (a Slurm job array); :meth:`Executor.device` says where a
unit declared with ``device="auto"`` will run, so that a run key holds the device the unit really uses.
"""
from __future__ import annotations

import contextlib
import inspect
import multiprocessing as mp
import os
import sys
import threading
import traceback
from concurrent.futures import Future
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Callable, Optional

from ..registry import Registry

__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "WorkerDied", "EXECUTORS", "make_executor",
           "cuda_device_count"]


class WorkerDied(RuntimeError):
    """A pool worker exited while it ran a unit (killed, out of memory, a crash in native code)."""


def cuda_device_count() -> int:
    """GPUs visible to this process, without initialising CUDA in it (0 when torch has no CUDA)."""
    import torch

    try:
        return int(torch.cuda.device_count())
    except Exception:  # pragma: no cover - broken driver installs
        return 0


class Executor:
    """Base class: the seam every executor implements (``submit``; optionally ``wave``, ``device``, ``shutdown``)."""

    name = "executor"
    workers = 1

    def submit(self, fn: Callable[..., Any], *args: Any, log: Optional[Path] = None, **kwargs: Any) -> Future:
        raise NotImplementedError

    @contextlib.contextmanager
    def wave(self, name: str = "wave"):
        """Group the submissions made inside the block (a no-op except on Slurm, where they form one job array)."""
        yield self

    def device(self, declared: str) -> str:
        """The device type (``"cpu"`` or ``"cuda"``) a unit declared with ``declared`` runs on."""
        d = str(declared).lower()
        if d == "auto":
            return "cuda" if cuda_device_count() > 0 else "cpu"
        return d.split(":")[0]

    def describe(self) -> str:
        return f"{self.name} ({self.workers} worker{'s' if self.workers != 1 else ''})"

    def shutdown(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
        return False


@contextlib.contextmanager
def _redirect_output(log: Optional[Path]):
    """Send this process's stdout and stderr (file descriptors 1 and 2, so native output too) to ``log``."""
    if log is None:
        yield
        return
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "a", buffering=1) as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        old = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = f
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = old
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class SerialExecutor(Executor):
    """Run every unit at once, in this process (today's behaviour of the notebooks).  A unit's exception is kept in
    its future, so one failing unit does not stop the others.  ``store`` (the plan's run store, which
    :func:`~pags_core.experiments.run_plan` passes to every executor) is not needed here."""

    name = "serial"

    def __init__(self, threads: int = 1, store: Any = None):
        self.workers = 1
        self.threads = _positive("threads", threads)

    def submit(self, fn, *args, log=None, **kwargs) -> Future:
        fut: Future = Future()
        fut.set_running_or_notify_cancel()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - reported through the future, like a pool would
            fut.set_exception(e)
        return fut


# ----------------------------------------------------------------------------------------------------------------
# the local process pool
# ----------------------------------------------------------------------------------------------------------------
def _worker_main(conn, threads: int, gpu: Optional[int], sys_path: list) -> None:
    """Body of one pool worker: set threads and the visible GPU, then run tasks until told to stop."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    for p in reversed(sys_path):  # the driver's import path (a reader's own model module next to a notebook)
        if p not in sys.path:
            sys.path.insert(0, p)
    import torch

    torch.set_num_threads(int(threads))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        fn, args, kwargs, log = msg
        try:
            with _redirect_output(log):
                out = ("ok", fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - everything goes back to the driver
            tb = traceback.format_exc()
            try:
                import pickle

                pickle.loads(pickle.dumps(e))  # it must unpickle too: a constructor taking more than the message fails
                out = ("err", (e, tb))
            except Exception:  # an exception that cannot cross the pipe
                out = ("err", (RuntimeError(f"{type(e).__name__}: {e}"), tb))
        try:
            conn.send(out)
        except Exception as e:  # noqa: BLE001 - an unpicklable result
            conn.send(("err", (RuntimeError(f"the unit's result cannot be sent back: {e}"), traceback.format_exc())))


class _Worker:
    def __init__(self, ctx, threads: int, gpu: Optional[int]):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, threads, gpu, list(sys.path)), daemon=True)
        self.proc.start()
        child.close()
        self.gpu = gpu
        self.task = None  # (future, log) while busy


class ProcessExecutor(Executor):
    """A pool of ``workers`` spawned processes with ``threads`` torch threads each.

    With GPUs visible, worker i is pinned to GPU ``i mod n_gpus`` (``CUDA_VISIBLE_DEVICES``).  Tasks go to idle
    workers in submission order.  A worker that dies fails its task with :class:`WorkerDied` (naming the exit code and
    the log) and is replaced; the other tasks go on.  An exception raised by a task is re-raised by ``result()``
    with the worker's traceback attached as a note.  ``store`` (passed by :func:`~pags_core.experiments.run_plan`)
    is not needed: the workers write into the store the units name.
    """

    name = "processes"

    def __init__(self, workers: int = 2, threads: int = 1, gpus: Optional[int] = None, store: Any = None):
        self.workers = _positive("workers", workers)
        self.threads = _positive("threads", threads)
        if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0):
            raise ValueError(f"gpus must be None (all visible GPUs) or an int >= 0, got {gpus!r}")
        self.gpus = cuda_device_count() if gpus is None else gpus
        self._ctx = mp.get_context("spawn")
        self._pool: list[_Worker] = []
        self._queue: list = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = self._ctx.Pipe(duplex=False)
        self._closed = False
        self._thread: Optional[threading.Thread] = None

    def device(self, declared: str) -> str:
        d = str(declared).lower()
        if d == "auto":
            return "cuda" if self.gpus > 0 else "cpu"
        return d.split(":")[0]

    def _start(self) -> None:
        if self._thread is None:
            self._pool = [self._spawn(i) for i in range(self.workers)]
            self._thread = threading.Thread(target=self._dispatch, name="pags-process-pool", daemon=True)
            self._thread.start()

    def _spawn(self, i: int) -> _Worker:
        return _Worker(self._ctx, self.threads, (i % self.gpus) if self.gpus else None)

    def submit(self, fn, *args, log=None, **kwargs) -> Future:
        if self._closed:
            raise RuntimeError("this executor has been shut down")
        fut: Future = Future()
        fut.log = None if log is None else str(log)
        with self._lock:
            self._queue.append((fut, (fn, args, kwargs, None if log is None else str(log))))
            self._start()
        self._wake_w.send(1)
        return fut

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                for w in self._pool:
                    if w.task is None and self._queue:
                        fut, msg = self._queue.pop(0)
                        if not fut.set_running_or_notify_cancel():
                            continue
                        w.task = (fut, msg[3])
                        try:
                            w.conn.send(msg)
                        except Exception as e:  # noqa: BLE001 - e.g. an unpicklable argument
                            w.task = None
                            fut.set_exception(e)
                busy = [w for w in self._pool if w.task is not None]
                if self._closed and not busy and not self._queue:
                    break
            waitables = [self._wake_r] + [w.conn for w in busy] + [w.proc.sentinel for w in busy]
            ready = wait(waitables)
            if self._wake_r in ready:
                while self._wake_r.poll():
                    self._wake_r.recv()
            with self._lock:
                for i, w in enumerate(list(self._pool)):
                    if w.task is None:
                        continue
                    fut, log = w.task
                    if w.conn in ready or w.conn.poll():
                        try:
                            status, payload = w.conn.recv()
                        except (EOFError, OSError):
                            status, payload = None, None
                        except Exception as e:  # noqa: BLE001 - a result that does not unpickle here
                            status, payload = "err", (RuntimeError(f"the unit's result cannot be read back: "
                                                                   f"{type(e).__name__}: {e}"), "")
                        if status == "ok":
                            w.task = None
                            fut.set_result(payload)
                            continue
                        if status == "err":
                            w.task = None
                            exc, tb = payload
                            if hasattr(exc, "add_note"):
                                exc.add_note(f"in a worker process (log: {log}):\n{tb}")
                            fut.set_exception(exc)
                            continue
                    if w.proc.sentinel in ready or not w.proc.is_alive():
                        w.proc.join(timeout=1)
                        fut.set_exception(WorkerDied(
                            f"the worker process (pid {w.proc.pid}) exited with code {w.proc.exitcode} while it ran "
                            f"a unit" + (f"; its log: {log}" if log else "")))
                        w.conn.close()
                        self._pool[i] = self._spawn(i)
        for w in self._pool:
            with contextlib.suppress(Exception):
                w.conn.send(None)
        for w in self._pool:
            w.proc.join(timeout=10)
            if w.proc.is_alive():
                w.proc.kill()

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._wake_w.send(1)
            self._thread.join()


EXECUTORS: Registry = Registry("executor")
EXECUTORS.register("serial", SerialExecutor)
EXECUTORS.register("processes", ProcessExecutor)


def _slurm(**opts):
    from .slurm import SlurmExecutor  # submitit is imported only when a Slurm executor is asked for

    return SlurmExecutor(**opts)


EXECUTORS.register("slurm", _slurm)


def make_executor(name: "str | Executor" = "serial", **opts: Any) -> Executor:
    """An executor by name (:data:`EXECUTORS`: ``serial``, ``processes``, ``slurm``) with its options, or ``name``
    itself when it already is an executor (anything with ``submit``).  An option the executor does not take is a
    ``TypeError`` listing the ones it does (``serial`` runs one unit at a time: it takes no ``workers``)."""
    if not isinstance(name, str):
        if not callable(getattr(name, "submit", None)):
            raise TypeError(f"executor must be a name ({', '.join(EXECUTORS.names())}) or an object with submit(), "
                            f"got {type(name).__name__}")
        return name
    factory = EXECUTORS[name]
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        bad = sorted(set(opts) - set(params))
        if bad:
            raise TypeError(f"the {name!r} executor has no option(s) {', '.join(map(repr, bad))}; its options: "
                            f"{', '.join(params) or 'none'}")
    return factory(**opts)
