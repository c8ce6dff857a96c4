"""Per-layer graph statistics: the degrees, edge counts and top-2 singular values that every metric is built from.

:class:`LayerStats` holds them for P samples (masks) of one layer at once: whole-layer arrays of length P and the
degree groups as flat arrays with a ``g_sample`` index.  :func:`sparse_layer_stats` fills it for one mask with scipy
sparse matrices (the CPU path); :mod:`pags_core.spectral.population` fills it for many masks with batched torch.
:mod:`pags_core.spectral.metrics` turns it into the metrics of either convention.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .conventions import Convention
from .graph import LayerGraph, degree_groups
from .svd import top2_csr

__all__ = ["LayerStats", "sparse_layer_stats"]

_GROUP_FIELDS = ("g_sample", "g_d", "g_n", "g_r", "g_s1", "g_s2", "g_ew", "g_nlw", "g_nrw", "g_s1w", "g_s2w")


@dataclass
class LayerStats:
    """Graph statistics of one layer for P masks.

    Whole layer (arrays of length P): ``e`` edges, ``nl`` surviving inputs, ``nr`` surviving outputs, ``s1``/``s2``
    the top-2 singular values of the binary biadjacency; ``ew``, ``nlw``, ``nrw``, ``s1w``, ``s2w`` the same for the
    weighted graph |W⊙M| (its own nonzero pattern), NaN when no weight is scored.
    Degree groups (flat arrays over all kept groups of all samples): ``g_sample``, ``g_d`` (fan-out), ``g_n`` (size),
    ``g_r`` (touched outputs), ``g_s1``/``g_s2`` (binary, NaN when the binary group gate fails), and the weighted
    ``g_ew``, ``g_nlw``, ``g_nrw``, ``g_s1w``, ``g_s2w`` (NaN when not computed)."""

    n_inputs: int
    n_outputs: int
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


def sparse_layer_stats(graph: LayerGraph, conv: Convention, weighted: bool | None = None) -> LayerStats:
    """Statistics of one mask of one layer (P = 1) with scipy sparse matrices.

    Group spectra are only computed for groups that pass the binary group gate (and, for the weighted values,
    the weighted gate on the pattern of |W⊙M|), since the others never enter a metric."""
    use_w = (graph.wdata is not None) if weighted is None else (weighted and graph.wdata is not None)
    B = graph.binary
    ip, ix = B.indptr, B.indices
    fo = np.diff(ip)
    e = int(B.nnz)
    nl = int(np.count_nonzero(fo))
    nr = int(np.count_nonzero(np.bincount(ix, minlength=graph.n_outputs)))
    s1, s2 = top2_csr(ip, ix, B.data) if e else (0.0, 0.0)
    nan = np.nan
    if use_w:
        wd = graph.wdata
        nz = wd != 0
        ew = int(nz.sum())
        row_of = np.repeat(np.arange(fo.size), fo)
        nlw = int(np.unique(row_of[nz]).size)
        nrw = int(np.unique(ix[nz]).size)
        s1w, s2w = top2_csr(ip, ix, wd) if ew else (0.0, 0.0)
    else:
        ew = nlw = nrw = s1w = s2w = nan
    rows = {k: [] for k in _GROUP_FIELDS}
    for d, idx in degree_groups(fo, conv.group_min_size):
        n = idx.size
        pos = (ip[idx][:, None] + np.arange(d)).ravel()  # the group's entries: every member has exactly d
        gix = ix[pos]
        gptr = np.arange(0, n * d + 1, d)
        r = int(np.unique(gix).size)
        gate = bool(conv.group_gate(d, d * n / r))
        g_s1 = g_s2 = g_ew = g_nlw = g_nrw = g_s1w = g_s2w = nan
        if gate:
            g_s1, g_s2 = top2_csr(gptr, gix, np.ones(pos.size))
            if use_w:
                gw = wd[pos]
                gnz = gw != 0
                g_ew = int(gnz.sum())
                g_nlw = int(gnz.reshape(n, d).any(axis=1).sum())
                g_nrw = int(np.unique(gix[gnz]).size)
                if g_ew and bool(conv.group_gate(g_ew / g_nlw, g_ew / g_nrw)):
                    g_s1w, g_s2w = top2_csr(gptr, gix, gw)
        for k, v in zip(_GROUP_FIELDS, (0, d, n, r, g_s1, g_s2, g_ew, g_nlw, g_nrw, g_s1w, g_s2w)):
            rows[k].append(v)
    arr = lambda v: np.asarray([v], dtype=np.float64)  # noqa: E731
    groups = {k: np.asarray(v, dtype=np.int64 if k == "g_sample" else np.float64) for k, v in rows.items()}
    return LayerStats(n_inputs=graph.n_inputs, n_outputs=graph.n_outputs,
                      e=arr(e), nl=arr(nl), nr=arr(nr), s1=arr(s1), s2=arr(s2),
                      ew=arr(ew), nlw=arr(nlw), nrw=arr(nrw), s1w=arr(s1w), s2w=arr(s2w),
                      weighted=use_w, **groups)
