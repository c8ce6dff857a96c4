"""A toy training unit for the executor tests, shaped like the real ones: a pure top-level function whose result goes
only through the run store, which checkpoints after every epoch and resumes from its checkpoint.

Every epoch it starts is appended to ``events.txt`` in its run folder (``epoch <e> attempt=<a> pid=<p>``), so a test
can count the epochs really computed and see which process (or Slurm restart) computed them.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import torch

from pags_core.store import RunStore, atomic_torch_save

NAMESPACE = "toy"


def toy_config(seed: int, epochs: int) -> dict:
    """The run's configuration: what decides its result (the per-epoch delay does not)."""
    return {"unit": "toy", "seed": seed, "epochs": epochs}


def toy_reference(seed: int, epochs: int) -> int:
    """The toy's result computed in one go (the oracle for runs that were interrupted and resumed)."""
    w = seed
    for epoch in range(1, epochs + 1):
        w = _step(w, epoch)
    return w


def _step(w: int, epoch: int) -> int:
    return (w * 1103515245 + 12345 * epoch) % 2**31


def _event(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text + "\n")


def attempt() -> str:
    """Which try this is: the Slurm restart count in a Slurm job, else 0."""
    return os.environ.get("SLURM_RESTART_COUNT", "0")


def train_toy(store_root: str, seed: int, epochs: int = 4, epoch_s: float = 0.0, fail_at: int = 0) -> dict:
    """"Train" for ``epochs`` epochs (``epoch_s`` seconds each), checkpointing after each; raise in epoch
    ``fail_at`` when it is positive.  A finished run is read back from the store."""
    store = RunStore(store_root)
    cfg = toy_config(seed, epochs)
    if store.has(NAMESPACE, cfg):
        return store.load(NAMESPACE, cfg)
    ckpt = store.artefact(NAMESPACE, cfg, "checkpoint.pt")
    events = store.artefact(NAMESPACE, cfg, "events.txt")
    state = torch.load(ckpt) if ckpt.is_file() else {"epoch": 0, "w": seed}
    _event(events, f"start from={state['epoch']} attempt={attempt()} pid={os.getpid()}")
    for epoch in range(state["epoch"] + 1, epochs + 1):
        _event(events, f"epoch {epoch} attempt={attempt()} pid={os.getpid()}")
        time.sleep(epoch_s)
        if epoch == fail_at:
            raise RuntimeError(f"toy unit {seed} fails on purpose in epoch {epoch}")
        state = {"epoch": epoch, "w": _step(state["w"], epoch)}
        atomic_torch_save(state, ckpt)
    result = {"seed": seed, "epochs": epochs, "w": state["w"]}
    store.save(NAMESPACE, cfg, result)
    return store.load(NAMESPACE, cfg)


def read_events(store_root: str, seed: int, epochs: int) -> list[str]:
    path = RunStore(store_root).path(NAMESPACE, toy_config(seed, epochs)) / "events.txt"
    return path.read_text().splitlines() if path.is_file() else []


def started_pid(events: list) -> int:
    """The process id of the first run recorded in ``events``."""
    return int(re.search(r"pid=(\d+)", events[0])[1])


def wait_for(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def checkpointed_epoch(store_root: str, seed: int, epochs: int) -> int:
    path = RunStore(store_root).path(NAMESPACE, toy_config(seed, epochs)) / "checkpoint.pt"
    return int(torch.load(path)["epoch"]) if path.is_file() else 0


def job_environment() -> dict:
    """The environment a job sees: threads and GPUs."""
    return {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS",
                                           "SLURM_CPUS_PER_TASK", "PAGS_TEST_SETUP")}


class StubbornError(RuntimeError):
    """An exception whose constructor takes two arguments: it pickles, but unpickling it fails."""

    def __init__(self, what: str, why: str):
        super().__init__(f"{what} failed: {why}")


def raise_stubborn() -> None:
    raise StubbornError("the stubborn unit", "on purpose")
