"""Analysis: correlations with intervals, paired comparisons with honest verdicts, the chapters' result tables and
the ITOP study's snapshot metrics and correlation table."""
from __future__ import annotations

from .comparisons import holm, multiple_comparison_note, paired_comparison, paired_differences, sign_flip_pvalue
from .correlation import CorrelationResult, correlation_table, fisher_z_interval, partial_pearson, pearson, spearman
from .itop import BCODE_VGG_FILTER, ITOP_METRICS, ITOP_REFERENCES, apply_bcode_filter, snapshot_correlations, \
    snapshot_metrics
from .tables import accuracy_table, cost_table, method_order, population_frame, rule_comparison, summarise_runs

__all__ = [
    "holm", "multiple_comparison_note", "paired_comparison", "paired_differences", "sign_flip_pvalue",
    "CorrelationResult", "correlation_table", "fisher_z_interval", "partial_pearson", "pearson", "spearman",
    "BCODE_VGG_FILTER", "ITOP_METRICS", "ITOP_REFERENCES", "apply_bcode_filter", "snapshot_correlations",
    "snapshot_metrics",
    "accuracy_table", "cost_table", "method_order", "population_frame", "rule_comparison", "summarise_runs",
]
