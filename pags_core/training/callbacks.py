"""The callback protocol of :func:`pags_core.train`: small hooks that may change the mask, record state or stop.

A callback is a :class:`Callback` (override any method) or a plain function ``f(state)``, which is called after every
optimiser step.  ``on_step_end`` and ``on_epoch_end`` may return ``True`` (exactly; any other value is ignored) to ask the loop to stop; the loop then ends
the current epoch with its evaluation and returns, and :attr:`~pags_core.training.TrainResult.stopped_by` names the
callback.  ``state_dict``/``load_state_dict`` travel in the per-epoch training checkpoint, so a resumed run continues
with the callback's state as it was (Early-Bird's mask history, ITOP's update count, LTH's captured rewind weights).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import nn

__all__ = ["Callback", "TrainState", "CaptureWeights", "as_callbacks", "cpu_state"]


def cpu_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    """A CPU copy of ``model.state_dict()`` (parameters and buffers)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class TrainState:
    """What a callback sees.  ``step``: optimiser steps taken so far (1-based inside ``on_step_end``); ``epoch``:
    epochs finished (``on_epoch_end`` sees the epoch just finished and its ``record``); ``mask`` may be changed in
    place (the loop re-reads it every step)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    mask: Any
    device: torch.device
    steps_per_epoch: int
    total_steps: int
    step: int = 0
    epoch: int = 0
    history: List[Dict[str, Any]] = field(default_factory=list)
    record: Optional[Dict[str, Any]] = None


class Callback:
    """Base class of training callbacks; every hook is optional."""

    def on_train_start(self, state: TrainState) -> None:
        """Once, before the first step (also when resuming from a checkpoint)."""

    def on_step_end(self, state: TrainState) -> Optional[bool]:
        """After every optimiser step (the mask has been re-applied); return True to stop."""
        return None

    def on_epoch_end(self, state: TrainState) -> Optional[bool]:
        """After every epoch and its evaluation (``state.record``); return True to stop."""
        return None

    def on_train_end(self, state: TrainState) -> None:
        """Once, after the last step."""

    def state_dict(self) -> Dict[str, Any]:
        """What the training checkpoint keeps of this callback."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict` when a checkpointed run resumes."""


class _StepFunction(Callback):
    def __init__(self, fn: Callable[[TrainState], Optional[bool]]):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)

    def on_step_end(self, state: TrainState) -> Optional[bool]:
        return self.fn(state)


def as_callbacks(callbacks) -> List[Callback]:
    """A list of :class:`Callback` from ``None``, one callback or function, or a sequence of them."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or callable(callbacks) and not isinstance(callbacks, (list, tuple)):
        callbacks = [callbacks]
    out = []
    for cb in callbacks:
        if isinstance(cb, Callback):
            out.append(cb)
        elif callable(cb):
            out.append(_StepFunction(cb))
        else:
            raise TypeError(f"a training callback must be a Callback or a function f(state), got {type(cb).__name__}")
    return out


class CaptureWeights(Callback):
    """Keep a CPU copy of the model's ``state_dict`` after optimiser step ``step`` (the rewind point θ_k of LTH
    rewinding).  ``weights`` is ``None`` until then; the copy is part of the checkpoint."""

    def __init__(self, step: int):
        if not isinstance(step, int) or step < 1:
            raise ValueError(f"step must be a positive int (an optimiser step), got {step!r}")
        self.step = step
        self.weights: Optional[Dict[str, torch.Tensor]] = None

    def on_step_end(self, state: TrainState) -> None:
        if state.step == self.step:
            self.weights = cpu_state(state.model)

    def state_dict(self) -> Dict[str, Any]:
        return {"step": self.step, "weights": self.weights}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.weights = state["weights"]
