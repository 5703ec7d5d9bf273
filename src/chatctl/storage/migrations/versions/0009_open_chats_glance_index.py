"""chats: the open chats in id order, with every column status counts (PostgreSQL)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 18:00:00

``chatctl status`` counts the live, pending and tagged views, their markers
(new, unread, flagged, unassigned), each agent's live and unanswered chats,
the live chats by idle time and the open chats started in the last 24 hours.
Without this index that is a scan of the whole chats table (on the
1,000,000-chat demo desk a third of the chats are open, spread over every
page); with it, one index-only pass over the open chats alone, merged in id
order with the tagged chats of ``comment_mentions (chat_id)``.

The index holds live and pending chats only, so a chat that closes or
converts leaves it, as it leaves the other indexes of open chats (revision
0007).  Its columns are key columns, not ``INCLUDE``d: after ``id``, which
is unique, PostgreSQL keeps only ``id`` in the inner pages either way.

What it costs: one more index entry for every change to an open chat that is
not a heap-only update (a new chat, a message, an assignment), and a flag or
an agent's ``seen`` can no longer be one.  Measured: docs/benchmarks.md ("The
desk at a glance").  On a desk of a million chats the upgrade builds it in
about a second, holding a write lock on chats meanwhile.

PostgreSQL only: SQLite's planner reads the open chats for the same
statement through ``(agent_id, status, ...)`` and never picks this index,
which would only make each write to an open chat dearer (a third dearer,
measured on a 100,000-chat desk).
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

NAME = 'ix_chats_open_glance'
COLUMNS = ['id', 'created_at', 'last_activity_at', 'last_customer_message_at', 'last_agent_message_at',
           'agent_seen_at', 'agent_id', 'flagged', 'status']
OPEN = "status = 'live' OR status = 'pending'"


def _postgresql() -> bool:
    return op.get_context().dialect.name == 'postgresql'


def upgrade() -> None:
    if _postgresql():
        op.create_index(NAME, 'chats', COLUMNS, unique=False, postgresql_where=sa.text(OPEN))


def downgrade() -> None:
    if _postgresql():
        op.drop_index(NAME, table_name='chats')
