"""The scorer protocol: what every scorer receives and returns.

A scorer scores a batch of :class:`Item` on the dimensions it knows and returns, per item and
dimension, a :class:`Score` in [0, 1] with a rationale. A scorer that cannot score an item raises
(the whole batch) or puts an exception in that item's place; the caller records those
(item, dimension, scorer) as failed with the reason and goes on. A scorer that has no evidence for
an item on a dimension (no code to check, no earlier attempt to be novel against, no choice the
person made) leaves the dimension out: it is recorded as *skipped*, not as a score.

Everything here is plain data: items and results cross Ray boundaries (as Arrow columns, see
``results.py``) and are what the batch stage, the PACS trainer's reward and the ``/verify``
endpoint all pass to :func:`stephanie_ray.scoring.batch.score_batch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from ..config import SCORING_DIMENSIONS as DIMENSIONS  # the one list of dimensions (config.py)


@dataclass(slots=True)
class Item:
    """One scorable, with the context scorers need."""

    scorable_type: str
    scorable_id: int
    text: str  # the answer (or message, or conversation) being scored
    prompt: str = ""  # the request it answers
    goal: str = ""  # the CaseBook's goal
    # the person's reaction (conversation feedback), see scorers.FeedbackScorer
    next_user: str = ""  # the user's next message after this answer ("" when none)
    regenerated: bool = False  # a later regeneration replaced this answer on the active thread
    edited: bool = False  # the person edited the prompt after this answer
    replaced: int = 0  # earlier answers to the same request this one replaced (regenerations it won over)
    truncated: bool = False  # the text was cut to the embedding model's limit
    earlier: tuple[str, ...] = ()  # earlier attempts of its trajectory (novelty outside the batch stage)
    emb_text: np.ndarray | None = None  # filled by the embedding step (unit vectors)
    emb_goal: np.ndarray | None = None
    emb_prompt: np.ndarray | None = None  # the request's embedding: relevance is measured against it
    emb_earlier: np.ndarray | None = None  # (len(earlier), dim) when ``earlier`` is given
    # {"turns": [{"prompt", "next_user", "regenerated", "edited"}, ...]}: a whole conversation's turns
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


@runtime_checkable
class Scorer(Protocol):
    """What the registry's factories build. ``name``, ``version``, ``dimensions`` and
    ``needs_embeddings`` are the registry entry's (``registry.SCORERS``)."""

    name: str
    version: str
    dimensions: tuple[str, ...]
    needs_embeddings: bool

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Score | Exception]]:
        """Per item, {dimension: Score} for the requested dimensions this scorer has evidence for."""
        ...
