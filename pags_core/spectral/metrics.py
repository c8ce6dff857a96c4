"""Per-layer metrics of both papers (ICLR-2023 and NeurIPS-2023 papers) and the public :func:`layer_spectrum`.

The formulas are written once, vectorised over P samples, in :func:`assemble`; they read a
:class:`~pags_core.spectral.stats.LayerStats` and a :class:`~pags_core.spectral.conventions.Convention`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .conventions import Convention, check_bound, check_softness, get_convention
from .graph import check_groups, check_shapes, check_threshold, layer_input
from .stats import LayerStats, layer_stats
from .svd import single_thread_blas

__all__ = ["LayerSpectrum", "layer_spectrum", "layer_groups", "METRIC_FIELDS", "assemble", "full_spectrum"]


@dataclass(frozen=True)
class LayerSpectrum:
    """Spectral metrics of one layer (all floats are float64; NaN = undefined, +inf = failed NeurIPS gate).

    Graph (after removing isolated nodes; left = input units, right = output channels):
    ``n_left``/``n_right`` surviving nodes, ``n_edges`` = |E|, ``d_left`` = |E|/n_left (mean fan-out of the inputs),
    ``d_right`` = |E|/n_right (mean fan-in of the outputs), ``density`` = |E| / number of weights (the layer's kept
    fraction; for a layer with g groups, g times the density of its block-diagonal biadjacency).

    Spectrum: ``mu0`` = σ1(B′) and ``mu_hat`` = σ2(B′) of the binary graph (reported whenever the layer has edges,
    also when a gate fails); ``weighted_mu0``/``weighted_mu_hat`` the same for |W⊙M| (NaN without a weight and in
    ``iclr2023``).

    Metrics: ``ramanujan_gap`` Δr = bound + softness − μ̂; ``weighted_gap`` λ = μ0(W) − μ̂(W); ``imdb`` Δr_imdb (ICLR
    ``irm``); ``imsg`` λ_imsg; ``full_spectrum`` FS = ‖(Δr, λ, Δr_imdb, λ_imsg)‖₂ with non-finite entries counted as
    0 (as the NeurIPS-2023 code does); ``n_groups`` the number of degree groups that entered IMDB; ``rm_ub`` the Ramanujan bound used
    for Δr; ``valid`` whether the whole-layer (binary) gate passed.

    ``neurips2023`` only (NaN otherwise): ``mixing``/``weighted_mixing``, the logged mixing term of §5.1.
    ``iclr2023`` only (NaN otherwise): ``spectral_gap`` Δs = 2√(μ0−1) − μ̂, ``sm_ub`` = 2√(μ0−1), ``random_factor``
    (NaRC-like check, E_dir = 2|E|, unfiltered dims), ``expansion`` = n_right/n_left, and the IMDB companions
    ``imdb_norm`` (irm_norm), ``ism``, ``ism_norm``, ``imax_ep``, ``i_mean_ep``.
    """

    name: str | None
    convention: str
    mu0: float
    mu_hat: float
    ramanujan_gap: float
    weighted_mu0: float
    weighted_mu_hat: float
    weighted_gap: float
    imdb: float
    imsg: float
    full_spectrum: float
    d_left: float
    d_right: float
    n_left: int
    n_right: int
    n_edges: int
    n_groups: int
    density: float
    valid: bool
    rm_ub: float
    mixing: float
    weighted_mixing: float
    spectral_gap: float
    sm_ub: float
    random_factor: float
    expansion: float
    imdb_norm: float
    ism: float
    ism_norm: float
    imax_ep: float
    i_mean_ep: float

    def as_dict(self) -> dict:
        """The fields as a plain dict (one DataFrame row)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def coordinates(self) -> tuple[float, float, float, float]:
        """The raw full-spectrum coordinate (Δr, λ, Δr_imdb, λ_imsg), before the non-finite→0 step."""
        return (self.ramanujan_gap, self.weighted_gap, self.imdb, self.imsg)


#: Names of the numeric per-layer metric columns, in LayerSpectrum order (without ``name`` and ``convention``).
METRIC_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(LayerSpectrum) if f.name not in ("name", "convention"))
_INT_FIELDS = ("n_left", "n_right", "n_edges", "n_groups")


def full_spectrum(dr, lam, imdb, imsg):
    """FS = ‖(Δr, λ, Δr_imdb, λ_imsg)‖₂ after mapping +inf, −inf and NaN to 0; elementwise on arrays."""
    v = np.stack(np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (dr, lam, imdb, imsg))))
    v = np.where(np.isfinite(v), v, 0.0)
    return np.sqrt(np.sum(v * v, axis=0))


def _div(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def _sqrt(x):
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.asarray(x, dtype=np.float64))


def _bound(bound, d_in, d_out, d_left_conv, s1, e, nl, nr):
    if bound == "bipartite":
        return _sqrt(d_in - 1) + _sqrt(d_out - 1)
    if bound == "regular":
        return 2 * _sqrt(d_left_conv - 1)
    if bound == "spectral":
        return 2 * _sqrt(s1 - 1)
    return 2 * _sqrt(_div(2 * e, nl + nr) - 1)  # mean_degree (unverified option)


def _group_sum(sample, values, P):
    return np.bincount(sample, weights=values, minlength=P)[:P] if sample.size else np.zeros(P)


def _group_values(st: LayerStats, conv: Convention, bound: str, softness: float) -> dict:
    """Per-group arrays: gate (``valid``), Ramanujan bound, Δr_g, c_g, λ_g (+inf when the weighted gate fails,
    NaN when not scored), Δs_g, 2√(μ0_g−1) and r_g/n_g."""
    d, n, r = st.g_d, st.g_n, st.g_r
    d_right = _div(d * n, r)
    if d.size:
        ok = np.asarray(conv.group_gate(d, d_right), dtype=bool) & np.isfinite(st.g_s1)
    else:
        ok = np.zeros(0, dtype=bool)
    bnd = _bound(bound, d, d_right, d, st.g_s1, d * n, n, r)
    cg = (np.maximum(n, r) / (n + r - 1)) if conv.group_weight == "cheeger" else np.ones_like(d)
    if conv.weighted and st.weighted:
        gw = ok & (st.g_ew > 0)
        gw = gw & np.asarray(conv.group_gate(_div(st.g_ew, st.g_nlw), _div(st.g_ew, st.g_nrw)), dtype=bool)
        lam = np.where(gw, st.g_s1w - st.g_s2w, np.inf)
    else:
        lam = np.full(d.shape, np.nan)
    smub = 2 * _sqrt(st.g_s1 - 1)
    return {"valid": ok, "d_right": d_right, "bound": bnd, "ramanujan_gap": bnd + softness - st.g_s2, "c_g": cg,
            "weighted_gap": lam, "spectral_gap": smub - st.g_s2, "sm_ub": smub, "expansion": _div(r, n)}


def assemble(st: LayerStats, conv: Convention, bound: str = "bipartite", softness: float = 0.0) -> dict:
    """Every metric of :class:`LayerSpectrum` (except ``name``/``convention``) as float64 arrays of length P."""
    P = st.n_samples
    nan = np.full(P, np.nan)
    d_in, d_out = _div(st.e, st.nl), _div(st.e, st.nr)  # mean fan-out of inputs, mean fan-in of outputs
    gate = np.asarray(conv.layer_gate(d_in, d_out) & (st.e > 0), dtype=bool)
    bnd = _bound(bound, d_in, d_out, conv.layer_left_degree(d_in, d_out), st.s1, st.e, st.nl, st.nr)
    fail = conv.failed_value
    out = {
        "mu0": np.where(st.e > 0, st.s1, np.nan), "mu_hat": np.where(st.e > 0, st.s2, np.nan),
        "d_left": d_in, "d_right": d_out, "n_left": st.nl, "n_right": st.nr, "n_edges": st.e,
        "density": st.e / np.asarray(st.n_weights, dtype=np.float64), "valid": gate.astype(np.float64),
        "rm_ub": np.where(gate, bnd, np.nan),
        "ramanujan_gap": np.where(gate, bnd + softness - st.s2, fail),
    }
    # weighted whole layer (neurips2023 only)
    if conv.weighted and st.weighted:
        dw_in, dw_out = _div(st.ew, st.nlw), _div(st.ew, st.nrw)
        gate_w = np.asarray(conv.layer_gate(dw_in, dw_out) & (st.ew > 0), dtype=bool)
        out["weighted_mu0"] = np.where(st.ew > 0, st.s1w, np.nan)
        out["weighted_mu_hat"] = np.where(st.ew > 0, st.s2w, np.nan)
        out["weighted_gap"] = np.where(gate_w, st.s1w - st.s2w, fail)
        ntw = st.nlw + st.nrw
        mixw = (st.s2w * _sqrt(st.nlw * st.nrw) - np.abs(2 * st.ew - dw_out * st.nlw * st.nrw / np.where(ntw > 0, ntw, 1))) / np.where(ntw > 0, ntw, 1)
        out["weighted_mixing"] = np.where(gate_w, mixw, fail)
    else:
        for k in ("weighted_mu0", "weighted_mu_hat", "weighted_gap", "weighted_mixing"):
            out[k] = nan.copy()
    if conv.name == "neurips2023":
        nt = st.nl + st.nr
        ntd = np.where(nt > 0, nt, 1)
        mix = (st.s2 * _sqrt(st.nl * st.nr) - np.abs(2 * st.e - d_out * st.nl * st.nr / ntd)) / ntd
        out["mixing"] = np.where(gate, mix, fail)
        for k in ("spectral_gap", "sm_ub", "random_factor", "expansion"):
            out[k] = nan.copy()
    else:
        out["mixing"] = nan.copy()
        sm_ub = 2 * _sqrt(st.s1 - 1)
        out["sm_ub"] = np.where(gate, sm_ub, np.nan)
        out["spectral_gap"] = np.where(gate, sm_ub - st.s2, np.nan)
        out["expansion"] = np.where(gate, _div(st.nr, st.nl), np.nan)
        rf = ((st.s2 ** 2 / 4 + 1) * _sqrt(st.nl * st.nr)
              - np.abs(2 * st.e - (d_in / st.n_outputs) * st.nl * st.nr)) / (np.asarray(st.n_inputs, dtype=np.float64) * st.n_outputs)
        out["random_factor"] = np.where(gate, rf, np.nan)

    # degree groups (nested d-left-regular subgraphs)
    s = st.g_sample
    gv = _group_values(st, conv, bound, softness)
    ok, cg, drg = gv["valid"], gv["c_g"], gv["ramanujan_gap"]
    cnt = _group_sum(s[ok], np.ones(int(ok.sum())), P)
    has = cnt > 0
    safe = np.where(has, cnt, 1)
    out["n_groups"] = cnt
    out["imdb"] = np.where(has, _group_sum(s[ok], (cg * drg)[ok], P) / safe, conv.no_group_value)
    if conv.weighted and st.weighted:
        out["imsg"] = np.where(has, _group_sum(s[ok], (cg * gv["weighted_gap"])[ok], P) / safe, conv.no_group_value)
    else:
        out["imsg"] = nan.copy()
    if conv.name == "iclr2023":
        mean = lambda v: np.where(has, _group_sum(s[ok], v[ok], P) / safe, np.nan)  # noqa: E731
        out["ism"] = mean(gv["spectral_gap"])
        out["imdb_norm"] = mean(_div(drg, gv["bound"]))
        out["ism_norm"] = mean(_div(gv["spectral_gap"], gv["sm_ub"]))
        out["i_mean_ep"] = mean(gv["expansion"])
        mx = np.full(P, -np.inf)
        if ok.any():
            np.maximum.at(mx, s[ok], gv["expansion"][ok])
        out["imax_ep"] = np.where(has, mx, np.nan)
    else:
        for k in ("ism", "imdb_norm", "ism_norm", "i_mean_ep", "imax_ep"):
            out[k] = nan.copy()
    out["full_spectrum"] = full_spectrum(out["ramanujan_gap"], out["weighted_gap"], out["imdb"], out["imsg"])
    return out


def _row(out: dict, i: int, name, conv_name) -> LayerSpectrum:
    kw = {}
    for k in METRIC_FIELDS:
        v = float(out[k][i])
        if k in _INT_FIELDS:
            v = int(v)
        elif k == "valid":
            v = bool(v)
        kw[k] = v
    return LayerSpectrum(name=name, convention=conv_name, **kw)


def _one_layer_stats(mask, weight, conv, name, groups, mask_threshold) -> LayerStats:
    """The statistics of one layer under one mask (the shared body of layer_spectrum and layer_groups)."""
    if mask is None and weight is None:
        raise ValueError(f"layer {name or '<unnamed>'}: need a mask or a weight")
    check_shapes(mask, weight, name)
    shape = tuple((mask if mask is not None else weight).shape)
    groups = check_groups(shape, groups, name)
    x = layer_input(name, shape, groups, [mask], weight if conv.weighted else None, check_threshold(mask_threshold))
    with single_thread_blas():
        return layer_stats([x], conv, weighted=conv.weighted and weight is not None)


def layer_spectrum(mask, weight=None, convention: str = "neurips2023", *, bound: str = "bipartite",
                   softness: float = 0.0, name: str | None = None, groups: int = 1,
                   mask_threshold: float | None = None) -> LayerSpectrum:
    """Spectral metrics of one prunable layer.

    Parameters
    ----------
    mask:
        Bool/0-1 tensor or array of the weight's shape (any ndim >= 2: Linear, Conv1d/2d/3d, transposed convs);
        ``None`` means dense.  Rows (dim 0) are the outputs; a conv is unrolled into input units, one per entry of
        ``shape[1:]`` per group (the kernel is never summed).
    weight:
        The weight tensor at measurement time (θ0 for PAGS, θ_N for PEGS, θ_t for ITOP) or ``None``.  The weighted graph
        is |W ⊙ M|; a weight that is exactly 0 inside the mask removes that edge from the weighted graph and its gates.
        With ``None`` only the binary graph is scored: the weighted fields (λ, λ_imsg, weighted μ's) are NaN and FS is
        the norm of the binary coordinates (Δr, Δr_imdb) only.
    convention:
        ``"neurips2023"`` (default; gate ≥3/>1 outputs-first, groups of size ≥2, c_g weighting, failed gate → +inf,
        no group → 0) or ``"iclr2023"`` (binary only; gate ≥3/≥3, groups of size ≥3, plain means, failed gate or no
        group → NaN).  In ``iclr2023`` every weighted field is NaN and FS = ‖(Δr, Δr_imdb)‖ with NaN counted as 0.
    bound:
        Ramanujan bound used for Δr and Δr_imdb: ``"bipartite"`` √(d̄L−1)+√(d̄R−1) (default, both codebases),
        ``"regular"`` 2√(d−1) with d the convention's left mean degree (the group fan-out for groups),
        ``"spectral"`` 2√(μ0−1), ``"mean_degree"`` 2√(d̄−1) with d̄ = 2|E|/(|L′|+|R′|) (unverified paper notation).
    softness:
        Constant s added to Δr and to every group's Δr_g (B-code; default 0).
    name:
        Layer name, used in error messages and stored in the result.
    groups:
        The convolution's ``groups``: the graph is block-diagonal, output row o reaching only the input units of its
        group (:mod:`pags_core.spectral.graph`).  A depthwise or grouped layer is disconnected: read it as described
        in :mod:`pags_core.spectral` (μ̂ = μ0 when two groups are equally strong).
    mask_threshold:
        ``None`` (default): a numeric mask must hold only 0 and 1.  A number t: entries greater than t are kept
        (for a soft or score-valued mask).

    Returns
    -------
    LayerSpectrum
        Frozen dataclass; see its docstring for every field.  Degenerate layers (empty mask, one edge, every degree
        below the gate, no valid group) give the convention's defined values and never raise.

    Raises
    ------
    ValueError
        For a mask whose shape differs from the weight's (the message names the layer and both shapes), a mask that
        is not 0/1, a NaN or ±inf weight inside the mask (``neurips2023``; the message names the layer and the
        count), a bad ``groups``, an unknown convention or bound, or a non-finite ``softness``.
    """
    conv = get_convention(convention)
    check_bound(bound)
    softness = check_softness(softness)
    st = _one_layer_stats(mask, weight, conv, name, groups, mask_threshold)
    return _row(assemble(st, conv, bound, softness), 0, name, conv.name)


def layer_groups(mask, weight=None, convention: str = "neurips2023", *, bound: str = "bipartite",
                 softness: float = 0.0, name: str | None = None, groups: int = 1, mask_threshold: float | None = None):
    """The nested d-left-regular degree groups behind IMDB / IMSG, one row per group.

    Input units are grouped by their exact fan-out d; groups smaller than the convention's size threshold (3 for
    ``iclr2023``, 2 for ``neurips2023``) are not listed.  Columns: ``d`` (fan-out), ``n`` (group size), ``r`` (outputs
    the group touches), ``d_right`` = d·n/r, ``valid`` (the group gate: d ≥ 3 and d_right ≥ 3 / > 1), ``mu0``,
    ``mu_hat`` (binary group graph), ``bound``, ``ramanujan_gap`` (Δr_g), ``c_g`` (1 for ``iclr2023``),
    ``weighted_mu0``, ``weighted_mu_hat``, ``weighted_gap`` (λ_g; +inf when the weighted gate fails), ``spectral_gap``
    (Δs_g) and ``expansion`` (r/n).  Spectra are NaN for groups that fail the gate.  ``imdb`` of
    :func:`layer_spectrum` is the mean of ``c_g·ramanujan_gap`` over the valid rows.  Arguments as in
    :func:`layer_spectrum`."""
    import pandas as pd

    conv = get_convention(convention)
    check_bound(bound)
    softness = check_softness(softness)
    st = _one_layer_stats(mask, weight, conv, name, groups, mask_threshold)
    gv = _group_values(st, conv, bound, softness)
    ok = gv["valid"]
    nanif = lambda v: np.where(ok, v, np.nan)  # noqa: E731
    df = pd.DataFrame({
        "d": st.g_d.astype(np.int64), "n": st.g_n.astype(np.int64), "r": st.g_r.astype(np.int64),
        "d_right": gv["d_right"], "valid": ok, "mu0": st.g_s1, "mu_hat": st.g_s2, "bound": nanif(gv["bound"]),
        "ramanujan_gap": nanif(gv["ramanujan_gap"]), "c_g": gv["c_g"],
        "weighted_mu0": st.g_s1w, "weighted_mu_hat": st.g_s2w, "weighted_gap": nanif(gv["weighted_gap"]),
        "spectral_gap": nanif(gv["spectral_gap"]), "expansion": gv["expansion"],
    })
    return df
