"""chats: partial indexes per status, one redundant index gone

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 12:00:00

Every change of a chat's status (a close, a conversion, a reassignment) wrote
a new entry into each of the chats table's eight secondary indexes, four of
them leading with ``status`` and serving only the live or pending chats.  On
PostgreSQL an UPDATE that changes an indexed column adds an entry to every
index of the table, except the partial indexes whose condition the new row
fails.  So the indexes that serve one status now hold only that status's
rows, and a chat that closes leaves them:

* ``(status, last_customer_message_at, id)`` for live and pending chats only
  (the live and pending views by customer activity, --unread, the
  agent-timeout sweep);
* ``(last_activity_at, id)`` for live chats only (the inactivity sweep, idle
  filters), ``(pending_since, id)`` for pending chats only (the pending sweep);
* ``(closed_at, id)`` for chats that have a ``closed_at`` (the closed view,
  closed filters): live chats no longer fill it with NULLs;
* ``(agent_id, status)`` is dropped: ``(agent_id, status,
  last_customer_message_at, id)`` (revision 0004) begins with the same
  columns and serves every query it served.

``(status, created_at, id)``, ``(agent_id, status, last_customer_message_at,
id)`` and ``(customer_id)`` stay as they were: the new-chat sort and the age
filters of every view, any agent's chats, a customer's chats.  The
predicates are spelled ``status = 'live' OR status = 'pending'`` because
SQLite uses a partial index only when the query's condition matches a term
of the index's. On a desk of a million chats the upgrade builds the four
indexes in seconds, holding a write lock on chats meanwhile.
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

OPEN = "status = 'live' OR status = 'pending'"
LIVE = "status = 'live'"
PENDING = "status = 'pending'"
CLOSED = "closed_at IS NOT NULL"

NEW = [
    ('ix_chats_open_last_customer', ['status', 'last_customer_message_at', 'id'], OPEN),
    ('ix_chats_live_activity', ['last_activity_at', 'id'], LIVE),
    ('ix_chats_pending_since', ['pending_since', 'id'], PENDING),
    ('ix_chats_closed', ['closed_at', 'id'], CLOSED),
]
OLD = [
    ('ix_chats_status_last_customer', ['status', 'last_customer_message_at', 'id']),
    ('ix_chats_status_activity', ['status', 'last_activity_at', 'id']),
    ('ix_chats_status_pending', ['status', 'pending_since', 'id']),
    ('ix_chats_closed_at', ['closed_at']),
    ('ix_chats_agent_status', ['agent_id', 'status']),
]


def upgrade() -> None:
    # The new indexes first: every view keeps an index within the transaction.
    for name, columns, where in NEW:
        op.create_index(name, 'chats', columns, unique=False,
                        postgresql_where=sa.text(where), sqlite_where=sa.text(where))
    for name, _columns in OLD:
        op.drop_index(name, table_name='chats')


def downgrade() -> None:
    for name, columns in OLD:
        op.create_index(name, 'chats', columns, unique=False)
    for name, _columns, _where in NEW:
        op.drop_index(name, table_name='chats')
