"""PAGS: oversample a PaI generator at fixed weights and stitch the best layers; PEGS: the same at θ_N, after N
dense pre-training steps (paper B, section 4).

:func:`pags` is a meta-method over any registered generator:

1. the weights θ of ``model`` are fixed for the whole run (θ0 for PAGS, θ_N for PEGS);
2. the baseline ticket M* = G(θ, the "full" scoring batches, D) is drawn and scored;
3. P samples M_k = G(θ, a few fresh mini-batches, D) are drawn chunk by chunk (SynFlow and Magnitude with the
   scoring-only weight noise), every chunk is scored with :func:`~pags_core.spectral.score_population` at the same θ
   (batched; on the GPU when there is one) and fed to the pure selection rule of
   :mod:`~pags_core.methods.selection`;
4. after every chunk the state (selection, stitched mask, population metrics, costs) is written atomically to
   ``checkpoint`` when one is given, so a crash loses at most one chunk and a rerun continues from there.

The stitched mask is **not** renormalised: its realised global density is logged next to the target D.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..device import resolve_device
from ..masks import Mask
from ..models import layer_geometry, prunable_parameters
from ..pruning import GENERATORS, check_density, generate_mask
from ..pruning.checks import check_count, check_noise, check_seed
from ..registry import check_choice
from ..spectral import score_population
from ..store import atomic_torch_save, canonical, read_checkpoint, tensor_digest
from ..training import get_recipe, train
from .selection import (BASELINE, RULES, SELECTION_METRICS, SELECTIONS, Selection, SelectionState, clean,
                        stitched_density)

__all__ = ["PAGSResult", "pags", "pegs", "pretrain", "sample_seed", "default_noise", "mask_metrics",
           "NOISY_GENERATORS", "pretrain_recipe", "baseline_ticket", "population_sample"]

#: data-free generators that are deterministic given θ: their population samples need the scoring-only noise
NOISY_GENERATORS: tuple[str, ...] = ("synflow", "magnitude")
_CKPT_FORMAT = "pags_core.pags-checkpoint/1"


def sample_seed(seed: int, k: int) -> int:
    """The seed of population sample ``k`` of a run with ``seed`` (independent streams via ``SeedSequence``; both
    non-negative ints)."""
    seed = check_seed(seed, non_negative=True)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0:
        raise ValueError(f"sample index k must be a non-negative int, got {k!r}")
    return int(np.random.SeedSequence([seed, int(k), 0x9A65]).generate_state(1, dtype=np.uint32)[0])


def default_noise(generator: str, model: str | None = None, noise: float = 1e-3) -> float:
    """Scoring-only weight noise std for population samples (paper B's PAGS of the data-free generators).

    SynFlow and Magnitude (deterministic given θ) get ``noise`` (the authors' code: 1e-3, and 1e-6 for ResNet34); the
    data-driven and random generators get 0 (their diversity comes from mini-batches or their own seed).
    """
    g = generator.lower()
    if g not in NOISY_GENERATORS:
        return 0.0
    if model is not None and model.lower() == "resnet34" and noise == 1e-3:
        return 1e-6
    return float(noise)


def _check_generator(generator: str) -> str:
    return GENERATORS[generator].name  # KeyError listing the valid names


def mask_metrics(model_or_weights, masks: Sequence[Mask], *, convention: str = "neurips2023", device="auto",
                 layer_names: Sequence[str] | None = None, groups: Mapping[str, int] | None = None) -> dict:
    """Per-(sample, layer) selection metrics of ``masks`` at the weights of ``model_or_weights``.

    Returns ``{metric: (n, L) float64 array}`` for :data:`SELECTION_METRICS` plus ``"kept"`` ((n, L) int64 kept
    weights), with layers in ``layer_names`` order (default: the model's prunable layer order).  A model is read
    with its layers' true graphs; a mapping of weights needs ``groups={name: g}`` for its grouped convolutions.
    """
    masks = list(masks)
    if not masks:
        raise ValueError("mask_metrics got no masks (an empty population): there is nothing to score")
    if layer_names is None:
        layer_names = list(masks[0])
    df = score_population(model_or_weights, list(masks), convention=convention, device=device, progress=False,
                          groups=groups)
    out = {}
    for m in SELECTION_METRICS:
        piv = df.pivot(index="sample", columns="layer", values=m)
        out[m] = piv.reindex(columns=list(layer_names)).to_numpy(dtype=np.float64)
    out["kept"] = np.array([[int(mk[n].sum()) for n in layer_names] for mk in masks], dtype=np.int64).reshape(
        len(masks), len(layer_names))
    return out


@dataclasses.dataclass
class PAGSResult:
    """The outcome of :func:`pags` / :func:`pegs`.

    - ``mask``: the selected ticket (stitched layer by layer, or the whole best sample with ``selection="network"``);
      ``baseline_mask``: the generator's ticket M* on the full scoring batches.
    - ``provenance``: one row per layer: ``layer``, ``weights`` (N_l), ``source`` (population index the layer came
      from; −1 = the baseline), baseline/selected kept counts and densities, baseline/selected Δr_imdb, Δr, λ_imsg, λ, FS.
    - ``selection``: the :class:`~pags_core.methods.selection.Selection` (provenance array, stored values, trace).
    - ``population``: ``{metric: (P, L) array}`` of every sample (and ``kept``); ``baseline``: ``{metric: (L,)}``.
    - ``density``: target D; ``density_realised``: global density of ``mask`` (not renormalised);
      ``baseline_density``: of M*.
    - ``costs``: seconds spent in the generator (``generator_s``: population, ``baseline_generator_s``), in scoring
      (``scoring_s``), in selection (``selection_s``), and the total ``wall_s`` (summed over resumed sessions),
      plus ``pretrain_iters``/``pretrain_s`` for PEGS.
    - ``weights``: the state dict at which everything was measured (θ0, or θ_N for PEGS); the ticket is
      ``weights ⊙ mask``.  ``config``: the run's parameters.
    """

    mask: Mask
    baseline_mask: Mask
    selection: Selection
    layer_names: list
    provenance: pd.DataFrame
    population: dict
    baseline: dict
    density: float
    density_realised: float
    baseline_density: float
    costs: dict
    config: dict
    weights: Optional[dict] = None

    @property
    def trace(self) -> pd.DataFrame:
        """The selection trace as a DataFrame (one row per replacement, in order)."""
        return pd.DataFrame(self.selection.trace)

    @property
    def density_drift(self) -> float:
        """Realised minus target global density."""
        return self.density_realised - self.density

    def summary(self) -> dict:
        """Scalars for a table row / the run store."""
        return {
            "density": self.density, "density_realised": self.density_realised,
            "baseline_density": self.baseline_density, "population": int(self.selection.n_seen),
            "layers_replaced": self.selection.n_replaced_layers, "n_layers": len(self.layer_names),
            "replacements": len(self.selection.trace),
            "baseline_fs": float(clean(self.baseline["full_spectrum"]).mean()),
            "selected_fs": float(clean(self.selection.values["full_spectrum"]).mean()),
            "baseline_imdb": float(clean(self.baseline["imdb"]).mean()),
            "selected_imdb": float(clean(self.selection.values["imdb"]).mean()),
            **{k: float(v) for k, v in self.costs.items()},
        }


# ------------------------------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------------------------------
def _save_checkpoint(path: Path, *, config, state: SelectionState, stitched: Mask, baseline_mask: Mask, base: dict,
                     pop: dict, costs: dict) -> None:
    atomic_torch_save({
        "format": _CKPT_FORMAT,
        "config": config,
        "selection": state.state_dict(),
        "stitched": stitched.state_dict(),
        "baseline_mask": baseline_mask.state_dict(),
        "baseline": {k: torch.as_tensor(np.array(v)) for k, v in base.items()},
        "population": {k: torch.as_tensor(np.array(v)) for k, v in pop.items()},
        "costs": dict(costs),
    }, path)


def _load_checkpoint(path: Path, config) -> dict | None:
    ck = read_checkpoint(path, _CKPT_FORMAT, "PAGS")
    if ck is None:
        return None
    if canonical(ck["config"]) != canonical(config):
        raise ValueError(f"the PAGS checkpoint {path} was written by another configuration:\n  {canonical(ck['config'])}"
                         f"\nthis run:\n  {canonical(config)}\ndelete it or pass another checkpoint path")
    return ck


# ------------------------------------------------------------------------------------------------------------------
# PAGS
# ------------------------------------------------------------------------------------------------------------------
def _batches_for(data, n: int | None, batch_size: int, seed: int, device):
    if data is None:
        return None
    if n is None:  # the full training loader: one shuffled epoch
        return list(data.train_batches(batch_size, seed=seed, device=device))
    return data.sample_batches(int(n), int(batch_size), seed=seed, device=device)


def _check_batches(n, batch_size, name: str) -> tuple:
    """(``n`` mini-batches, ``batch_size``) checked as positive ints (``n`` may be None: one pass), named."""
    return (None if n is None else check_count(n, name)), check_count(batch_size, "score_batch_size")


def _generator_options(gen: str, data, opts: Mapping[str, Any]) -> dict:
    """The generator's options for one call: data-driven generators need ``data``; SynFlow reads its input shape from
    it when no ``input_shape`` is given."""
    if GENERATORS[gen].needs_data and data is None:
        raise ValueError(f"generator {gen!r} scores with mini-batches: pass data=")
    out = dict(opts)
    if gen == "synflow" and "input_shape" not in out and data is not None:
        out["input_shape"] = tuple(int(s) for s in data.input_shape)
    return out


def baseline_ticket(model: nn.Module, data, generator: str, density: float, *, baseline_batches: int | None = None,
                    score_batch_size: int = 100, seed: int = 0, rounds: int = 100, device="auto",
                    generate_fn: Callable[..., Mask] | None = None, **generator_opts) -> Mask:
    """The generator's own ticket M* at the model's current weights, on the CPU: one generator call on the "full"
    scoring batches (``baseline_batches`` mini-batches of ``score_batch_size``; ``None`` = one shuffled pass over the
    training split), seeded by ``seed``.  It is the baseline row of the PAGS/PEGS tables and where :func:`pags` starts.
    Layers pruned to nothing are not warned about here (see :meth:`Mask.empty_layers`)."""
    gen = _check_generator(generator)
    seed = check_seed(seed, non_negative=True)
    baseline_batches, score_batch_size = _check_batches(baseline_batches, score_batch_size, "baseline_batches")
    dev = resolve_device(device)
    needs_data = GENERATORS[gen].needs_data
    opts = _generator_options(gen, data, generator_opts)
    batches = _batches_for(data if needs_data else None, baseline_batches, score_batch_size, seed, dev)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pruned .* layer\\(s\\) to nothing.*")
        return (generate_fn or generate_mask)(model, gen, density, batches=batches, seed=seed, device=dev,
                                              noise=0.0, rounds=rounds, progress=False, **opts).to("cpu")


def population_sample(model: nn.Module, data, generator: str, density: float, k: int, *, seed: int = 0,
                      score_batches: int = 4, score_batch_size: int = 100, noise: float = 0.0, rounds: int = 100,
                      device="auto", generate_fn: Callable[..., Mask] | None = None, **generator_opts) -> Mask:
    """Sample ``k`` of a PAGS population (on the scoring device): the generator on ``score_batches`` fresh mini-batches
    drawn with :func:`sample_seed` (``seed``, ``k``), which also seeds Random/ERK and the scoring-only ``noise``.
    :func:`pags` draws its population with it, so a sample can be drawn again on its own (to train it)."""
    gen = _check_generator(generator)
    score_batches, score_batch_size = _check_batches(score_batches, score_batch_size, "score_batches")
    dev = resolve_device(device)
    s = sample_seed(seed, k)
    opts = _generator_options(gen, data, generator_opts)
    batches = _batches_for(data if GENERATORS[gen].needs_data else None, score_batches, score_batch_size, s, dev)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pruned .* layer\\(s\\) to nothing.*")
        return (generate_fn or generate_mask)(model, gen, density, batches=batches, seed=s, device=dev, noise=noise,
                                              rounds=rounds, progress=False, **opts)


def pags(model: nn.Module, data, generator: str, density: float, *, population: int = 2000,
         score_batches: int = 4, score_batch_size: int = 100, baseline_batches: int | None = None,
         noise: float | None = None, rule: str = "dominance", selection: str = "layerwise",
         convention: str = "neurips2023", seed: int = 0, rounds: int = 100, device="auto",
         chunk: int = 10, checkpoint: str | os.PathLike | None = None, progress: Optional[bool] = None,
         generate_fn: Callable[..., Mask] | None = None, baseline_mask: Mask | None = None,
         config_extra: Mapping[str, Any] | None = None, **generator_opts) -> PAGSResult:
    """Pruning at initialization as graph sampling (paper B's PAGS) around ``generator`` at the weights of ``model``.

    Parameters
    ----------
    model:
        The network at the weights to sample at (θ0 for PAGS; :func:`pegs` passes θ_N).  It is not modified.
    data:
        A :class:`~pags_core.data.DataSplits` (needed by SNIP/GraSP/iterSNIP; SynFlow reads its input shape).
    generator, density:
        A name from :data:`~pags_core.pruning.GENERATORS` and the global density D (kept fraction).
    population:
        P, the number of samples (paper: 2000).
    score_batches, score_batch_size:
        Fresh shuffled training mini-batches per sample (paper: 4 × 100).
    baseline_batches:
        Mini-batches (of ``score_batch_size``) for the baseline ticket M*; ``None`` (default) = one full pass over the
        training split, as the authors' baseline ticket is drawn.
    noise:
        Scoring-only weight-noise std of the population samples; ``None`` = :func:`default_noise` (1e-3 for SynFlow
        and Magnitude, 1e-6 for them on ResNet34 is chosen by callers that know the model name, 0 otherwise).
        The baseline M* is drawn without noise; metrics and the ticket always use the clean weights.
    rule, selection:
        ``"dominance"`` (default) or ``"alt"``; ``"layerwise"`` (default) or ``"network"`` — see
        :func:`~pags_core.methods.selection.select`.
    convention:
        Spectral convention of the metrics (default ``"neurips2023"``).
    seed:
        Seeds M* (and its batch order); sample k uses :func:`sample_seed` (seed, k) for its batches, Random/ERK draws
        and noise.
    chunk:
        Samples generated and scored together; the checkpoint is written after every chunk.
    checkpoint:
        A file path; if it exists (same configuration) the run resumes from it, and it is rewritten after every chunk.
    generate_fn:
        Replaces :func:`~pags_core.pruning.generate_mask` (tests inject failures with it).
    baseline_mask:
        M* when the caller already has it (the sweep reuses the baseline row's ticket); it must be what the generator
        gives on the baseline batches with ``seed``.  Its generator time is then not counted here.
    generator_opts:
        Extra generator options (e.g. ``temperature`` for GraSP).
    """
    gen = _check_generator(generator)
    density = check_density(density)
    rule = check_choice(rule, RULES, "selection rule")
    selection = check_choice(selection, SELECTIONS, "selection")
    if not isinstance(population, int) or population < 0:
        raise ValueError(f"population must be a non-negative int, got {population!r}")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    seed = check_seed(seed, non_negative=True)
    _check_batches(score_batches, score_batch_size, "score_batches")
    _check_batches(baseline_batches, score_batch_size, "baseline_batches")
    if baseline_mask is not None and not isinstance(baseline_mask, Mask):
        raise TypeError(f"baseline_mask must be a pags_core.Mask (the generator's ticket M*), got "
                        f"{type(baseline_mask).__name__}")
    dev = resolve_device(device)
    noise = default_noise(gen) if noise is None else check_noise(noise)
    generate = generate_fn or generate_mask
    needs_data = GENERATORS[gen].needs_data
    opts = _generator_options(gen, data, generator_opts)
    config = {
        "generator": gen, "density": density, "population": population, "score_batches": score_batches,
        "score_batch_size": score_batch_size, "baseline_batches": baseline_batches, "noise": noise, "rule": rule,
        "selection": selection, "convention": convention, "seed": int(seed), "rounds": rounds,
        "generator_opts": {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(opts.items())},
        **dict(config_extra or {}),
    }
    layer_names = list(prunable_parameters(model))
    weights = {n: p.detach().clone() for n, p in prunable_parameters(model).items()}
    groups = {n: g.groups for n, g in layer_geometry(model).items() if g.groups > 1}  # the true graphs of the weights
    config["weights_digest"] = tensor_digest(weights)  # a checkpoint taken at other weights is refused


    ckpath = Path(checkpoint) if checkpoint is not None else None
    ck = _load_checkpoint(ckpath, config) if ckpath is not None else None
    t_start = time.perf_counter()
    if ck is not None:
        state = SelectionState.from_state_dict(ck["selection"])
        stitched = Mask.from_state_dict(ck["stitched"])
        baseline_mask = Mask.from_state_dict(ck["baseline_mask"])
        base = {k: v.numpy() for k, v in ck["baseline"].items()}
        pop = {k: v.numpy() for k, v in ck["population"].items()}
        costs = dict(ck["costs"])
    else:
        costs = {"baseline_generator_s": 0.0, "generator_s": 0.0, "scoring_s": 0.0, "selection_s": 0.0, "wall_s": 0.0}
        t = time.perf_counter()
        if baseline_mask is None:
            baseline_mask = baseline_ticket(model, data, gen, density, baseline_batches=baseline_batches,
                                            score_batch_size=score_batch_size, seed=seed, rounds=rounds, device=dev,
                                            generate_fn=generate, **opts)
            costs["baseline_generator_s"] = time.perf_counter() - t
        else:
            baseline_mask = baseline_mask.to("cpu").clone()
            if list(baseline_mask) != layer_names:
                raise ValueError("baseline_mask does not cover the model's prunable layers in order: "
                                 f"{list(baseline_mask)[:3]}... vs {layer_names[:3]}...")
        t = time.perf_counter()
        base_arr = mask_metrics(weights, [baseline_mask], convention=convention, device=dev, layer_names=layer_names,
                                groups=groups)
        costs["scoring_s"] += time.perf_counter() - t
        base = {k: v[0] for k, v in base_arr.items()}
        state = SelectionState({m: base[m] for m in SELECTION_METRICS}, rule=rule, selection=selection)
        stitched = baseline_mask.clone()
        pop = {k: np.zeros((0, len(layer_names)), dtype=np.int64 if k == "kept" else np.float64) for k in base}
        if ckpath is not None:
            costs["wall_s"] = time.perf_counter() - t_start
            _save_checkpoint(ckpath, config=config, state=state, stitched=stitched, baseline_mask=baseline_mask,
                             base=base, pop=pop, costs=costs)
    wall_before = costs["wall_s"]
    t_session = time.perf_counter()

    bar = tqdm(total=population, initial=state.n_seen, desc=f"PAGS {gen}", leave=False,
               disable=None if progress is None else (not progress))
    try:
        while state.n_seen < population:
            k0 = state.n_seen
            ks = range(k0, min(population, k0 + chunk))
            t = time.perf_counter()
            masks = []
            for k in ks:
                masks.append(population_sample(model, data, gen, density, k, seed=seed, score_batches=score_batches,
                                               score_batch_size=score_batch_size, noise=noise, rounds=rounds,
                                               device=dev, generate_fn=generate, **opts))
            costs["generator_s"] += time.perf_counter() - t
            t = time.perf_counter()
            arr = mask_metrics(weights, masks, convention=convention, device=dev, layer_names=layer_names,
                               groups=groups)
            costs["scoring_s"] += time.perf_counter() - t
            t = time.perf_counter()
            events = state.update({m: arr[m] for m in SELECTION_METRICS}, k0)
            if selection == "network":
                if events:
                    stitched = masks[events[-1]["sample"] - k0].to("cpu").clone()
            else:
                for ev in events:
                    name = layer_names[ev["layer"]]
                    stitched[name] = masks[ev["sample"] - k0][name].detach().to("cpu").clone()
            pop = {k: np.concatenate([pop[k], arr[k]]) for k in pop}
            costs["selection_s"] += time.perf_counter() - t
            del masks
            costs["wall_s"] = wall_before + (time.perf_counter() - t_session)
            if ckpath is not None:
                _save_checkpoint(ckpath, config=config, state=state, stitched=stitched, baseline_mask=baseline_mask,
                                 base=base, pop=pop, costs=costs)
            bar.update(len(ks))
    finally:
        bar.close()
    costs["wall_s"] = wall_before + (time.perf_counter() - t_session)

    sel = state.result()
    sizes = np.array([baseline_mask[n].numel() for n in layer_names], dtype=np.int64)
    realised = stitched_density(sel.source, base["kept"], pop["kept"], sizes)
    kept_sel = np.array([int(stitched[n].sum()) for n in layer_names], dtype=np.int64)
    if int(kept_sel.sum()) != int(round(realised * sizes.sum())):  # provenance and the mask must agree
        raise RuntimeError("internal error: stitched mask disagrees with its provenance")
    prov = pd.DataFrame({
        "layer": layer_names, "weights": sizes, "source": sel.source,
        "baseline_kept": base["kept"], "selected_kept": kept_sel,
        "baseline_density": base["kept"] / sizes, "selected_density": kept_sel / sizes,
        **{f"baseline_{m}": base[m] for m in SELECTION_METRICS},
        **{f"selected_{m}": sel.values[m] for m in SELECTION_METRICS},
    })
    stitched.meta.update({"method": "pags", "generator": gen, "density": density, "density_realised": realised,
                          "population": population, "rule": rule, "selection": selection, "seed": int(seed)})
    return PAGSResult(mask=stitched, baseline_mask=baseline_mask, selection=sel, layer_names=layer_names,
                      provenance=prov, population=pop, baseline=base, density=density, density_realised=realised,
                      baseline_density=baseline_mask.density, costs=costs, config=config,
                      weights={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})


# ------------------------------------------------------------------------------------------------------------------
# PEGS
# ------------------------------------------------------------------------------------------------------------------
def pretrain_recipe(recipe):
    """The dense pre-training recipe of PEGS: the training recipe's optimiser, batch size and augmentation with a
    **constant** learning rate (the paper does not document it; no decay inside the first N iterations)."""
    return get_recipe(recipe).replace(schedule="constant", milestones=())


def pretrain(model: nn.Module, data, iters: int, *, recipe="neurips2023", seed: int = 0, device="auto",
             progress: Optional[bool] = None, checkpoint=None):
    """Train ``model`` (dense, in place) for ``iters`` optimiser steps with :func:`pretrain_recipe` and return the
    :class:`~pags_core.training.TrainResult`.  ``iters=0`` returns ``None`` and leaves the model untouched."""
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ValueError(f"pre-training iterations must be a non-negative int, got {iters!r}")
    if iters == 0:
        return None
    rec = pretrain_recipe(recipe)
    epochs = max(1, math.ceil(iters / max(1, len(data.train_batches(rec.batch_size, seed=seed)))))
    return train(model, data, rec, mask=None, device=device, seed=seed, epochs=epochs, max_iters=iters,
                 progress=progress, checkpoint=checkpoint)


def pegs(model: nn.Module, data, generator: str, density: float, pretrain_iters: int = 500, *,
         recipe="neurips2023", pretrain_seed: int = 0, pretrained: Optional[Mapping[str, torch.Tensor]] = None,
         device="auto", progress: Optional[bool] = None, **pags_kwargs) -> PAGSResult:
    """Pruning early as graph sampling: dense pre-training of a **copy** of ``model`` (θ0) for ``pretrain_iters``
    steps (:func:`pretrain`), then :func:`pags` at θ_N — generator gradients, BN running statistics and the |W| of λ
    and λ_imsg all at θ_N.  ``result.weights`` is θ_N; the ticket is θ_N ⊙ ``result.mask`` and is retrained from θ_N
    (load ``result.weights`` into the model, then ``train(..., mask=result.mask)``).  ``pretrained``: θ_N when it was
    computed already (the experiment layer stores it once and reuses it); ``pretrain_iters=0`` is PAGS ("@0")."""
    dev = resolve_device(device)
    net = copy.deepcopy(model).to(dev)
    t = time.perf_counter()
    if pretrained is not None:
        try:
            net.load_state_dict(pretrained)
        except (RuntimeError, TypeError, AttributeError) as e:
            detail = " ".join(line.strip() for line in str(e).strip().splitlines()[:3])[:400]
            raise ValueError(f"pretrained (θ_N) is not a state dict of this {type(model).__name__}: {detail}") from e
        tr = None
    else:
        tr = pretrain(net, data, pretrain_iters, recipe=recipe, seed=pretrain_seed, device=dev, progress=progress)
    pre_s = time.perf_counter() - t if tr is not None else 0.0
    extra = dict(pags_kwargs.pop("config_extra", None) or {})
    extra.update(pretrain_iters=int(pretrain_iters), pretrain_seed=int(pretrain_seed))
    res = pags(net, data, generator, density, device=dev, progress=progress, config_extra=extra, **pags_kwargs)
    res.costs["pretrain_iters"] = float(pretrain_iters)
    res.costs["pretrain_s"] = pre_s
    res.mask.meta.update(method="pegs" if pretrain_iters else "pags", pretrain_iters=int(pretrain_iters))
    return res
