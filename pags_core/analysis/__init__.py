"""Analysis: correlations with intervals, paired comparisons with honest verdicts, the chapters' result tables,
the ITOP study's snapshot metrics and correlation table, which parameters a model's masks cover and the density
each layer needs to pass the gates."""
from __future__ import annotations

from .comparisons import (comparison_table, holm, multiple_comparison_note, paired_comparison, paired_differences,
                          sign_flip_pvalue, verdict_line)
from .coverage import ROLES, parameter_coverage
from .gates import ALLOCATIONS, gate_density, gate_table, min_gate_density
from .correlation import CorrelationResult, block_bootstrap_pearson, correlation_table, fisher_z_interval, \
    partial_pearson, pearson, spearman, within_group, within_pearson
from .itop import BCODE_VGG_FILTER, ITOP_METRICS, ITOP_REFERENCES, accuracy_reliability, apply_bcode_filter, \
    correlation_count_note, itop_correlations, snapshot_metrics
from .paper_a import PAPER_A_GENERATORS, PUBLISHED_ACCURACY, PUBLISHED_CORRELATIONS, generator_correlations, \
    pooled_layer_means, published_correlations, ranking_table
from .tables import REFERENCE_ROWS, accuracy_table, cost_table, kept_counts, method_order, population_frame, \
    rule_comparison, summarise_runs

__all__ = [
    "comparison_table", "holm", "multiple_comparison_note", "paired_comparison", "paired_differences",
    "sign_flip_pvalue", "verdict_line",
    "ROLES", "parameter_coverage", "ALLOCATIONS", "gate_density", "gate_table", "min_gate_density",
    "CorrelationResult", "block_bootstrap_pearson", "correlation_table", "fisher_z_interval", "partial_pearson",
    "pearson", "spearman", "within_group", "within_pearson",
    "BCODE_VGG_FILTER", "ITOP_METRICS", "ITOP_REFERENCES", "accuracy_reliability", "apply_bcode_filter",
    "correlation_count_note", "itop_correlations", "snapshot_metrics",
    "PAPER_A_GENERATORS", "PUBLISHED_ACCURACY", "PUBLISHED_CORRELATIONS", "generator_correlations",
    "pooled_layer_means", "published_correlations", "ranking_table",
    "REFERENCE_ROWS", "accuracy_table", "cost_table", "kept_counts", "method_order", "population_frame",
    "rule_comparison", "summarise_runs",
]
