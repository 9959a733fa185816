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
    """Average ranks (ties share their mean rank), 1-based. Vectorised: O(n log n)."""
    x = np.asarray(x)
    if len(x) == 0:
        return np.zeros(0)
    order = np.argsort(x, kind="mergesort")
    sx = x[order]
    starts = np.concatenate(([True], sx[1:] != sx[:-1]))  # (n,) first of each run of ties
    bounds = np.flatnonzero(np.concatenate((starts, [True])))  # run starts, then n
    mean_rank = (bounds[:-1] + bounds[1:] - 1) / 2.0 + 1.0  # (runs,)
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = mean_rank[np.cumsum(starts) - 1]
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
    """Krippendorff's alpha, interval metric. ``matrix``: (scorers, items) with NaN for missing.

    O(scorers x items) time and memory: the sum of squared differences over the ordered pairs of m values
    is 2 (m * sum v^2 - (sum v)^2), per unit (observed) and over all pairable values (expected), so no
    n x n matrix of differences is ever built (it was ~1 GiB per temporary at 11.6k items). Values are
    centred first (alpha does not change under a shift) so the sums do not lose precision.
    """
    present = ~np.isnan(matrix)
    m = present.sum(axis=0)  # (items,) values per unit
    units = m >= 2  # only pairable units count
    if not units.any():
        return None
    vals = np.where(present[:, units], matrix[:, units], 0.0)  # (scorers, pairable units)
    mu = m[units].astype(np.float64)
    n = float(mu.sum())
    if n <= 1:
        return None
    vals = np.where(present[:, units], vals - vals.sum() / n, 0.0)
    s1 = vals.sum(axis=0)  # (units,)
    s2 = (vals ** 2).sum(axis=0)
    # observed disagreement: within-unit pairs, each unit weighted by 1 / (m_u - 1)
    d_o = float((2.0 * (mu * s2 - s1 ** 2) / (mu - 1)).sum() / n)
    d_e = float(2.0 * (n * s2.sum() - s1.sum() ** 2) / (n * (n - 1)))
    if d_e <= 1e-15 * max(1.0, float(s2.sum())):
        return 1.0 if d_o <= 1e-12 else None
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
    return agreement_matrix(dimension, scorers, item_keys, mat, top_k)


def agreement_matrix(dimension: str, scorers: list[str], item_keys: list[str], mat: np.ndarray,
                     top_k: int = 5) -> DimensionAgreement:
    """The same from a (scorers, items) matrix with NaN for missing, ``scorers`` sorted: O(scorers x items)."""
    idx = {k: j for j, k in enumerate(item_keys)}
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
    sub = mat[:, shared]  # (scorers, shared items): O(scorers x items), as every step here
    cnt = (~np.isnan(sub)).sum(axis=0)
    mean = np.nansum(sub, axis=0) / cnt
    stds = np.sqrt(np.nansum((sub - mean) ** 2, axis=0) / cnt)  # (shared items,) = nanstd, no warnings
    res.mean_disagreement = float(stds.mean())
    shared_keys = [k for k, ok in zip(item_keys, shared) if ok]
    for j in np.argsort(-stds, kind="mergesort")[:top_k]:
        col = mat[:, idx[shared_keys[j]]]
        res.top_items.append({"item": shared_keys[j], "std": float(stds[j]),
                              "values": {s: float(v) for s, v in zip(scorers, col) if not np.isnan(v)}})
    return res
