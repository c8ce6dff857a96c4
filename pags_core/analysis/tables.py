"""Result tables of the PAGS/PEGS chapters: the paper-shaped accuracy table, the cost table, the population's network
metrics and a re-run of every selection rule on a stored population."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from ..methods.selection import SELECTION_METRICS, clean, select, stitched_density

__all__ = ["summarise_runs", "accuracy_table", "cost_table", "population_frame", "rule_comparison", "method_order",
           "kept_counts", "REFERENCE_ROWS"]


REFERENCE_ROWS = ("dense", "LTH", "EB")


def method_order(methods: Iterable[str]) -> list[str]:
    """Table order: baseline, PAGS and PEGS@N (each followed by its layer-wise shuffle), the generator's ticket at
    θ_N before PEGS@N, premise samples, then the reference rows dense, LTH and EB."""
    def rank(m):
        base = m[8:-1] if m.startswith("shuffle(") else m
        shuffled = 1 if m.startswith("shuffle(") else 0
        if base == "baseline":
            return (0, 0, 0, shuffled)
        if base == "PAGS":
            return (1, 0, 0, shuffled)
        if base.startswith("generator@"):
            return (2, int(base[10:]), 0, shuffled)
        if base.startswith("PEGS@"):
            return (2, int(base[5:]), 1, shuffled)
        if base.startswith("sample "):
            return (3, int(base[7:]), 0, 0)
        if base in REFERENCE_ROWS:
            return (4, REFERENCE_ROWS.index(base), 0, 0)
        return (5, 0, 0, 0)
    return sorted(set(methods), key=rank)


def summarise_runs(runs: pd.DataFrame, value: str = "test_acc") -> pd.DataFrame:
    """Long format: one row per (generator, method) with the mean, std (ddof=1) and count of ``value`` over seeds and
    the mean cost columns."""
    g = runs.groupby(["generator", "method"], sort=False)
    out = g.agg(mean=(value, "mean"), std=(value, "std"), n=(value, "count"),
                density_realised=("density_realised", "mean"), pretrain_iters=("pretrain_iters", "mean"),
                ticket_s=("ticket_s", "mean"), train_s=("train_s", "mean")).reset_index()
    order = {m: i for i, m in enumerate(method_order(out["method"]))}
    gens = {g: i for i, g in enumerate(dict.fromkeys(runs["generator"]))}
    return out.sort_values(["method", "generator"], key=lambda c: c.map(order if c.name == "method" else gens),
                           kind="stable").reset_index(drop=True)


def _fmt(mean, std, n) -> str:
    if n == 0 or not np.isfinite(mean):
        return "–"
    return f"{mean:.1f} ± {std:.1f}" if n > 1 and np.isfinite(std) else f"{mean:.1f}"


def accuracy_table(runs: pd.DataFrame, value: str = "test_acc") -> pd.DataFrame:
    """The paper-shaped table: one row per generator, one column per method (:func:`method_order`), cells
    "mean ± std" of ``value`` (%) over seeds, ``n`` = seeds per cell; then the reference rows dense, LTH and EB, whose
    one value (their own ticket) stands in the first column."""
    s = summarise_runs(runs, value)
    methods = [m for m in method_order(s["method"]) if m not in REFERENCE_ROWS]
    gens = [g for g in dict.fromkeys(runs["generator"]) if g not in REFERENCE_ROWS]
    gens += [g for g in REFERENCE_ROWS if g in set(runs["generator"])]
    table = pd.DataFrame("", index=pd.Index(gens, name="generator"), columns=methods + ["n"], dtype=object)
    for _, r in s.iterrows():
        col = r["method"] if r["method"] not in REFERENCE_ROWS else methods[0]
        table.loc[r["generator"], col] = _fmt(r["mean"], r["std"], int(r["n"]))
        table.loc[r["generator"], "n"] = int(r["n"])
    return table


def kept_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Long format: kept weights of every layer of every trained ticket (``generator``, ``seed``, ``method``,
    ``layer``, ``kept``) from the ``kept`` column of :func:`~pags_core.experiments.table_runs`."""
    rows = []
    for r in runs.itertuples():
        for layer, k in (r.kept or {}).items():
            rows.append({"generator": r.generator, "seed": r.seed, "method": r.method, "layer": layer, "kept": k})
    return pd.DataFrame(rows, columns=["generator", "seed", "method", "layer", "kept"])


def cost_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method: dense pre-training / search iterations before the ticket, mean wall seconds to find a ticket,
    mean training seconds, mean realised density."""
    s = runs.groupby("method", sort=False).agg(
        pretrain_iters=("pretrain_iters", "mean"), ticket_s=("ticket_s", "mean"), train_s=("train_s", "mean"),
        density_realised=("density_realised", "mean"), runs=("test_acc", "count"))
    s = s.loc[method_order(s.index)]
    s["pretrain_iters"] = s["pretrain_iters"].round().astype(int)
    return s


def population_frame(ticket: Mapping[str, Any]) -> pd.DataFrame:
    """Network-level (mean over layers, non-finite → 0) Δr_imdb, Δr, λ_imsg, λ and FS of every population sample,
    of the baseline M* and of the selected ticket, from a ticket record
    (:meth:`pags_core.experiments.Ticket.population`).  Column ``kind`` is
    ``sample``, ``baseline`` or ``selected``; ``density`` is each mask's global density."""
    pop, base, prov = ticket["population"], ticket["baseline"], ticket["provenance"]
    sizes = prov["weights"].to_numpy()
    rows = {m: clean(pop[m]).mean(axis=1) for m in SELECTION_METRICS}
    df = pd.DataFrame({"kind": "sample", "sample": np.arange(len(rows["full_spectrum"])), **rows,
                       "density": pop["kept"].sum(axis=1) / sizes.sum()})
    extra = pd.DataFrame([
        {"kind": "baseline", "sample": -1, **{m: clean(base[m]).mean() for m in SELECTION_METRICS},
         "density": base["kept"].sum() / sizes.sum()},
        {"kind": "selected", "sample": -2, **{m: clean(prov[f"selected_{m}"].to_numpy()).mean()
                                               for m in SELECTION_METRICS},
         "density": prov["selected_kept"].sum() / sizes.sum()},
    ])
    return pd.concat([df, extra], ignore_index=True)


def rule_comparison(ticket: Mapping[str, Any]) -> pd.DataFrame:
    """Re-run every selection rule on a stored population (a :meth:`pags_core.experiments.Ticket.population` record;
    no generator, no scoring):
    one row per (rule, selection) with layers replaced, replacements, network-mean Δr_imdb and FS of the selection
    and the realised global density."""
    sizes = ticket["provenance"]["weights"].to_numpy()
    out = []
    for rule, selection in (("dominance", "layerwise"), ("alt", "layerwise"), ("dominance", "network")):
        sel = select(ticket["baseline"], ticket["population"], rule=rule, selection=selection)
        out.append({"rule": rule if selection == "layerwise" else "-", "selection": selection,
                    "layers_replaced": sel.n_replaced_layers, "replacements": len(sel.trace),
                    "imdb": float(clean(sel.values["imdb"]).mean()), "full_spectrum": sel.network_score(),
                    "density_realised": stitched_density(sel.source, ticket["baseline"]["kept"],
                                                         ticket["population"]["kept"], sizes)})
    base = ticket["baseline"]
    out.insert(0, {"rule": "baseline M*", "selection": "-", "layers_replaced": 0, "replacements": 0,
                   "imdb": float(clean(base["imdb"]).mean()), "full_spectrum": float(clean(base["full_spectrum"]).mean()),
                   "density_realised": float(base["kept"].sum() / sizes.sum())})
    return pd.DataFrame(out)


