"""The scorer protocol: what every scorer receives and returns.

A scorer scores a batch of :class:`Item` on the dimensions it knows and returns, per item and
dimension, a :class:`Score` in [0, 1] with a rationale. A scorer that cannot score an item raises;
the caller records that (item, dimension, scorer) as failed with the reason and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

DIMENSIONS = ("novelty", "clarity", "relevance", "implementability", "alignment")


@dataclass(slots=True)
class Item:
    """One scorable, with the context scorers need (all plain data: it crosses Ray boundaries)."""

    scorable_type: str
    scorable_id: int
    text: str  # the answer (or message, or conversation) being scored
    prompt: str = ""  # the request it answers
    goal: str = ""  # the CaseBook's goal
    # the person's reaction (conversation feedback), see scorers.FeedbackScorer
    next_user: str = ""  # the user's next message after this answer ("" when none)
    regenerated: bool = False  # a later regeneration replaced this answer on the active thread
    edited: bool = False  # the person edited the prompt after this answer
    truncated: bool = False  # the text was cut to the embedding model's limit
    emb_text: np.ndarray | None = None  # filled by the embedding step (unit vectors)
    emb_goal: np.ndarray | None = None
    emb_prompt: np.ndarray | None = None  # the request's embedding: relevance is measured against it
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.scorable_type}:{self.scorable_id}"


@dataclass(slots=True)
class Score:
    value: float
    rationale: str

    def __post_init__(self) -> None:
        v = float(self.value)
        if not np.isfinite(v):
            raise ValueError(f"score is not a finite number: {self.value!r}")
        self.value = min(1.0, max(0.0, v))


class Scorer(Protocol):
    name: str
    version: str
    dimensions: tuple[str, ...]
    needs_embeddings: bool

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Score]]:
        """Per item, {dimension: Score} for the requested dimensions this scorer knows."""
        ...
