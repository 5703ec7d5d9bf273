"""chats: one agent's chats indexed while they are open only

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 09:00:00

``(agent_id, status, last_customer_message_at, id)`` (revision 0004) held
every chat, so every close and conversion - the inactivity and pending
sweeps' whole work - wrote a new entry into it.  What reads it reads open
chats: one agent's live and pending views, the agent loads of assignment
(R5), a drain's chats, the unassigned chats of the ``unattended`` sweep and
``status``.  It now holds live and pending chats only, under the name
``ix_chats_open_agent_last_customer``, and a chat that closes or converts
leaves it as it leaves the other indexes of open chats (revision 0007).

What it costs: one agent's closed chats (``chats list closed --agent H``)
are found through the closed view's own index, ``(closed_at, id)``, newest
first, keeping that agent's: an agent who closed a tenth of the desk's chats
fills a page of 50 from about 500 entries.  An agent with almost no closed
chats makes that a walk of every closed chat, which PostgreSQL does as a
scan of the table (measured: docs/schema.md).

The new index is built before the old one is dropped: the agent's views keep
an index within the transaction.  On a desk of a million chats the upgrade
takes about a second, holding a write lock on chats meanwhile.
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

OPEN = "status = 'live' OR status = 'pending'"
COLUMNS = ['agent_id', 'status', 'last_customer_message_at', 'id']
NEW = 'ix_chats_open_agent_last_customer'
OLD = 'ix_chats_agent_status_last_customer'


def upgrade() -> None:
    op.create_index(NEW, 'chats', COLUMNS, unique=False,
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
    op.drop_index(OLD, table_name='chats')


def downgrade() -> None:
    op.create_index(OLD, 'chats', COLUMNS, unique=False)
    op.drop_index(NEW, table_name='chats')
