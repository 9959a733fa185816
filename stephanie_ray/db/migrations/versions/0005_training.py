"""training: dataset_versions, model_versions, training_stats

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stephanie_ray.db.base import JSONType, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dataset_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('verifier', sa.String(length=32), nullable=False),
    sa.Column('verifier_version', sa.String(length=32), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('groups', sa.Integer(), nullable=False),
    sa.Column('train_rows', sa.Integer(), nullable=False),
    sa.Column('val_rows', sa.Integer(), nullable=False),
    sa.Column('positives', sa.Integer(), nullable=False),
    sa.Column('negatives', sa.Integer(), nullable=False),
    sa.Column('excluded', JSONType, nullable=False),
    sa.Column('config', JSONType, nullable=False),
    sa.Column('pipeline_run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('meta', JSONType, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dataset_versions')),
    sa.UniqueConstraint('content_hash', name=op.f('uq_dataset_versions_content_hash'))
    )
    op.create_index(op.f('ix_dataset_versions_pipeline_run_id'), 'dataset_versions', ['pipeline_run_id'], unique=False)
    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('run_name', sa.String(length=255), nullable=False),
    sa.Column('steps', sa.Integer(), nullable=False),
    sa.Column('dataset_version_id', sa.Integer(), nullable=True),
    sa.Column('backbone', sa.String(length=16), nullable=False),
    sa.Column('encoder', sa.String(length=255), nullable=False),
    sa.Column('checkpoint', sa.Text(), nullable=True),
    sa.Column('metrics', JSONType, nullable=False),
    sa.Column('config', JSONType, nullable=False),
    sa.Column('pipeline_run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(['dataset_version_id'], ['dataset_versions.id'], name=op.f('fk_model_versions_dataset_version_id_dataset_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('kind', 'run_name', 'steps', name=op.f('uq_model_versions_kind_run_name_steps')),
    sa.UniqueConstraint('kind', 'version', name=op.f('uq_model_versions_kind_version'))
    )
    op.create_index(op.f('ix_model_versions_dataset_version_id'), 'model_versions', ['dataset_version_id'], unique=False)
    op.create_table('training_stats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('loss', sa.Float(), nullable=True),
    sa.Column('psi_mean', sa.Float(), nullable=True),
    sa.Column('coupling_ratio', sa.Float(), nullable=True),
    sa.Column('accuracy', sa.Float(), nullable=True),
    sa.Column('grad_norm', sa.Float(), nullable=True),
    sa.Column('samples', sa.Integer(), nullable=False),
    sa.Column('groups', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('metrics', JSONType, nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_training_stats_model_version_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_stats')),
    sa.UniqueConstraint('model_version_id', 'step', name=op.f('uq_training_stats_model_version_id_step'))
    )


def downgrade() -> None:
    op.drop_table('training_stats')
    op.drop_index(op.f('ix_model_versions_dataset_version_id'), table_name='model_versions')
    op.drop_table('model_versions')
    op.drop_index(op.f('ix_dataset_versions_pipeline_run_id'), table_name='dataset_versions')
    op.drop_table('dataset_versions')
