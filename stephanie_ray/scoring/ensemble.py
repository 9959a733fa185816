"""Aggregating scorers: a weighted mean per dimension, and a weighted mean of dimensions overall. Pure."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping

ENSEMBLE = "ensemble"
OVERALL = "overall"


def aggregate(scores: Iterable[tuple[str, str, float]], scorer_weights: Mapping[str, float],
              dimension_weights: Mapping[str, float]) -> dict[str, float]:
    """``scores``: (scorer, dimension, value) of one item (failed ones left out).

    Returns {dimension: weighted mean over scorers} plus {"overall": weighted mean over dimensions};
    a scorer or dimension missing from the weights weighs 1, a weight of 0 leaves it out.
    """
    num: dict[str, float] = defaultdict(float)
    den: dict[str, float] = defaultdict(float)
    for scorer, dim, value in scores:
        w = float(scorer_weights.get(scorer, 1.0))
        if w > 0:
            num[dim] += w * value
            den[dim] += w
    out = {d: num[d] / den[d] for d in num if den[d] > 0}
    total = sum(float(dimension_weights.get(d, 1.0)) for d in out)
    if out and total > 0:
        out[OVERALL] = sum(float(dimension_weights.get(d, 1.0)) * v for d, v in out.items()) / total
    return out
