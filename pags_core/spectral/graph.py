"""A prunable layer seen as a bipartite graph (METHOD §2).

A weight W of shape (Cout, Cin, kh, kw) or (Cout, Cin) is unrolled to a (Cout, Cin·kh·kw) matrix; the left nodes are
the Cin·kh·kw input units and the right nodes the Cout output channels.  The biadjacency used throughout this package
is ``B`` of shape (|L|, |R|) = (inputs, outputs): binary (the mask) or weighted (|W ⊙ M|).  Isolated nodes (inputs with
fan-out 0, outputs with fan-in 0) are removed before degrees or spectra are taken.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["to_numpy", "unroll", "check_shapes", "LayerGraph", "layer_graph", "degree_groups"]


def to_numpy(x, dtype=None) -> np.ndarray:
    """A torch tensor (any device) or array-like as a numpy array (optionally cast to ``dtype``)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu")
        if x.dtype == torch.bfloat16 or x.dtype == torch.float16:
            x = x.to(torch.float32)
        x = x.numpy()
    x = np.asarray(x)
    return x.astype(dtype, copy=False) if dtype is not None else x


def unroll(x) -> np.ndarray:
    """Reshape a 2-D (linear) or 4-D (conv) tensor to (Cout, Cin·kh·kw); the kernel is never summed (pitfall 1)."""
    a = to_numpy(x)
    if a.ndim not in (2, 4):
        raise ValueError(f"expected a 2-D (linear) or 4-D (conv) weight/mask, got shape {tuple(a.shape)}")
    return a.reshape(a.shape[0], -1)


def check_shapes(mask, weight, name=None) -> None:
    """Raise ``ValueError`` naming the layer and both shapes when the mask does not match the weight."""
    if weight is None:
        return
    ms, ws = tuple(mask.shape), tuple(weight.shape)
    if ms != ws:
        raise ValueError(f"layer {name or '<unnamed>'}: mask shape {ms} does not match weight shape {ws}")


@dataclass(frozen=True)
class LayerGraph:
    """One layer as sparse biadjacencies (rows = input units, columns = output channels).

    ``binary`` holds the mask pattern (float64 ones, sorted indices); ``wdata`` holds |W ⊙ M| aligned entry by entry
    with ``binary.data`` (it may contain exact zeros: such an edge is absent from the weighted graph, METHOD §5.2b),
    or ``None`` when no weight was given.  ``n_inputs``/``n_outputs`` are the *unfiltered* dimensions Cin·kh·kw and
    Cout."""

    binary: sp.csr_matrix
    wdata: np.ndarray | None
    n_inputs: int
    n_outputs: int

    @property
    def weighted(self) -> sp.csr_matrix | None:
        """|W ⊙ M| as a CSR matrix (inputs × outputs) with exact zeros dropped, or ``None``."""
        if self.wdata is None:
            return None
        B = self.binary
        W = sp.csr_matrix((self.wdata, B.indices, B.indptr), shape=B.shape)
        W.eliminate_zeros()
        return W

    @property
    def fan_out(self) -> np.ndarray:
        """Fan-out of every input unit (its number of kept weights)."""
        return np.diff(self.binary.indptr)

    @property
    def fan_in(self) -> np.ndarray:
        """Fan-in of every output channel."""
        return np.bincount(self.binary.indices, minlength=self.n_outputs)


def layer_graph(mask, weight=None, name=None) -> LayerGraph:
    """Build the :class:`LayerGraph` of one layer from a mask (bool/0-1) and an optional weight tensor.

    ``mask=None`` means dense.  Shapes must match (``ValueError`` naming ``name`` and both shapes otherwise)."""
    if mask is None:
        if weight is None:
            raise ValueError(f"layer {name or '<unnamed>'}: need a mask or a weight")
        mask = np.ones(tuple(weight.shape), dtype=bool)
    check_shapes(mask, weight, name)
    m = unroll(mask)
    if m.dtype != np.bool_:
        m = m != 0
    cout, lin = m.shape
    flat = np.flatnonzero(m)  # row-major: sorted by output channel, then input unit
    c = flat // lin
    u = flat - c * lin
    indptr = np.zeros(cout + 1, dtype=np.int64)
    np.cumsum(np.bincount(c, minlength=cout), out=indptr[1:])
    # transpose to (inputs × outputs); carry each entry's position so the weights stay aligned with the pattern
    T = sp.csr_matrix((np.arange(flat.size, dtype=np.float64), u, indptr), shape=(cout, lin)).T.tocsr()
    T.sort_indices()
    order = T.data.astype(np.int64)
    binary = sp.csr_matrix((np.ones(flat.size), T.indices, T.indptr), shape=(lin, cout))
    wdata = None
    if weight is not None:
        wdata = np.abs(unroll(weight).reshape(-1)[flat].astype(np.float64))[order]
    return LayerGraph(binary=binary, wdata=wdata, n_inputs=lin, n_outputs=cout)


def degree_groups(fan_out: np.ndarray, min_size: int):
    """Group input units by their exact fan-out ``d > 0``; keep groups of size ``>= min_size`` (a threshold on the
    group size, not on the degree).  Returns a list of ``(d, indices)`` sorted by d."""
    fan_out = np.asarray(fan_out)
    order = np.argsort(fan_out, kind="stable")
    sorted_d = fan_out[order]
    values, starts, counts = np.unique(sorted_d, return_index=True, return_counts=True)
    out = []
    for d, s, n in zip(values, starts, counts):
        if d > 0 and n >= min_size:
            out.append((int(d), order[s:s + n]))
    return out
