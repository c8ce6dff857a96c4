"""The one scoring interface behind every score-based PaI generator.

A *scorer* is a function ``scorer(ctx, mask) -> dict[param name, score tensor]`` (higher = keep).  ``ctx`` is a
:class:`ScoringContext`: a private deep copy of the caller's model (eval mode, on the scoring device; float64 with
every state tensor made non-negative for SynFlow), its prunable weights ``ctx.weights``, the clean scoring weights
``ctx.theta`` (θ plus the optional scoring noise), the materialised mini-batches and a seeded CPU generator.
``mask`` is the current mask: all ones for one-shot generators, the previous round's mask for iterative ones.
Before scoring, a scorer calls ``ctx.load(mask)`` to set the copy's weights to ``theta ⊙ mask``.

The caller's model is never modified.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..masks import Mask
from ..models import require_prunable

__all__ = ["ScoringContext", "snip_scores", "grasp_scores", "synflow_scores", "magnitude_scores", "random_scores"]


class ScoringContext:
    """Everything a scorer needs; built once per :func:`~pags_core.pruning.generate_mask` call."""

    def __init__(self, model: nn.Module, *, batches: Optional[Iterable] = None, device: torch.device,
                 seed: int = 0, noise: float = 0.0, synflow: bool = False, input_shape: Optional[Sequence[int]] = None):
        self.device = device
        self.noise = float(noise)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.batches: Optional[List[Tuple[torch.Tensor, torch.Tensor]]] = None
        if batches is not None:
            self.batches = [(x, y) for x, y in batches]
            if not self.batches:
                raise ValueError("batches is empty; pass at least one (x, y) mini-batch")
        net = copy.deepcopy(model)
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.dtype = torch.float64 if synflow else None
        net = net.to(device=device, dtype=torch.float64) if synflow else net.to(device)
        self.net = net
        self.weights: Dict[str, nn.Parameter] = require_prunable(net)
        for w in self.weights.values():
            w.requires_grad_(True)
        with torch.no_grad():
            if noise:
                for w in self.weights.values():  # scoring-only noise on the temporary copy: θ itself stays clean
                    w.add_(torch.randn(w.shape, generator=self.generator, dtype=torch.float64).to(w) * float(noise))
            if synflow:  # SynFlow linearisation: every state tensor (BN included) -> |.|
                for t in list(net.parameters()) + [b for b in net.buffers() if b.is_floating_point()]:
                    t.abs_()
        self.theta: Dict[str, torch.Tensor] = {n: w.detach().clone() for n, w in self.weights.items()}
        self.input_shape = tuple(input_shape) if input_shape is not None else None

    @property
    def names(self) -> List[str]:
        return list(self.weights)

    @torch.no_grad()
    def load(self, mask: Mask) -> None:
        """Set the copy's prunable weights to ``theta ⊙ mask``."""
        for n, w in self.weights.items():
            w.copy_(self.theta[n] * mask[n].to(w.device))

    def iter_batches(self):
        if self.batches is None:
            raise ValueError("this generator needs data: pass batches=[(x, y), ...] "
                             "(e.g. data.sample_batches(4, 100, seed=0))")
        for x, y in self.batches:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def grads(self, loss: torch.Tensor, *, create_graph: bool = False) -> List[torch.Tensor]:
        return list(torch.autograd.grad(loss, list(self.weights.values()), create_graph=create_graph))


def _normalise(scores: Dict[str, torch.Tensor], signed: bool) -> Dict[str, torch.Tensor]:
    total = sum(s.sum() for s in scores.values())
    norm = (total.abs() + 1e-10) if signed else (total + 1e-10)
    return {n: s / norm for n, s in scores.items()}


def snip_scores(ctx: ScoringContext, mask: Mask) -> Dict[str, torch.Tensor]:
    """SNIP: |θ ⊙ Σ_b ∂L_b/∂θ_eff| with θ_eff = θ ⊙ m and L_b the mean NLL of batch b, divided by the global sum.

    With the all-ones mask this is |∂L/∂m| at m = 1.  Under a partial mask (iterSNIP) a pruned weight still has a
    non-zero score θ ⊙ ∂L/∂θ_eff, so it can re-enter later.
    """
    ctx.load(mask)
    acc = [torch.zeros_like(w) for w in ctx.weights.values()]
    for x, y in ctx.iter_batches():
        g = ctx.grads(F.nll_loss(ctx.net(x), y))
        for a, gi in zip(acc, g):
            a.add_(gi)
    scores = {n: (ctx.theta[n] * a).abs() for n, a in zip(ctx.names, acc)}
    return _normalise(scores, signed=False)


def grasp_scores(ctx: ScoringContext, mask: Mask, *, temperature: float = 200.0) -> Dict[str, torch.Tensor]:
    """GraSP: g = Σ_b ∇θ L_b (no graph), Hg = ∇θ Σ_b gᵀ∇θ L_b, score θ ⊙ Hg (signed; keep the largest), divided
    by |Σ score| + 1e-10.  L_b = NLL(output / T) with the model's log-softmax output and T = ``temperature``.
    The Hessian is taken over the prunable weights only.

    Hg needs the second derivative of every operation of the model: attention runs on PyTorch's "math"
    scaled-dot-product kernel here (the fused kernels have no double backward); an operation without a second
    derivative (e.g. ``nn.Hardsigmoid`` in torch 2.x) is a ``RuntimeError`` saying so.
    """
    ctx.load(mask)
    g = [torch.zeros_like(w) for w in ctx.weights.values()]
    for x, y in ctx.iter_batches():
        for a, gi in zip(g, ctx.grads(F.nll_loss(ctx.net(x) / temperature, y))):
            a.add_(gi)
    hg = [torch.zeros_like(w) for w in ctx.weights.values()]
    with sdpa_kernel(SDPBackend.MATH):
        for x, y in ctx.iter_batches():
            gr = ctx.grads(F.nll_loss(ctx.net(x) / temperature, y), create_graph=True)
            z = sum((a * b).sum() for a, b in zip(g, gr))
            try:
                hz = ctx.grads(z)
            except RuntimeError as e:
                if "derivative for" not in str(e) or "not implemented" not in str(e):
                    raise
                raise RuntimeError(
                    f"GraSP needs second derivatives (a Hessian-vector product) of every operation of "
                    f"{type(ctx.net).__name__}, and one has none in torch {torch.__version__}: {e}. Replace that "
                    "operation (e.g. nn.Hardsigmoid/Hardswish by nn.Sigmoid/SiLU) or use another generator") from e
            for a, hi in zip(hg, hz):
                a.add_(hi)
    scores = {n: ctx.theta[n] * h for n, h in zip(ctx.names, hg)}
    return _normalise(scores, signed=True)


def synflow_scores(ctx: ScoringContext, mask: Mask) -> Dict[str, torch.Tensor]:
    """SynFlow: on the float64 |state| copy, R = Σ model(1) for an all-ones input of the data's shape;
    score |θ ⊙ ∂R/∂θ_eff| with θ_eff = |θ| ⊙ m.  Pruned weights score -inf so they stay pruned.

    SynFlow's conservation argument holds for networks of linear layers, ReLU-like activations, pooling and
    eval-mode BatchNorm.  Anything else (LayerNorm, attention, GELU/SiLU, the log-softmax at the output) is also
    computed on the |state| copy and gives a finite, data-free score, but it is then a heuristic.  A non-finite R
    (float64 overflow in a very deep network) is a ``ValueError`` naming R."""
    ctx.load(mask)
    x = torch.ones((1, *ctx.input_shape), dtype=torch.float64, device=ctx.device)
    R = ctx.net(x).sum()
    if not bool(torch.isfinite(R)):
        raise ValueError(f"synflow: R = Σ model(1) is {float(R.detach())!r} on the float64 |θ| copy of "
                         f"{type(ctx.net).__name__} (input shape {ctx.input_shape}); the path products overflowed, "
                         "so no weight can be ranked. Use fewer layers or another generator")
    g = ctx.grads(R)
    out = {}
    for n, gi in zip(ctx.names, g):
        m = mask[n].to(gi.device)
        s = (gi * ctx.theta[n] * m).abs()
        out[n] = s.masked_fill(~m, -math.inf)
    return out


def magnitude_scores(ctx: ScoringContext, mask: Mask) -> Dict[str, torch.Tensor]:
    """Magnitude: |θ| (θ includes the scoring-only noise when ``noise > 0``)."""
    return {n: t.abs() for n, t in ctx.theta.items()}


def random_scores(ctx: ScoringContext, mask: Mask) -> Dict[str, torch.Tensor]:
    """Random: i.i.d. N(0, 1) scores drawn from the seeded CPU generator (layer order = model order)."""
    return {n: torch.randn(t.shape, generator=ctx.generator).to(ctx.device) for n, t in ctx.theta.items()}
