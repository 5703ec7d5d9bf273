"""index for one agent's live view

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 21:40:00

``chats list live --agent H`` (newest customer activity first) walked the
whole live range of ``(status, last_customer_message_at, id)`` to find one
agent's chats: tens of milliseconds at 200,000 chats, growing with the desk.
``(agent_id, status, last_customer_message_at, id)`` reads just that agent's
page.
"""

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.create_index('ix_chats_agent_status_last_customer',
                              ['agent_id', 'status', 'last_customer_message_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.drop_index('ix_chats_agent_status_last_customer')
