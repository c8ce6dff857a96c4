"""Per-layer graph statistics — degrees, edge counts, degree groups and top-2 singular values — for many masks of
many layers at once: every eigenproblem of a batch is built with vectorised integer arithmetic and solved in one
call of :func:`~pags_core.spectral.svd.top2_many`.

:class:`LayerStats` holds one layer's statistics for P samples (masks): whole-layer arrays of length P and the degree
groups as flat arrays with a ``g_sample`` index.  :func:`layer_stats` fills a list of them from
:class:`~pags_core.spectral.graph.LayerInput` records; :mod:`pags_core.spectral.metrics` turns them into the metrics of either convention.

Eigenproblems per (sample, layer): the whole-layer graph (binary, and |W⊙M| when weighted) and every degree group
of size >= the convention's threshold that passes the binary group gate (and, for its weighted values, the
weighted gate on the nonzero pattern of |W⊙M|).  Where |W⊙M| has no zero inside the mask — the usual case — the
weighted graph has the binary graph's edges, and the two are solved as two channels of one structure.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .conventions import Convention
from .graph import LayerInput, input_units, n_input_units
from .svd import top2_many

__all__ = ["LayerStats", "layer_stats", "stack_stats"]


@dataclass
class LayerStats:
    """Graph statistics of one layer for P masks.

    ``n_inputs``/``n_outputs``: the true graph's node counts (g·F input units, R output rows); ``n_weights``: R·F
    (ints, or arrays of length P for a stack of layers, :func:`stack_stats`).
    Whole layer (arrays of length P): ``e`` edges, ``nl`` surviving inputs, ``nr`` surviving outputs, ``s1``/``s2``
    the top-2 singular values of the binary biadjacency; ``ew``, ``nlw``, ``nrw``, ``s1w``, ``s2w`` the same for the
    weighted graph |W⊙M| (its own nonzero pattern), NaN when no weight is scored.
    Degree groups (flat arrays over all kept groups of all samples): ``g_sample``, ``g_d`` (fan-out), ``g_n`` (size),
    ``g_r`` (touched outputs), ``g_s1``/``g_s2`` (binary, NaN when the binary group gate fails), and the weighted
    ``g_ew``, ``g_nlw``, ``g_nrw``, ``g_s1w``, ``g_s2w`` (NaN when not computed)."""

    n_inputs: int
    n_outputs: int
    n_weights: int
    e: np.ndarray
    nl: np.ndarray
    nr: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    ew: np.ndarray
    nlw: np.ndarray
    nrw: np.ndarray
    s1w: np.ndarray
    s2w: np.ndarray
    weighted: bool
    g_sample: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    g_d: np.ndarray = field(default_factory=lambda: np.zeros(0))
    g_n: np.ndarray = field(default_factory=lambda: np.zeros(0))
    g_r: np.ndarray = field(default_factory=lambda: np.zeros(0))
    g_s1: np.ndarray = field(default_factory=lambda: np.zeros(0))
    g_s2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    g_ew: np.ndarray = field(default_factory=lambda: np.zeros(0))
    g_nlw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    g_nrw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    g_s1w: np.ndarray = field(default_factory=lambda: np.zeros(0))
    g_s2w: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n_samples(self) -> int:
        return int(np.size(self.e))


class _Edges:
    """Edge lists of one solver call (a fixed number of channels), accumulated layer by layer, with where each
    problem's result goes: ``(layer, kind, positions, weighted_channel)`` per block of problems."""

    def __init__(self, channels: int):
        self.C = channels
        self.parts: list = []
        self.targets: list = []
        self.n_problems = 0
        self.row_base = 0
        self.col_base = 0

    def add(self, owner, row, n_row, col, n_col, vals, layer: int, kind: str, weighted_channel: bool = False):
        """Add one problem per distinct ``owner`` (a sample for kind ``"layer"``, a group for ``"group"``); node
        ids are below ``n_row``/``n_col`` and distinct between owners."""
        if owner.size == 0:
            return
        mark = np.zeros(int(owner.max()) + 1, dtype=bool)
        mark[owner] = True
        positions = np.flatnonzero(mark)
        local = (np.cumsum(mark) - 1)[owner]
        self.parts.append((local + self.n_problems, row + self.row_base, col + self.col_base, vals))
        self.targets.append((self.n_problems, layer, kind, positions, weighted_channel))
        self.n_problems += positions.size
        self.row_base += int(n_row)
        self.col_base += int(n_col)

    def solve(self, device):
        if not self.parts:
            return np.zeros((0, self.C, 2))
        p, r, c, v = (np.concatenate([x[i] for x in self.parts]) for i in range(4))
        return top2_many(p, r, c, v.reshape(len(p), self.C), self.n_problems, device=device)


def _count_distinct(keys: np.ndarray, block: int, n_owners: int) -> np.ndarray:
    """Number of distinct ``keys`` per owner, the owner of key k being ``k // block`` (< n_owners)."""
    mark = np.zeros(n_owners * block, dtype=bool)
    mark[keys] = True
    return mark.reshape(n_owners, block).sum(1)


def _plan(li: int, x: LayerInput, conv: Convention, weighted: bool, pair: _Edges, single: _Edges) -> LayerStats:
    """Degrees and degree groups of one layer for all its samples; adds its eigenproblems to the two edge lists and
    returns its :class:`LayerStats` with the spectra still zero (filled in by :func:`layer_stats`)."""
    P, R = x.n_samples, int(x.shape[0])
    n_in = n_input_units(x.shape, x.groups)
    s = x.sample
    u, o = input_units(x.flat, x.shape, x.groups)
    ku, ko = s * n_in + u, s * R + o  # whole-layer node ids: (sample, input unit) and (sample, output)
    fo = np.bincount(ku, minlength=P * n_in)
    f64 = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
    nan = np.full(P, np.nan)
    st = LayerStats(n_inputs=n_in, n_outputs=R, n_weights=R * (n_in // x.groups), e=f64(np.bincount(s, minlength=P)),
                    nl=f64((fo.reshape(P, n_in) > 0).sum(1)), nr=f64(_count_distinct(ko, R, P)),
                    s1=np.zeros(P), s2=np.zeros(P), ew=nan.copy(), nlw=nan.copy(), nrw=nan.copy(), s1w=nan.copy(),
                    s2w=nan.copy(), weighted=weighted)
    nz = x.values > 0 if weighted else np.ones(s.size, dtype=bool)
    if weighted:
        st.ew = f64(np.bincount(s[nz], minlength=P))
        st.nlw = f64(_count_distinct(ku[nz], n_in, P))
        st.nrw = f64(_count_distinct(ko[nz], R, P))
        st.s1w, st.s2w = np.where(st.ew > 0, 0.0, np.nan), np.where(st.ew > 0, 0.0, np.nan)
    has_zero = np.bincount(s[~nz], minlength=P) > 0
    # degree groups: the input units of one sample with the same fan-out d > 0, kept when there are enough of them
    node = np.flatnonzero(fo)
    size = np.bincount((node // n_in) * (R + 1) + fo[node], minlength=P * (R + 1))
    gk = np.flatnonzero(size >= conv.group_min_size)  # group key = sample * (R + 1) + d
    G = gk.size
    gid_of = np.full(P * (R + 1), -1, dtype=np.int64)
    gid_of[gk] = np.arange(G)
    gid = gid_of[s * (R + 1) + fo[ku]]  # group of every edge (-1: none)
    ing = gid >= 0
    st.g_sample = gk // (R + 1)
    st.g_d, st.g_n = f64(gk % (R + 1)), f64(size[gk])
    st.g_r = f64(_count_distinct(gid[ing] * R + o[ing], R, G))
    with np.errstate(divide="ignore", invalid="ignore"):
        gate = np.asarray(conv.group_gate(st.g_d, st.g_d * st.g_n / st.g_r), dtype=bool) & (st.g_r > 0)
    gnan = np.full(G, np.nan)
    st.g_s1, st.g_s2 = np.where(gate, 0.0, np.nan), np.where(gate, 0.0, np.nan)
    st.g_ew, st.g_nlw, st.g_nrw, st.g_s1w, st.g_s2w = (gnan.copy() for _ in range(5))
    gate_w = np.zeros(G, dtype=bool)
    if weighted and G:
        gz = ing & nz
        g_ew = f64(np.bincount(gid[gz], minlength=G))
        node_w = np.flatnonzero(np.bincount(ku[gz], minlength=P * n_in))  # grouped input units with a nonzero weight
        g_nlw = f64(np.bincount(gid_of[(node_w // n_in) * (R + 1) + fo[node_w]], minlength=G))
        g_nrw = f64(_count_distinct(gid[gz] * R + o[gz], R, G))
        with np.errstate(divide="ignore", invalid="ignore"):
            gate_w = gate & (g_ew > 0) & np.asarray(conv.group_gate(g_ew / g_nlw, g_ew / g_nrw), dtype=bool)
        st.g_ew, st.g_nlw, st.g_nrw = (np.where(gate, v, np.nan) for v in (g_ew, g_nlw, g_nrw))
        st.g_s1w, st.g_s2w = np.where(gate_w, 0.0, np.nan), np.where(gate_w, 0.0, np.nan)
    # eigenproblems.  Group node ids: rows (sample, input unit) — groups partition a sample's inputs — and
    # columns (group, output).  Samples whose |W⊙M| has no zero solve binary and weighted as two channels.
    in_gate = ing & np.append(gate, False)[gid]  # gid -1 reads the appended False
    two = (~has_zero[s]) if weighted else np.zeros(s.size, dtype=bool)
    ones = lambda k: np.ones((int(k), 1))  # noqa: E731
    for edges, sel in ((pair, two), (single, ~two)):
        if not sel.any():
            continue
        gs = sel & in_gate
        v_l = np.stack([np.ones(int(sel.sum())), x.values[sel]], 1) if edges is pair else ones(sel.sum())
        v_g = np.stack([np.ones(int(gs.sum())), x.values[gs]], 1) if edges is pair else ones(gs.sum())
        edges.add(s[sel], ku[sel], P * n_in, ko[sel], P * R, v_l, li, "layer")
        edges.add(gid[gs], ku[gs], P * n_in, gid[gs] * R + o[gs], G * R, v_g, li, "group")
    if weighted and has_zero.any():  # |W⊙M| with zeros inside the mask: its own, smaller, graphs
        sel = has_zero[s] & nz
        gs = sel & np.append(gate_w, False)[gid]
        single.add(s[sel], ku[sel], P * n_in, ko[sel], P * R, x.values[sel][:, None], li, "layer", True)
        single.add(gid[gs], ku[gs], P * n_in, gid[gs] * R + o[gs], G * R, x.values[gs][:, None], li, "group", True)
    return st


def layer_stats(inputs: list[LayerInput], conv: Convention, *, weighted: bool, device=None) -> list[LayerStats]:
    """:class:`LayerStats` of every layer of ``inputs`` (each with its P samples), all eigenproblems solved together.

    ``weighted`` also scores |W⊙M| (for the inputs that carry ``values``).  ``device`` is passed to the solver
    (numpy on the CPU by default; a CUDA device runs the Lanczos iterations there)."""
    pair, single = _Edges(2), _Edges(1)
    stats = [_plan(i, x, conv, weighted and x.values is not None, pair, single) for i, x in enumerate(inputs)]
    for edges in (pair, single):
        sv = edges.solve(device)
        for start, li, kind, pos, wchan in edges.targets:
            st, res = stats[li], sv[start:start + pos.size]
            names = ("s1", "s2", "s1w", "s2w") if kind == "layer" else ("g_s1", "g_s2", "g_s1w", "g_s2w")
            for c in range(edges.C):
                i = 2 if (wchan or c == 1) else 0
                getattr(st, names[i])[pos] = res[:, c, 0]
                getattr(st, names[i + 1])[pos] = res[:, c, 1]
    return stats


def stack_stats(stats: list[LayerStats]) -> LayerStats:
    """Several layers' statistics as one :class:`LayerStats` whose samples are all (layer, sample) pairs, layer
    after layer, so the metrics of a whole network are assembled in one vectorised pass.  All layers must agree
    on ``weighted``."""
    if len({st.weighted for st in stats}) > 1:
        raise ValueError("stack_stats: layers disagree on whether the weighted graph is scored")
    P = [st.n_samples for st in stats]
    per = lambda f: np.repeat([getattr(st, f) for st in stats], P)  # noqa: E731
    cat = lambda f: np.concatenate([getattr(st, f) for st in stats])  # noqa: E731
    off = np.cumsum(P) - P
    return LayerStats(
        n_inputs=per("n_inputs"), n_outputs=per("n_outputs"), n_weights=per("n_weights"),
        **{f: cat(f) for f in ("e", "nl", "nr", "s1", "s2", "ew", "nlw", "nrw", "s1w", "s2w")},
        weighted=stats[0].weighted,
        g_sample=np.concatenate([st.g_sample + o for st, o in zip(stats, off)]),
        **{f: cat(f) for f in ("g_d", "g_n", "g_r", "g_s1", "g_s2", "g_ew", "g_nlw", "g_nrw", "g_s1w", "g_s2w")})
