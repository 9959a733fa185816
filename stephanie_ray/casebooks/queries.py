"""Read side of CaseBooks for the CLI and reports: listings and one CaseBook in full."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from ..db.models import Case, CaseBook, Goal, GoalState
from ..errors import UserError
from .scorables import resolve_texts
from .store import CaseBookStore


def _filtered(q: Any, tag: str | None, mode: str | None, group_by: str | None) -> Any:
    if tag:
        q = q.where(CaseBook.tag == tag)
    if mode:
        q = q.where(CaseBook.mode == mode)
    if group_by:
        q = q.where(CaseBook.group_by == group_by)
    return q


def count_casebooks(session: Any, *, tag: str | None = None, mode: str | None = None,
                    group_by: str | None = None) -> int:
    """How many CaseBooks match the filters of :func:`list_casebooks`."""
    return int(session.scalar(_filtered(select(func.count(CaseBook.id)), tag, mode, group_by)))


def list_casebooks(session: Any, *, limit: int | None = 100, tag: str | None = None, mode: str | None = None,
                   group_by: str | None = None) -> list[dict[str, Any]]:
    """CaseBooks with their case counts, largest first (two statements); ``limit`` None: all of them."""
    counts = (select(Case.casebook_id, func.count(Case.id).label("n"), func.max(Case.quality).label("best"))
              .group_by(Case.casebook_id).subquery())
    q = (select(CaseBook, func.coalesce(counts.c.n, 0), counts.c.best)
         .outerjoin(counts, counts.c.casebook_id == CaseBook.id))
    q = _filtered(q, tag, mode, group_by).order_by(func.coalesce(counts.c.n, 0).desc(), CaseBook.name)
    if limit is not None:
        q = q.limit(limit)
    out = []
    for cb, n, best in session.execute(q):
        meta = cb.meta or {}
        out.append({"id": cb.id, "name": cb.name, "mode": cb.mode, "group_by": cb.group_by, "tag": cb.tag,
                    "cases": int(n), "best_quality": best, "providers": meta.get("providers", []),
                    "conversations": meta.get("conversations", 0), "goal": (cb.description or "")[:200]})
    return out


def _preview(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def show_casebook(session: Any, name_or_id: str, *, preview_chars: int = 160, limit: int | None = None) -> dict[str, Any]:
    store = CaseBookStore(session)
    cb = store.get_casebook(name_or_id)
    if cb is None:
        raise UserError(f"no CaseBook named {name_or_id!r} (see 'stephanie casebooks list')")
    cases = store.get_cases(cb.id, limit=limit)
    texts = resolve_texts(session, [(sc.scorable_type, sc.scorable_id) for c in cases for sc in c.scorables])
    states = list(session.scalars(select(GoalState).where(GoalState.casebook_id == cb.id)))
    goal = session.get(Goal, cb.goal_id) if cb.goal_id is not None else None
    prog = store.progress(cb.id, save=False)
    return {
        "id": cb.id, "name": cb.name, "description": cb.description, "mode": cb.mode, "group_by": cb.group_by,
        "tag": cb.tag, "pipeline_run_id": cb.pipeline_run_id, "agent_name": cb.agent_name,
        "created_at": cb.created_at, "meta": {k: v for k, v in (cb.meta or {}).items() if k != "progress"},
        "goal": {"id": goal.id, "text": goal.text} if goal else None,
        "goal_states": [{"goal_id": st.goal_id, "champion_case_id": st.champion_case_id,
                         "champion_quality": st.champion_quality, "run_ix": st.run_ix, "wins": st.wins,
                         "losses": st.losses, "avg_delta": st.avg_delta, "trust": st.trust,
                         "history": (st.meta or {}).get("history", [])} for st in states],
        "progress": prog.to_dict(),
        "cases": [{"id": c.id, "position": c.position, "created_at": c.created_at, "agent_name": c.agent_name,
                   "conversation_id": c.conversation_id, "quality": c.quality, "accepted": c.accepted,
                   "prompt": _preview(c.prompt_text, preview_chars),
                   "champion": any(st.champion_case_id == c.id for st in states),
                   "scorables": [{"type": sc.scorable_type, "id": sc.scorable_id, "role": sc.role, "rank": sc.rank,
                                  "dedup_key": sc.dedup_key, "meta": sc.meta,
                                  "text": _preview(texts.get((sc.scorable_type, sc.scorable_id), ""), preview_chars)}
                                 for sc in c.scorables]}
                  for c in cases],
    }
