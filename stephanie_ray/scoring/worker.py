"""The scoring worker: one per Ray Data actor (or one in-process), models loaded once.

``ScoringWorker(...)(batch)`` takes an Arrow batch of items (:data:`results.ITEM_SCHEMA`) and
returns an Arrow table of results (:data:`results.RESULT_SCHEMA`): per item its embedding and its
typed (scorer, dimension) results from :func:`batch.score_batch` — the same function the trainer's
reward and ``/verify`` call. A scorer that raises or exceeds its time budget on a batch is recorded
as failed for those items, with the reason; the other scorers' results stand.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from .batch import score_batch
from .registry import ScorerSettings, make_scorers
from .results import ItemResult, items_from_arrow, results_to_arrow

log = logging.getLogger(__name__)


class ScoringWorker:
    def __init__(self, scorers: Sequence[str], dimensions: Sequence[str], settings: ScorerSettings):
        self.dimensions = list(dimensions)
        self.scorers = make_scorers(list(scorers), settings)
        self.settings = settings
        self.embedder = None
        # scorers that read no embeddings (structure, lexical, feedback, llm, ...) need no model pass at all
        if any(sc.needs_embeddings for sc in self.scorers):
            from ..config import EmbeddingConfig
            from ..embedding import Embedder

            self.embedder = Embedder.from_config(EmbeddingConfig(**settings.embedding))
        self._cache: dict[str, np.ndarray] = {}

    def score(self, batch: Any) -> list[ItemResult]:
        items = items_from_arrow(batch, self.settings.max_text_chars)
        return score_batch(self.scorers, items, self.dimensions, embedder=self.embedder, embed_cache=self._cache,
                           timeout_s=self.settings.timeout_s)

    def __call__(self, batch: Any) -> Any:
        return results_to_arrow(self.score(batch))
