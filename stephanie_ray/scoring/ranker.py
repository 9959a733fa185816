"""Ranking scorables for a goal: similarity first; value, recency and diversity only break near-ties.

    sim(i)       = cos(goal, i) clipped to [0, 1]
    tie(i)       = (w_sim * sim(i) + w_value * value(i) + w_recency * recency(i)) / (w_sim + w_value + w_recency)
    pick next    = argmax_i  sim(i) + band * ((1 - λ) * tie(i) - λ * max_{j picked} sim(i, j))

``value`` is the ensemble's overall score, ``recency`` halves every ``half_life_days`` (ages relative to
the newest candidate), λ the MMR diversity. Everything but ``sim`` sits inside a term of width ``band``
(it ranges over [-λ·band, (1-λ)·band]), so:

**the rule** — a candidate whose similarity to the goal is more than ``band`` below another's never
outranks it, however new, well scored or different it is. Value, recency and diversity (maximal
marginal relevance) reorder only candidates within ``band`` of each other's similarity: the best
matches of a three-year history come first even when hundreds of unrelated answers are newer.

Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RankWeights:
    similarity: float = 0.5  # weights of the tie-breaker (their sum must be > 0)
    value: float = 0.35
    recency: float = 0.15
    diversity: float = 0.3  # lambda of MMR: 0 = pure relevance, 1 = pure novelty among picks
    half_life_days: float = 365.0
    band: float = 0.1  # similarity gap within which the tie-breaker and diversity may reorder candidates


def recency_weights(ages_days: np.ndarray, half_life_days: float) -> np.ndarray:
    return np.power(0.5, np.clip(ages_days, 0, None) / half_life_days)


def relevance(goal_sim: np.ndarray, values: np.ndarray, ages_days: np.ndarray, w: RankWeights) -> np.ndarray:
    """The tie-breaker in [0, 1]: weighted similarity, value and recency."""
    total = w.similarity + w.value + w.recency
    if total <= 0:
        raise ValueError("ranker weights similarity + value + recency must be > 0")
    return (w.similarity * np.clip(goal_sim, 0, 1) + w.value * np.clip(values, 0, 1)
            + w.recency * recency_weights(ages_days, w.half_life_days)) / total


def mmr(rel: np.ndarray, embeddings: np.ndarray, k: int, diversity: float,
        primary: np.ndarray | None = None, band: float = 1.0) -> list[int]:
    """Indices of the top ``k`` by maximal marginal relevance. ``embeddings``: (n, dim) unit vectors.

    With ``primary`` (n,), the score is ``primary + band * ((1 - λ) rel - λ max_sim)``: MMR inside a band.
    """
    n = len(rel)
    k = min(k, n)
    base = np.zeros(n) if primary is None else primary
    picked: list[int] = []
    max_sim = np.zeros(n)  # each candidate's highest similarity to what is already picked
    available = np.ones(n, dtype=bool)
    for _ in range(k):
        score = base + band * ((1 - diversity) * rel - diversity * max_sim)
        score[~available] = -np.inf
        i = int(np.argmax(score))
        picked.append(i)
        available[i] = False
        max_sim = np.maximum(max_sim, np.clip(embeddings @ embeddings[i], 0, 1))
    return picked


def rank(goal_vec: np.ndarray, embeddings: np.ndarray, values: np.ndarray, ages_days: np.ndarray, k: int,
         weights: RankWeights) -> tuple[list[int], np.ndarray]:
    """(picked indices in order, every candidate's ranking score before diversity:
    ``sim + band * (1 - λ) * tie``)."""
    if len(values) == 0:
        return [], np.zeros(0)
    if weights.band < 0:
        raise ValueError("ranker band must be >= 0")
    sim = np.clip(embeddings @ goal_vec, 0, 1)  # (n,)
    tie = relevance(sim, values, ages_days, weights)  # (n,)
    picked = mmr(tie, embeddings, k, weights.diversity, primary=sim, band=weights.band)
    return picked, sim + weights.band * (1 - weights.diversity) * tie
