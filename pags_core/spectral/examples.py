"""Graphs with known spectra, used by the tests and the book's first chapter.

All return a bool biadjacency-shaped *mask* of shape (n_right, n_left) = (outputs, inputs), i.e. the layout of a
``Linear`` weight, so they can be passed straight to :func:`~pags_core.spectral.layer_spectrum`.
"""
from __future__ import annotations

import itertools

import numpy as np

__all__ = ["complete_bipartite", "projective_plane", "random_biregular", "disjoint_union"]


def complete_bipartite(a: int, b: int) -> np.ndarray:
    """K(a, b) as an all-ones (b, a) mask: a dense layer.  σ1 = √(ab), σ2 = 0."""
    return np.ones((b, a), dtype=bool)


def _is_prime(q: int) -> bool:
    return q >= 2 and all(q % p for p in range(2, int(q ** 0.5) + 1))


def projective_plane(q: int) -> np.ndarray:
    """Point–line incidence graph of the projective plane PG(2, q) for a prime q, as a (lines, points) mask.

    It has q²+q+1 points and as many lines, every point lies on q+1 lines and every line holds q+1 points, and
    two points share exactly one line, so BᵀB = qI + J: σ1 = q+1 and every other singular value is √q.  The graph
    is (q+1)-regular with μ̂ = √q < 2√q: a Ramanujan graph."""
    if not _is_prime(q):
        raise ValueError(f"projective_plane needs a prime q (GF(q) arithmetic mod q), got {q}")
    pts = []
    for v in itertools.product(range(q), repeat=3):
        if any(v):
            first = next(x for x in v if x)
            inv = pow(first, q - 2, q)  # normalise the first nonzero coordinate to 1
            w = tuple((x * inv) % q for x in v)
            if w == v:
                pts.append(v)
    P = np.array(pts, dtype=np.int64)  # lines have the same normalised coordinates (duality)
    return (P @ P.T) % q == 0


def random_biregular(n_left: int, n_right: int, d_left: int, seed: int = 0, swaps_per_edge: int = 10) -> np.ndarray:
    """A random (d_left, d_right)-biregular simple bipartite graph as an (n_right, n_left) mask.

    Needs n_left·d_left divisible by n_right; d_right = n_left·d_left/n_right.  Starts from a circulant graph and
    randomises it with degree-preserving double-edge swaps that never create a repeated edge.  σ1 = √(d_left·d_right)."""
    E = n_left * d_left
    if E % n_right or d_left > n_right:
        raise ValueError(f"no simple ({d_left}, {E / n_right})-biregular graph on {n_left}+{n_right} nodes")
    rng = np.random.default_rng(seed)
    left = np.repeat(np.arange(n_left), d_left)
    right = (np.arange(E) % n_right).astype(np.int64)  # row i gets d_left consecutive (distinct) columns
    A = np.zeros((n_right, n_left), dtype=bool)
    A[right, left] = True
    for _ in range(swaps_per_edge * E):
        i, j = rng.integers(E, size=2)
        a, b, c, d = left[i], right[i], left[j], right[j]
        if a == c or b == d or A[d, a] or A[b, c]:
            continue
        A[b, a] = A[d, c] = False
        A[d, a] = A[b, c] = True
        right[i], right[j] = d, b
    return A


def disjoint_union(*masks) -> np.ndarray:
    """Block-diagonal union of masks (disjoint graphs).  Identical blocks repeat σ1, so μ̂ = μ0."""
    rows = sum(m.shape[0] for m in masks)
    cols = sum(m.shape[1] for m in masks)
    out = np.zeros((rows, cols), dtype=bool)
    r = c = 0
    for m in masks:
        out[r:r + m.shape[0], c:c + m.shape[1]] = m
        r += m.shape[0]
        c += m.shape[1]
    return out
