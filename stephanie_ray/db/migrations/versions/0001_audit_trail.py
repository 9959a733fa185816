"""audit trail: pipeline_runs and stage_runs

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stephanie_ray.db.base import JSONType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("command", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("inputs", JSONType, nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_runs")),
    )
    op.create_table(
        "stage_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pipeline_run_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("counts", JSONType, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["pipeline_run_id"], ["pipeline_runs.id"],
                                name=op.f("fk_stage_runs_pipeline_run_id_pipeline_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_runs")),
    )
    op.create_index(op.f("ix_stage_runs_pipeline_run_id"), "stage_runs", ["pipeline_run_id"])
    op.create_index("ix_stage_runs_stage_started", "stage_runs", ["stage", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_stage_runs_stage_started", table_name="stage_runs")
    op.drop_index(op.f("ix_stage_runs_pipeline_run_id"), table_name="stage_runs")
    op.drop_table("stage_runs")
    op.drop_table("pipeline_runs")
