"""Batched, conflict-aware writes of finalised conversations.

A batch of conversations is written in one transaction with a handful of multi-row statements
(``INSERT ... ON CONFLICT DO NOTHING`` on both SQLite and PostgreSQL), never one ORM flush per row.
A conversation is therefore either fully in the database or not at all. If a batch fails, it is
rolled back and its conversations are retried one transaction each, so one bad conversation costs
only itself.

Merging: a conversation already stored (same provider and external id) gets the messages and
turns it lacks. If the arriving copy is at least as new (``updated_at``), its title, models and
active thread replace the stored ones; an older copy only adds what was missing, as inactive
branches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..db import Conversation, Database, Message, Turn

log = logging.getLogger(__name__)


def _ts(x: float | None) -> datetime | None:
    return datetime.fromtimestamp(x, tz=timezone.utc) if x is not None else None


def _insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table).on_conflict_do_nothing()
    session.execute(ins, rows)


@dataclass
class FileStats:
    conversations_new: int = 0
    conversations_merged: int = 0
    conversations_unchanged: int = 0
    conversations_failed: int = 0
    messages_new: int = 0
    turns_new: int = 0
    skipped_entries: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in (
            "conversations_new", "conversations_merged", "conversations_unchanged", "conversations_failed",
            "messages_new", "turns_new")}
        if self.skipped_entries:
            out["skipped_entries"] = dict(self.skipped_entries)
        return out


class ConversationWriter:
    """Accumulates parsed rows and writes them in batches; keeps per-file statistics."""

    def __init__(self, db: Database, batch_messages: int = 20000, batch_conversations: int = 500):
        self.db = db
        self.batch_messages = batch_messages
        self.batch_conversations = batch_conversations
        self.stats: dict[int, FileStats] = {}
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self._pending_ids: set[int] = set()
        self._pending_messages = 0

    def file(self, file_id: int) -> FileStats:
        return self.stats.setdefault(file_id, FileStats())

    def add(self, row: dict[str, Any]) -> None:
        """One row from :func:`stephanie_ray.ingest.parse.parse_unit`."""
        fs = self.file(int(row["file_id"]))
        kind = row["kind"]
        if kind == "error":
            fs.conversations_failed += 1
            fs.errors.append({"conversation": row["conversation"], "error": row["error"]})
            return
        if kind == "skip":
            fs.skipped_entries[row["conversation"]] = fs.skipped_entries.get(row["conversation"], 0) + int(row["messages"])
            return
        rec = orjson.loads(row["payload"])
        for w in rec.get("warnings", []):
            fs.warnings.append({"conversation": rec["conversation"]["external_id"], "warning": w})
        cid = rec["conversation"]["id"]
        if cid in self._pending_ids:  # the same conversation twice in one batch: write the first one first
            self.flush()
        self._pending.append((int(row["file_id"]), rec))
        self._pending_ids.add(cid)
        self._pending_messages += len(rec["messages"])
        if self._pending_messages >= self.batch_messages or len(self._pending) >= self.batch_conversations:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending, self._pending_ids, self._pending_messages = self._pending, [], set(), 0
        try:
            with self.db.session() as s:
                results = write_conversations(s, [rec for _, rec in batch])
        except SQLAlchemyError as exc:
            log.warning("batch of %d conversations failed (%s); retrying one by one", len(batch),
                        str(exc).splitlines()[0])
            results = []
            for file_id, rec in batch:
                try:
                    with self.db.session() as s:
                        results.extend(write_conversations(s, [rec]))
                except SQLAlchemyError as exc1:
                    results.append({"status": "failed", "error": f"database error: {str(exc1).splitlines()[0]}"})
        for (file_id, rec), res in zip(batch, results):
            fs = self.file(file_id)
            status = res["status"]
            if status == "failed":
                fs.conversations_failed += 1
                fs.errors.append({"conversation": rec["conversation"]["external_id"], "error": res["error"]})
                continue
            setattr(fs, f"conversations_{status}", getattr(fs, f"conversations_{status}") + 1)
            fs.messages_new += res["messages_new"]
            fs.turns_new += res["turns_new"]


def write_conversations(session: Session, recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write finalised conversations (ids unique within ``recs``) in the caller's transaction.

    Returns, per conversation, ``{"status": new|merged|unchanged, "messages_new", "turns_new"}``.
    """
    ids = [r["conversation"]["id"] for r in recs]
    stored = {row.id: row for row in session.execute(
        select(Conversation.id, Conversation.updated_at, Conversation.title, Conversation.models,
               Conversation.message_count).where(Conversation.id.in_(ids)))}
    merged_ids = [i for i in ids if i in stored]
    have_msgs: set[int] = set()
    have_turns: set[int] = set()
    if merged_ids:
        have_msgs = set(session.scalars(select(Message.id).where(Message.conversation_id.in_(merged_ids))))
        have_turns = set(session.scalars(select(Turn.id).where(Turn.conversation_id.in_(merged_ids))))

    conv_rows, msg_rows, turn_rows, results = [], [], [], []
    refresh: list[dict[str, Any]] = []
    for rec in recs:
        c = rec["conversation"]
        cid = c["id"]
        old = stored.get(cid)
        newer = old is None or old.updated_at is None or (c["updated_at"] or 0) >= old.updated_at.timestamp()
        msgs = [m for m in rec["messages"] if m["id"] not in have_msgs]
        turns = [t for t in rec["turns"] if t["id"] not in have_turns]
        if not newer:  # an older copy: what it adds are branches the person no longer sees
            for m in msgs:
                m["active"] = False
            for t in turns:
                t["active"] = False
        for m in msgs:
            msg_rows.append({**m, "created_at": _ts(m["created_at"])})
        turn_rows.extend(turns)
        if old is None:
            conv_rows.append({**c, "created_at": _ts(c["created_at"]), "updated_at": _ts(c["updated_at"])})
            results.append({"status": "new", "messages_new": len(msgs), "turns_new": len(turns)})
            continue
        changed = bool(msgs or turns)
        if newer and (c["title"] != old.title or _ts(c["updated_at"]) != old.updated_at
                      or sorted(set(old.models or []) | set(c["models"])) != sorted(old.models or [])):
            changed = True
        if newer:
            refresh.append(rec)
        results.append({"status": "merged" if changed else "unchanged", "messages_new": len(msgs),
                        "turns_new": len(turns)})

    _insert(session, Conversation.__table__, conv_rows)
    _insert(session, Message.__table__, msg_rows)
    _insert(session, Turn.__table__, turn_rows)

    for rec in refresh:  # the newer copy decides title, models and the active thread
        c = rec["conversation"]
        old = stored[c["id"]]
        session.execute(update(Conversation).where(Conversation.id == c["id"]).values(
            title=c["title"] or old.title, updated_at=_ts(c["updated_at"]) or old.updated_at,
            models=sorted(set(old.models or []) | set(c["models"])),
        ))
        active_msgs = [m["id"] for m in rec["messages"] if m["active"]]
        active_turns = [t["id"] for t in rec["turns"] if t["active"]]
        session.execute(update(Message).where(Message.conversation_id == c["id"], Message.active.is_(True))
                        .values(active=False))
        for k in range(0, len(active_msgs), 5000):
            session.execute(update(Message).where(Message.id.in_(active_msgs[k:k + 5000])).values(active=True))
        session.execute(update(Turn).where(Turn.conversation_id == c["id"], Turn.active.is_(True)).values(active=False))
        for k in range(0, len(active_turns), 5000):
            session.execute(update(Turn).where(Turn.id.in_(active_turns[k:k + 5000])).values(active=True))
    if merged_ids:  # message_count: what the database now holds for merged conversations
        counts = session.execute(select(Message.conversation_id, func.count()).where(
            Message.conversation_id.in_(merged_ids)).group_by(Message.conversation_id)).all()
        for cid, n in counts:
            session.execute(update(Conversation).where(Conversation.id == cid).values(message_count=n))
    return results
