"""What the generators refuse: bad arguments and options, zero-size layers, non-finite models, inputs and scores.

Every check raises early with the generator's name, the offending value and what is valid, so that no bad input
turns into a silently wrong mask (a NaN score would otherwise rank lowest and empty whole layers).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Dict, Iterable, List, Mapping, Tuple

import torch
from torch import nn

__all__ = ["check_noise", "check_seed", "check_count", "check_rounds", "check_options", "check_layer_sizes",
           "check_finite_tensors", "check_scores", "OPTION_CHECKS"]


def _real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _number(name: str, *, positive: bool) -> Callable[[Any], float]:
    """A validator: a finite real number > 0 (``positive``) or >= 0, returned as float."""
    bound = "> 0" if positive else ">= 0"

    def check(v):
        if not _real(v) or not math.isfinite(float(v)) or (float(v) <= 0 if positive else float(v) < 0):
            raise ValueError(f"{name} must be a finite number {bound}, got {v!r}")
        return float(v)
    return check


def check_noise(noise) -> float:
    """``noise`` (std of the scoring-only weight noise) as a float; it must be finite and >= 0."""
    return _number("noise", positive=False)(noise)


def check_seed(seed, *, non_negative: bool = False) -> int:
    """``seed`` as an int; a bool, a fraction or a non-number is an error (and a negative one with
    ``non_negative``: NumPy's seed sequences need it)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or (non_negative and seed < 0):
        raise ValueError(f"seed must be a{' non-negative' if non_negative else 'n'} int, got {seed!r}")
    return int(seed)


def check_count(value, name: str) -> int:
    """``value`` as a positive int (a count: rounds, mini-batches, a batch size); ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_rounds(rounds) -> int:
    return check_count(rounds, "rounds")


def _bool(name: str) -> Callable[[Any], Any]:
    def check(v):
        if not isinstance(v, bool):
            raise ValueError(f"{name} must be True or False, got {v!r}")
        return v
    return check


def _input_shape(v):
    if v is None:
        return None
    if (not isinstance(v, (tuple, list, torch.Size)) or not v
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in v)):
        raise ValueError(f"input_shape must be a non-empty tuple of positive ints without the batch dimension, "
                         f"e.g. (3, 32, 32), got {v!r}")
    return tuple(int(s) for s in v)


#: Validator of every generator option (by option name); each returns the normalised value or raises.
OPTION_CHECKS: Dict[str, Callable[[Any], Any]] = {
    "temperature": _number("temperature", positive=True),
    "power": _number("power", positive=False),
    "bernoulli": _bool("bernoulli"),
    "input_shape": _input_shape,
}


def check_options(gen_name: str, defaults: Mapping[str, Any], opts: Mapping[str, Any]) -> Dict[str, Any]:
    """Defaults overlaid with ``opts``; an unknown option is ``TypeError``, a bad value ``ValueError``, both naming
    the generator."""
    bad = sorted(set(opts) - set(defaults))
    if bad:
        valid = ", ".join(defaults) or "none"
        raise TypeError(f"generator {gen_name!r} got unknown option(s) {', '.join(bad)}; its options: {valid}")
    out = {**defaults, **opts}
    for k in opts:
        if k in OPTION_CHECKS:
            try:
                out[k] = OPTION_CHECKS[k](opts[k])
            except ValueError as e:
                raise ValueError(f"generator {gen_name!r}: {e}") from None
    return out


def check_layer_sizes(shapes: Mapping[str, Tuple[int, ...]]) -> None:
    """A layer with a zero-size weight has nothing to prune or graph: ``ValueError`` naming it and its shape."""
    empty = [f"{n} {tuple(s)}" for n, s in shapes.items() if math.prod(s) == 0]
    if empty:
        raise ValueError(f"{len(empty)} prunable layer(s) have no weights (a zero-size dimension): {', '.join(empty)}; "
                         "remove them or give them a non-zero size")


def _nonfinite_counts(t: torch.Tensor) -> str:
    parts = []
    n_nan = int(torch.isnan(t).sum())
    n_pos = int(torch.isposinf(t).sum())
    n_neg = int(torch.isneginf(t).sum())
    for n, what in ((n_nan, "NaN"), (n_pos, "+inf"), (n_neg, "-inf")):
        if n:
            parts.append(f"{n} {what}")
    return ", ".join(parts)


def check_finite_tensors(gen_name: str, tensors: Iterable[Tuple[str, torch.Tensor]], what: str, hint: str) -> None:
    """``ValueError`` naming every tensor of ``tensors`` with a NaN or inf entry (and how many)."""
    bad: List[str] = []
    for name, t in tensors:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad.append(f"{name} ({_nonfinite_counts(t)})")
    if bad:
        shown = "; ".join(bad[:8]) + (f"; ... ({len(bad) - 8} more)" if len(bad) > 8 else "")
        raise ValueError(f"{gen_name}: {what} hold non-finite values: {shown}. {hint}")


def model_tensors(model: nn.Module):
    """(name, tensor) of every parameter and floating-point buffer of ``model``."""
    yield from ((n, p.detach()) for n, p in model.named_parameters())
    yield from ((n, b) for n, b in model.named_buffers() if b.is_floating_point())


def check_scores(gen_name: str, scores: Mapping[str, torch.Tensor], mask, cause: str,
                 weights: Mapping[str, torch.Tensor] | None = None) -> None:
    """Refuse scores a ranking would silently misread.

    - NaN or +inf anywhere, or -inf on a weight the current ``mask`` keeps (``-inf`` is only the "stays pruned"
      marker of SynFlow's pruned weights): ``ValueError`` naming the generator, the layers, the counts and ``cause``;
    - when ``mask`` keeps every weight (a one-shot scoring or the first round): all scores equal (no signal, so
      the top-k would keep the first layers of the model in order) is a ``ValueError`` too, naming the prunable
      layers whose ``weights`` are all zero.
    """
    names = [n for n, s in scores.items() if s.is_floating_point()]
    if not names:
        return
    # fast path: one pass and one device sync for the whole model when every score is finite
    flagged = torch.stack([~torch.isfinite(scores[n].detach()).all() for n in names]).cpu()
    bad = []
    for n, f in zip(names, flagged.tolist()):
        if f:  # -inf is allowed where the current mask prunes (SynFlow's "stays pruned" marker)
            s, keep = scores[n].detach(), mask[n].to(scores[n].device)
            shown = s.masked_fill(~keep & torch.isneginf(s), 0.0)
            if not bool(torch.isfinite(shown).all()):
                bad.append(f"{n} ({_nonfinite_counts(shown)})")
    if bad:
        listed = "; ".join(bad[:6]) + (f"; ... ({len(bad) - 6} more)" if len(bad) > 6 else "")
        raise ValueError(f"{gen_name} produced non-finite scores, which it will not rank: {listed}. {cause}")
    if not bool(torch.stack([t.all().cpu() for t in mask.values()]).all()):
        return  # a later round: pruned weights may legitimately tie
    ext = torch.stack([torch.stack(torch.aminmax(scores[n].detach())).to(torch.float64).cpu() for n in names
                       if scores[n].numel()])
    lo, hi = float(ext[:, 0].min()), float(ext[:, 1].max())
    if lo == hi:
        zero = [n for n, w in (weights or {}).items() if w.numel() and not bool(w.any())]
        why = (f"these prunable layers are all zero: {', '.join(zero)}" if zero else
               "e.g. a zero-initialised layer that blocks every gradient")
        raise ValueError(
            f"{gen_name} gave every weight the same score {lo!r}: there is nothing to rank (the top-k would keep the "
            f"first layers of the model in order). Likely cause: {why} (torchvision's VisionTransformer starts its "
            "head, heads.head.weight, at 0); reinitialise such layers before pruning")
