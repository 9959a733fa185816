from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from stephanie_ray.db import Base, Database, PipelineRun, utcnow
from stephanie_ray.db.migrate import current_revision, head_revision, history, upgrade
from stephanie_ray.errors import DatabaseError


def test_upgrade_matches_models(db):
    """The migrations produce exactly the models' schema (no forgotten migration)."""
    assert current_revision(db.engine) == head_revision()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == []
    # idempotent
    assert upgrade(db.engine) == (head_revision(), head_revision())


def test_upgrade_in_place_keeps_rows(db_url):
    """A database made by the oldest version is upgraded step by step without losing rows."""
    revs = [r for r, _, _ in history()]
    database = Database.open(db_url)
    upgrade(database.engine, revs[0])
    with database.session() as s:
        s.add(PipelineRun(command="pipeline", status="succeeded", config={"k": 1}, inputs=["x"], host="h"))
    before, after = upgrade(database.engine)
    assert (before, after) == (revs[0], revs[-1])
    with database.session() as s:
        run = s.scalars(select(PipelineRun)).one()
        assert run.config == {"k": 1} and run.inputs == ["x"]
    assert set(Base.metadata.tables) <= set(inspect(database.engine).get_table_names())
    database.dispose()


def test_datetimes_are_utc_aware(db):
    t = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    with db.session() as s:
        s.add(PipelineRun(command="x", config={}, inputs=[], started_at=t))
    with db.session() as s:
        got = s.scalars(select(PipelineRun.started_at)).one()
    assert got == t and got.tzinfo is not None
    with pytest.raises(Exception, match="naive datetime"):
        with db.session() as s:
            s.add(PipelineRun(command="x", config={}, inputs=[], started_at=datetime(2024, 1, 1)))


def test_transaction_rolls_back_on_error(db):
    with pytest.raises(RuntimeError):
        with db.session() as s:
            s.add(PipelineRun(command="x", config={}, inputs=[], started_at=utcnow()))
            s.flush()
            raise RuntimeError("boom")
    with db.session() as s:
        assert s.scalars(select(PipelineRun)).all() == []


def test_sqlite_pragmas(sqlite_url):
    database = Database.open(sqlite_url)
    with database.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    database.dispose()


@pytest.mark.parametrize(
    "url, message",
    [
        ("not a url", "invalid database URL"),
        ("mysql://x@localhost/db", "unsupported database 'mysql'"),
        ("postgresql+psycopg2://nobody:secret@127.0.0.1:1/x", "cannot connect to database"),
    ],
)
def test_bad_urls(url, message):
    with pytest.raises(DatabaseError, match=message) as info:
        Database.open(url, connect_timeout_s=2)
    assert "secret" not in str(info.value)
