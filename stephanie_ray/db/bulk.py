"""Portable bulk writes through SQLAlchemy Core (typed columns, JSON, UTC datetimes handled)."""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import Table
from sqlalchemy.orm import Session


def _table(model: Any) -> Table:
    return model.__table__ if hasattr(model, "__table__") else model


def insert_ignore(session: Session, model: Any, rows: list[dict[str, Any]], chunk: int = 5000) -> None:
    """``INSERT ... ON CONFLICT DO NOTHING`` of many rows (SQLite and PostgreSQL).

    Any unique constraint that a row would violate makes the database skip that row: this is what
    keeps a rerun of a stage from duplicating anything, even when two runs race.
    """
    if not rows:
        return
    table = _table(model)
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported backends reach here
        raise NotImplementedError(f"insert_ignore: unsupported database {name!r}")
    stmt = insert(table).on_conflict_do_nothing()
    for start in range(0, len(rows), chunk):
        session.execute(stmt, rows[start:start + chunk])


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
