"""Spectral engine: a prunable layer as its true bipartite graph, its top-2 singular values, the ICLR-2023 and
NeurIPS-2023 metrics, network summaries, full-spectrum distances and batched scoring of mask populations
(Hoang et al., ICLR 2023 and NeurIPS 2023).

Modules: :mod:`.graph` (a layer's mask and weights → the edges of its true graph), :mod:`.svd` and
:mod:`.lanczos` (top-2 singular values of many sparse matrices at once), :mod:`.conventions` (the two conventions as
data), :mod:`.stats` (degrees, degree groups and spectra of many layers and masks at once), :mod:`.metrics`
(:func:`layer_spectrum`), :mod:`.network` (:func:`model_spectrum`, :func:`network_summary`, :func:`fs_distance`),
:mod:`.population` (:func:`score_population`) and :mod:`.reference` (the slow dense oracle).

**Grouped and depthwise layers: a disconnected graph.**  A convolution with ``groups = g`` is read as its true
graph, block-diagonal with g blocks (output row o reaches only the input units of its group), so it has at least g
connected components.  Every quantity keeps its definition on that whole graph:

- μ0 is the largest σ1 among the blocks, and μ̂ = σ2 of the whole matrix is the largest σ among the blocks other
  than that top σ1 — usually the *second-strongest block's* σ1.  Two equally strong blocks give μ̂ = μ0 (as both
  reference implementations compute), and g blocks of similar density give μ̂ just below μ0.
- Mean degrees d̄L, d̄R are whole-layer means (the average over the blocks), so the gates judge the layer by its
  average block; degree groups pool the input units of every block with the same fan-out, and each group's graph
  is again disconnected across blocks.
- Hence Δr = bound − μ̂ measures how the *groups separate*, not how well each group expands: with comparable
  blocks it is close to bound − μ0, which is negative for any non-trivial block; λ = μ0(W) − μ̂(W) is the gap
  between the two strongest blocks' weighted σ1 (small and noisy); Δr_imdb and λ_imsg behave the same way.
- A depthwise layer (g = number of channels, one input channel per group) has fan-out 1 for every input unit: both
  conventions' gates fail (Δr = λ = +inf, IMDB = 0 in ``neurips2023``; NaN in ``iclr2023``) and its FS is 0.  It
  carries no Ramanujan structure to measure, and it never moves a PAGS selection.

So read a grouped layer's metrics only against the same layer in other masks (or layers of the same g), never
against dense layers; to study the expansion inside the groups, score each group as a layer of its own (slice the
mask and weight to one block and call :func:`layer_spectrum` with ``groups=1``).
"""
from __future__ import annotations

from .conventions import BOUNDS, CONVENTIONS
from .metrics import METRIC_FIELDS, LayerSpectrum, full_spectrum, layer_groups, layer_spectrum
from .network import DISTANCES, anchor_reference, fs_distance, model_spectrum, network_summary, prunable_weights
from .population import ENGINES, score_population
from .reference import adjacency_eigenvalues, biadjacency, reference_layer_spectrum, reference_top2

__all__ = [
    "CONVENTIONS", "BOUNDS", "DISTANCES", "ENGINES", "METRIC_FIELDS",
    "LayerSpectrum", "layer_spectrum", "layer_groups", "full_spectrum",
    "model_spectrum", "network_summary", "fs_distance", "anchor_reference", "prunable_weights",
    "score_population", "reference_layer_spectrum", "reference_top2", "adjacency_eigenvalues", "biadjacency",
]
