"""Whole-network views: one row per prunable layer, network summaries and full-spectrum distances (METHOD §5.3–5.4)."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..device import resolve_device
from .conventions import check_bound, get_convention
from .metrics import METRIC_FIELDS, _row, assemble
from .graph import layer_graph
from .stats import sparse_layer_stats
from .svd import single_thread_blas

__all__ = ["prunable_weights", "model_spectrum", "network_summary", "fs_distance", "anchor_reference", "DISTANCES"]

#: Valid ``distance`` choices of :func:`fs_distance`.
DISTANCES: tuple[str, ...] = ("origin", "anchor", "angular")
_COORDS = {"full": ("ramanujan_gap", "weighted_gap", "imdb", "imsg"), "weighted": ("imsg", "weighted_gap")}


def prunable_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameter name → weight of every ``Conv2d`` and ``Linear`` of a model, in module order (METHOD §2)."""
    out = {}
    for mname, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)) and getattr(mod, "weight", None) is not None:
            out[f"{mname}.weight" if mname else "weight"] = mod.weight
    return out


def _progress(it, progress, total=None, desc=None):
    if progress is False:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, total=total, desc=desc, disable=None if progress is None else not progress, leave=False)


def _resolve_weights(model, weights) -> tuple[dict, bool]:
    """(name → weight tensor or None, weighted?) for model_spectrum/score_population."""
    layers = prunable_weights(model) if isinstance(model, nn.Module) else dict(model)
    if isinstance(weights, str):
        if weights != "model":
            raise ValueError(f"weights={weights!r}: use 'model', None or a mapping name -> tensor")
        return {k: v.detach() for k, v in layers.items()}, True
    if weights is None:
        return {k: None for k in layers}, False
    if isinstance(weights, Mapping):
        missing = [k for k in layers if k not in weights]
        if missing:
            raise KeyError(f"weights mapping lacks prunable layer(s) {missing[:5]}; it has {list(weights)[:5]}...")
        return {k: weights[k] for k in layers}, True
    raise ValueError(f"weights={weights!r}: use 'model', None or a mapping name -> tensor")


def _mask_for(mask, name):
    if mask is None:
        return None
    if name in mask:
        m = mask[name]
    elif name.endswith(".weight") and name[: -len(".weight")] in mask:
        m = mask[name[: -len(".weight")]]
    else:
        return None  # absent layers count as dense
    return m


def model_spectrum(model, mask, convention: str = "neurips2023", *, weights="model", device="auto",
                   progress=None, bound: str = "bipartite", softness: float = 0.0) -> pd.DataFrame:
    """Per-layer spectral metrics of a pruned network: one row per prunable layer (every Conv2d and Linear weight).

    Parameters
    ----------
    model:
        A ``torch.nn.Module`` (its Conv2d/Linear weights are the prunable layers), or a mapping parameter name →
        weight tensor.
    mask:
        Mapping parameter name (as in ``model.named_parameters()``, e.g. ``"layer1.0.conv1.weight"``) → bool tensor,
        such as a ``pags_core.Mask``.  Layers absent from the mask count as dense; ``None`` means all dense.
    convention:
        ``"neurips2023"`` (default) or ``"iclr2023"``; see :func:`~pags_core.spectral.layer_spectrum`.
    weights:
        ``"model"`` scores |W ⊙ M| with the model's current weights; ``None`` scores the binary graph only;
        a mapping name → tensor supplies other weights (e.g. θ0 while the model holds trained weights).
    device:
        Accepted for API symmetry.  One mask is scored on the CPU with scipy (faster than a GPU for a single mask);
        use :func:`~pags_core.spectral.score_population` to batch many masks on a device.
    progress:
        ``None`` shows a tqdm bar only on a terminal, ``True`` always, ``False`` never.
    bound, softness:
        As in :func:`~pags_core.spectral.layer_spectrum`.

    Returns
    -------
    pandas.DataFrame
        Indexed by layer name (index name ``"layer"``), with columns ``name``, ``convention``, ``shape`` and every
        :class:`~pags_core.spectral.LayerSpectrum` field.
    """
    conv = get_convention(convention)
    check_bound(bound)
    resolve_device(device)  # validates the argument; the single-mask path runs on the CPU
    layers, _ = _resolve_weights(model, weights)
    shapes = {k: tuple(v.shape) for k, v in (prunable_weights(model) if isinstance(model, nn.Module) else dict(model)).items()}
    rows = []
    with single_thread_blas():
        for name in _progress(list(layers), progress, total=len(layers), desc="layers"):
            w = layers[name]
            m = _mask_for(mask, name)
            if m is None:
                m = np.ones(shapes[name], dtype=bool)
            elif tuple(m.shape) != shapes[name]:
                raise ValueError(f"layer {name}: mask shape {tuple(m.shape)} does not match weight shape {shapes[name]}")
            g = layer_graph(m, w if conv.weighted else None, name=name)
            if w is not None and tuple(w.shape) != shapes[name]:
                raise ValueError(f"layer {name}: weight shape {tuple(w.shape)} does not match model shape {shapes[name]}")
            st = sparse_layer_stats(g, conv, weighted=conv.weighted and w is not None)
            r = _row(assemble(st, conv, bound, softness), 0, name, conv.name).as_dict()
            r["shape"] = shapes[name]
            rows.append(r)
    df = pd.DataFrame(rows)
    cols = ["name", "convention", "shape"] + list(METRIC_FIELDS)
    df = df[cols]
    df.index = pd.Index(df["name"], name="layer")
    return df


def _convention_of(df) -> str:
    if "convention" in df.columns and len(df):
        vals = pd.unique(df["convention"])
        if len(vals) != 1:
            raise ValueError(f"DataFrame mixes conventions {list(vals)}; summarise one convention at a time")
        return str(vals[0])
    return "neurips2023"


def network_summary(df: pd.DataFrame, *, valid_only: bool = False) -> pd.Series:
    """Network-level value of every numeric metric column of a per-layer DataFrame.

    ``neurips2023`` (METHOD §5.3): the plain mean over layers after mapping +inf, −inf and NaN to 0, so a layer whose
    gate failed contributes 0 (this is the network value of Δr, λ, Δr_imdb, λ_imsg and FS).  With
    ``valid_only=True`` each column is instead averaged over the layers where it is finite.

    ``iclr2023`` (METHOD §4): the mean of the non-NaN entries of each column, plus ``perc_ram_by_rm`` and
    ``perc_ram_by_irm``, the fraction of *all* layers with Δr > 0 (resp. IMDB > 0); a NaN layer counts as not
    Ramanujan.  ``valid_only`` makes no difference there.

    Also reports ``n_layers`` and ``n_valid`` (layers whose whole-layer gate passed)."""
    conv = _convention_of(df)
    cols = [c for c in METRIC_FIELDS if c in df.columns and c != "valid"]
    X = df[cols].astype(np.float64)
    fin = np.isfinite(X.values)
    if conv == "iclr2023" or valid_only:
        vals = np.where(fin, X.values, 0.0).sum(axis=0)
        cnt = fin.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(cnt > 0, vals / np.maximum(cnt, 1), np.nan)
    else:
        mean = np.where(fin, X.values, 0.0).mean(axis=0) if len(X) else np.full(len(cols), np.nan)
    s = pd.Series(mean, index=cols, dtype=np.float64)
    if conv == "iclr2023":
        n = max(len(df), 1)
        s["perc_ram_by_rm"] = float((df["ramanujan_gap"].astype(float) > 0).sum()) / n
        s["perc_ram_by_irm"] = float((df["imdb"].astype(float) > 0).sum()) / n
    s["n_layers"] = float(len(df))
    s["n_valid"] = float(df["valid"].astype(bool).sum()) if "valid" in df.columns else np.nan
    s.name = conv
    return s


def _coords(df, coordinates) -> np.ndarray:
    try:
        cols = _COORDS[coordinates]
    except KeyError:
        raise ValueError(f"unknown coordinates {coordinates!r}; valid: {', '.join(_COORDS)}") from None
    v = df[list(cols)].to_numpy(dtype=np.float64)
    return np.where(np.isfinite(v), v, 0.0)


def fs_distance(df: pd.DataFrame, reference: pd.DataFrame | None = None, *, distance: str = "origin",
                coordinates: str = "full", reduce: str = "mean", per_layer: bool = False):
    """The ℓ2 "moving distance" of a network in the full-spectrum coordinate space (METHOD §5.4).

    Parameters
    ----------
    df:
        Per-layer metrics of the network being scored (from :func:`model_spectrum`).
    reference:
        Per-layer metrics of the anchor, needed for ``"anchor"`` and ``"angular"``; rows are matched by layer name.
        Build it with :func:`anchor_reference` (``same_mask``: M_t with W_0; ``initial``: M_0 with W_0).
    distance:
        ``"origin"`` (default, B-code): D_l = ‖v_l‖₂ (with ``coordinates="full"`` this is FS_l);
        ``"anchor"``: D_l = ‖v_l − v_ref,l‖₂; ``"angular"`` (exploratory): cos(v_l, v_ref,l)·‖v_l − v_ref,l‖₂, with
        cos = 0 when either vector is 0.
    coordinates:
        ``"full"`` (default): v = (Δr, λ, Δr_imdb, λ_imsg); ``"weighted"``: v = (λ_imsg, λ).
        Non-finite entries are mapped to 0 before any norm or difference.
    reduce:
        ``"mean"`` (default): the network value is the mean of D_l over layers; ``"concat"``: the norm of the
        concatenated per-layer (difference) vectors.
    per_layer:
        Also return the per-layer D_l as a pandas Series.

    Returns
    -------
    float, or (float, pandas.Series) with ``per_layer=True``.
    """
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; valid: {', '.join(DISTANCES)}")
    if reduce not in ("mean", "concat"):
        raise ValueError(f"unknown reduce {reduce!r}; valid: mean, concat")
    v = _coords(df, coordinates)
    if distance == "origin":
        diff = v
        D = np.linalg.norm(v, axis=1)
    else:
        if reference is None:
            raise ValueError(f"distance={distance!r} needs a reference DataFrame (see anchor_reference)")
        missing = [k for k in df.index if k not in reference.index]
        if missing:
            raise KeyError(f"reference lacks layer(s) {missing[:5]}")
        r = _coords(reference.loc[df.index], coordinates)
        diff = v - r
        D = np.linalg.norm(diff, axis=1)
        if distance == "angular":
            nv, nr = np.linalg.norm(v, axis=1), np.linalg.norm(r, axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                cos = np.where((nv > 0) & (nr > 0), np.sum(v * r, axis=1) / (nv * nr), 0.0)
            D = cos * D
            diff = diff * cos[:, None]
    value = float(D.mean()) if reduce == "mean" else float(np.linalg.norm(diff))
    if per_layer:
        return value, pd.Series(D, index=df.index, name=f"{distance}_distance")
    return value


def anchor_reference(model, mask, *, initial_weights, initial_mask=None, reference: str = "same_mask",
                     convention: str = "neurips2023", **kwargs) -> pd.DataFrame:
    """The anchor metrics for ``fs_distance(distance="anchor")``.

    ``reference="same_mask"``: the current mask M_t scored with the initial weights W_0;
    ``reference="initial"``: the initial mask M_0 (``initial_mask``) with W_0.
    ``initial_weights`` is a mapping parameter name → tensor (e.g. a state_dict of the dense init)."""
    if reference == "same_mask":
        ref_mask = mask
    elif reference == "initial":
        if initial_mask is None:
            raise ValueError("reference='initial' needs initial_mask (the initial ITOP mask M_0)")
        ref_mask = initial_mask
    else:
        raise ValueError(f"unknown reference {reference!r}; valid: same_mask, initial")
    return model_spectrum(model, ref_mask, convention, weights=initial_weights, **kwargs)
