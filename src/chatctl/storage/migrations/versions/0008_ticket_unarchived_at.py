"""tickets: when a ticket was last unarchived

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 20:30:00

A ticket is archived ``ticket_archive_after`` after the later of its creation
and its last unarchive, so that an unarchive sticks instead of being undone by
the next archive sweep.  Tickets unarchived before this revision count from
their creation, as they did.
"""

from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unarchived_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('unarchived_at')
