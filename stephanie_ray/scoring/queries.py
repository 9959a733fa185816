"""Read side of scoring: one scorable's scores, the latest MARS reports, ranking for a goal."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import func, select

from ..casebooks.scorables import resolve_texts
from ..db.bulk import IN_CHUNK, chunks
from ..db.models import Case, CaseBook, CaseScorable, Goal, MarsReport, ScorableEmbedding, ScoreRow
from ..embedding import Embedder, from_bytes, resolve_model
from ..errors import UserError
from .ensemble import ENSEMBLE, OVERALL
from .ranker import RankWeights, rank

SCORABLE_TYPES = ("turn", "message", "conversation")


def parse_scorable(session: Any, ref: str) -> tuple[str, int]:
    """``turn:123`` or a bare id (looked up among scored scorables of every type)."""
    if ":" in ref:
        kind, _, num = ref.partition(":")
        if kind not in SCORABLE_TYPES or not num.lstrip("-").isdigit():
            raise UserError(f"bad scorable {ref!r}: expected TYPE:ID with TYPE one of {', '.join(SCORABLE_TYPES)}")
        return kind, int(num)
    if not ref.lstrip("-").isdigit():
        raise UserError(f"bad scorable {ref!r}: expected TYPE:ID or an id")
    kinds = list(session.scalars(select(ScoreRow.scorable_type).where(ScoreRow.scorable_id == int(ref)).distinct()))
    if not kinds:
        raise UserError(f"no scores for scorable {ref} (stephanie score)")
    return kinds[0], int(ref)


def show_scores(session: Any, ref: str) -> dict[str, Any]:
    kind, sid = parse_scorable(session, ref)
    rows = list(session.scalars(select(ScoreRow).where(ScoreRow.scorable_type == kind, ScoreRow.scorable_id == sid)
                                .order_by(ScoreRow.dimension, ScoreRow.scorer)))
    if not rows:
        raise UserError(f"no scores for scorable {kind}:{sid} (stephanie score)")
    text = resolve_texts(session, [(kind, sid)]).get((kind, sid), "")
    return {"scorable": f"{kind}:{sid}", "text": text[:2000],
            "scores": [{"dimension": r.dimension, "scorer": r.scorer, "version": r.scorer_version, "value": r.value,
                        "status": r.status, "rationale": r.rationale, "error": r.error, "at": r.created_at,
                        "meta": r.meta} for r in rows]}


def latest_mars(session: Any) -> dict[str, Any]:
    newest = (select(MarsReport.dimension, func.max(MarsReport.id).label("id")).group_by(MarsReport.dimension)
              .subquery())
    reports = session.scalars(select(MarsReport).join(newest, newest.c.id == MarsReport.id)
                              .order_by(MarsReport.dimension))
    return {"dimensions": [{"dimension": r.dimension, "scorers": r.scorers, "items": r.items,
                            "agreement": r.agreement, "alpha": r.alpha, "mean_disagreement": r.mean_disagreement,
                            "most_disagreeing_pair": r.most_disagreeing_pair, "pairs": r.pairs,
                            "top_items": r.top_items, "pipeline_run_id": r.pipeline_run_id, "at": r.created_at}
                           for r in reports]}


def _resolve_goal(session: Any, goal: str) -> tuple[str, int | None]:
    """(goal text, goal id or None) from a goal id, a CaseBook id or name, or free text."""
    if goal.isdigit():
        g = session.get(Goal, int(goal))
        if g is not None:
            return g.text, g.id
        cb = session.get(CaseBook, int(goal))
        if cb is not None:
            return cb.description, cb.goal_id
    cb = session.scalars(select(CaseBook).where(CaseBook.name == goal)).first()
    if cb is not None:
        return cb.description, cb.goal_id
    if not goal.strip():
        raise UserError("rank needs a goal: its text, a goal id, or a CaseBook id or name")
    return goal, None


def rank_for_goal(session: Any, cfg: Any, goal: str, k: int) -> dict[str, Any]:
    if k <= 0:
        raise UserError("--k must be > 0")
    text, goal_id = _resolve_goal(session, goal)
    _, model = resolve_model(cfg.embedding.model)
    q = (select(CaseScorable.scorable_type, CaseScorable.scorable_id, func.max(Case.created_at))
         .join(Case, Case.id == CaseScorable.case_id).where(CaseScorable.role.in_(("response", "conversation", "assistant")))
         .group_by(CaseScorable.scorable_type, CaseScorable.scorable_id))
    if goal_id is not None:
        q = q.where(Case.goal_id == goal_id)
    cands = {(st, sid): created for st, sid, created in session.execute(q)}
    vecs: dict[tuple[str, int], np.ndarray] = {}
    values: dict[tuple[str, int], float] = defaultdict(float)
    keys = list(cands)
    for part in chunks(keys, IN_CHUNK):
        ids = [sid for _, sid in part]
        for st, sid, vec in session.execute(select(ScorableEmbedding.scorable_type, ScorableEmbedding.scorable_id,
                                                   ScorableEmbedding.vector)
                                            .where(ScorableEmbedding.scorable_id.in_(ids), ScorableEmbedding.model == model)):
            if (st, sid) in cands:
                vecs[(st, sid)] = from_bytes(vec)
        for st, sid, v in session.execute(select(ScoreRow.scorable_type, ScoreRow.scorable_id, ScoreRow.value)
                                          .where(ScoreRow.scorable_id.in_(ids), ScoreRow.scorer == ENSEMBLE,
                                                 ScoreRow.dimension == OVERALL)):
            if (st, sid) in cands and v is not None:
                values[(st, sid)] = float(v)
    keys = [key for key in keys if key in vecs]
    if not keys:
        raise UserError("nothing to rank: no scored scorables for this goal (stephanie score)")
    scfg = cfg.scoring
    weights = RankWeights(scfg.rank_similarity, scfg.rank_value, scfg.rank_recency, scfg.rank_diversity,
                          scfg.rank_half_life_days)
    times = [cands[key].timestamp() if cands[key] else None for key in keys]
    newest = max((t for t in times if t is not None), default=0.0)
    ages = np.array([(newest - t) / 86400.0 if t is not None else 1e6 for t in times])  # age vs the newest
    emb = np.stack([vecs[key] for key in keys])
    goal_vec = Embedder.from_config(cfg.embedding).encode([text])[0]
    vals = np.array([values.get(key, 0.0) for key in keys])
    picked, rel = rank(goal_vec, emb, vals, ages, k, weights)
    texts = resolve_texts(session, [keys[i] for i in picked])
    sims = emb @ goal_vec
    return {"goal": text, "goal_id": goal_id, "candidates": len(keys), "weights": weights.__dict__,
            "results": [{"rank": r + 1, "scorable": f"{keys[i][0]}:{keys[i][1]}", "relevance": float(rel[i]),
                         "similarity": float(sims[i]), "value": float(vals[i]), "age_days": float(ages[i]),
                         "text": " ".join(texts.get(keys[i], "").split())[:200]} for r, i in enumerate(picked)]}
