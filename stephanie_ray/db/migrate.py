"""Versioned schema migrations (Alembic), run in place: ``stephanie db upgrade``.

The migration scripts live in ``stephanie_ray/db/migrations/versions``; each stage that adds
tables adds one revision. ``tests/test_db.py`` checks that upgrading an empty database to
``head`` yields exactly the schema of :mod:`stephanie_ray.db.models`, and that a database at an
older revision keeps its rows when upgraded.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_lock = threading.Lock()


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade in place to ``revision``; returns (before, after). A no-op when already there."""
    with _lock:
        before = current_revision(engine)
        target = head_revision() if revision == "head" else revision
        if before != target:
            log.info("upgrading database schema %s -> %s", before or "<empty>", target)
            command.upgrade(alembic_config(engine), revision)
        return before, current_revision(engine)


def history() -> list[tuple[str, str | None, str]]:
    """(revision, down_revision, message) from oldest to newest."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    revs = list(script.walk_revisions())
    return [(r.revision, r.down_revision, r.doc or "") for r in reversed(revs)]  # type: ignore[misc]
