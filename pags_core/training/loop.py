"""The masked training loop and evaluation."""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data import DataSplits, load_dataset
from ..device import resolve_device
from ..masks import Mask
from ..store import atomic_torch_save, read_checkpoint, tensor_digest
from .callbacks import Callback, TrainState, as_callbacks
from .recipes import Recipe, get_recipe

__all__ = ["TrainResult", "train", "evaluate"]


@dataclass
class TrainResult:
    """Outcome of :func:`train`.  Accuracies are fractions in [0, 1].

    ``test_acc`` is the test accuracy at the FIRST epoch reaching the best validation accuracy (``best_epoch``,
    1-based); with no validation split it is the last epoch's.  ``history`` holds one dict per epoch
    (epoch, lr, train_loss, train_acc, val_acc, test_acc, seconds, iters).  ``stopped_by`` names the callback that
    ended training early (``None`` when it ran to the end).
    """

    test_acc: float
    best_val_acc: float
    best_epoch: int
    final_test_acc: float
    history: List[Dict[str, Any]] = field(default_factory=list)
    diverged: bool = False
    seconds: float = 0.0
    iters: int = 0
    stopped_by: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, device="auto", *, amp: bool = False,
             channels_last: bool = False) -> float:
    """Top-1 accuracy (fraction) of ``model`` in eval mode over ``batches`` of (x, y); restores the previous mode.
    Batches without a single example are a ``ValueError`` (the accuracy of nothing is undefined)."""
    dev = resolve_device(device)
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for x, y in batches:
            x = x.to(dev, non_blocking=True)
            y = y.to(dev, non_blocking=True)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(dev, amp):
                out = model(x)
            correct += int((out.argmax(1) == y).sum())
            total += int(y.numel())
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("evaluate got no examples (empty batches): the accuracy of nothing is undefined")
    return correct / total


def _autocast(dev: torch.device, amp: bool):
    if amp:
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _auto_flag(value, dev: torch.device, name: str) -> bool:
    if isinstance(value, str):
        if value.lower() != "auto":
            raise ValueError(f"{name} must be 'auto', True or False, got {value!r}")
        return dev.type == "cuda"
    return bool(value)


def train(model: nn.Module, data, recipe: "str | Recipe" = "book", *, mask: Optional[Mask] = None, device="auto",
          seed: int = 0, epochs: Optional[int] = None, max_iters: Optional[int] = None, callbacks=None,
          eval_every_epoch: bool = True, progress: Optional[bool] = None, amp="auto", channels_last="auto",
          checkpoint: str | os.PathLike | None = None) -> TrainResult:
    """Train ``model`` in place on ``data`` (a :class:`~pags_core.data.DataSplits` or a data set name) with
    ``recipe`` (a :data:`RECIPES` name or a :class:`Recipe`).

    - ``mask``: a :class:`~pags_core.Mask`, applied before training; pruned weights get zero gradients before every
      optimiser step (so momentum never builds) and are zeroed again after it, so they stay exactly zero.  The mask
      is re-read every step: a callback may change it in place (ITOP).  When the mask lives on another device than
      the training, a moved copy is trained with and its final state is written back into ``mask`` at the end.
    - ``callbacks``: :class:`~pags_core.training.Callback` objects or functions ``f(state)`` called after every step;
      any of them may stop training (see :mod:`pags_core.training.callbacks`).
    - ``max_iters`` stops after that many optimiser steps (the lr schedule still follows the recipe's epochs).
    - ``seed`` fixes data order and augmentation (a dedicated generator) and any other randomness in the model
      (dropout) through a forked global RNG; the caller's RNG state is left as it was.
    - ``amp``/``channels_last``: ``"auto"`` = on for CUDA only (bf16 autocast, channels-last memory format).
    - A non-finite loss stops training and returns ``diverged=True`` (no exception).
    - ``checkpoint``: a file path.  After every epoch the whole training state (weights, optimiser, lr schedule,
      mask, data-order and global RNG states, history, elapsed time and every callback's ``state_dict``) is written
      there atomically; a call that finds the file resumes after its last epoch and gives the same result as an
      uninterrupted run.  The file records what it belongs to (recipe, epochs, seed, ``max_iters``, steps per epoch,
      the callbacks, and digests of the starting weights and of the mask): a checkpoint of another run is refused
      with the mismatching fields named.  It is deleted when training ends.
    """
    if isinstance(data, str):
        data = load_dataset(data)
    if not isinstance(data, DataSplits):
        raise TypeError(f"data must be a DataSplits (see load_dataset) or a data set name, got {type(data).__name__}")
    if mask is not None and not isinstance(mask, Mask):
        raise TypeError(f"mask must be a pags_core.Mask (Mask(dict_of_bool_tensors) builds one), got {type(mask).__name__}")
    rec = get_recipe(recipe)
    n_epochs = rec.epochs if epochs is None else epochs
    if isinstance(n_epochs, bool) or not isinstance(n_epochs, int) or n_epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if max_iters is not None and (isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 0):
        raise ValueError(f"max_iters must be a non-negative int or None, got {max_iters!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    cbs = as_callbacks(callbacks)
    dev = resolve_device(device)
    use_amp = _auto_flag(amp, dev, "amp")
    use_cl = _auto_flag(channels_last, dev, "channels_last")

    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    model.to(dev)
    if use_cl:
        model.to(memory_format=torch.channels_last)
    caller_mask = mask
    if mask is not None:
        mask = mask.to(dev)
        mask.check(model)
        mask.apply_(model)

    train_it = data.train_batches(rec.batch_size, seed=seed, augment=rec.augment, device=dev)
    steps_per_epoch = len(train_it)
    if steps_per_epoch == 0:
        raise ValueError(f"the training split of {data.name!r} is empty; nothing to train on")
    if len(data.test) == 0:
        raise ValueError(f"the test split of {data.name!r} is empty: every test accuracy would be NaN")
    total_steps = n_epochs * steps_per_epoch
    opt = torch.optim.SGD(model.parameters(), lr=rec.lr, momentum=rec.momentum, nesterov=rec.nesterov,
                          weight_decay=rec.weight_decay)
    if rec.schedule == "multistep":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, rec.milestone_epochs(n_epochs), gamma=rec.gamma)
        per_step = False
    elif rec.schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, total_steps) / max(total_steps, 1))))
        per_step = True
    else:
        sched, per_step = None, False

    has_val = len(data.val) > 0
    history: List[Dict[str, Any]] = []
    best_val, best_epoch, best_test = -1.0, 0, float("nan")
    diverged, stopped_by = False, None
    step = 0
    start_epoch, elapsed_before = 0, 0.0
    t0 = time.perf_counter()
    rng_devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    ck = None
    if ckpt_path is not None:
        ckpt_id = {"format": _CKPT_FORMAT, "recipe": asdict(rec), "epochs": n_epochs, "seed": int(seed),
                   "max_iters": max_iters, "steps_per_epoch": steps_per_epoch,
                   "callbacks": [type(cb).__name__ for cb in _stateful(cbs)],
                   "start_digest": tensor_digest(model.state_dict()),
                   "mask_digest": tensor_digest(mask) if mask is not None else None}
        ck = _load_train_checkpoint(ckpt_path, ckpt_id)
    state = TrainState(model=model, optimizer=opt, mask=mask, device=dev, steps_per_epoch=steps_per_epoch,
                       total_steps=total_steps, history=history)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None:
            sched.load_state_dict(ck["scheduler"])
        if mask is not None:
            for k, t in ck["mask"].items():
                mask[k] = t.to(dev)
        for cb, cs in zip(_stateful(cbs), ck["callback_states"]):
            cb.load_state_dict(cs)
        train_it.generator.set_state(ck["data_rng"])
        history[:] = list(ck["history"])
        step = int(ck["step"])
        best_val, best_epoch, best_test = float(ck["best_val"]), int(ck["best_epoch"]), float(ck["best_test"])
        start_epoch, elapsed_before = int(ck["epoch"]), float(ck["elapsed"])
        print(f"train: resuming from the checkpoint {ckpt_path} after epoch {start_epoch} (step {step})",
              file=sys.stderr, flush=True)
    state.step, state.epoch = step, start_epoch

    def _eval(split_batches):
        return evaluate(model, split_batches, dev, amp=use_amp, channels_last=use_cl)

    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(seed)
        if ck is not None:
            torch.set_rng_state(ck["cpu_rng"])
            if rng_devices and ck.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(ck["cuda_rng"], rng_devices[0])
        for cb in cbs:
            cb.on_train_start(state)
        bar = tqdm(range(start_epoch, n_epochs), desc="train", initial=start_epoch, total=n_epochs,
                   disable=None if progress is None else (not progress), leave=False)
        for epoch in bar:
            if max_iters is not None and step >= max_iters:
                break
            model.train()
            te = time.perf_counter()
            loss_sum = torch.zeros((), device=dev)
            correct = torch.zeros((), device=dev, dtype=torch.long)
            seen = 0
            lr = opt.param_groups[0]["lr"]
            for x, y in train_it:
                if use_cl:
                    x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(dev, use_amp):
                    out = model(x)
                loss = F.nll_loss(out.float(), y)
                if not bool(torch.isfinite(loss)):
                    diverged = True
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if mask is not None:
                    mask.apply_grads_(model)
                opt.step()
                if mask is not None:
                    mask.apply_(model)
                step += 1
                if per_step:
                    sched.step()
                loss_sum += loss.detach() * y.numel()
                correct += (out.detach().argmax(1) == y).sum()
                seen += y.numel()
                state.step = step
                for cb in cbs:
                    if cb.on_step_end(state) is True:
                        stopped_by = stopped_by or _cb_name(cb)
                if stopped_by or (max_iters is not None and step >= max_iters):
                    break
            if sched is not None and not per_step:
                sched.step()
            last = diverged or stopped_by is not None or epoch == n_epochs - 1 or \
                (max_iters is not None and step >= max_iters)
            rec_ = {"epoch": epoch + 1, "lr": lr, "iters": step,
                    "train_loss": float(loss_sum) / seen if seen else float("nan"),
                    "train_acc": float(correct) / seen if seen else float("nan"),
                    "seconds": time.perf_counter() - te}
            if eval_every_epoch or last:
                rec_["val_acc"] = _eval(data.val_batches(rec.test_batch_size, device=dev)) if has_val else float("nan")
                rec_["test_acc"] = _eval(data.test_batches(rec.test_batch_size, device=dev))
                if has_val and rec_["val_acc"] > best_val:  # strict: the FIRST best-validation epoch wins
                    best_val, best_epoch, best_test = rec_["val_acc"], epoch + 1, rec_["test_acc"]
            if diverged:
                rec_["diverged"] = True
            history.append(rec_)
            state.epoch, state.record = epoch + 1, rec_
            if not diverged:
                for cb in cbs:
                    if cb.on_epoch_end(state) is True:
                        stopped_by = stopped_by or _cb_name(cb)
                        last = True
            bar.set_postfix(loss=f"{rec_['train_loss']:.3f}", val=f"{rec_.get('val_acc', float('nan')):.3f}")
            if ckpt_path is not None and not last:  # a diverged or stopped run ends here: never checkpointed
                atomic_torch_save({
                    **ckpt_id, "epoch": epoch + 1, "step": step, "model": model.state_dict(),
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict() if sched is not None else None,
                    "mask": {k: t.detach().cpu() for k, t in mask.items()} if mask is not None else None,
                    "callback_states": [cb.state_dict() for cb in _stateful(cbs)],
                    "data_rng": train_it.generator.get_state(), "cpu_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(rng_devices[0]) if rng_devices else None,
                    "history": history, "best_val": best_val, "best_epoch": best_epoch,
                    "best_test": best_test, "elapsed": elapsed_before + time.perf_counter() - t0}, ckpt_path)
            if diverged or stopped_by is not None:
                break
        bar.close()
        for cb in cbs:
            cb.on_train_end(state)
    if ckpt_path is not None and ckpt_path.exists():
        ckpt_path.unlink()

    if mask is not None and mask is not caller_mask:  # write the final (possibly ITOP-changed) mask back
        for k in list(caller_mask):
            if k not in mask:
                del caller_mask[k]
        for k, t in mask.items():
            caller_mask[k] = t.to(caller_mask[k].device if k in caller_mask else "cpu")
    final_test = history[-1].get("test_acc", float("nan")) if history else float("nan")
    if not has_val or best_epoch == 0:
        best_val, best_epoch, best_test = float("nan"), len(history), final_test
    return TrainResult(test_acc=best_test, best_val_acc=best_val, best_epoch=best_epoch, final_test_acc=final_test,
                       history=history, diverged=diverged, seconds=elapsed_before + time.perf_counter() - t0,
                       iters=step, stopped_by=stopped_by)


def _stateful(cbs) -> list:
    """The callbacks that keep state in a checkpoint (those that define ``state_dict``)."""
    return [cb for cb in cbs if type(cb).state_dict is not Callback.state_dict]


def _cb_name(cb) -> str:
    return getattr(cb, "__name__", None) or type(cb).__name__


_CKPT_FORMAT = "pags_core.train-checkpoint/2"


def _load_train_checkpoint(path: Path, ident: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    ck = read_checkpoint(path, _CKPT_FORMAT, "training", weights_only=False)
    if ck is None:
        return None
    diff = {k: (ck.get(k), v) for k, v in ident.items() if ck.get(k) != v}  # format already matched
    if diff:
        details = "; ".join(f"{k}: checkpoint {_short(a)}, this call {_short(b)}" for k, (a, b) in diff.items())
        raise ValueError(f"the training checkpoint {path} was written by another run ({details}); delete it or "
                         f"pass another checkpoint path")
    return ck


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."
