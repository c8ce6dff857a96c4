"""Spectral engine: a prunable layer as a bipartite graph, its top-2 singular values, the ICLR-2023 and NeurIPS-2023
metrics, network summaries, full-spectrum distances and batched scoring of mask populations (METHOD §2–5).

Modules: :mod:`.graph` (layer → bipartite graph), :mod:`.svd` (top-2 singular values), :mod:`.conventions` (the two
conventions as data), :mod:`.stats` (per-layer degrees and spectra), :mod:`.metrics` (:func:`layer_spectrum`),
:mod:`.network` (:func:`model_spectrum`, :func:`network_summary`, :func:`fs_distance`), :mod:`.population`
(:func:`score_population`) and :mod:`.reference` (the slow dense oracle).
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
