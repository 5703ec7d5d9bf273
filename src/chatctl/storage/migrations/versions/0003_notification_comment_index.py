"""index notifications.comment_id: deleting comments (R9) without a seq scan per comment

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 20:40:00

``notifications.comment_id`` references ``comments`` with ``ON DELETE SET
NULL``.  Every comment removed when a chat closes or converts (R9) makes
PostgreSQL find the notifications pointing at it; without an index that is a
sequential scan of ``notifications`` per deleted comment.  On a 1,000,000-chat
desk one inactivity-sweep batch of 2,000 chats spent 4.8 of its 5.2 seconds
there; with the index the whole batch takes a fraction of a second.
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_comment', ['comment_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_comment')
