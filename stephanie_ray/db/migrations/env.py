"""Alembic environment: runs against the engine handed in by :func:`stephanie_ray.db.migrate.upgrade`."""

from __future__ import annotations

from alembic import context

from stephanie_ray.db import models  # noqa: F401  (registers every table on Base.metadata)
from stephanie_ray.db.base import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # `alembic` CLI use: take the URL from the ini / -x url=...
    from stephanie_ray.db.engine import make_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = make_engine(url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
