"""message direction in the per-chat message index

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 18:00:00

Response times (``chatctl status``, ``chatctl report``) look up each chat's
first customer message and first agent message.  With the direction in the
index beside ``(chat_id, created_at)`` those lookups read the index alone,
never the message rows; ``chats show`` keeps its order by
``(chat_id, created_at)``.  The wider index replaces the old one, so a
message insert still updates one index for it, not two.
"""

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_chat_created_direction', ['chat_id', 'created_at', 'direction'],
                              unique=False)
        batch_op.drop_index('ix_messages_chat_created')


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_chat_created', ['chat_id', 'created_at'], unique=False)
        batch_op.drop_index('ix_messages_chat_created_direction')
