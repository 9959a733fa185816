"""The pure batch API: ``score_batch(scorers, items, dimensions)`` -> one :class:`ItemResult` per item.

No database, no Ray. The batch stage's actors, the learned-scorer trainer, the PACS trainer's reward
and the ``/verify`` endpoint all call it, with scorers from the registry::

    from stephanie_ray.scoring import Item, make_scorers, score_batch
    res = score_batch(make_scorers(["structure", "codecheck", "feedback"]), [Item("turn", 1, answer, prompt=q)],
                      ["clarity", "implementability", "alignment"])
    res[0].ensemble["overall"], res[0].scores("clarity")   # {"structure": 0.8, ...}

Per item and requested dimension each scorer that knows the dimension gives a result: ``ok`` (a
:class:`Score`), ``failed`` (it raised, timed out, or put an exception in the item's place: the
reason is kept) or ``skipped`` (it had no evidence for this item). The ensemble is
:func:`ensemble.aggregate` over the ok ones. Scorers that read embeddings need an ``embedder``
(anything with ``encode_with_flags(texts) -> (unit vectors, truncated flags)``) unless the items
carry their embeddings already.
"""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any, Mapping, Sequence

import numpy as np

from .base import Item, Score, Scorer
from .ensemble import aggregate
from .results import FAILED, OK, SKIPPED, ItemResult, ScoreResult

EMBED_CACHE_MAX = 10000  # goal / request embeddings kept per process


def embed_items(embedder: Any, items: Sequence[Item], cache: dict[str, np.ndarray] | None = None) -> None:
    """Fill the items' embeddings: answers each time; goals, requests and earlier attempts once per
    ``cache`` (a CaseBook's items share its goal, a case's answers their request), bounded."""
    cache = {} if cache is None else cache
    wanted = [t for it in items for t in (it.goal, it.prompt, *it.earlier) if t]
    if len(cache) + len(wanted) > EMBED_CACHE_MAX:  # cleared before the batch so its own texts stay
        cache.clear()
    new_texts = list(dict.fromkeys(t for t in wanted if t not in cache))
    todo = [it for it in items if it.emb_text is None]
    mat, cut = embedder.encode_with_flags([it.text for it in todo] + new_texts)  # (answers + new contexts, dim)
    for j, t in enumerate(new_texts):
        cache[t] = mat[len(todo) + j]
    for i, it in enumerate(todo):
        it.emb_text = mat[i]
        it.truncated = it.truncated or bool(cut[i])
    for it in items:
        it.emb_goal = cache.get(it.goal) if it.goal else None
        it.emb_prompt = cache.get(it.prompt) if it.prompt else None
        if it.earlier:
            it.emb_earlier = np.stack([cache[t] for t in it.earlier if t in cache]) if any(it.earlier) else None


class _Runner:
    """Runs one scorer's batch with a time budget (a thread: a hung scorer cannot be killed, so a timed-out
    runner gets a fresh thread and the next scorer does not wait behind it)."""

    def __init__(self, timeout_s: float | None):
        self.timeout_s = timeout_s
        self.pool: cf.ThreadPoolExecutor | None = None

    def run(self, scorer: Scorer, items: Sequence[Item], dims: list[str]) -> list[dict[str, Any]]:
        if self.timeout_s is None:
            return scorer.score(items, dims)
        if self.pool is None:
            self.pool = cf.ThreadPoolExecutor(max_workers=1)
        fut = self.pool.submit(scorer.score, items, dims)
        try:
            return fut.result(timeout=self.timeout_s)
        except cf.TimeoutError:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
            raise TimeoutError(f"timed out after {self.timeout_s:g} s") from None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False)


def score_batch(scorers: Sequence[Scorer], items: Sequence[Item], dimensions: Sequence[str], *,
                embedder: Any = None, embed_cache: dict[str, np.ndarray] | None = None,
                timeout_s: float | None = None, scorer_weights: Mapping[str, float] | None = None,
                dimension_weights: Mapping[str, float] | None = None) -> list[ItemResult]:
    """Score ``items`` on ``dimensions`` with every scorer (module docstring). Pure: no database, no Ray."""
    items = list(items)
    if not items:
        return []
    if any(sc.needs_embeddings for sc in scorers) and any(it.emb_text is None for it in items):
        if embedder is None:
            need = [sc.name for sc in scorers if sc.needs_embeddings]
            raise ValueError(f"scorers {need} read embeddings: pass an embedder or items with embeddings")
        embed_items(embedder, items, embed_cache)
    results: list[list[ScoreResult]] = [[] for _ in items]
    runner = _Runner(timeout_s)
    try:
        for sc in scorers:
            dims = [d for d in dimensions if d in sc.dimensions]
            if not dims:
                continue
            try:
                scored = runner.run(sc, items, dims)
                if len(scored) != len(items):
                    raise RuntimeError(f"returned {len(scored)} results for {len(items)} items")
                err = None
            except Exception as exc:  # a scorer's failure is recorded per item; the others go on
                scored, err = None, f"{type(exc).__name__}: {exc}" if not isinstance(exc, TimeoutError) else str(exc)
            for i in range(len(items)):
                for d in dims:
                    s = None if scored is None else scored[i].get(d)
                    results[i].append(_result(sc, d, s, err))
    finally:
        runner.close()
    sw, dw = scorer_weights or {}, dimension_weights or {}
    out = []
    for it, res in zip(items, results):
        ens = aggregate([(r.scorer, r.dimension, r.value) for r in res if r.ok], sw, dw)
        out.append(ItemResult(it.scorable_type, it.scorable_id, res, ens,
                              None if it.emb_text is None else np.asarray(it.emb_text, dtype=np.float32), it.truncated))
    return out


def _result(scorer: Scorer, dimension: str, s: Any, err: str | None) -> ScoreResult:
    if err is not None:
        return ScoreResult(scorer.name, scorer.version, dimension, None, "", FAILED, err)
    if isinstance(s, Score):
        return ScoreResult(scorer.name, scorer.version, dimension, s.value, s.rationale, OK)
    if isinstance(s, Exception):
        return ScoreResult(scorer.name, scorer.version, dimension, None, "", FAILED, f"{type(s).__name__}: {s}")
    return ScoreResult(scorer.name, scorer.version, dimension, None, "no evidence for this item", SKIPPED)
