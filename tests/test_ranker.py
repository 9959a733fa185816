"""The ranker finds the matching answer: similarity first, recency / value / diversity only among near-ties."""

from __future__ import annotations

import numpy as np
import pytest

from stephanie_ray.scoring.ranker import RankWeights, rank

DIM = 64


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def three_year_history(seed: int = 0, n_unrelated: int = 400, n_similar: int = 4):
    """A goal, and a 3-year history: many recent well-scored unrelated answers on many topics (cosine
    to the goal <= 0.05), a few old, modestly scored, highly similar ones (cosine 0.73, about 0.5 to
    each other) — the shape of the real history where the best matches came #50 and #59."""
    rng = np.random.default_rng(seed)
    goal = _unit(rng.normal(size=DIM))
    # unrelated answers: 60 other topics, orthogonal to the goal but for a cosine of at most 0.05
    topics = _unit(rng.normal(size=(60, DIM)))
    topics = _unit(topics - np.outer(topics @ goal, goal))  # (60, DIM), cosine 0 to the goal
    pick = rng.integers(0, 60, size=n_unrelated)
    perp = topics[pick] + 0.5 * rng.normal(size=(n_unrelated, DIM)) / np.sqrt(DIM)
    perp = _unit(perp - np.outer(perp @ goal, goal))  # (n_unrelated, DIM), cosine 0 to the goal
    c = rng.uniform(0.0, 0.05, size=(n_unrelated, 1))  # their cosine to the goal
    unrelated = c * goal + np.sqrt(1 - c ** 2) * perp
    # similar answers: the goal plus noise, cosine about 0.73
    noise = _unit(rng.normal(size=(n_similar, DIM)))
    noise = _unit(noise - np.outer(noise @ goal, goal))
    similar = _unit(0.73 * goal + np.sqrt(1 - 0.73 ** 2) * noise)
    emb = np.vstack([unrelated, similar]).astype(np.float32)  # (n, DIM)
    ages = np.concatenate([rng.uniform(0, 120, n_unrelated),  # recent
                           rng.uniform(700, 1095, n_similar)])  # two to three years old
    values = np.concatenate([rng.uniform(0.6, 0.95, n_unrelated), rng.uniform(0.3, 0.5, n_similar)])
    similar_ix = set(range(n_unrelated, n_unrelated + n_similar))
    return goal.astype(np.float32), emb, values, ages, similar_ix


def _old_rule(goal, emb, values, ages, k):
    """The previous ranker: a weighted sum (0.5 sim, 0.35 value, 0.15 recency, half-life 90 d), MMR 0.3."""
    sim = np.clip(emb @ goal, 0, 1)
    rel = (0.5 * sim + 0.35 * values + 0.15 * np.power(0.5, ages / 90.0))
    picked, max_sim, avail = [], np.zeros(len(rel)), np.ones(len(rel), bool)
    for _ in range(k):
        s = 0.7 * rel - 0.3 * max_sim
        s[~avail] = -np.inf
        i = int(np.argmax(s))
        picked.append(i)
        avail[i] = False
        max_sim = np.maximum(max_sim, np.clip(emb @ emb[i], 0, 1))
    return picked


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_similar_old_answers_rank_first_in_a_three_year_history(seed):
    goal, emb, values, ages, similar = three_year_history(seed)
    sims = emb @ goal
    assert min(sims[list(similar)]) > 0.65 and max(np.delete(sims, list(similar))) <= 0.05
    picked, scores = rank(goal, emb, values, ages, 10, RankWeights())
    assert set(picked[:len(similar)]) == similar  # every similar answer before any unrelated one
    assert scores.shape == (len(values),) and int(np.argmax(scores)) == picked[0]
    # the old rule buried all but one under recent, well-scored, mutually diverse unrelated answers
    old = _old_rule(goal, emb, values, ages, len(values))
    assert sorted(old.index(i) for i in similar)[1] >= 20


def test_band_guarantee_holds_for_any_weights():
    """Whatever the weights, an answer more than ``band`` less similar never comes first."""
    rng = np.random.default_rng(7)
    for _ in range(50):
        goal = _unit(rng.normal(size=8))
        emb = _unit(rng.normal(size=(30, 8))).astype(np.float32)
        values, ages = rng.random(30), rng.uniform(0, 2000, 30)
        w = RankWeights(*rng.random(3) + 0.01, diversity=float(rng.random()), half_life_days=30.0,
                        band=float(rng.uniform(0, 0.3)))
        picked, _ = rank(goal, emb, values, ages, 30, w)
        sim = np.clip(emb @ goal, 0, 1)
        pos = {i: p for p, i in enumerate(picked)}
        for a in range(30):
            for b in range(30):
                if sim[a] - sim[b] > w.band + 1e-9:
                    assert pos[a] < pos[b]


def test_near_ties_still_use_value_recency_and_diversity():
    e = np.eye(4, dtype=np.float32)
    goal = e[0]
    # three answers about as similar (0.80, 0.79, 0.78): a duplicate pair and a distinct one
    a = _unit(0.80 * e[0] + 0.6 * e[1])
    b = _unit(0.79 * e[0] + 0.613 * e[1])  # near-duplicate of a
    c = _unit(0.78 * e[0] + 0.626 * e[2])  # as relevant, different
    emb = np.stack([a, b, c]).astype(np.float32)
    values = np.array([0.5, 0.9, 0.5])
    ages = np.zeros(3)
    no_div = rank(goal, emb, values, ages, 3, RankWeights(diversity=0.0))[0]
    assert no_div[0] == 1  # the better-valued near-tie wins
    with_div = rank(goal, emb, values, ages, 3, RankWeights(diversity=0.6))[0]
    assert with_div[1] == 2 and no_div[1] in (0, 1)  # diversity: the distinct one before the near-duplicate
    newer = rank(goal, emb, np.full(3, 0.5), np.array([900.0, 900.0, 0.0]), 1,
                 RankWeights(recency=1.0, diversity=0.0))[0]
    assert newer == [2]  # recency breaks the tie
    pure = rank(goal, emb, values, ages, 3, RankWeights(band=0.0))[0]
    assert pure == [0, 1, 2]  # band 0: similarity alone
    with pytest.raises(ValueError, match="band"):
        rank(goal, emb, values, ages, 3, RankWeights(band=-1.0))
