"""MARS: how much the scorers agree, per dimension, across the items they all scored. Pure numpy.

For a dimension with scorers s_1..s_m and items scored by at least two of them:

* **agreement** — the mean pairwise Spearman rank correlation between scorers over the items both
  scored (rank-based: scorers need not share a scale, only an ordering);
* **alpha** — Krippendorff's alpha for interval data over all (item, scorer) values, missing ones
  allowed: 1 = perfect agreement, 0 = no better than chance, < 0 = systematic disagreement;
* per-item **disagreement** — the standard deviation of the scorers' values for that item;
* the **pair** of scorers that disagree most (lowest rank correlation), and the items with the
  highest disagreement.

This measures inter-scorer agreement across items, not the spread of scores across documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np


def rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), 1-based."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rho; None when undefined (fewer than 3 items or a constant side)."""
    if len(a) < 3:
        return None
    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def krippendorff_alpha_interval(matrix: np.ndarray) -> float | None:
    """Krippendorff's alpha, interval metric. ``matrix``: (scorers, items) with NaN for missing."""
    values = [matrix[:, j][~np.isnan(matrix[:, j])] for j in range(matrix.shape[1])]
    units = [v for v in values if len(v) >= 2]  # only pairable units count
    if not units:
        return None
    n = sum(len(v) for v in units)
    if n <= 1:
        return None
    # observed disagreement: within-unit pairs, each unit weighted by 1 / (m_u - 1)
    d_o = sum(((v[:, None] - v[None, :]) ** 2).sum() / (len(v) - 1) for v in units) / n
    allv = np.concatenate(units)
    d_e = ((allv[:, None] - allv[None, :]) ** 2).sum() / (n * (n - 1))
    if d_e == 0:
        return 1.0 if d_o == 0 else None
    return float(1.0 - d_o / d_e)


@dataclass
class DimensionAgreement:
    dimension: str
    scorers: list[str]
    items: int  # items scored by at least two scorers
    agreement: float | None  # mean pairwise Spearman
    alpha: float | None  # Krippendorff's alpha (interval)
    mean_disagreement: float | None  # mean per-item std across scorers
    pairs: list[dict[str, Any]] = field(default_factory=list)  # {a, b, rho, items}
    most_disagreeing_pair: dict[str, Any] | None = None
    top_items: list[dict[str, Any]] = field(default_factory=list)  # {item, std, values}

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def agreement(dimension: str, values: dict[str, dict[str, float]], top_k: int = 5) -> DimensionAgreement:
    """``values``: {scorer: {item key: value}} for one dimension."""
    scorers = sorted(s for s, v in values.items() if v)
    item_keys = sorted({k for s in scorers for k in values[s]})
    idx = {k: j for j, k in enumerate(item_keys)}
    mat = np.full((len(scorers), len(item_keys)), np.nan)  # (scorers, items)
    for i, s in enumerate(scorers):
        for k, v in values[s].items():
            mat[i, idx[k]] = v
    counts = (~np.isnan(mat)).sum(axis=0)
    shared = counts >= 2
    res = DimensionAgreement(dimension, scorers, int(shared.sum()), None, None, None)
    if len(scorers) < 2 or not shared.any():
        return res
    rhos = []
    for (i, a), (j, b) in combinations(enumerate(scorers), 2):
        both = ~np.isnan(mat[i]) & ~np.isnan(mat[j])
        rho = spearman(mat[i, both], mat[j, both])
        res.pairs.append({"a": a, "b": b, "rho": rho, "items": int(both.sum())})
        if rho is not None:
            rhos.append(rho)
    res.agreement = float(np.mean(rhos)) if rhos else None
    defined = [p for p in res.pairs if p["rho"] is not None]
    res.most_disagreeing_pair = min(defined, key=lambda p: p["rho"]) if defined else None
    res.alpha = krippendorff_alpha_interval(mat[:, shared])
    stds = np.nanstd(mat[:, shared], axis=0)  # (shared items,)
    res.mean_disagreement = float(stds.mean())
    shared_keys = [k for k, ok in zip(item_keys, shared) if ok]
    for j in np.argsort(-stds, kind="mergesort")[:top_k]:
        col = mat[:, idx[shared_keys[j]]]
        res.top_items.append({"item": shared_keys[j], "std": float(stds[j]),
                              "values": {s: float(v) for s, v in zip(scorers, col) if not np.isnan(v)}})
    return res
