"""Batched, conflict-aware writes of finalised conversations.

A batch of conversations is written in one transaction with a handful of multi-row statements
(``INSERT ... ON CONFLICT DO NOTHING`` on both SQLite and PostgreSQL, through the driver's own
bulk path: ``executemany`` on SQLite, ``execute_values`` on psycopg2), never one ORM flush per
row. A conversation is therefore either fully in the database or not at all. If a batch fails, it
is rolled back and its conversations are retried one transaction each, so one bad conversation
costs only itself.

Merging: a conversation already stored (same provider and external id) gets the messages and
turns it lacks. If the arriving copy is at least as new (``updated_at``), its title, models and
active thread replace the stored ones; an older copy only adds what was missing, as inactive
branches.

Workers hand records over :func:`pack`-ed: message and turn rows as lists in the column order
below, JSON columns already serialised, message times already in the database's own text form.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from ..db import Base, Conversation, Database, Message, Turn
from .jsontext import storable

log = logging.getLogger(__name__)

# What a failed write raises: SQLAlchemy's errors, and the drivers' own (bulk writes use raw cursors).
try:
    import psycopg2

    _DB_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, DBAPIError, sqlite3.Error, psycopg2.Error)
except ImportError:  # pragma: no cover - psycopg2 is a dependency; SQLite-only installs still work
    _DB_ERRORS = (SQLAlchemyError, DBAPIError, sqlite3.Error)

CONV_COLS = ("id", "provider", "external_id", "title", "created_at", "updated_at", "models", "source_file",
             "import_file_id", "message_count", "meta")
MSG_COLS = ("id", "conversation_id", "external_id", "parent_id", "role", "text", "content_type", "blocks",
            "hidden", "active", "tool_call", "created_at", "model", "position", "depth", "meta")
TURN_COLS = ("id", "conversation_id", "user_message_id", "assistant_message_id", "turn_hash", "active", "position")
_M_ID, _M_ACTIVE, _M_CREATED = MSG_COLS.index("id"), MSG_COLS.index("active"), MSG_COLS.index("created_at")
_T_ID, _T_ACTIVE = TURN_COLS.index("id"), TURN_COLS.index("active")


_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _dumps(v: Any) -> bytes:
    try:
        return orjson.dumps(v)
    except orjson.JSONEncodeError:  # an integer past 64 bits (JSON allows any), kept as its text
        return orjson.dumps(storable(v))


def _json(v: Any) -> str:
    """JSON text for a JSON column. NUL (\\u0000) becomes U+FFFD: PostgreSQL's jsonb refuses it; so
    do NaN and infinities (orjson writes null) and integers past 64 bits (written as text)."""
    if not v:
        return "[]" if isinstance(v, list) else "{}" if isinstance(v, dict) else _dumps(v).decode()
    s = _dumps(v).decode()
    return _NUL_ESCAPE.sub(r"\1\\ufffd", s) if "\\u0000" in s else s


_EPOCH = datetime(1970, 1, 1)
_DAY_US = 86_400_000_000
_DAYS: dict[int, str] = {}  # day number -> "YYYY-MM-DD": a history spans a few thousand days


def db_time(x: float | None, dialect: str) -> str | None:
    """Epoch seconds as the text each database takes for a UTC timestamp without further conversion:
    SQLite gets SQLAlchemy's naive-UTC storage format ``YYYY-MM-DD HH:MM:SS.ffffff`` (see
    db.base.UTCDateTime), PostgreSQL the same with a ``+00:00`` offset (so the session time zone
    cannot shift it). Formatted with integer arithmetic: a quarter of the cost of datetime's
    ``fromtimestamp().isoformat()`` per message, which showed in the import profile."""
    if x is None:
        return None
    whole = math.floor(x)
    frac_us = round((x - whole) * 1_000_000)  # x - floor(x) is exact; rounded half-even, as datetime does
    days, rem = divmod(whole * 1_000_000 + frac_us, _DAY_US)
    day = _DAYS.get(days)
    if day is None:
        # parsers hand over times in range (model.to_epoch); a value past them is a bug, and fails
        # loudly here as its conversation's error, never the import's
        day = _DAYS[days] = (_EPOCH + timedelta(days=days)).strftime("%Y-%m-%d")
    secs, us = divmod(rem, 1_000_000)
    h, secs = divmod(secs, 3600)
    m, secs = divmod(secs, 60)
    text = f"{day} {h:02d}:{m:02d}:{secs:02d}.{us:06d}"
    return text if dialect == "sqlite" else text + "+00:00"


def _message_row(m: dict[str, Any], dialect: str) -> list[Any]:
    """One message in MSG_COLS order, JSON columns serialised, the time in the database's text form.
    Spelled out (not a loop over MSG_COLS): this runs once per message and showed in the profile;
    a test checks it against MSG_COLS."""
    return [m["id"], m["conversation_id"], m["external_id"], m["parent_id"], m["role"], m["text"],
            m["content_type"], _json(m["blocks"]), m["hidden"], m["active"], m["tool_call"],
            db_time(m["created_at"], dialect), m["model"], m["position"], m["depth"], _json(m["meta"])]


def pack(rec: dict[str, Any], dialect: str = "sqlite", serialise: bool = True) -> bytes | dict[str, Any]:
    """A finalised record (see :func:`..model.finalize`) in the compact form the writer consumes:
    orjson bytes to cross a process boundary (Ray), or the same structure as it is (in-process)."""
    msgs = [_message_row(m, dialect) for m in rec["messages"]]
    turns = [[t[c] for c in TURN_COLS] for t in rec["turns"]]
    out = {"conversation": rec["conversation"], "messages": msgs, "turns": turns, "warnings": rec["warnings"]}
    # the conversation's meta is serialised by the writer (_json: storable); only the bytes form needs
    # the same care here, and _dumps gives it only when orjson refuses (a > 64-bit integer)
    return _dumps(out) if serialise else out


def _utc(x: float | None) -> datetime | None:
    return datetime.fromtimestamp(x, tz=timezone.utc) if x is not None else None


def _bulk_insert(session: Session, table: str, cols: tuple[str, ...], rows: list[list[Any]]) -> None:
    """``INSERT ... ON CONFLICT DO NOTHING`` of many rows through the driver's fastest path.

    SQLite: one prepared statement, ``executemany``. PostgreSQL: ``COPY`` into a temporary staging
    table (CSV built by the C csv writer), then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``
    — COPY because multi-row VALUES spent as long quoting rows on the client as the server spent
    inserting them.
    """
    if not rows:
        return
    conn = session.connection()
    names = ", ".join(cols)
    if conn.dialect.name == "postgresql":
        import psycopg2.errors

        buf = io.StringIO()
        # QUOTE_NONNUMERIC: strings (even empty ones) quoted, None unquoted -> NULL, numbers/bools bare
        csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows(rows)
        buf.seek(0)
        stage = f"_stage_{table}"
        # QUOTE_NONNUMERIC writes None as "" too: FORCE_NULL reads "" as NULL in the nullable columns
        # (their writers never store an empty string there; see finalize()).
        nullable = [c for c in cols if Base.metadata.tables[table].c[c].nullable]
        force_null = f", FORCE_NULL ({', '.join(nullable)})" if nullable else ""
        cur = conn.connection.dbapi_connection.cursor()
        copy_opts = f"WITH (FORMAT csv{force_null})"
        try:
            # The caller only hands over rows it found missing, so COPY straight into the table usually
            # succeeds; a conflict (another import racing on the same conversation) rolls back to the
            # savepoint and takes the conflict-aware path. Direct COPY skips writing and re-reading the
            # staging table: about a third of the server's work per batch.
            cur.execute("SAVEPOINT stephanie_copy")
            try:
                cur.copy_expert(f"COPY {table} ({names}) FROM STDIN {copy_opts}", buf)
                cur.execute("RELEASE SAVEPOINT stephanie_copy")
                return
            except psycopg2.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT stephanie_copy")
                buf.seek(0)
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            cur.execute(f"TRUNCATE {stage}")
            cur.copy_expert(f"COPY {stage} ({names}) FROM STDIN {copy_opts}", buf)
            cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} ON CONFLICT DO NOTHING")
        finally:
            cur.close()
    else:
        marks = ", ".join("?" for _ in cols)
        cur = conn.connection.dbapi_connection.cursor()
        try:
            cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING", rows)
        finally:
            cur.close()


@dataclass
class FileStats:
    conversations_new: int = 0
    conversations_merged: int = 0
    conversations_unchanged: int = 0
    conversations_failed: int = 0
    conversations_empty: int = 0  # opened and never written in: skipped, not an error
    messages_new: int = 0
    turns_new: int = 0
    skipped_entries: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    COUNTERS: ClassVar[tuple[str, ...]] = ("conversations_new", "conversations_merged", "conversations_unchanged",
                                           "conversations_failed", "conversations_empty", "messages_new", "turns_new")

    def counts(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in self.COUNTERS}
        if self.skipped_entries:
            out["skipped_entries"] = dict(self.skipped_entries)
        return out


class _WriterProcess:
    """A child process that writes batches to SQLite while the parent parses.

    SQLite works inside the process that calls it, so in one process parsing and writing take turns
    on one core (a writer *thread* only queues on the GIL behind the parser). This child is to SQLite
    what the server is to PostgreSQL: batches go to it over a pipe as orjson bytes, it writes them
    with :func:`write_conversations` (the same transactions, the same per-conversation retry) and
    answers with the results. Started with ``spawn`` — a connection must never cross a fork — and it
    exits when the pipe closes, so a killed parent leaves at most the batch being written, whole or
    not at all.
    """

    def __init__(self, url: str):
        import multiprocessing as mp

        self.write_seconds = 0.0  # the child's time in database writes, as it last reported
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_writer_main, args=(child, url), name="stephanie-sqlite-writer", daemon=True)
        self._proc.start()
        child.close()

    def submit(self, batch: list[tuple[int, dict[str, Any]]]) -> Callable[[], list[dict[str, Any]]]:
        self._conn.send_bytes(orjson.dumps([rec for _, rec in batch]))
        return self._receive

    def _receive(self) -> list[dict[str, Any]]:
        try:
            reply = orjson.loads(self._conn.recv_bytes())
        except EOFError:
            raise RuntimeError(f"the SQLite writer process died (exit code {self._proc.exitcode})") from None
        if "fatal" in reply:
            raise RuntimeError(f"the SQLite writer process failed: {reply['fatal']}")
        self.write_seconds = reply["seconds"]
        return reply["results"]

    def close(self) -> None:
        try:
            self._conn.send_bytes(b"")
        except (BrokenPipeError, OSError):
            pass
        self._conn.close()
        self._proc.join(timeout=60)
        if self._proc.is_alive():  # pragma: no cover - it exits on the empty message
            self._proc.terminate()


def _writer_main(conn: Any, url: str) -> None:
    """The writer process: batches in, results out, until an empty message or a closed pipe."""
    import traceback

    db = Database.open(url)
    writer = ConversationWriter(db)
    try:
        while True:
            try:
                data = conn.recv_bytes()
            except EOFError:
                return
            if not data:
                return
            try:
                batch = [(0, rec) for rec in orjson.loads(data)]
                results = writer._write(batch)
                conn.send_bytes(orjson.dumps({"results": results, "seconds": writer.write_seconds}))
            except Exception:  # noqa: BLE001 - said to the parent, which raises it
                conn.send_bytes(orjson.dumps({"fatal": traceback.format_exc(limit=5)}))
                return
    finally:
        db.dispose()


class ConversationWriter:
    """Accumulates parsed rows and writes them in batches; keeps per-file statistics.

    ``background``: where the writes happen while the caller goes on parsing (or receiving rows
    from Ray) — ``None`` in line; ``"thread"`` in a writer thread (PostgreSQL: the server does the
    work while psycopg2 waits on the socket without the GIL); ``"process"`` in a writer process
    (SQLite: see :class:`_WriterProcess`). At most one batch is in flight; batches are written in
    order; statistics are applied on the caller's thread. Call :meth:`close` at the end.
    """

    def __init__(self, db: Database, batch_messages: int = 20000, batch_conversations: int = 500,
                 background: str | None = None):
        if background not in (None, "thread", "process"):
            raise ValueError(f"background must be None, 'thread' or 'process', got {background!r}")
        self.db = db
        self.batch_messages = batch_messages
        self.batch_conversations = batch_conversations
        self.stats: dict[int, FileStats] = {}
        self.write_seconds = 0.0  # time spent writing (in the writer thread or process when in the background)
        self.wait_seconds = 0.0   # time the caller waited for the writer
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self._pending_ids: set[int] = set()
        self._pending_messages = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stephanie-writer") \
            if background == "thread" else None
        self._process = _WriterProcess(db.url.render_as_string(hide_password=False)) if background == "process" else None
        self._inflight: tuple[list[tuple[int, dict[str, Any]]], Callable[[], list[dict[str, Any]]]] | None = None

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
        if kind == "empty":
            fs.conversations_empty += 1
            return
        if kind == "warning":
            fs.warnings.append({"conversation": row["conversation"], "warning": row["error"]})
            return
        if kind == "skip":
            fs.skipped_entries[row["conversation"]] = fs.skipped_entries.get(row["conversation"], 0) + int(row["messages"])
            return
        payload = row["payload"]
        rec = payload if isinstance(payload, dict) else orjson.loads(payload)
        for w in rec["warnings"]:
            fs.warnings.append({"conversation": rec["conversation"]["external_id"], "warning": w})
        rec["conversation"]["import_file_id"] = int(row["file_id"])
        cid = rec["conversation"]["id"]
        if cid in self._pending_ids:  # the same conversation twice in one batch: write the first one first
            self.flush()
        self._pending.append((int(row["file_id"]), rec))
        self._pending_ids.add(cid)
        self._pending_messages += len(rec["messages"])
        if self._pending_messages >= self.batch_messages or len(self._pending) >= self.batch_conversations:
            self.flush()

    def flush(self) -> None:
        """Hand the pending batch to the writer (and, in the background, collect the previous one)."""
        if not self._pending:
            return
        batch, self._pending, self._pending_ids, self._pending_messages = self._pending, [], set(), 0
        if self._pool is None and self._process is None:
            self._apply(batch, self._write(batch))
            return
        self._collect()
        if self._process is not None:
            self._inflight = (batch, self._process.submit(batch))
        else:
            assert self._pool is not None
            self._inflight = (batch, self._pool.submit(self._write, batch).result)

    def close(self) -> None:
        """Write what is pending and wait for the writer; the statistics are final after this."""
        try:
            self.flush()
            self._collect()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            if self._process is not None:
                self._process.close()
                self.write_seconds = self._process.write_seconds

    def _collect(self) -> None:
        if self._inflight is None:
            return
        batch, result = self._inflight
        self._inflight = None
        t = time.perf_counter()
        results = result()  # an unexpected error in the writer is raised here, on the caller's thread
        self.wait_seconds += time.perf_counter() - t
        self._apply(batch, results)

    def _write(self, batch: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        t = time.perf_counter()
        try:
            with self.db.session() as s:
                return write_conversations(s, [rec for _, rec in batch])
        except (*_DB_ERRORS, ValueError, TypeError, KeyError, IndexError) as exc:
            # A database error, or a row the database or our code could not take: the batch is rolled
            # back whole; one transaction per conversation finds the one that fails.
            log.warning("batch of %d conversations failed (%s); retrying one by one", len(batch),
                        (str(exc).splitlines() or [type(exc).__name__])[0])
            results = []
            for _, rec in batch:
                try:
                    with self.db.session() as s:
                        results.extend(write_conversations(s, [rec]))
                except _DB_ERRORS as exc1:
                    results.append({"status": "failed", "error": f"database error: {str(exc1).splitlines()[0]}"})
                except (ValueError, TypeError, KeyError, IndexError) as exc1:
                    results.append({"status": "failed", "error": f"cannot write: {type(exc1).__name__}: {exc1}"})
            return results
        finally:
            self.write_seconds += time.perf_counter() - t

    def _apply(self, batch: list[tuple[int, dict[str, Any]]], results: list[dict[str, Any]]) -> None:
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
    """Write packed records (conversation ids unique within ``recs``) in the caller's transaction.

    Returns, per conversation, ``{"status": new|merged|unchanged, "messages_new", "turns_new"}``.
    """
    dialect = session.get_bind().dialect.name
    ids = [r["conversation"]["id"] for r in recs]
    stored = {row.id: row for row in session.execute(
        select(Conversation.id, Conversation.updated_at, Conversation.title, Conversation.models)
        .where(Conversation.id.in_(ids)))}
    merged_ids = [i for i in ids if i in stored]
    have_msgs: set[int] = set()
    have_turns: set[int] = set()
    if merged_ids:
        have_msgs = set(session.scalars(select(Message.id).where(Message.conversation_id.in_(merged_ids))))
        have_turns = set(session.scalars(select(Turn.id).where(Turn.conversation_id.in_(merged_ids))))

    conv_rows: list[list[Any]] = []
    msg_rows: list[list[Any]] = []
    turn_rows: list[list[Any]] = []
    results: list[dict[str, Any]] = []
    refresh: list[dict[str, Any]] = []
    for rec in recs:
        c = rec["conversation"]
        old = stored.get(c["id"])
        newer = old is None or old.updated_at is None or (c["updated_at"] or 0) >= old.updated_at.timestamp()
        msgs = [m for m in rec["messages"] if m[_M_ID] not in have_msgs] if old is not None else rec["messages"]
        turns = [t for t in rec["turns"] if t[_T_ID] not in have_turns] if old is not None else rec["turns"]
        if not newer:  # an older copy: what it adds are branches the person no longer sees
            for m in msgs:
                m[_M_ACTIVE] = False
            for t in turns:
                t[_T_ACTIVE] = False
        msg_rows.extend(msgs)
        turn_rows.extend(turns)
        if old is None:
            conv_rows.append([db_time(c[k], dialect) if k in ("created_at", "updated_at") else
                              _json(c[k]) if k in ("models", "meta") else c[k] for k in CONV_COLS])
            results.append({"status": "new", "messages_new": len(msgs), "turns_new": len(turns)})
            continue
        models = sorted(set(old.models or []) | set(c["models"]))
        changed = bool(msgs or turns) or (newer and (
            c["title"] != old.title or (c["updated_at"] or 0) != (old.updated_at.timestamp() if old.updated_at else 0)
            or models != sorted(old.models or [])))
        if newer:
            refresh.append({**c, "models": models, "messages": rec["messages"], "turns": rec["turns"]})
        results.append({"status": "merged" if changed else "unchanged", "messages_new": len(msgs),
                        "turns_new": len(turns)})

    _bulk_insert(session, "conversations", CONV_COLS, conv_rows)
    _bulk_insert(session, "messages", MSG_COLS, msg_rows)
    _bulk_insert(session, "turns", TURN_COLS, turn_rows)

    for c in refresh:  # the newer copy decides title, models and the active thread
        old = stored[c["id"]]
        session.execute(update(Conversation).where(Conversation.id == c["id"]).values(
            title=c["title"] or old.title, models=c["models"],
            updated_at=_utc(c["updated_at"]) or old.updated_at))
        active_msgs = [m[_M_ID] for m in c["messages"] if m[_M_ACTIVE]]
        active_turns = [t[_T_ID] for t in c["turns"] if t[_T_ACTIVE]]
        session.execute(update(Message).where(Message.conversation_id == c["id"], Message.active.is_(True),
                                              Message.id.not_in(active_msgs)).values(active=False))
        session.execute(update(Message).where(Message.conversation_id == c["id"], Message.active.is_(False),
                                              Message.id.in_(active_msgs)).values(active=True))
        session.execute(update(Turn).where(Turn.conversation_id == c["id"], Turn.active.is_(True),
                                           Turn.id.not_in(active_turns)).values(active=False))
        session.execute(update(Turn).where(Turn.conversation_id == c["id"], Turn.active.is_(False),
                                           Turn.id.in_(active_turns)).values(active=True))
    grown = [cid for cid, res in zip(ids, results) if cid in stored and res["messages_new"]]
    if grown:  # message_count: what the database now holds
        for cid, n in session.execute(select(Message.conversation_id, func.count()).where(
                Message.conversation_id.in_(grown)).group_by(Message.conversation_id)).all():
            session.execute(update(Conversation).where(Conversation.id == cid).values(message_count=n))
    return results
