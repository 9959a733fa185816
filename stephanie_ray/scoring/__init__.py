"""Scoring: scorers behind one registry, the pure batch API, MARS agreement, the ranker, the batch stage.

The pure API (no database, no Ray) that the batch stage, the PACS trainer's reward and ``/verify`` share::

    from stephanie_ray.scoring import Item, make_scorers, score_batch
"""

from .base import DIMENSIONS, Item, Score, Scorer
from .batch import embed_items, score_batch
from .registry import SCORER_NAMES, SCORERS, ScorerSettings, ScorerSpec, make_scorer, make_scorers
from .results import ItemResult, ScoreResult

__all__ = ["DIMENSIONS", "Item", "ItemResult", "SCORERS", "SCORER_NAMES", "Score", "ScoreResult", "Scorer",
           "ScorerSettings", "ScorerSpec", "embed_items", "make_scorer", "make_scorers", "score_batch"]
