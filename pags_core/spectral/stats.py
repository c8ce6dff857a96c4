"""Per-layer graph statistics — degrees, edge counts, degree groups and top-2 singular values — for many masks of
many layers at once: every eigenproblem of a batch is built with vectorised integer arithmetic and solved in one
call of :func:`~pags_core.spectral.svd.top2_many`.

:class:`LayerStats` holds the statistics of a list of *instances* — (layer, sample) pairs, layer after layer —
as arrays over instances, and the degree groups as flat arrays with a ``g_sample`` instance index.
:func:`layer_stats` fills it from :class:`~pags_core.spectral.graph.LayerInput` records;
:func:`pags_core.spectral.metrics.assemble` turns it into the metrics of either convention.

Eigenproblems per instance: the whole-layer graph (binary, and |W⊙M| when weighted) and every degree group of size
>= the convention's threshold that passes the binary group gate (and, for its weighted values, the weighted gate on
the nonzero pattern of |W⊙M|).  Where |W⊙M| has no zero inside the mask — the usual case — the weighted graph has
the binary graph's edges, and the two are solved as two channels of one structure.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .conventions import Convention
from .graph import LayerInput, input_units, n_input_units
from .svd import top2_many

__all__ = ["LayerStats", "layer_stats"]


@dataclass
class LayerStats:
    """Graph statistics of I instances ((layer, sample) pairs).

    Per instance (arrays of length I): ``n_inputs``/``n_outputs`` the true graph's node counts (g·F input units, R
    output rows), ``n_weights`` = R·F; ``e`` edges, ``nl`` surviving inputs, ``nr`` surviving outputs, ``s1``/``s2``
    the top-2 singular values of the binary biadjacency; ``ew``, ``nlw``, ``nrw``, ``s1w``, ``s2w`` the same for the
    weighted graph |W⊙M| (its own nonzero pattern), NaN when no weight is scored.
    Degree groups (flat arrays over the groups of all instances): ``g_sample`` (the instance), ``g_d`` (fan-out),
    ``g_n`` (size), ``g_r`` (touched outputs), ``g_s1``/``g_s2`` (binary, NaN when the binary group gate fails), and
    the weighted ``g_ew``, ``g_nlw``, ``g_nrw``, ``g_s1w``, ``g_s2w`` (NaN when not computed)."""

    n_inputs: np.ndarray
    n_outputs: np.ndarray
    n_weights: np.ndarray
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
    """The edge list of one solver call (a fixed number of channels), one block of problems at a time, with where
    each block's results go: ``(first problem, kind, positions, weighted channel)``."""

    def __init__(self, channels: int):
        self.C = channels
        self.parts: list = []
        self.targets: list = []
        self.n_problems = 0
        self.row_base = 0
        self.col_base = 0

    def add(self, owner, row, n_row, col, n_col, vals, kind: str, weighted_channel: bool = False):
        """Add one problem per distinct ``owner`` (an instance for kind ``"layer"``, a group for ``"group"``); node
        ids are below ``n_row``/``n_col`` and distinct between owners."""
        if owner.size == 0:
            return
        mark = np.zeros(int(owner.max()) + 1, dtype=bool)
        mark[owner] = True
        positions = np.flatnonzero(mark)
        local = (np.cumsum(mark) - 1)[owner]
        self.parts.append((local + self.n_problems, row + self.row_base, col + self.col_base, vals))
        self.targets.append((self.n_problems, kind, positions, weighted_channel))
        self.n_problems += positions.size
        self.row_base += int(n_row)
        self.col_base += int(n_col)

    def solve(self, device):
        if not self.parts:
            return np.zeros((0, self.C, 2))
        p, r, c, v = (np.concatenate([x[i] for x in self.parts]) for i in range(4))
        return top2_many(p, r, c, v.reshape(len(p), self.C), self.n_problems, device=device)


def _distinct_per_owner(keys: np.ndarray, owner_of_key: np.ndarray) -> np.ndarray:
    """Number of distinct ``keys`` per owner; ``owner_of_key[k]`` is the owner of key k (its length bounds the keys)."""
    mark = np.zeros(owner_of_key.size, dtype=bool)
    mark[keys] = True
    return np.bincount(owner_of_key[mark], minlength=int(owner_of_key.max()) + 1 if owner_of_key.size else 0)


def _offsets(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start of every block, owner of every position) for consecutive blocks of the given sizes."""
    starts = np.concatenate(([0], np.cumsum(sizes)))
    return starts, np.repeat(np.arange(sizes.size), sizes)


def layer_stats(inputs: list[LayerInput], conv: Convention, *, weighted: bool, device=None) -> LayerStats:
    """:class:`LayerStats` of every (layer, sample) instance of ``inputs`` — layer after layer, samples in order —
    with all eigenproblems solved together.

    ``weighted`` also scores |W⊙M| (every input must then carry ``values``).  ``device`` is passed to the solver
    (numpy on the CPU by default; a torch device runs the Lanczos iterations there)."""
    weighted = weighted and all(x.values is not None for x in inputs)
    P = np.array([x.n_samples for x in inputs], dtype=np.int64)
    I = int(P.sum())  # instances
    inst_base = np.concatenate(([0], np.cumsum(P)))
    R = np.repeat([int(x.shape[0]) for x in inputs], P)
    n_in = np.repeat([n_input_units(x.shape, x.groups) for x in inputs], P)
    n_w = np.repeat([int(x.shape[0]) * int(np.prod(x.shape[1:])) for x in inputs], P)
    uo = [input_units(x.flat, x.shape, x.groups) for x in inputs]
    inst = np.concatenate([x.sample + inst_base[i] for i, x in enumerate(inputs)]) if inputs else np.zeros(0, np.int64)
    u = np.concatenate([a for a, _ in uo]) if inputs else np.zeros(0, np.int64)
    o = np.concatenate([b for _, b in uo]) if inputs else np.zeros(0, np.int64)
    vals = np.concatenate([x.values for x in inputs]) if weighted else None
    off_in, in_owner = _offsets(n_in)
    off_out, out_owner = _offsets(R)
    ku, ko = off_in[inst] + u, off_out[inst] + o  # whole-layer node ids: (instance, input unit), (instance, output)
    fo = np.bincount(ku, minlength=int(off_in[-1]))
    f64 = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
    nan = np.full(I, np.nan)
    st = LayerStats(n_inputs=n_in, n_outputs=R, n_weights=n_w, e=f64(np.bincount(inst, minlength=I)),
                    nl=f64(np.bincount(in_owner[fo > 0], minlength=I)), nr=f64(_distinct_per_owner(ko, out_owner)),
                    s1=np.zeros(I), s2=np.zeros(I), ew=nan.copy(), nlw=nan.copy(), nrw=nan.copy(), s1w=nan.copy(),
                    s2w=nan.copy(), weighted=weighted)
    nz = vals > 0 if weighted else np.ones(inst.size, dtype=bool)
    if weighted:
        st.ew = f64(np.bincount(inst[nz], minlength=I))
        st.nlw = f64(_distinct_per_owner(ku[nz], in_owner))
        st.nrw = f64(_distinct_per_owner(ko[nz], out_owner))
        st.s1w, st.s2w = np.where(st.ew > 0, 0.0, np.nan), np.where(st.ew > 0, 0.0, np.nan)
    has_zero = np.bincount(inst[~nz], minlength=I) > 0
    # degree groups: the input units of one instance with the same fan-out d > 0, kept when there are enough of them
    off_g, g_owner = _offsets(R + 1)  # group key = off_g[instance] + d
    node = np.flatnonzero(fo)
    size = np.bincount(off_g[in_owner[node]] + fo[node], minlength=int(off_g[-1]))
    gk = np.flatnonzero(size >= conv.group_min_size)
    G = gk.size
    gid_of = np.full(int(off_g[-1]) + 1, -1, dtype=np.int64)  # the extra slot maps "no group" (-1 keys) to -1
    gid_of[gk] = np.arange(G)
    gid = gid_of[off_g[inst] + fo[ku]]  # group of every edge (-1: none)
    ing = gid >= 0
    g_inst = g_owner[gk]
    st.g_sample = g_inst
    st.g_d, st.g_n = f64(gk - off_g[g_inst]), f64(size[gk])
    off_go, go_owner = _offsets(R[g_inst])  # group output ids: off_go[group] + output
    kgo = off_go[np.maximum(gid, 0)] + o
    st.g_r = f64(_distinct_per_owner(kgo[ing], go_owner)) if G else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        gate = np.asarray(conv.group_gate(st.g_d, st.g_d * st.g_n / st.g_r), dtype=bool) & (st.g_r > 0)
    gnan = np.full(G, np.nan)
    st.g_s1, st.g_s2 = np.where(gate, 0.0, np.nan), np.where(gate, 0.0, np.nan)
    st.g_ew, st.g_nlw, st.g_nrw, st.g_s1w, st.g_s2w = (gnan.copy() for _ in range(5))
    gate_w = np.zeros(G, dtype=bool)
    if weighted and G:
        gz = ing & nz
        g_ew = f64(np.bincount(gid[gz], minlength=G))
        node_w = np.flatnonzero(np.bincount(ku[gz], minlength=int(off_in[-1])))  # grouped units with a nonzero weight
        g_nlw = f64(np.bincount(gid_of[off_g[in_owner[node_w]] + fo[node_w]], minlength=G))
        g_nrw = f64(_distinct_per_owner(kgo[gz], go_owner))
        with np.errstate(divide="ignore", invalid="ignore"):
            gate_w = gate & (g_ew > 0) & np.asarray(conv.group_gate(g_ew / g_nlw, g_ew / g_nrw), dtype=bool)
        st.g_ew, st.g_nlw, st.g_nrw = (np.where(gate, v, np.nan) for v in (g_ew, g_nlw, g_nrw))
        st.g_s1w, st.g_s2w = np.where(gate_w, 0.0, np.nan), np.where(gate_w, 0.0, np.nan)
    # eigenproblems.  Group rows are (instance, input unit) — groups partition an instance's inputs — and group
    # columns (group, output).  Instances whose |W⊙M| has no zero solve binary and weighted as two channels.
    n_rows, n_cols, n_gcols = int(off_in[-1]), int(off_out[-1]), int(off_go[-1])
    in_gate = np.append(gate, False)[gid]  # gid -1 reads the appended False
    pair, single = _Edges(2), _Edges(1)
    if weighted and not has_zero.any():  # the usual case: every edge in the two-channel list, no selection copies
        both = np.empty((inst.size, 2))
        both[:, 0], both[:, 1] = 1.0, vals
        pair.add(inst, ku, n_rows, ko, n_cols, both, "layer")
        sel = np.flatnonzero(in_gate)
        pair.add(gid.take(sel), ku.take(sel), n_rows, kgo.take(sel), n_gcols, both.take(sel, axis=0), "group")
    else:
        two = ~has_zero[inst] if weighted else np.zeros(inst.size, dtype=bool)
        for edges, sel in ((pair, two), (single, ~two)):
            if not sel.any():
                continue
            gs = sel & in_gate
            v_l = np.stack([np.ones(int(sel.sum())), vals[sel]], 1) if edges is pair else np.ones((int(sel.sum()), 1))
            v_g = np.stack([np.ones(int(gs.sum())), vals[gs]], 1) if edges is pair else np.ones((int(gs.sum()), 1))
            edges.add(inst[sel], ku[sel], n_rows, ko[sel], n_cols, v_l, "layer")
            edges.add(gid[gs], ku[gs], n_rows, kgo[gs], n_gcols, v_g, "group")
    if weighted and has_zero.any():  # |W⊙M| with zeros inside the mask: its own, smaller, graphs
        sel = has_zero[inst] & nz
        gs = sel & np.append(gate_w, False)[gid]
        single.add(inst[sel], ku[sel], n_rows, ko[sel], n_cols, vals[sel][:, None], "layer", True)
        single.add(gid[gs], ku[gs], n_rows, kgo[gs], n_gcols, vals[gs][:, None], "group", True)
    for edges in (pair, single):
        sv = edges.solve(device)
        for start, kind, pos, wchan in edges.targets:
            res = sv[start:start + pos.size]
            names = ("s1", "s2", "s1w", "s2w") if kind == "layer" else ("g_s1", "g_s2", "g_s1w", "g_s2w")
            for c in range(edges.C):
                i = 2 if (wchan or c == 1) else 0
                getattr(st, names[i])[pos] = res[:, c, 0]
                getattr(st, names[i + 1])[pos] = res[:, c, 1]
    return st
