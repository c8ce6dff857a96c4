"""Batched scoring of a population of masks of one model with one set of weights (PAGS/PEGS of the NeurIPS-2023 paper).

The masks are taken in chunks (:data:`CHUNK_EDGES` kept weights); for a chunk, every eigenproblem of every sample
and every layer (whole-layer graphs and degree groups, binary and weighted) is built with vectorised integer
arithmetic and solved in one call of the batched solver (:func:`~pags_core.spectral.stats.layer_stats`), so the
per-problem overhead that dominated a layer-by-layer loop is paid once per chunk.  On a CUDA device the Lanczos iterations of the larger problems run
there; the graph set-up and the small dense problems stay on the CPU.  Each row equals
:func:`~pags_core.spectral.layer_spectrum` of that sample and layer (tested).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..device import resolve_device
from .conventions import check_bound, check_softness, get_convention
from .graph import check_threshold, layer_input
from .metrics import assemble
from .network import match_mask, metric_frame, resolve_layers
from .stats import layer_stats
from .svd import single_thread_blas

__all__ = ["score_population", "ENGINES"]

#: Valid ``engine`` choices of :func:`score_population`: ``"batched"`` solves a chunk of masks at once,
#: ``"per_mask"`` one mask at a time (what :func:`~pags_core.spectral.model_spectrum` does); ``"auto"`` = batched.
ENGINES: tuple[str, ...] = ("auto", "batched", "per_mask")
#: Kept weights per chunk of the batched engine, on the CPU and with a device.  On the CPU a chunk's working set
#: should stay in the caches: measured on ResNet18 at density 0.01 (112k kept weights), one mask per chunk is
#: fastest and 17 masks per chunk 1.6x slower per mask, while small models (the book's width-1/8 ResNet18, 3.5k kept
#: weights) gain 2x from batching dozens of masks.  A device wants large chunks (every Lanczos step of a chunk costs a
#: fixed number of kernel launches); host memory is roughly 0.3 kB per kept weight.
CHUNK_EDGES, CHUNK_EDGES_DEVICE = 150_000, 8_000_000


def _progress(it, progress, total=None, desc=None):
    if progress is False:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, total=total, desc=desc, disable=None if progress is None else not progress, leave=False)


def _population(masks, names) -> tuple[int, callable]:
    """(P, get) where ``get(a, b)`` returns, per layer name, the list of masks of samples a..b-1 (None = dense)."""
    if isinstance(masks, Mapping):  # name -> stacked (P, *shape) tensor
        matched = match_mask(names, masks, what="stacked mask")
        sizes = {int(v.shape[0]) for v in matched.values() if v is not None}
        if not sizes:
            raise ValueError("masks: a mapping of stacked masks needs at least one layer (to know the population size)")
        if len(sizes) > 1:
            raise ValueError(f"masks: stacked tensors hold different numbers of samples {sorted(sizes)}")
        P = sizes.pop()

        def get(a, b):
            return {n: [None if v is None else v[i] for i in range(a, b)] for n, v in matched.items()}
        return P, get
    if isinstance(masks, (str, bytes)) or not hasattr(masks, "__len__"):
        raise ValueError(f"masks must be a sequence of masks or a mapping of stacked masks, got {type(masks).__name__}")
    matched = [match_mask(names, m, what=f"mask {i}") for i, m in enumerate(masks)]

    def get(a, b):
        return {n: [matched[i][n] for i in range(a, b)] for n in names}
    return len(masks), get


def score_population(model_or_weights, masks, convention: str = "neurips2023", *, device="auto", progress=None,
                     weights="model", bound: str = "bipartite", softness: float = 0.0, engine: str = "auto",
                     groups: Mapping | None = None, mask_threshold: float | None = None) -> pd.DataFrame:
    """Per-(sample, layer) metrics of a population of masks of ONE model scored with the SAME weights.

    Parameters
    ----------
    model_or_weights:
        A ``torch.nn.Module`` (its prunable layers, read as their true graphs, and with ``weights="model"`` the
        weights scored) or a mapping parameter name → weight tensor (``groups={name: g}`` for its grouped convs).
    masks:
        A non-empty sequence of P masks (each a mapping parameter name → bool tensor, e.g. ``pags_core.Mask``;
        absent layers are dense; keys that match no prunable layer are an error), or a mapping name → stacked bool
        tensor of shape (P, *weight_shape).
    convention, bound, softness, mask_threshold:
        As in :func:`~pags_core.spectral.layer_spectrum`.
    device:
        ``"auto"`` (CUDA when available), ``"cpu"`` or a device: where the Lanczos iterations of the larger
        eigenproblems run.  Nothing calls ``.cuda()``.
    progress:
        ``None`` shows a tqdm bar over chunks only on a terminal, ``True`` always, ``False`` never.
    weights:
        ``"model"`` (default), ``None`` (binary only) or a mapping name → tensor.
    engine:
        ``"auto"``/``"batched"`` (chunks of masks solved together) or ``"per_mask"`` (one mask per solve).

    Returns
    -------
    pandas.DataFrame
        Long format, one row per (sample, layer) in sample-major order, with columns ``sample``, ``layer``,
        ``convention`` and every :class:`~pags_core.spectral.LayerSpectrum` metric (``ramanujan_gap`` Δr,
        ``weighted_gap`` λ, ``imdb`` Δr_imdb, ``imsg`` λ_imsg, ``full_spectrum`` FS, ...).  Each row equals
        ``layer_spectrum(mask_layer, weight_layer, convention)``.  Use
        ``df.pivot(index="sample", columns="layer", values="full_spectrum")`` for a (P, layers) array.

    Raises
    ------
    ValueError
        For an empty population and for everything :func:`~pags_core.spectral.model_spectrum` refuses (the message
        names the sample where it matters).
    """
    conv = get_convention(convention)
    check_bound(bound)
    softness = check_softness(softness)
    thr = check_threshold(mask_threshold)
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    dev = resolve_device(device)
    L = resolve_layers(model_or_weights, weights, groups)
    P, get = _population(masks, L.names)
    if P == 0:
        raise ValueError("score_population: the population is empty (no masks to score)")
    use_w = conv.weighted and L.weighted
    if engine == "per_mask":
        chunk = 1
    else:
        first = get(0, 1)
        kept = sum(int(np.prod(L.shapes[n])) if first[n][0] is None else int((first[n][0] != 0).sum()) for n in L.names)
        per_chunk = CHUNK_EDGES if dev.type == "cpu" else CHUNK_EDGES_DEVICE
        chunk = int(np.clip(per_chunk // max(kept, 1), 1, 1024))
    starts = range(0, P, chunk)
    parts = []
    n_layers = len(L.names)
    for a in _progress(starts, progress, total=len(starts), desc="masks"):
        b = min(P, a + chunk)
        ms = get(a, b)
        inputs = [layer_input(n, L.shapes[n], L.groups[n], ms[n], L.weights[n] if use_w else None, thr)
                  for n in L.names]
        with single_thread_blas():
            stats = layer_stats(inputs, conv, weighted=use_w, device=None if dev.type == "cpu" else dev)
            out = assemble(stats, conv, bound, softness)  # rows: layer-major within the chunk
        order = np.arange(n_layers * (b - a)).reshape(n_layers, b - a).T.reshape(-1)  # -> sample-major
        parts.append({k: v[order] for k, v in out.items()})
    f = metric_frame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})  # one frame for all chunks
    f.insert(0, "convention", conv.name)
    f.insert(0, "layer", np.tile(np.asarray(L.names, dtype=object), P))
    f.insert(0, "sample", np.repeat(np.arange(P), n_layers))
    return f
