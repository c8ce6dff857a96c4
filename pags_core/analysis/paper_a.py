"""Paper A's central claim, measured: across PaI generators at one density, the layer-mean IMDB of the tickets tracks
their accuracy, while the layer-mean Δr does not (Hoang et al., ICLR 2023, Sec. 4–5).

:data:`PUBLISHED_ACCURACY` and :data:`PUBLISHED_CORRELATIONS` are paper A's figures **recomputed from the authors'
released per-layer CSVs** (repository VITA-Group/ramanujan-on-pai, folder ``csv_metric/``): mean test accuracy (%)
over seeds 1–3 at the first best-validation epoch, and the Pearson r across the six PaI methods between accuracy and
the layer-mean of ``rm`` (Δr) or ``irm`` (IMDB), the mean of the non-NaN (layer, seed) entries pooled over the three
seeds.  GraSP+VGG16 rows are dropped where a seed collapsed (n = 5 there, 6 elsewhere).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..spectral import model_spectrum
from .correlation import pearson

__all__ = ["PUBLISHED_ACCURACY", "PUBLISHED_CORRELATIONS", "PAPER_A_GENERATORS", "pooled_layer_means",
           "generator_correlations", "published_correlations", "ranking_table"]

#: the six PaI methods of paper A, by their pags_core generator names
PAPER_A_GENERATORS: tuple = ("erk", "grasp", "random", "snip", "synflow", "itersnip")

_METHODS = ("erk", "grasp", "random", "snip", "synflow", "itersnip")

#: (dataset, model, density) -> accuracy (%) per method, recomputed from the authors' CSVs; NaN where absent.
#: 10.00 / 1.00 are runs that collapsed to chance in all three seeds (GraSP on VGG16); 45.15 has one collapsed seed.
PUBLISHED_ACCURACY: Mapping[tuple, Mapping[str, float]] = {
    key: dict(zip(_METHODS, vals)) for key, vals in {
        ("cifar10", "resnet34", 0.01): (81.16, 86.16, 67.42, 86.02, 86.26, 86.52),
        ("cifar10", "resnet34", 0.05): (87.00, 87.15, 81.56, 87.73, 88.13, 88.17),
        ("cifar10", "resnet34", 0.10): (87.68, 87.26, 84.24, 88.08, 88.42, 88.55),
        ("cifar10", "resnet34", 0.20): (88.74, 87.54, 86.45, 88.42, 88.54, 88.54),
        ("cifar10", "resnet34", 0.40): (88.72, 87.62, 87.38, 88.86, 88.79, 88.77),
        ("cifar10", "vgg16", 0.01): (89.46, 92.48, 82.03, 91.97, 93.03, 92.28),
        ("cifar10", "vgg16", 0.05): (92.77, 10.00, 89.48, 93.13, 93.76, 93.14),
        ("cifar10", "vgg16", 0.10): (93.47, 10.00, 91.35, 93.19, 93.71, 93.31),
        ("cifar10", "vgg16", 0.20): (93.79, 10.00, 92.59, 93.50, 93.80, 93.41),
        ("cifar10", "vgg16", 0.40): (93.85, 10.00, 93.37, 93.50, 93.82, 93.70),
        ("cifar100", "resnet34", 0.01): (52.82, 58.38, 41.28, 58.75, 57.24, 59.61),
        ("cifar100", "resnet34", 0.05): (59.09, 59.29, 51.96, 60.62, 60.64, 61.10),
        ("cifar100", "resnet34", 0.10): (60.61, 59.66, 55.70, 60.51, 61.50, 60.78),
        ("cifar100", "resnet34", 0.20): (61.22, 59.97, 57.56, 60.32, 60.36, 60.81),
        ("cifar100", "resnet34", 0.40): (61.21, 59.96, 58.72, 60.27, 60.11, 60.08),
        ("cifar100", "vgg16", 0.05): (69.65, 45.15, 63.96, 71.05, 73.15, 70.58),
        ("cifar100", "vgg16", 0.10): (71.74, 1.00, 67.58, 72.02, 73.03, 71.79),
        ("cifar100", "vgg16", 0.20): (72.56, 1.00, 70.07, 72.51, 72.81, 72.27),
        ("cifar100", "vgg16", 0.40): (73.02, 1.00, 71.51, 72.66, 72.92, 72.92),
    }.items()}

#: (model, density) -> (CIFAR-10 r for Δr, CIFAR-10 r for IMDB, CIFAR-100 r for Δr, CIFAR-100 r for IMDB)
PUBLISHED_CORRELATIONS: Mapping[tuple, tuple] = {
    ("resnet34", 0.01): (-0.16, 0.84, -0.12, 0.78),
    ("resnet34", 0.05): (-0.14, 0.90, -0.05, 0.89),
    ("resnet34", 0.10): (-0.06, 0.95, 0.24, 0.92),
    ("resnet34", 0.20): (0.12, 0.99, 0.24, 0.92),
    ("resnet34", 0.40): (0.64, 0.91, 0.62, 0.86),
    ("vgg16", 0.01): (-0.39, 0.49, np.nan, np.nan),
    ("vgg16", 0.05): (-0.33, 0.89, -0.32, 0.83),
    ("vgg16", 0.10): (-0.23, 0.95, -0.28, 0.90),
    ("vgg16", 0.20): (-0.09, 0.93, -0.28, 0.85),
    ("vgg16", 0.40): (0.38, 0.94, -0.08, 0.77),
}


def published_correlations() -> pd.DataFrame:
    """:data:`PUBLISHED_CORRELATIONS` in long format: model, density, dataset, metric (Δr or IMDB), r."""
    rows = []
    for (model, d), vals in PUBLISHED_CORRELATIONS.items():
        for (ds, metric), r in zip((("cifar10", "Δr"), ("cifar10", "IMDB"), ("cifar100", "Δr"), ("cifar100", "IMDB")),
                                   vals):
            rows.append({"model": model, "density": d, "dataset": ds, "metric": metric, "r": r})
    return pd.DataFrame(rows)


def pooled_layer_means(spectra: Sequence[pd.DataFrame], metrics: Sequence[str] = ("ramanujan_gap", "imdb")) -> dict:
    """Paper A's network value of a ticket: the mean of the non-NaN (layer, seed) entries of each metric, pooled over
    the per-seed :func:`~pags_core.model_spectrum` tables of one generator (``iclr2023`` convention: a layer that fails
    the gate is NaN and left out)."""
    out = {}
    for m in metrics:
        v = np.concatenate([np.asarray(df[m], dtype=float) for df in spectra])
        v = v[np.isfinite(v)]
        out[m] = float(v.mean()) if v.size else float("nan")
    return out


def generator_correlations(table: pd.DataFrame, target: str = "test_acc",
                           metrics: Sequence[str] = ("ramanujan_gap", "imdb")) -> pd.DataFrame:
    """Pearson r (95% Fisher-z interval, n) across generators between ``target`` and each metric column of ``table``
    (one row per generator)."""
    rows = []
    for m in metrics:
        res = pearson(table[m].to_numpy(float), table[target].to_numpy(float))
        rows.append({"metric": m, "r": res.r, "ci_low": res.ci_low, "ci_high": res.ci_high, "n": res.n,
                     "p_value": res.p_value})
    return pd.DataFrame(rows)


def ranking_table(model, masks: Mapping[str, Sequence], accuracy: Mapping[str, float]) -> pd.DataFrame:
    """One row per generator: its mean accuracy and paper A's network values of its tickets (``iclr2023``
    convention, binary graphs, :func:`pooled_layer_means` over the seeds' masks ``masks[generator]``) of ``model``'s
    prunable layers: ``ramanujan_gap`` (layer-mean Δr, ``rm``) and ``imdb`` (layer-mean IMDB, ``irm``), plus
    ``valid_layers``, the share of (layer, seed) entries that pass the gate."""
    rows = []
    for g, ms in masks.items():
        spectra = [model_spectrum(model, m, "iclr2023", weights=None, progress=False) for m in ms]
        valid = np.concatenate([np.isfinite(df["ramanujan_gap"].to_numpy(float)) for df in spectra])
        rows.append({"generator": g, "test_acc": float(accuracy[g]), **pooled_layer_means(spectra),
                     "valid_layers": float(valid.mean()), "seeds": len(ms)})
    return pd.DataFrame(rows)
