"""Write the next Alembic revision from the difference between the models and the newest migration.

    .venv/bin/python scripts/make_migration.py 0004 "scoring: scores, mars_reports, scorer_models"

Review the file it writes (stephanie_ray/db/migrations/versions/<rev>_<slug>.py) before committing.
"""

from __future__ import annotations

import re
import sys
import tempfile
from datetime import date
from pathlib import Path

from alembic.autogenerate import produce_migrations, render_python_code
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import stephanie_ray.db.models  # noqa: F401  (registers every table)
from stephanie_ray.db.base import Base
from stephanie_ray.db.migrate import head_revision, upgrade

VERSIONS = Path(stephanie_ray.db.__file__).parent / "migrations" / "versions"


def _clean(block: str) -> str:
    lines = [ln for ln in block.strip().splitlines() if not ln.strip().startswith("# ###")]
    text = "\n".join(lines)
    text = text.replace("stephanie_ray.db.base.UTCDateTime(timezone=True)", "UTCDateTime")
    return text.replace("sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql')", "JSONType")


def main(rev: str, message: str) -> None:
    down = head_revision()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/m.sqlite")
        upgrade(engine)
        with engine.connect() as conn:
            ops = produce_migrations(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        engine.dispose()
    up_code, down_code = _clean(render_python_code(ops.upgrade_ops)), _clean(render_python_code(ops.downgrade_ops))
    slug = re.sub(r"[^a-z0-9]+", "_", message.split(":")[0].lower()).strip("_")
    path = VERSIONS / f"{rev}_{slug}.py"
    path.write_text(f'''"""{message}

Revision ID: {rev}
Revises: {down}
Create Date: {date.today().isoformat()}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stephanie_ray.db.base import JSONType, UTCDateTime

revision = "{rev}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
{up_code}


def downgrade() -> None:
{down_code}
''')
    print(f"wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
