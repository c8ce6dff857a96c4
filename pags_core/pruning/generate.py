"""``generate_mask`` and the ``GENERATORS`` registry (METHOD §6)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..device import resolve_device
from ..masks import Mask
from ..models import prunable_parameters
from ..registry import Registry
from .erk import erk_counts, erk_densities, random_positions
from .scoring import (ScoringContext, grasp_scores, magnitude_scores, random_scores, snip_scores,
                      synflow_scores)
from .select import check_density, select_topk

__all__ = ["Generator", "GENERATORS", "generate_mask", "compute_scores"]


@dataclass(frozen=True)
class Generator:
    """A registered PaI generator.

    ``scorer(ctx, mask, **opts)`` returns the scores (see :mod:`pags_core.pruning.scoring`); it is ``None`` for
    generators that build masks directly (ERK).  ``iterative`` generators re-score for ``rounds`` rounds with the
    density schedule D^((e+1)/R).  ``linearised`` generators (SynFlow) score a float64 copy whose state tensors are
    all made non-negative and take their input shape (not their data) from the batches or an ``input_shape``
    option.  ``options`` lists the extra keyword options and their defaults.

    A new generator is one ``GENERATORS.register(name, Generator(name, scorer, ...))`` away; it then gets the
    shared global top-k, density checks, noise, rounds, empty-layer warnings and metadata of ``generate_mask``.
    """

    name: str
    scorer: Optional[Callable[..., Dict[str, torch.Tensor]]]
    needs_data: bool = False
    iterative: bool = False
    linearised: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


GENERATORS: Registry = Registry("generator")
for _g in (
    Generator("random", random_scores, description="i.i.d. N(0,1) scores + top-k"),
    Generator("magnitude", magnitude_scores, description="|θ| + top-k"),
    Generator("snip", snip_scores, needs_data=True, description="|θ ⊙ Σ_b ∇L_b| + top-k"),
    Generator("grasp", grasp_scores, needs_data=True, options={"temperature": 200.0},
              description="signed θ ⊙ Hg with T=200, keep largest"),
    Generator("synflow", synflow_scores, iterative=True, linearised=True, options={"input_shape": None},
              description="|θ ⊙ ∂R/∂θ| on the |state| float64 copy, all-ones input, iterative"),
    Generator("itersnip", snip_scores, needs_data=True, iterative=True,
              description="SNIP re-scored over rounds with re-entry allowed"),
    Generator("erk", None, options={"bernoulli": False, "power": 1.0},
              description="Erdős–Rényi-Kernel layer densities, exact counts at random positions"),
):
    GENERATORS.register(_g.name, _g)


def _tqdm_disable(progress: Optional[bool]) -> Optional[bool]:
    return None if progress is None else (not progress)


def _infer_input_shape(model: nn.Module, batches) -> tuple:
    if batches:
        return tuple(batches[0][0].shape[1:])
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return (m.in_channels, 32, 32)
        if isinstance(m, nn.Linear):
            return (m.in_features,)
    raise ValueError("cannot infer the SynFlow input shape; pass input_shape=(C, H, W)")


def _check_opts(gen: Generator, opts: Mapping[str, Any]) -> Dict[str, Any]:
    bad = sorted(set(opts) - set(gen.options))
    if bad:
        valid = ", ".join(gen.options) or "none"
        raise TypeError(f"generator {gen.name!r} got unknown option(s) {', '.join(bad)}; its options: {valid}")
    return {**gen.options, **opts}


def _context(model, gen: Generator, batches, device, seed, noise, opts) -> ScoringContext:
    if gen.needs_data and batches is None:
        raise ValueError(f"generator {gen.name!r} needs data: pass batches=[(x, y), ...] "
                         "(e.g. data.sample_batches(4, 100, seed=0)); data-free generators: "
                         + ", ".join(n for n in GENERATORS.names() if not GENERATORS[n].needs_data))
    batches = None if (batches is None or not (gen.needs_data or gen.linearised)) else list(batches)
    input_shape = None
    if gen.linearised:
        input_shape = opts.pop("input_shape", None) or _infer_input_shape(model, batches)
        batches = None
    return ScoringContext(model, batches=batches, device=device, seed=seed, noise=noise,
                          synflow=gen.linearised, input_shape=input_shape)


def compute_scores(model: nn.Module, method: str, batches: Optional[Iterable] = None, *, mask: Optional[Mask] = None,
                   seed: int = 0, device: str | torch.device = "auto", noise: float = 0.0, **opts) -> Dict[str, torch.Tensor]:
    """One scoring pass of a score-based generator (no selection): parameter name -> score tensor.

    ``mask`` defaults to all ones (for iterative generators it is the mask of the previous round).
    """
    gen: Generator = GENERATORS[method]
    if gen.scorer is None:
        raise ValueError(f"generator {gen.name!r} is not score-based; score-based generators: "
                         + ", ".join(n for n in GENERATORS.names() if GENERATORS[n].scorer is not None))
    opts = _check_opts(gen, opts)
    ctx = _context(model, gen, batches, resolve_device(device), seed, noise, opts)
    cur = mask.to(ctx.device) if mask is not None else Mask.ones(ctx.net)
    return gen.scorer(ctx, cur, **opts)


def generate_mask(model: nn.Module, method: str, density: float, *, batches: Optional[Iterable] = None, seed: int = 0,
                  device: str | torch.device = "auto", scope: str = "global", noise: float = 0.0, rounds: int = 100,
                  progress: Optional[bool] = None, **opts) -> Mask:
    """A pruning-at-initialization mask of ``model`` at global ``density`` (kept fraction in (0, 1]).

    ``method`` (case-insensitive): ``random``, ``erk`` (option ``bernoulli=True``), ``magnitude``, ``snip``,
    ``grasp`` (option ``temperature``), ``synflow`` (option ``input_shape``), ``itersnip``.
    ``batches``: an iterable of (x, y) mini-batches; needed by snip/grasp/itersnip, used by synflow only for the input
    shape.  Scoring runs in eval() mode on a deep copy of ``model`` on ``device``; the caller's model is untouched.
    ``scope="global"`` keeps exactly round(density·N_total) weights; ``"local"`` keeps round(density·N_l) per layer.
    ``noise``: std of Gaussian noise added to a scoring-only copy of the weights (so SynFlow/Magnitude samples differ).
    ``rounds``: rounds of the iterative generators (SynFlow, iterSNIP), density D^((e+1)/rounds) after round e.
    ``seed`` fixes Random scores, ERK positions and the noise.

    Returns a :class:`Mask` on the scoring device; warns (``UserWarning``) naming every layer pruned to nothing.
    """
    gen: Generator = GENERATORS[method]
    density = check_density(density)
    if not isinstance(scope, str) or scope.lower() not in ("global", "local"):
        raise ValueError(f"unknown scope {scope!r}; valid choices: global, local")
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive int, got {rounds!r}")
    opts = _check_opts(gen, opts)
    dev = resolve_device(device)
    meta: Dict[str, Any] = {"method": gen.name, "density": density, "seed": int(seed), "scope": scope.lower(),
                            "noise": float(noise)}
    if gen.scorer is None:
        mask = _erk_mask(model, density, seed=seed, **opts).to(dev)
        meta.update(bernoulli=bool(opts["bernoulli"]))
    else:
        ctx = _context(model, gen, batches, dev, seed, noise, opts)
        mask = Mask.ones(ctx.net)
        if gen.iterative:
            meta["rounds"] = rounds
            for e in tqdm(range(rounds), desc=gen.name, disable=_tqdm_disable(progress), leave=False):
                mask = select_topk(gen.scorer(ctx, mask, **opts), density ** ((e + 1) / rounds), scope=scope)
        else:
            mask = select_topk(gen.scorer(ctx, mask, **opts), density, scope=scope)
    mask.meta.update(meta)
    empty = mask.empty_layers()
    if empty:
        warnings.warn(f"{gen.name} at density {density:g} pruned {len(empty)} layer(s) to nothing: {', '.join(empty)}",
                      UserWarning, stacklevel=2)
    return mask


def _erk_mask(model: nn.Module, density: float, *, seed: int, bernoulli: bool, power: float) -> Mask:
    params = prunable_parameters(model)
    if not params:
        raise ValueError(f"{type(model).__name__} has no prunable layers (Conv2d or Linear); nothing to prune")
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    g = torch.Generator().manual_seed(int(seed))
    if bernoulli:
        p = erk_densities(shapes, density, power=power)
        return Mask({n: torch.rand(shapes[n], generator=g) < p[n] for n in shapes})
    counts = erk_counts(shapes, density, power=power)
    return Mask({n: random_positions(shapes[n], counts[n], g) for n in shapes})
