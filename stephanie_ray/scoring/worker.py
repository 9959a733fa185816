"""The scoring worker: one per Ray Data actor (or one in-process), models loaded once.

``ScoringWorker(...)(batch)`` takes a batch of item columns and returns, per item, its embedding and
a JSON list of results ``{scorer, version, dimension, value, rationale, status, error}``. A scorer
that raises or exceeds its time budget on a batch is recorded as failed for those items, with the
reason; the other scorers' results stand.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from typing import Any, Sequence

import numpy as np
import orjson

from .base import Item, Score
from .scorers import OFFLINE_SCORERS

log = logging.getLogger(__name__)

ITEM_COLUMNS = ("scorable_type", "scorable_id", "text", "prompt", "goal", "next_user", "regenerated", "edited",
                "extra")


class BrokenScorer:
    """Stands in for a scorer that could not be loaded: each of its scores fails with the reason."""

    needs_embeddings = False

    def __init__(self, name: str, version: str, dimensions: Sequence[str], reason: str):
        self.name, self.version, self.dimensions, self.reason = name, version, tuple(dimensions), reason

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Score]]:
        raise RuntimeError(self.reason)


def make_scorer(name: str, settings: dict[str, Any]) -> Any:
    if name in OFFLINE_SCORERS:
        return OFFLINE_SCORERS[name]()
    if name in ("sicql", "mrq", "svm"):
        from .learned import load_learned

        return load_learned(name, settings["learned"][name])
    if name == "llm":
        from .llm import LLMJudge

        return LLMJudge(**settings["llm"])
    raise ValueError(f"unknown scorer {name!r}")


def make_scorers(names: Sequence[str], settings: dict[str, Any]) -> list[Any]:
    """Instantiate scorers by name. ``settings``: plain data (it crosses Ray boundaries).

    A learned scorer whose artifact cannot be loaded (deleted, corrupt) does not stop the others:
    its scores are recorded as failed with the reason.
    """
    from ..config import SCORING_DIMENSIONS

    out = []
    for name in names:
        try:
            out.append(make_scorer(name, settings))
        except Exception as exc:  # a corrupt artifact fails in many ways (pickle, zip, shapes); recorded, not hidden
            if name in OFFLINE_SCORERS:
                raise  # a bug, not bad input
            version = str(settings.get("learned", {}).get(name, {}).get("version", "?"))
            out.append(BrokenScorer(name, version, SCORING_DIMENSIONS, f"cannot load scorer {name}: "
                                    f"{type(exc).__name__}: {str(exc)[:200]}"))
    return out


class ScoringWorker:
    def __init__(self, scorers: Sequence[str], dimensions: Sequence[str], settings: dict[str, Any]):
        from ..config import EmbeddingConfig
        from ..embedding import Embedder

        self.dimensions = list(dimensions)
        self.scorers = make_scorers(scorers, settings)
        self.embedder = Embedder.from_config(EmbeddingConfig(**settings["embedding"]))
        self.timeout_s = float(settings["timeout_s"])
        self.max_chars = int(settings["max_text_chars"])
        self._pool = cf.ThreadPoolExecutor(max_workers=1)
        self._goal_cache: dict[str, np.ndarray] = {}
        # scorers that read no embeddings (structure, lexical, feedback, llm) need no model pass at all
        self.embed = any(getattr(sc, "needs_embeddings", False) for sc in self.scorers)

    def _items(self, batch: dict[str, Any]) -> list[Item]:
        n = len(batch["scorable_id"])
        items = []
        for i in range(n):
            text = str(batch["text"][i])
            items.append(Item(
                scorable_type=str(batch["scorable_type"][i]), scorable_id=int(batch["scorable_id"][i]),
                text=text[: self.max_chars], prompt=str(batch["prompt"][i])[: self.max_chars],
                goal=str(batch["goal"][i]), next_user=str(batch["next_user"][i])[: self.max_chars],
                regenerated=bool(batch["regenerated"][i]), edited=bool(batch["edited"][i]),
                truncated=len(text) > self.max_chars, extra=orjson.loads(batch["extra"][i]) if batch["extra"][i] else {}))
        return items

    def _embed(self, items: list[Item]) -> None:
        """Answers each time; goals and requests once per actor (a CaseBook's items share its goal, a case's
        answers their request), from a bounded cache."""
        cache = self._goal_cache
        wanted = [t for it in items for t in (it.goal, it.prompt) if t]
        if len(cache) + len(wanted) > 10000:  # bounded; cleared before the batch so its own texts stay
            cache.clear()
        new_texts = list(dict.fromkeys(t for t in wanted if t not in cache))
        texts = [it.text for it in items]
        mat, cut = self.embedder.encode_with_flags(texts + new_texts)  # (n + new goals and requests, dim)
        for j, t in enumerate(new_texts):
            cache[t] = mat[len(items) + j]
        for i, it in enumerate(items):
            it.emb_text = mat[i]
            it.emb_goal = cache.get(it.goal) if it.goal else None
            it.emb_prompt = cache.get(it.prompt) if it.prompt else None
            it.truncated = it.truncated or bool(cut[i])

    def score_items(self, items: list[Item]) -> list[list[dict[str, Any]]]:
        results: list[list[dict[str, Any]]] = [[] for _ in items]
        for sc in self.scorers:
            dims = [d for d in self.dimensions if d in sc.dimensions]
            if not dims:
                continue
            try:
                fut = self._pool.submit(sc.score, items, dims)
                scored = fut.result(timeout=self.timeout_s)
                if len(scored) != len(items):
                    raise RuntimeError(f"returned {len(scored)} results for {len(items)} items")
            except cf.TimeoutError:
                # the thread cannot be killed; a new pool keeps the next scorer from waiting behind it
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = cf.ThreadPoolExecutor(max_workers=1)
                err = f"timed out after {self.timeout_s:g} s"
                scored = None
            except Exception as exc:  # a scorer's failure is recorded per item; the others go on
                err = f"{type(exc).__name__}: {exc}"
                scored = None
            for i, it in enumerate(items):
                if scored is None:
                    for d in dims:
                        results[i].append(_row(sc, d, None, err))
                    continue
                for d in dims:
                    s = scored[i].get(d)
                    if isinstance(s, Score):
                        results[i].append(_row(sc, d, s, None))
                    elif isinstance(s, Exception):
                        results[i].append(_row(sc, d, None, f"{type(s).__name__}: {s}"))
        return results

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        items = self._items(batch)
        if self.embed:
            self._embed(items)
        results = self.score_items(items)
        return {
            "scorable_type": np.array([it.scorable_type for it in items], dtype=object),
            "scorable_id": np.array([it.scorable_id for it in items], dtype=np.int64),
            "emb": np.array([it.emb_text.astype(np.float32).tobytes() if it.emb_text is not None else b""
                             for it in items], dtype=object),
            "truncated": np.array([it.truncated for it in items], dtype=bool),
            "results": np.array([orjson.dumps(r).decode() for r in results], dtype=object),
        }


def _row(scorer: Any, dimension: str, score: Score | None, error: str | None) -> dict[str, Any]:
    if score is None:
        return {"scorer": scorer.name, "version": scorer.version, "dimension": dimension, "value": None,
                "rationale": "", "status": "failed", "error": error}
    return {"scorer": scorer.name, "version": scorer.version, "dimension": dimension, "value": score.value,
            "rationale": score.rationale, "status": "ok", "error": None}
