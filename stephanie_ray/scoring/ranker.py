"""Ranking scorables for a goal: similarity, value, recency and diversity (maximal marginal relevance).

    relevance(i) = w_sim * sim(goal, i) + w_value * value(i) + w_recency * recency(i)
    pick next    = argmax_i  (1 - w_div) * relevance(i) - w_div * max_{j picked} sim(i, j)

``sim`` is the cosine of unit embeddings clipped to [0, 1]; ``value`` the ensemble's overall score;
``recency`` decays exponentially with age (half-life in days). Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RankWeights:
    similarity: float = 0.5
    value: float = 0.35
    recency: float = 0.15
    diversity: float = 0.3  # lambda of MMR: 0 = pure relevance, 1 = pure novelty among picks
    half_life_days: float = 90.0


def recency_weights(ages_days: np.ndarray, half_life_days: float) -> np.ndarray:
    return np.power(0.5, np.clip(ages_days, 0, None) / half_life_days)


def relevance(goal_sim: np.ndarray, values: np.ndarray, ages_days: np.ndarray, w: RankWeights) -> np.ndarray:
    total = w.similarity + w.value + w.recency
    if total <= 0:
        raise ValueError("ranker weights similarity + value + recency must be > 0")
    return (w.similarity * np.clip(goal_sim, 0, 1) + w.value * np.clip(values, 0, 1)
            + w.recency * recency_weights(ages_days, w.half_life_days)) / total


def mmr(rel: np.ndarray, embeddings: np.ndarray, k: int, diversity: float) -> list[int]:
    """Indices of the top ``k`` by maximal marginal relevance. ``embeddings``: (n, dim) unit vectors."""
    n = len(rel)
    k = min(k, n)
    picked: list[int] = []
    max_sim = np.zeros(n)  # each candidate's highest similarity to what is already picked
    available = np.ones(n, dtype=bool)
    for _ in range(k):
        score = (1 - diversity) * rel - diversity * max_sim
        score[~available] = -np.inf
        i = int(np.argmax(score))
        picked.append(i)
        available[i] = False
        max_sim = np.maximum(max_sim, np.clip(embeddings @ embeddings[i], 0, 1))
    return picked


def rank(goal_vec: np.ndarray, embeddings: np.ndarray, values: np.ndarray, ages_days: np.ndarray, k: int,
         weights: RankWeights) -> tuple[list[int], np.ndarray]:
    """(picked indices in order, relevance of every candidate)."""
    if len(values) == 0:
        return [], np.zeros(0)
    rel = relevance(embeddings @ goal_vec, values, ages_days, weights)
    return mmr(rel, embeddings, k, weights.diversity), rel
