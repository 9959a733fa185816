"""ner: ner_scorables, ner_entities, ner_mentions, ner_edges

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stephanie_ray.db.base import JSONType, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ner_entities',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('norm', sa.String(length=512), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('label', sa.String(length=32), nullable=False),
    sa.Column('mentions', sa.Integer(), nullable=False),
    sa.Column('scorables', sa.Integer(), nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ner_entities')),
    sa.UniqueConstraint('norm', name=op.f('uq_ner_entities_norm'))
    )
    op.create_table('ner_scorables',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scorable_type', sa.String(length=16), nullable=False),
    sa.Column('scorable_id', sa.BigInteger(), nullable=False),
    sa.Column('signature', sa.String(length=255), nullable=False),
    sa.Column('text_chars', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('mentions', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('pipeline_run_id', sa.Integer(), nullable=True),
    sa.Column('indexed_at', UTCDateTime, nullable=False),
    sa.Column('meta', JSONType, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ner_scorables')),
    sa.UniqueConstraint('scorable_type', 'scorable_id', name=op.f('uq_ner_scorables_scorable_type_scorable_id'))
    )
    op.create_table('ner_edges',
    sa.Column('entity_a', sa.BigInteger(), nullable=False),
    sa.Column('entity_b', sa.BigInteger(), nullable=False),
    sa.Column('weight', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['entity_a'], ['ner_entities.id'], name=op.f('fk_ner_edges_entity_a_ner_entities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['entity_b'], ['ner_entities.id'], name=op.f('fk_ner_edges_entity_b_ner_entities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('entity_a', 'entity_b', name=op.f('pk_ner_edges'))
    )
    op.create_index(op.f('ix_ner_edges_entity_b'), 'ner_edges', ['entity_b'], unique=False)
    op.create_table('ner_mentions',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('scorable_type', sa.String(length=16), nullable=False),
    sa.Column('scorable_id', sa.BigInteger(), nullable=False),
    sa.Column('start', sa.Integer(), nullable=False),
    sa.Column('end', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('label', sa.String(length=32), nullable=False),
    sa.Column('detector', sa.String(length=64), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('entity_id', sa.BigInteger(), nullable=False),
    sa.Column('snippet', sa.Text(), nullable=False),
    sa.Column('snippet_start', sa.Integer(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.Column('signature', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['entity_id'], ['ner_entities.id'], name=op.f('fk_ner_mentions_entity_id_ner_entities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ner_mentions'))
    )
    op.create_index(op.f('ix_ner_mentions_entity_id'), 'ner_mentions', ['entity_id'], unique=False)
    op.create_index(op.f('ix_ner_mentions_label'), 'ner_mentions', ['label'], unique=False)
    op.create_index('ix_ner_mentions_scorable', 'ner_mentions', ['scorable_type', 'scorable_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ner_mentions_scorable', table_name='ner_mentions')
    op.drop_index(op.f('ix_ner_mentions_label'), table_name='ner_mentions')
    op.drop_index(op.f('ix_ner_mentions_entity_id'), table_name='ner_mentions')
    op.drop_table('ner_mentions')
    op.drop_index(op.f('ix_ner_edges_entity_b'), table_name='ner_edges')
    op.drop_table('ner_edges')
    op.drop_table('ner_scorables')
    op.drop_table('ner_entities')
