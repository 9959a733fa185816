"""ingest: import_files, conversations, messages, turns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stephanie_ray.db.base import JSONType, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('import_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('format', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('counts', JSONType, nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('errors', JSONType, nullable=False),
    sa.Column('pipeline_run_id', sa.Integer(), nullable=True),
    sa.Column('started_at', UTCDateTime, nullable=False),
    sa.Column('finished_at', UTCDateTime, nullable=True),
    sa.ForeignKeyConstraint(['pipeline_run_id'], ['pipeline_runs.id'], name=op.f('fk_import_files_pipeline_run_id_pipeline_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_files')),
    sa.UniqueConstraint('sha256', name=op.f('uq_import_files_sha256'))
    )
    op.create_table('conversations',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=True),
    sa.Column('updated_at', UTCDateTime, nullable=True),
    sa.Column('models', JSONType, nullable=False),
    sa.Column('source_file', sa.Text(), nullable=False),
    sa.Column('import_file_id', sa.Integer(), nullable=True),
    sa.Column('message_count', sa.Integer(), nullable=False),
    sa.Column('meta', JSONType, nullable=False),
    sa.ForeignKeyConstraint(['import_file_id'], ['import_files.id'], name=op.f('fk_conversations_import_file_id_import_files'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversations')),
    sa.UniqueConstraint('provider', 'external_id', name=op.f('uq_conversations_provider_external_id'))
    )
    op.create_index(op.f('ix_conversations_updated_at'), 'conversations', ['updated_at'], unique=False)
    op.create_table('messages',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('conversation_id', sa.BigInteger(), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('parent_id', sa.BigInteger(), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.Column('blocks', JSONType, nullable=False),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('tool_call', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=True),
    sa.Column('model', sa.String(length=128), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('depth', sa.Integer(), nullable=False),
    sa.Column('meta', JSONType, nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_messages_conversation_id_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    sa.UniqueConstraint('conversation_id', 'external_id', name=op.f('uq_messages_conversation_id_external_id'))
    )
    op.create_index(op.f('ix_messages_parent_id'), 'messages', ['parent_id'], unique=False)
    op.create_table('turns',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('conversation_id', sa.BigInteger(), nullable=False),
    sa.Column('user_message_id', sa.BigInteger(), nullable=False),
    sa.Column('assistant_message_id', sa.BigInteger(), nullable=False),
    sa.Column('turn_hash', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_turns_conversation_id_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_turns')),
    sa.UniqueConstraint('user_message_id', 'assistant_message_id', name=op.f('uq_turns_user_message_id_assistant_message_id'))
    )
    op.create_index(op.f('ix_turns_assistant_message_id'), 'turns', ['assistant_message_id'], unique=False)
    op.create_index(op.f('ix_turns_conversation_id'), 'turns', ['conversation_id'], unique=False)
    op.create_index(op.f('ix_turns_turn_hash'), 'turns', ['turn_hash'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_turns_turn_hash'), table_name='turns')
    op.drop_index(op.f('ix_turns_conversation_id'), table_name='turns')
    op.drop_index(op.f('ix_turns_assistant_message_id'), table_name='turns')
    op.drop_table('turns')
    op.drop_index(op.f('ix_messages_parent_id'), table_name='messages')
    op.drop_table('messages')
    op.drop_index(op.f('ix_conversations_updated_at'), table_name='conversations')
    op.drop_table('conversations')
    op.drop_table('import_files')
