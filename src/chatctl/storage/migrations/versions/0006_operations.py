"""the operations record

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 12:00:00

One row per invocation that changes data (bulk actions, sweeps, reverts,
ingest, drain, preference and agent changes): its id is the operation id its
audit events carry, so ``audit operations`` can answer "what did that script
just do, and what is its id" without digging through the trail.

``lease_expires_at`` lets the next command on another host tell a running
operation from one whose process died; ``pruned_at``/``pruned_by`` record that
``audit prune`` removed (some of) its events, which makes it impossible to
revert.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('operations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('command', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('host', sa.String(length=200), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('counts', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('pruned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pruned_by', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('operations', schema=None) as batch_op:
        batch_op.create_index('ix_operations_started', ['started_at', 'id'], unique=False)
        batch_op.create_index('ix_operations_actor_started', ['actor', 'started_at', 'id'], unique=False)
        batch_op.create_index('ix_operations_status', ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('operations', schema=None) as batch_op:
        batch_op.drop_index('ix_operations_status')
        batch_op.drop_index('ix_operations_actor_started')
        batch_op.drop_index('ix_operations_started')
    op.drop_table('operations')
