"""PAGS selection rules as pure functions on per-layer metric arrays (paper B's layer-wise rules).

Everything here works on plain NumPy arrays: a *baseline* row (one value per prunable layer) and a *population*
(one row per sample, one column per layer) for each metric.  No model, mask or tensor is touched, so the rules can
be checked by hand on a three-layer example (see ``tests/test_pags.py``).

Metric names follow :mod:`pags_core.spectral`:

=================  ==============  ============================================
name               paper symbol    role in selection
=================  ==============  ============================================
``imdb``           Δr_imdb         default rule (≥, inf-cleaned)
``ramanujan_gap``  Δr              ``alt`` rule (<, **not** inf-cleaned)
``imsg``           λ_imsg          carried along with the layer
``weighted_gap``   λ               carried along with the layer
``full_spectrum``  FS              both rules (≥, inf-cleaned); network argmax
=================  ==============  ============================================
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from ..registry import check_choice

__all__ = [
    "SELECTION_METRICS",
    "RULES",
    "SELECTIONS",
    "Selection",
    "SelectionState",
    "select",
    "stitched_density",
    "clean",
]

#: the per-layer values every PAGS sample carries (Δr_imdb, Δr, λ_imsg and FS decide; λ rides along)
SELECTION_METRICS: tuple[str, ...] = ("imdb", "ramanujan_gap", "imsg", "weighted_gap", "full_spectrum")
#: layer-wise acceptance rules
RULES: tuple[str, ...] = ("dominance", "alt")
#: how samples are combined: stitched layer by layer (default, as the authors' code) or the whole network with the
#: largest mean FS
SELECTIONS: tuple[str, ...] = ("layerwise", "network")

BASELINE = -1  # provenance index of the baseline ticket M*


def clean(x) -> np.ndarray:
    """Non-finite (±inf, NaN) → 0, as in the full-spectrum norm FS (the authors' code zeroes +inf, the only non-finite
    value it produces)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isfinite(x), x, 0.0)


def _invalid_to_inf(x) -> np.ndarray:
    """For the ``alt`` rule: Δr keeps +inf (an invalid layer); NaN (``iclr2023``-style invalid) is read as +inf too."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isnan(x), np.inf, x)


@dataclasses.dataclass
class Selection:
    """The outcome of a PAGS selection.

    ``source[j]`` is the population index of the sample that layer ``j`` comes from (``-1``: the baseline ticket M*).
    ``values[m][j]`` is the stored value of metric ``m`` of layer ``j`` after selection (the chosen sample's values).
    ``trace`` lists every replacement in order: ``{"sample", "layer", <metric>_old, <metric>_new ...}`` for the
    layer-wise rules, ``{"sample", "score_old", "score_new"}`` for ``selection="network"``.
    """

    source: np.ndarray
    values: dict
    trace: list
    rule: str
    selection: str
    n_seen: int

    @property
    def n_replaced_layers(self) -> int:
        return int(np.sum(self.source != BASELINE))

    def network_score(self) -> float:
        """Mean over layers of the (inf-cleaned) FS of the selected layers."""
        return float(clean(self.values["full_spectrum"]).mean())


class SelectionState:
    """Streaming form of :func:`select`: feed the population chunk by chunk (``update``), in sample order.

    The state after ``update(chunk_1); update(chunk_2)`` equals ``select`` on the concatenated population, so a PAGS
    run can checkpoint it between chunks and resume after a crash.
    """

    def __init__(self, baseline: Mapping[str, np.ndarray], *, rule: str = "dominance", selection: str = "layerwise"):
        self.rule = check_choice(rule, RULES, "selection rule")
        self.selection = check_choice(selection, SELECTIONS, "selection")
        base = {m: np.asarray(baseline[m], dtype=np.float64).copy() for m in _needed(baseline)}
        lengths = {v.shape for v in base.values()}
        if len(lengths) != 1 or len(next(iter(lengths))) != 1:
            raise ValueError(f"baseline metrics must be 1-D arrays of one common length, got shapes {sorted(lengths)}")
        self.values = base
        self.n_layers = next(iter(lengths))[0]
        self.source = np.full(self.n_layers, BASELINE, dtype=np.int64)
        self.trace: list = []
        self.n_seen = 0
        self._net_score = float(clean(base["full_spectrum"]).mean())

    # ---- the rules ------------------------------------------------------------------------------------------------
    def _accept_layers(self, row: Mapping[str, np.ndarray]) -> np.ndarray:
        fs_ok = clean(row["full_spectrum"]) >= clean(self.values["full_spectrum"])
        if self.rule == "dominance":
            return fs_ok & (clean(row["imdb"]) >= clean(self.values["imdb"]))
        # alt: Δr strictly smaller, Δr not inf-cleaned (a finite layer replaces +inf; +inf never replaces anything)
        return fs_ok & (_invalid_to_inf(row["ramanujan_gap"]) < _invalid_to_inf(self.values["ramanujan_gap"]))

    def update(self, population: Mapping[str, np.ndarray], offset: int | None = None) -> list:
        """Consume samples ``offset .. offset+len-1`` (default: continue where the last update stopped).

        Returns the trace events this chunk produced.  Ties go to the newer sample (≥ comparisons, in order).
        """
        pop = {m: np.atleast_2d(np.asarray(population[m], dtype=np.float64)) for m in self.values}
        n = {v.shape for v in pop.values()}
        if len(n) != 1 or next(iter(n))[1] != self.n_layers:
            raise ValueError(f"population metrics must be (samples, {self.n_layers}) arrays, got shapes {sorted(n)}")
        start = self.n_seen if offset is None else int(offset)
        if start != self.n_seen:
            raise ValueError(f"chunk starts at sample {start} but {self.n_seen} samples were consumed so far")
        events = []
        for i in range(next(iter(n))[0]):
            k = start + i
            row = {m: v[i] for m, v in pop.items()}
            if self.selection == "network":
                score = float(clean(row["full_spectrum"]).mean())
                if score >= self._net_score:
                    events.append({"sample": k, "score_old": self._net_score, "score_new": score})
                    self._net_score = score
                    self.source[:] = k
                    for m in self.values:
                        self.values[m] = row[m].copy()
                continue
            accept = self._accept_layers(row)
            for j in np.flatnonzero(accept):
                ev = {"sample": k, "layer": int(j)}
                for m in self.values:
                    ev[f"{m}_old"] = float(self.values[m][j])
                    ev[f"{m}_new"] = float(row[m][j])
                    self.values[m][j] = row[m][j]
                self.source[j] = k
                events.append(ev)
        self.n_seen = start + next(iter(n))[0]
        self.trace.extend(events)
        return events

    def result(self) -> Selection:
        return Selection(
            source=self.source.copy(),
            values={m: v.copy() for m, v in self.values.items()},
            trace=list(self.trace),
            rule=self.rule,
            selection=self.selection,
            n_seen=self.n_seen,
        )

    # ---- checkpointing --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "rule": self.rule,
            "selection": self.selection,
            "values": {m: v.tolist() for m, v in self.values.items()},
            "source": self.source.tolist(),
            "trace": list(self.trace),
            "n_seen": self.n_seen,
            "net_score": self._net_score,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping) -> "SelectionState":
        obj = cls({m: np.asarray(v, dtype=np.float64) for m, v in state["values"].items()},
                  rule=state["rule"], selection=state["selection"])
        obj.source = np.asarray(state["source"], dtype=np.int64)
        obj.trace = list(state["trace"])
        obj.n_seen = int(state["n_seen"])
        obj._net_score = float(state["net_score"])
        return obj


def _needed(metrics: Mapping) -> tuple[str, ...]:
    missing = [m for m in ("imdb", "ramanujan_gap", "full_spectrum") if m not in metrics]
    if missing:
        raise KeyError(f"selection needs the metrics imdb, ramanujan_gap and full_spectrum; missing: {', '.join(missing)}")
    return tuple(m for m in SELECTION_METRICS if m in metrics)


def select(baseline: Mapping[str, np.ndarray], population: Mapping[str, np.ndarray], *, rule: str = "dominance",
           selection: str = "layerwise") -> Selection:
    """PAGS selection over a whole population (paper B's PAGS).

    Parameters
    ----------
    baseline : mapping metric → (L,) array
        Per-layer values of the baseline ticket M* (the generator on the full scoring batches).
    population : mapping metric → (P, L) array
        Per-sample, per-layer values, in sample order.
    rule : ``"dominance"`` (default) or ``"alt"``
        ``dominance``: layer j takes sample k when Δr_imdb ≥ Δr_imdb* **and** FS ≥ FS* (both inf-cleaned).
        ``alt``: Δr < Δr* (not inf-cleaned: finite beats +inf, +inf never wins) **and** FS ≥ FS*.
        Ties go to the newer sample; the stored values of layer j become sample k's.
    selection : ``"layerwise"`` (default, stitching) or ``"network"``
        ``network``: the whole sample with the largest mean-over-layers FS (the baseline competes; ties to newer);
        ``rule`` is then ignored.
    """
    state = SelectionState(baseline, rule=rule, selection=selection)
    state.update(population, 0)
    return state.result()


def stitched_density(source, baseline_counts, population_counts, layer_sizes) -> float:
    """Realised global density of a stitched mask: Σ_j kept(source_j, j) / Σ_j N_j.

    ``source``: (L,) provenance (−1 = baseline); ``baseline_counts``: (L,) kept weights of M* per layer;
    ``population_counts``: (P, L) kept weights of every sample; ``layer_sizes``: (L,) weights per layer.
    """
    source = np.asarray(source, dtype=np.int64)
    base = np.asarray(baseline_counts, dtype=np.int64)
    pop = np.atleast_2d(np.asarray(population_counts, dtype=np.int64))
    kept = np.where(source == BASELINE, base, pop[np.clip(source, 0, None), np.arange(source.size)] if pop.size else base)
    return float(kept.sum() / np.asarray(layer_sizes, dtype=np.int64).sum())
