"""Engine and session factory from a URL.

SQLite (the embedded default) is opened in WAL mode with foreign keys on and a busy timeout, so
a Ray task writing while the driver reads does not fail with "database is locked".
PostgreSQL goes through psycopg2 with a connect timeout.

The caller owns the transaction::

    db = Database.open(url)
    with db.session() as s:      # BEGIN ... COMMIT (ROLLBACK on error)
        s.add(...)

Each Ray task or actor opens its own :class:`Database` from the URL; sessions, engines and ORM
objects never cross a Ray boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import DatabaseError

log = logging.getLogger(__name__)


def parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"invalid database URL {url!r} (expected e.g. sqlite:///path.db or "
                            "postgresql+psycopg2://user@host:5432/dbname)") from None
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise DatabaseError(f"unsupported database {parsed.get_backend_name()!r} in {safe_url(parsed)}: "
                            "stephanie supports sqlite and postgresql")
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


def _sqlite_pragmas(busy_timeout_ms: int):
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The sqlite3 module's own transaction handling gets in SQLAlchemy's way; take it over.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA cache_size=-131072")  # 128 MiB: bulk inserts of hashed ids touch pages everywhere
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.close()

    return on_connect


def _sqlite_begin(conn: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
    # instead of one failing on lock upgrade halfway through a transaction.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, echo: bool = False, connect_timeout_s: int = 10,
                sqlite_busy_timeout_ms: int = 30000) -> Engine:
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": sqlite_busy_timeout_ms / 1000.0, "check_same_thread": False}
    else:
        kwargs["connect_args"] = {"connect_timeout": connect_timeout_s}
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except NoSuchModuleError:
        raise DatabaseError(f"no driver for {safe_url(parsed)} (install psycopg2-binary for PostgreSQL)") from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_busy_timeout_ms))
        event.listen(engine, "begin", _sqlite_begin)
    return engine


class Database:
    """An engine plus a session factory, opened from a URL."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.url = engine.url
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, check: bool = True, **engine_kwargs: Any) -> Database:
        db = cls(make_engine(url, **engine_kwargs))
        if check:
            db.check_connection()
        return db

    @classmethod
    def from_config(cls, cfg: Any, *, upgrade: bool | None = None) -> Database:
        """Open the database of a :class:`~stephanie_ray.config.StephanieConfig`, upgrading its schema if configured."""
        db = cls.open(cfg.db_url, echo=cfg.db.echo, connect_timeout_s=cfg.db.connect_timeout_s,
                      sqlite_busy_timeout_ms=cfg.db.sqlite_busy_timeout_ms)
        if cfg.db.auto_upgrade if upgrade is None else upgrade:
            from .migrate import upgrade as do_upgrade

            do_upgrade(db.engine)
        return db

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @property
    def safe_url(self) -> str:
        return safe_url(self.url)

    def check_connection(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
            raise DatabaseError(f"cannot connect to database {self.safe_url}: {reason}") from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on any error."""
        with self._sessions.begin() as s:
            yield s

    def new_session(self) -> Session:
        """A bare session; the caller begins and commits."""
        return self._sessions()

    def dispose(self) -> None:
        self.engine.dispose()
