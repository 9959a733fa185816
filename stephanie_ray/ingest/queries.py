"""Reading imported conversations back: listings and the normalised JSONL export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from ..db import Conversation, Database, Message, Turn


def _iso(t: Any) -> str | None:
    return t.isoformat() if t else None


def list_conversations(db: Database, provider: str | None = None, limit: int = 50) -> dict[str, Any]:
    with db.session() as s:
        q = select(Conversation).order_by(Conversation.updated_at.desc().nulls_last(), Conversation.id)
        total_q = select(func.count()).select_from(Conversation)
        if provider:
            q = q.where(Conversation.provider == provider)
            total_q = total_q.where(Conversation.provider == provider)
        convs = s.scalars(q.limit(limit)).all()
        ids = [c.id for c in convs]
        turns = dict(s.execute(select(Turn.conversation_id, func.count()).where(Turn.conversation_id.in_(ids))
                               .group_by(Turn.conversation_id)).all()) if ids else {}
        # branch points: messages with more than one child
        forks = (select(Message.conversation_id.label("cid")).where(
            Message.conversation_id.in_(ids), Message.parent_id.is_not(None))
            .group_by(Message.conversation_id, Message.parent_id).having(func.count() > 1).subquery())
        branches = dict(s.execute(select(forks.c.cid, func.count()).group_by(forks.c.cid)).all()) if ids else {}
        by_provider = dict(s.execute(select(Conversation.provider, func.count()).group_by(Conversation.provider)).all())
        return {
            "total": s.scalar(total_q),
            "by_provider": by_provider,
            "conversations": [{
                "provider": c.provider, "external_id": c.external_id, "title": c.title,
                "created_at": _iso(c.created_at), "updated_at": _iso(c.updated_at), "messages": c.message_count,
                "turns": turns.get(c.id, 0), "branch_points": branches.get(c.id, 0), "models": c.models,
                "source_file": c.source_file,
            } for c in convs],
        }


def export_conversations(db: Database, provider: str | None = None, active_only: bool = False,
                         chunk: int = 200) -> Iterator[dict[str, Any]]:
    """One dict per conversation, messages parent-before-child; fetched ``chunk`` conversations at a time."""
    parent = aliased(Message)
    last_id: int | None = None
    while True:
        with db.session() as s:
            q = select(Conversation).order_by(Conversation.id).limit(chunk)
            if provider:
                q = q.where(Conversation.provider == provider)
            if last_id is not None:
                q = q.where(Conversation.id > last_id)
            convs = s.scalars(q).all()
            if not convs:
                return
            last_id = convs[-1].id
            mq = (select(Message, parent.external_id).outerjoin(parent, Message.parent_id == parent.id)
                  .where(Message.conversation_id.in_([c.id for c in convs]))
                  .order_by(Message.conversation_id, Message.position))
            if active_only:
                mq = mq.where(Message.active.is_(True))
            by_conv: dict[int, list[dict[str, Any]]] = {}
            for m, parent_ext in s.execute(mq):
                by_conv.setdefault(m.conversation_id, []).append({
                    "id": m.external_id, "parent_id": parent_ext, "role": m.role, "text": m.text,
                    "created_at": _iso(m.created_at), "active": m.active, "hidden": m.hidden,
                })
            for c in convs:
                yield {"provider": c.provider, "external_id": c.external_id, "title": c.title,
                       "created_at": _iso(c.created_at), "messages": by_conv.get(c.id, [])}
