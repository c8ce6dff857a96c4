"""Batched scoring of a population of masks of one model with one set of weights (PAGS/PEGS, METHOD §7).

For every layer the P masks are stacked into a (P, Cout, Cin·kh·kw) tensor on the requested device and every
statistic is computed for all samples at once: degrees with tensor reductions, and the top-2 singular values of the
whole-layer graphs and of every degree group with one batched Gram + eigvalsh call per distinct degree
(:func:`~pags_core.spectral.svd.top2_dense_batch`).  This "dense" engine is the default on a GPU.  On a CPU the
per-mask sparse engine of :func:`~pags_core.spectral.layer_spectrum` is the default: measured on the 2-core book
machine it is about twice as fast as the batched dense engine (whose cost is dominated by dense tensor traffic there).
Both give the same values (tested).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from ..device import resolve_device
from .conventions import check_bound, get_convention
from .graph import layer_graph, to_numpy
from .metrics import METRIC_FIELDS, assemble
from .network import _mask_for, _progress, _resolve_weights, prunable_weights
from .stats import LayerStats, sparse_layer_stats
from .svd import single_thread_blas, top2_dense_batch

__all__ = ["score_population", "ENGINES"]

#: Valid ``engine`` choices of :func:`score_population`.
ENGINES: tuple[str, ...] = ("auto", "dense", "sparse")
_MEM_BYTES = {"cpu": 256 * 2 ** 20, "cuda": 2 * 2 ** 30}


def dense_layer_stats(M: torch.Tensor, W: torch.Tensor | None, conv) -> LayerStats:
    """:class:`LayerStats` of P masks of one layer at once.  ``M``: (P, Cout, Lin) 0/1 tensor, ``W``: (Cout, Lin)
    |weights| or ``None``; both on the device used for the computation.

    Degree groups are gathered without a per-sample loop: the input units of every sample are sorted by fan-out, so a
    group is a contiguous run; for each distinct degree d the runs of all samples are gathered into a zero-padded
    (G, Cout, n_max) batch whose Gram (on its smaller side) goes to one batched eigensolver call."""
    P, cout, lin = M.shape
    dev = M.device
    M = M.to(torch.float64)
    fo, fi = M.sum(1), M.sum(2)
    e = fo.sum(1)
    nl, nr = (fo > 0).sum(1), (fi > 0).sum(1)
    s = top2_dense_batch(M)
    npf = lambda x: x.detach().to("cpu", torch.float64).numpy()  # noqa: E731
    nanP = np.full(P, np.nan)
    weighted = W is not None
    if weighted:
        Mw = M * W
        pw = Mw != 0
        ew = pw.sum((1, 2))
        nlw, nrw = (pw.sum(1) > 0).sum(1), (pw.sum(2) > 0).sum(1)
        sw = top2_dense_batch(Mw)
        wstats = dict(ew=npf(ew), nlw=npf(nlw), nrw=npf(nrw), s1w=npf(sw[:, 0]), s2w=npf(sw[:, 1]))
    else:
        wstats = dict(ew=nanP, nlw=nanP, nrw=nanP, s1w=nanP, s2w=nanP)
    cols = {k: [] for k in ("g_sample", "g_d", "g_n", "g_r", "g_s1", "g_s2", "g_ew", "g_nlw", "g_nrw", "g_s1w", "g_s2w")}
    sd, order = torch.sort(fo, dim=1, stable=True)  # fan-outs sorted per sample, and the column order
    for d in torch.unique(sd).tolist():
        if d <= 0:
            continue
        eq = sd == d
        n = eq.sum(1)
        idx = torch.nonzero(n >= conv.group_min_size).flatten()
        if idx.numel() == 0:
            continue
        n_i = n[idx]
        start = (sd[idx] < d).sum(1)  # first position of degree d in each sorted row
        nmax = int(n_i.max())
        ar = torch.arange(nmax, device=dev)
        valid = ar.unsqueeze(0) < n_i.unsqueeze(1)  # (G, nmax)
        pos = (start.unsqueeze(1) + ar.unsqueeze(0)).clamp(max=lin - 1)
        colidx = order[idx].gather(1, pos)  # (G, nmax) input units of the group (padded)
        rows_ = torch.arange(cout, device=dev).view(1, cout, 1)
        vmask = valid.unsqueeze(1).to(torch.float64)
        X = M[idx.view(-1, 1, 1), rows_, colidx.unsqueeze(1)] * vmask  # (G, Cout, nmax), no copy of the full mask
        ng = n_i.to(torch.float64)
        r = (X.sum(2) > 0).sum(1).to(torch.float64)
        gate = torch.as_tensor(conv.group_gate(torch.full_like(ng, d), d * ng / r), device=dev)
        if not bool(gate.any()):
            continue
        keep = torch.nonzero(gate).flatten()
        X, ng, r, samp = X[keep], ng[keep], r[keep], idx[keep]
        sg = top2_dense_batch(X)
        G = X.shape[0]
        nanG = np.full(G, np.nan)
        g_ew, g_nlw, g_nrw, g_s1w, g_s2w = nanG, nanG, nanG, nanG.copy(), nanG.copy()
        if weighted:
            Xw = Mw[samp.view(-1, 1, 1), rows_, colidx[keep].unsqueeze(1)] * vmask[keep]
            pwg = Xw != 0
            gew = pwg.sum((1, 2)).to(torch.float64)
            gnl = (pwg.sum(1) > 0).sum(1).to(torch.float64)  # inputs with a nonzero weight
            gnr = (pwg.sum(2) > 0).sum(1).to(torch.float64)  # outputs reached through a nonzero weight
            okw = (gew > 0) & torch.as_tensor(conv.group_gate(gew / gnl.clamp(min=1), gew / gnr.clamp(min=1)), device=dev)
            g_ew, g_nlw, g_nrw = npf(gew), npf(gnl), npf(gnr)
            if bool(okw.any()):
                kw = torch.nonzero(okw).flatten()
                sgw = top2_dense_batch(Xw[kw])
                kwn = kw.cpu().numpy()
                g_s1w[kwn] = npf(sgw[:, 0])
                g_s2w[kwn] = npf(sgw[:, 1])
        for k, v in zip(cols, (npf(samp).astype(np.int64), np.full(G, float(d)), npf(ng), npf(r), npf(sg[:, 0]),
                               npf(sg[:, 1]), g_ew, g_nlw, g_nrw, g_s1w, g_s2w)):
            cols[k].append(v)
    groups = {k: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64 if k == "g_sample" else np.float64))
              for k, v in cols.items()}
    return LayerStats(n_inputs=lin, n_outputs=cout, e=npf(e), nl=npf(nl), nr=npf(nr), s1=npf(s[:, 0]),
                      s2=npf(s[:, 1]), weighted=weighted, **wstats, **groups)


def _stack_masks(masks, name, shape, P):
    """(P, *shape) bool tensor of one layer from a list of mappings or a mapping of stacked tensors."""
    if isinstance(masks, Mapping):
        m = _mask_for(masks, name)
        if m is None:
            return torch.ones((P,) + shape, dtype=torch.bool)
        m = torch.as_tensor(m)
        if tuple(m.shape[1:]) != shape:
            raise ValueError(f"layer {name}: stacked mask shape {tuple(m.shape)} does not match (P, *{shape})")
        return m.bool()
    out = []
    for i, mk in enumerate(masks):
        m = _mask_for(mk, name) if mk is not None else None
        if m is None:
            m = torch.ones(shape, dtype=torch.bool)
        m = torch.as_tensor(m)
        if tuple(m.shape) != shape:
            raise ValueError(f"layer {name} (sample {i}): mask shape {tuple(m.shape)} does not match weight shape {shape}")
        out.append(m.bool().to("cpu"))
    return torch.stack(out)


def _sample_mask(masks, p, name, shape) -> np.ndarray:
    """Mask of layer ``name`` of sample ``p`` as a numpy bool array (dense when the layer is absent)."""
    if isinstance(masks, Mapping):
        m = _mask_for(masks, name)
        m = None if m is None else m[p]
    else:
        m = _mask_for(masks[p], name) if masks[p] is not None else None
    if m is None:
        return np.ones(shape, dtype=bool)
    a = to_numpy(m)
    if tuple(a.shape) != shape:
        raise ValueError(f"layer {name} (sample {p}): mask shape {tuple(a.shape)} does not match weight shape {shape}")
    return a


def _n_samples(masks) -> int:
    if isinstance(masks, Mapping):
        for v in masks.values():
            return int(v.shape[0])
        raise ValueError("empty stacked-mask mapping")
    return len(masks)


def score_population(model_or_weights, masks, convention: str = "neurips2023", *, device="auto", progress=None,
                     weights="model", bound: str = "bipartite", softness: float = 0.0,
                     engine: str = "auto") -> pd.DataFrame:
    """Per-(sample, layer) metrics of a population of masks of ONE model scored with the SAME weights.

    Parameters
    ----------
    model_or_weights:
        A ``torch.nn.Module`` (its Conv2d/Linear weights are the prunable layers and, with ``weights="model"``, the
        weights scored) or a mapping parameter name → weight tensor.
    masks:
        A sequence of P masks (each a mapping parameter name → bool tensor, e.g. ``pags_core.Mask``; absent layers are
        dense), or a mapping name → stacked bool tensor of shape (P, *weight_shape).
    convention, bound, softness:
        As in :func:`~pags_core.spectral.layer_spectrum`.
    device:
        Where the batched tensors live (``"auto"``: CUDA when available).  Nothing calls ``.cuda()``.
    progress:
        ``None`` shows a tqdm bar over layers only on a terminal, ``True`` always, ``False`` never.
    weights:
        ``"model"`` (default), ``None`` (binary only) or a mapping name → tensor.
    engine:
        ``"auto"`` (batched dense on a GPU, per-mask sparse scipy on a CPU), ``"dense"`` or ``"sparse"``.

    Returns
    -------
    pandas.DataFrame
        Long format, one row per (sample, layer) in sample-major order, with columns ``sample``, ``layer``,
        ``convention`` and every :class:`~pags_core.spectral.LayerSpectrum` metric (``ramanujan_gap`` Δr,
        ``weighted_gap`` λ, ``imdb`` Δr_imdb, ``imsg`` λ_imsg, ``full_spectrum`` FS, ...).  Each row equals
        ``layer_spectrum(mask_layer, weight_layer, convention)``.  Use
        ``df.pivot(index="sample", columns="layer", values="full_spectrum")`` for a (P, layers) array.
    """
    conv = get_convention(convention)
    check_bound(bound)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    dev = resolve_device(device)
    layers, has_w = _resolve_weights(model_or_weights, weights)
    src = prunable_weights(model_or_weights) if isinstance(model_or_weights, torch.nn.Module) else dict(model_or_weights)
    shapes = {k: tuple(v.shape) for k, v in src.items()}
    P = _n_samples(masks)
    use_w = conv.weighted and has_w
    frames = []
    for li, name in enumerate(_progress(list(layers), progress, total=len(layers), desc="layers")):
        shape = shapes[name]
        cout = shape[0]
        lin = int(np.prod(shape[1:]))
        w = layers[name] if use_w else None
        eng = engine
        if eng == "auto":
            eng = "dense" if dev.type != "cpu" else "sparse"
        outs = []
        if eng == "dense":
            Mb = _stack_masks(masks, name, shape, P)
            W = None if w is None else torch.as_tensor(w).detach().reshape(cout, lin).to(dev, torch.float64).abs()
            per = cout * lin * 8 * 4
            chunk = max(1, int(_MEM_BYTES.get(dev.type, _MEM_BYTES["cpu"]) // per))
            with single_thread_blas():
                for a in range(0, P, chunk):
                    Mc = Mb[a:a + chunk].reshape(-1, cout, lin).to(dev)
                    outs.append(assemble(dense_layer_stats(Mc, W, conv), conv, bound, softness))
        else:  # per-mask sparse engine: no stacking, masks are read one by one as numpy arrays
            wn = None if w is None else to_numpy(w)
            with single_thread_blas():
                for p in range(P):
                    g = layer_graph(_sample_mask(masks, p, name, shape), wn, name=name)
                    outs.append(assemble(sparse_layer_stats(g, conv, weighted=use_w), conv, bound, softness))
        out = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
        f = pd.DataFrame({k: out[k] for k in METRIC_FIELDS})
        f.insert(0, "convention", conv.name)
        f.insert(0, "layer", name)
        f.insert(0, "sample", np.arange(P))
        f["_order"] = li
        frames.append(f)
    df = pd.concat(frames, ignore_index=True).sort_values(["sample", "_order"], kind="stable")
    df = df.drop(columns="_order").reset_index(drop=True)
    for k in ("n_left", "n_right", "n_edges", "n_groups"):
        df[k] = df[k].astype(np.int64)
    df["valid"] = df["valid"].astype(bool)
    return df
