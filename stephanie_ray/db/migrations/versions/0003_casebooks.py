"""casebooks: goals, casebooks, cases, case_scorables, goal_states, case_ab_results

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stephanie_ray.db.base import JSONType, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('goals',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('text_hash', sa.String(length=64), nullable=False),
    sa.Column('embedding', sa.LargeBinary(), nullable=True),
    sa.Column('embedding_model', sa.String(length=255), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('meta', JSONType, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_goals')),
    sa.UniqueConstraint('text_hash', name=op.f('uq_goals_text_hash'))
    )
    op.create_table('casebooks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('goal_id', sa.BigInteger(), nullable=True),
    sa.Column('mode', sa.String(length=16), nullable=True),
    sa.Column('group_by', sa.String(length=16), nullable=True),
    sa.Column('pipeline_run_id', sa.Integer(), nullable=True),
    sa.Column('agent_name', sa.String(length=128), nullable=True),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('meta', JSONType, nullable=False),
    sa.ForeignKeyConstraint(['goal_id'], ['goals.id'], name=op.f('fk_casebooks_goal_id_goals'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_casebooks')),
    sa.UniqueConstraint('name', name=op.f('uq_casebooks_name'))
    )
    op.create_index(op.f('ix_casebooks_agent_name'), 'casebooks', ['agent_name'], unique=False)
    op.create_index(op.f('ix_casebooks_goal_id'), 'casebooks', ['goal_id'], unique=False)
    op.create_index(op.f('ix_casebooks_pipeline_run_id'), 'casebooks', ['pipeline_run_id'], unique=False)
    op.create_table('cases',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('casebook_id', sa.Integer(), nullable=False),
    sa.Column('goal_id', sa.BigInteger(), nullable=True),
    sa.Column('case_key', sa.String(length=80), nullable=False),
    sa.Column('conversation_id', sa.BigInteger(), nullable=True),
    sa.Column('prompt_text', sa.Text(), nullable=False),
    sa.Column('agent_name', sa.String(length=160), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('source_position', sa.Integer(), nullable=False),
    sa.Column('quality', sa.Float(), nullable=True),
    sa.Column('accepted', sa.Boolean(), nullable=False),
    sa.Column('meta', JSONType, nullable=False),
    sa.ForeignKeyConstraint(['casebook_id'], ['casebooks.id'], name=op.f('fk_cases_casebook_id_casebooks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_cases_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['goal_id'], ['goals.id'], name=op.f('fk_cases_goal_id_goals'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases')),
    sa.UniqueConstraint('casebook_id', 'case_key', name=op.f('uq_cases_casebook_id_case_key'))
    )
    op.create_index('ix_cases_casebook_position', 'cases', ['casebook_id', 'position'], unique=False)
    op.create_index(op.f('ix_cases_conversation_id'), 'cases', ['conversation_id'], unique=False)
    op.create_index(op.f('ix_cases_goal_id'), 'cases', ['goal_id'], unique=False)
    op.create_table('case_ab_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('casebook_id', sa.Integer(), nullable=False),
    sa.Column('goal_id', sa.BigInteger(), nullable=False),
    sa.Column('baseline_case_id', sa.BigInteger(), nullable=True),
    sa.Column('candidate_case_id', sa.BigInteger(), nullable=True),
    sa.Column('baseline_quality', sa.Float(), nullable=False),
    sa.Column('candidate_quality', sa.Float(), nullable=False),
    sa.Column('delta', sa.Float(), nullable=False),
    sa.Column('improved', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('meta', JSONType, nullable=False),
    sa.ForeignKeyConstraint(['baseline_case_id'], ['cases.id'], name=op.f('fk_case_ab_results_baseline_case_id_cases'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['candidate_case_id'], ['cases.id'], name=op.f('fk_case_ab_results_candidate_case_id_cases'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['casebook_id'], ['casebooks.id'], name=op.f('fk_case_ab_results_casebook_id_casebooks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['goal_id'], ['goals.id'], name=op.f('fk_case_ab_results_goal_id_goals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_ab_results'))
    )
    op.create_index(op.f('ix_case_ab_results_casebook_id'), 'case_ab_results', ['casebook_id'], unique=False)
    op.create_table('case_scorables',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=False),
    sa.Column('casebook_id', sa.Integer(), nullable=False),
    sa.Column('scorable_type', sa.String(length=16), nullable=False),
    sa.Column('scorable_id', sa.BigInteger(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=True),
    sa.Column('dedup_key', sa.String(length=64), nullable=True),
    sa.Column('created_at', UTCDateTime, nullable=False),
    sa.Column('meta', JSONType, nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_scorables_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['casebook_id'], ['casebooks.id'], name=op.f('fk_case_scorables_casebook_id_casebooks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_scorables')),
    sa.UniqueConstraint('case_id', 'scorable_type', 'scorable_id', 'role', name=op.f('uq_case_scorables_case_id_scorable_type_scorable_id_role')),
    sa.UniqueConstraint('casebook_id', 'dedup_key', name=op.f('uq_case_scorables_casebook_id_dedup_key'))
    )
    op.create_index('ix_case_scorables_scorable', 'case_scorables', ['scorable_type', 'scorable_id'], unique=False)
    op.create_table('goal_states',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('casebook_id', sa.Integer(), nullable=False),
    sa.Column('goal_id', sa.BigInteger(), nullable=False),
    sa.Column('champion_case_id', sa.BigInteger(), nullable=True),
    sa.Column('champion_quality', sa.Float(), nullable=True),
    sa.Column('run_ix', sa.Integer(), nullable=False),
    sa.Column('wins', sa.Integer(), nullable=False),
    sa.Column('losses', sa.Integer(), nullable=False),
    sa.Column('avg_delta', sa.Float(), nullable=True),
    sa.Column('trust', sa.Float(), nullable=False),
    sa.Column('updated_at', UTCDateTime, nullable=False),
    sa.Column('meta', JSONType, nullable=False),
    sa.ForeignKeyConstraint(['casebook_id'], ['casebooks.id'], name=op.f('fk_goal_states_casebook_id_casebooks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['champion_case_id'], ['cases.id'], name=op.f('fk_goal_states_champion_case_id_cases'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['goal_id'], ['goals.id'], name=op.f('fk_goal_states_goal_id_goals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_goal_states')),
    sa.UniqueConstraint('casebook_id', 'goal_id', name=op.f('uq_goal_states_casebook_id_goal_id'))
    )
    op.create_index(op.f('ix_goal_states_goal_id'), 'goal_states', ['goal_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_goal_states_goal_id'), table_name='goal_states')
    op.drop_table('goal_states')
    op.drop_index('ix_case_scorables_scorable', table_name='case_scorables')
    op.drop_table('case_scorables')
    op.drop_index(op.f('ix_case_ab_results_casebook_id'), table_name='case_ab_results')
    op.drop_table('case_ab_results')
    op.drop_index(op.f('ix_cases_goal_id'), table_name='cases')
    op.drop_index(op.f('ix_cases_conversation_id'), table_name='cases')
    op.drop_index('ix_cases_casebook_position', table_name='cases')
    op.drop_table('cases')
    op.drop_index(op.f('ix_casebooks_pipeline_run_id'), table_name='casebooks')
    op.drop_index(op.f('ix_casebooks_goal_id'), table_name='casebooks')
    op.drop_index(op.f('ix_casebooks_agent_name'), table_name='casebooks')
    op.drop_table('casebooks')
    op.drop_table('goals')
