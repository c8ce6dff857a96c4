"""Experiments: run specs, plans of units, executors (serial, a local process pool, Slurm) and their driver."""
from __future__ import annotations

from .executors import EXECUTORS, Executor, ProcessExecutor, SerialExecutor, WorkerDied, make_executor

__all__ = ["EXECUTORS", "Executor", "SerialExecutor", "ProcessExecutor", "WorkerDied", "make_executor"]
