"""``generate_mask`` and the ``GENERATORS`` registry: the PaI generators both papers prune with."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..device import resolve_device
from ..masks import Mask, check_mask
from ..models import find_prunable, require_prunable, unsupported_layers
from ..models.prunable import SUPPORTED_LAYERS
from ..registry import Registry
from .checks import (check_finite_tensors, check_layer_sizes, check_noise, check_options, check_rounds,
                     check_scores, check_seed, model_tensors)
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
    option.  ``reads_weights``: the scores depend on the weights, so a model with a NaN/inf parameter or buffer is
    refused.  ``options`` lists the extra keyword options and their defaults (validated by
    :data:`~pags_core.pruning.checks.OPTION_CHECKS`).

    A new generator is one ``GENERATORS.register(name, Generator(name, scorer, ...))`` away; it then gets the
    shared global top-k, density checks, noise, rounds, empty-layer warnings and metadata of ``generate_mask``.
    """

    name: str
    scorer: Optional[Callable[..., Dict[str, torch.Tensor]]]
    needs_data: bool = False
    iterative: bool = False
    linearised: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    reads_weights: bool = True
    description: str = ""


GENERATORS: Registry = Registry("generator")
for _g in (
    Generator("random", random_scores, reads_weights=False, description="i.i.d. N(0,1) scores + top-k"),
    Generator("magnitude", magnitude_scores, description="|θ| + top-k"),
    Generator("snip", snip_scores, needs_data=True, description="|θ ⊙ Σ_b ∇L_b| + top-k"),
    Generator("grasp", grasp_scores, needs_data=True, options={"temperature": 200.0},
              description="signed θ ⊙ Hg with T=200, keep largest"),
    Generator("synflow", synflow_scores, iterative=True, linearised=True, options={"input_shape": None},
              description="|θ ⊙ ∂R/∂θ| on the |state| float64 copy, all-ones input, iterative"),
    Generator("itersnip", snip_scores, needs_data=True, iterative=True,
              description="SNIP re-scored over rounds with re-entry allowed"),
    Generator("erk", None, options={"bernoulli": False, "power": 1.0}, reads_weights=False,
              description="Erdős–Rényi-Kernel layer densities, exact counts at random positions"),
):
    GENERATORS.register(_g.name, _g)


def _tqdm_disable(progress: Optional[bool]) -> Optional[bool]:
    return None if progress is None else (not progress)


def _infer_input_shape(model: nn.Module, batches) -> tuple:
    if batches:
        return tuple(batches[0][0].shape[1:])
    first = find_prunable(model)[:1]
    if first and first[0].kind == "conv2d":
        return (first[0].module.in_channels, 32, 32)
    if first and first[0].kind == "linear":
        return (first[0].module.in_features,)
    what = f"its first prunable layer is {first[0].name} ({first[0].kind})" if first else "it has no prunable layer"
    raise ValueError(f"cannot infer the SynFlow input shape of {type(model).__name__} ({what}); "
                     "pass input_shape=(C, H, W) or batches")


def _check_opts(gen: Generator, opts: Mapping[str, Any]) -> Dict[str, Any]:
    return check_options(gen.name, gen.options, opts)


_WARNED_UNSUPPORTED: set = set()


def _check_model(model: nn.Module, gen: Generator) -> None:
    """No prunable layer, a zero-size layer or (for weight-reading generators) a non-finite state: an error.
    Layers pags_core cannot read: one warning per model type and layer list."""
    params = require_prunable(model)
    check_layer_sizes({n: tuple(p.shape) for n, p in params.items()})
    bad = unsupported_layers(model)
    key = (type(model).__qualname__, tuple(bad))
    if bad and key not in _WARNED_UNSUPPORTED:
        _WARNED_UNSUPPORTED.add(key)
        warnings.warn(f"{len(bad)} layer(s) of {type(model).__name__} hold a weight pags_core cannot read and stay "
                      f"dense: {'; '.join(bad)}. Supported: {SUPPORTED_LAYERS}. "
                      "prunable_parameters(model, strict=True) makes this an error.", UserWarning, stacklevel=3)
    if gen.reads_weights:
        check_finite_tensors(gen.name, model_tensors(model), "the model's parameters/buffers",
                             "Its scores would be NaN and rank arbitrarily (a diverged training run, an fp16 "
                             "overflow?); reinitialise or repair these tensors before pruning.")


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
    ctx = ScoringContext(model, batches=batches, device=device, seed=seed, noise=noise,
                         synflow=gen.linearised, input_shape=input_shape)
    if ctx.batches is not None:
        check_finite_tensors(gen.name, ((f"batch {i} inputs", x) for i, (x, _) in enumerate(ctx.batches)),
                             "the scoring mini-batches", "Check the data set.")
    return ctx


def _score(gen: Generator, ctx: ScoringContext, mask: Mask, opts: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """One scoring pass, refused when non-finite or without signal (see :func:`~pags_core.pruning.checks.check_scores`)."""
    scores = gen.scorer(ctx, mask, **opts)
    cause = ("The model and the batches are finite, so the scoring pass itself overflowed"
             + (f" (GraSP divides the output by temperature={opts['temperature']!r}; a small temperature overflows)"
                if "temperature" in opts else "")
             + (f" (scoring noise std {ctx.noise!r})" if ctx.noise else "") + ".")
    check_scores(gen.name, scores, mask, cause, weights=ctx.theta)
    return scores


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
    seed, noise = check_seed(seed), check_noise(noise)
    _check_model(model, gen)
    ctx = _context(model, gen, batches, resolve_device(device), seed, noise, opts)
    if mask is not None:
        check_mask(mask, model, complete=True)
        mask = mask if isinstance(mask, Mask) else Mask(mask)
    cur = mask.to(ctx.device) if mask is not None else Mask.ones(ctx.net)
    return _score(gen, ctx, cur, opts)


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

    Refused with a ``ValueError`` naming the value: a bad argument or option, a model without prunable layers or
    with a zero-size one, a NaN/inf parameter or buffer (except for Random and ERK, which do not read the weights)
    or batch, and scores that are non-finite or all equal (see :mod:`pags_core.pruning.checks`).  Layers pags_core
    cannot read stay dense, with one ``UserWarning`` naming them.
    """
    gen: Generator = GENERATORS[method]
    density = check_density(density)
    if not isinstance(scope, str) or scope.lower() not in ("global", "local"):
        raise ValueError(f"unknown scope {scope!r}; valid choices: global, local")
    rounds, seed, noise = check_rounds(rounds), check_seed(seed), check_noise(noise)
    opts = _check_opts(gen, opts)
    dev = resolve_device(device)
    _check_model(model, gen)
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
                mask = select_topk(_score(gen, ctx, mask, opts), density ** ((e + 1) / rounds), scope=scope)
        else:
            mask = select_topk(_score(gen, ctx, mask, opts), density, scope=scope)
    mask.meta.update(meta)
    empty = mask.empty_layers()
    if empty:
        warnings.warn(f"{gen.name} at density {density:g} pruned {len(empty)} layer(s) to nothing: {', '.join(empty)}",
                      UserWarning, stacklevel=2)
    return mask


def _erk_mask(model: nn.Module, density: float, *, seed: int, bernoulli: bool, power: float) -> Mask:
    params = require_prunable(model)
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    g = torch.Generator().manual_seed(int(seed))
    if bernoulli:
        p = erk_densities(shapes, density, power=power)
        return Mask({n: torch.rand(shapes[n], generator=g) < p[n] for n in shapes})
    counts = erk_counts(shapes, density, power=power)
    return Mask({n: random_positions(shapes[n], counts[n], g) for n in shapes})
