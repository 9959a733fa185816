"""Resolve scorable references to the texts they point at, in one query per scorable type.

Scorables store (type, id) of imported rows, never copies; whoever needs the text (scoring, the
CLI) asks here, so a message refined by a later import is what they see.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from sqlalchemy import select

from ..db.bulk import IN_CHUNK, chunks
from ..db.models import Message, Turn


def resolve_texts(session: Any, refs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """{(scorable_type, scorable_id): text}. A turn's text is its answer; a conversation's is its active
    thread as ``role: text`` lines. References to rows that no longer exist are left out."""
    by_type: dict[str, set[int]] = defaultdict(set)
    for t, i in refs:
        by_type[t].add(int(i))
    out: dict[tuple[str, int], str] = {}
    for part in chunks(sorted(by_type.get("message", ())), IN_CHUNK):
        for mid, text in session.execute(select(Message.id, Message.text).where(Message.id.in_(part))):
            out[("message", mid)] = text or ""
    for part in chunks(sorted(by_type.get("turn", ())), IN_CHUNK):
        q = (select(Turn.id, Message.text).join(Message, Message.id == Turn.assistant_message_id)
             .where(Turn.id.in_(part)))
        for tid, text in session.execute(q):
            out[("turn", tid)] = text or ""
    for part in chunks(sorted(by_type.get("conversation", ())), IN_CHUNK):
        lines: dict[int, list[str]] = defaultdict(list)
        q = (select(Message.conversation_id, Message.role, Message.text)
             .where(Message.conversation_id.in_(part), Message.active.is_(True), Message.hidden.is_(False))
             .order_by(Message.conversation_id, Message.position))
        for cid, role, text in session.execute(q):
            if text:
                lines[cid].append(f"{role}: {text}")
        for cid in part:
            if cid in lines:
                out[("conversation", cid)] = "\n\n".join(lines[cid])
    return out
