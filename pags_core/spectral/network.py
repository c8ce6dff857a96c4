"""Whole-network views: one row per prunable layer, network summaries and full-spectrum distances (NeurIPS 2023).

Which weights are prunable is decided in one place, :func:`pags_core.models.prunable_parameters`, and how each one is
read as a graph (its ``groups``) by :func:`pags_core.models.layer_geometry`; this module only matches masks and
weights to those layers, refusing keys that match none.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from torch import nn

from ..device import resolve_device
from ..models import layer_geometry, prunable_parameters
from .conventions import check_bound, check_softness, get_convention
from .graph import check_groups, check_threshold, layer_input
from .metrics import METRIC_FIELDS, assemble
from .stats import layer_stats
from .svd import single_thread_blas

__all__ = ["model_spectrum", "network_summary", "fs_distance", "anchor_reference", "DISTANCES", "prunable_weights",
           "resolve_layers", "match_mask"]

#: Valid ``distance`` choices of :func:`fs_distance`.
DISTANCES: tuple[str, ...] = ("origin", "anchor", "angular")
_COORDS = {"full": ("ramanujan_gap", "weighted_gap", "imdb", "imsg"), "weighted": ("imsg", "weighted_gap")}

#: Kept as an alias for backward compatibility: the one definition of what is prunable is
#: :func:`pags_core.models.prunable_parameters`.
prunable_weights = prunable_parameters


@dataclass(frozen=True)
class Layers:
    """The prunable layers being scored: names in order, their shapes and groups, and the weights scored (``None``
    per layer when only the binary graph is scored)."""

    names: list
    shapes: dict
    groups: dict
    weights: dict
    weighted: bool


def resolve_layers(model, weights="model", groups: Mapping | None = None) -> Layers:
    """The prunable layers of a ``torch.nn.Module`` (from :func:`pags_core.models.prunable_parameters`, groups from
    :func:`pags_core.models.layer_geometry`) or of a mapping parameter name → weight tensor (``groups`` then gives
    ``{name: g}`` for its grouped convolutions, 1 otherwise), with the weights to score.

    ``weights``: ``"model"`` (the model's current weights), ``None`` (binary graph only) or a mapping name → tensor
    holding every prunable layer.  Raises ``ValueError`` when there is no prunable layer, for unknown ``groups`` keys,
    and for weights of the wrong shape; ``KeyError`` when a weights mapping lacks a layer."""
    if isinstance(model, nn.Module):
        params = prunable_parameters(model)
        if groups is not None:
            raise ValueError("groups= is read from the model's layers (pags_core.models.layer_geometry); pass it only "
                             "with a mapping of weights")
        geo = layer_geometry(model)
        grp = {k: geo[k].groups for k in params}
        what = f"model {type(model).__name__}"
    elif isinstance(model, Mapping):
        params = dict(model)
        grp = {k: 1 for k in params}
        if groups is not None:
            if not isinstance(groups, Mapping):
                raise ValueError(f"groups={groups!r}: expected a mapping layer name -> groups")
            unknown = [k for k in groups if k not in params]
            if unknown:
                raise ValueError(f"groups names unknown layer(s) {unknown[:8]}; layers are e.g. {list(params)[:4]}")
            grp.update(groups)
        what = "weights mapping"
    else:
        raise ValueError(f"expected a torch.nn.Module or a mapping parameter name -> weight tensor, got "
                         f"{type(model).__name__}")
    if not params:
        raise ValueError(f"{what} has no prunable layer (pags_core.models.prunable_parameters found none): nothing "
                         "to score")
    shapes = {k: tuple(int(d) for d in v.shape) for k, v in params.items()}
    grp = {k: check_groups(shapes[k], g, k) for k, g in grp.items()}
    if isinstance(weights, str) and weights == "model":
        w, weighted = {k: v.detach() for k, v in params.items()}, True
    elif weights is None:
        w, weighted = {k: None for k in params}, False
    elif isinstance(weights, Mapping):
        missing = [k for k in params if k not in weights]
        if missing:
            raise KeyError(f"weights mapping lacks prunable layer(s) {missing[:5]}; it has {list(weights)[:5]}...")
        w, weighted = {k: weights[k] for k in params}, True
        for k, v in w.items():
            if tuple(v.shape) != shapes[k]:
                raise ValueError(f"layer {k}: weight shape {tuple(v.shape)} does not match model shape {shapes[k]}")
    else:
        raise ValueError(f"weights={weights!r}: use 'model', None or a mapping name -> tensor")
    return Layers(names=list(params), shapes=shapes, groups=grp, weights=w, weighted=weighted)


def match_mask(names, mask, *, what: str = "mask") -> dict:
    """Layer name → that layer's mask (``None`` = dense: the layer is absent from the mask, or ``mask`` is None).

    A key may be the parameter name (``layer1.0.conv1.weight``) or its module name (``layer1.0.conv1``).  Keys that
    match no prunable layer are an error listing them, with a hint when they carry DataParallel's ``module.``
    prefix."""
    out = {n: None for n in names}
    if mask is None:
        return out
    if not isinstance(mask, Mapping):
        raise ValueError(f"{what} must be a mapping parameter name -> bool tensor (e.g. a pags_core.Mask), got "
                         f"{type(mask).__name__}")
    alias = {n[: -len(".weight")]: n for n in names if n.endswith(".weight")}
    unknown = []
    for k, v in mask.items():
        n = k if k in out else alias.get(k)
        if n is None:
            unknown.append(k)
        elif out[n] is not None:
            raise ValueError(f"{what} gives layer {n} twice (keys {n!r} and {_alias_key(n)!r})")
        else:
            out[n] = v
    if unknown:
        hint = ""
        if all(isinstance(k, str) and k.startswith("module.") for k in unknown) and \
                any(k[7:] in out or k[7:] in alias for k in unknown):
            hint = (" — they carry the 'module.' prefix of a DataParallel/DistributedDataParallel state dict; strip it: "
                    "{k.removeprefix('module.'): v for k, v in mask.items()}")
        raise ValueError(f"{len(unknown)} {what} key(s) match no prunable layer: {unknown[:8]}"
                         f"{' ...' if len(unknown) > 8 else ''}; prunable layers are e.g. {list(names)[:4]}{hint}")
    return out


def _alias_key(name: str) -> str:
    """The module-name form of a parameter name (``a.b.weight`` → ``a.b``)."""
    return name[: -len(".weight")] if name.endswith(".weight") else name


def model_spectrum(model, mask, convention: str = "neurips2023", *, weights="model", device="auto",
                   progress=None, bound: str = "bipartite", softness: float = 0.0, groups: Mapping | None = None,
                   mask_threshold: float | None = None) -> pd.DataFrame:
    """Per-layer spectral metrics of a pruned network: one row per prunable layer.

    Parameters
    ----------
    model:
        A ``torch.nn.Module`` — its prunable layers are those of :func:`pags_core.models.prunable_parameters`, each
        read as its true graph (grouped and depthwise convolutions block-diagonal) — or a mapping parameter name →
        weight tensor (then ``groups={name: g}`` marks its grouped convolutions).
    mask:
        Mapping parameter name (as in ``model.named_parameters()``, e.g. ``"layer1.0.conv1.weight"``, or the module
        name ``"layer1.0.conv1"``) → bool or 0/1 tensor, such as a ``pags_core.Mask``.  Layers absent from the mask
        count as dense; ``None`` means all dense.  A key that matches no prunable layer is an error.
    convention:
        ``"neurips2023"`` (default) or ``"iclr2023"``; see :func:`~pags_core.spectral.layer_spectrum`.
    weights:
        ``"model"`` scores |W ⊙ M| with the model's current weights; ``None`` scores the binary graph only;
        a mapping name → tensor supplies other weights (e.g. θ0 while the model holds trained weights).
    device:
        Validated; one mask is scored on the CPU (all its eigenproblems in one batched solve).  Use
        :func:`~pags_core.spectral.score_population` to score many masks on a device.
    progress:
        Accepted for API compatibility; one mask is scored in a single batched call.
    bound, softness, mask_threshold:
        As in :func:`~pags_core.spectral.layer_spectrum`.
    groups:
        Only with a mapping of weights: ``{name: groups}`` of its grouped convolutions.

    Returns
    -------
    pandas.DataFrame
        Indexed by layer name (index name ``"layer"``), with columns ``name``, ``convention``, ``shape``, ``groups``
        and every :class:`~pags_core.spectral.LayerSpectrum` field.

    Raises
    ------
    ValueError
        For a model without prunable layers, mask keys matching no layer, a mask of the wrong shape or not 0/1, a
        NaN/inf weight inside the mask (naming the layer and the count), an unknown convention or bound, a bad
        softness.
    """
    conv = get_convention(convention)
    check_bound(bound)
    softness = check_softness(softness)
    thr = check_threshold(mask_threshold)
    resolve_device(device)
    L = resolve_layers(model, weights, groups)
    masks = match_mask(L.names, mask)
    use_w = conv.weighted and L.weighted
    inputs = [layer_input(n, L.shapes[n], L.groups[n], [masks[n]], L.weights[n] if use_w else None, thr)
              for n in L.names]
    with single_thread_blas():
        out = assemble(layer_stats(inputs, conv, weighted=use_w), conv, bound, softness)
    df = metric_frame(out)
    df.insert(0, "groups", [L.groups[n] for n in L.names])
    df.insert(0, "shape", [L.shapes[n] for n in L.names])
    df.insert(0, "convention", conv.name)
    df.insert(0, "name", L.names)
    df.index = pd.Index(L.names, name="layer")
    return df


def metric_frame(out: dict) -> pd.DataFrame:
    """The metric arrays of :func:`~pags_core.spectral.metrics.assemble` as a DataFrame with the
    :class:`~pags_core.spectral.LayerSpectrum` column types (ints for counts, bool for ``valid``)."""
    df = pd.DataFrame({k: out[k] for k in METRIC_FIELDS})
    for k in ("n_left", "n_right", "n_edges", "n_groups"):
        df[k] = df[k].astype(np.int64)
    df["valid"] = df["valid"].astype(bool)
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

    ``neurips2023``: the plain mean over layers after mapping +inf, −inf and NaN to 0, so a layer whose
    gate failed contributes 0 (this is the network value of Δr, λ, Δr_imdb, λ_imsg and FS).  With
    ``valid_only=True`` each column is instead averaged over the layers where it is finite.

    ``iclr2023``: the mean of the non-NaN entries of each column, plus ``perc_ram_by_rm`` and
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
    """The ℓ2 "moving distance" of a network in the full-spectrum coordinate space (NeurIPS 2023).

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
