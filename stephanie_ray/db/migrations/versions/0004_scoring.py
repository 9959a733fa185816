"""scoring: scores, mars_reports, scorer_models, scorable_embeddings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stephanie_ray.db.base import JSONType, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mars_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline_run_id', sa.Integer(), nullable=True),
    sa.Column('dimension', sa.String(length=32), nullable=False),
    sa.Column('scorers', JSONType, nullable=False),
    sa.Column('items', sa.Integer(), nullable=False),
    sa.Column('agreement', sa.Float(), nullable=True),
    sa.Column('alpha', sa.Float(), nullable=True),
    sa.Column('mean_disagreement', sa.Float(), nullable=True),
    sa.Column('most_disagreeing_pair', JSONType, nullable=True),
    sa.Column('pairs', JSONType, nullable=False),
    sa.Column('top_items', JSONType, nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mars_reports'))
    )
    op.create_index(op.f('ix_mars_reports_pipeline_run_id'), 'mars_reports', ['pipeline_run_id'], unique=False)
    op.create_table('scorable_embeddings',
    sa.Column('scorable_type', sa.String(length=16), nullable=False),
    sa.Column('scorable_id', sa.BigInteger(), nullable=False),
    sa.Column('model', sa.String(length=255), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('scorable_type', 'scorable_id', 'model', name=op.f('pk_scorable_embeddings'))
    )
    op.create_table('scorer_models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('dimensions', JSONType, nullable=False),
    sa.Column('embedding_model', sa.String(length=255), nullable=False),
    sa.Column('examples', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=False),
    sa.Column('metrics', JSONType, nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scorer_models')),
    sa.UniqueConstraint('name', 'version', name=op.f('uq_scorer_models_name_version'))
    )
    op.create_table('scores',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('scorable_type', sa.String(length=16), nullable=False),
    sa.Column('scorable_id', sa.BigInteger(), nullable=False),
    sa.Column('dimension', sa.String(length=32), nullable=False),
    sa.Column('scorer', sa.String(length=32), nullable=False),
    sa.Column('scorer_version', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('pipeline_run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('meta', JSONType, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scores')),
    sa.UniqueConstraint('scorable_type', 'scorable_id', 'dimension', 'scorer', name=op.f('uq_scores_scorable_type_scorable_id_dimension_scorer'))
    )
    op.create_index('ix_scores_dimension_scorer', 'scores', ['dimension', 'scorer'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_scores_dimension_scorer', table_name='scores')
    op.drop_table('scores')
    op.drop_table('scorer_models')
    op.drop_table('scorable_embeddings')
    op.drop_index(op.f('ix_mars_reports_pipeline_run_id'), table_name='mars_reports')
    op.drop_table('mars_reports')
