"""indexes for big desks: customer filter by display name

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 20:20:00

``chats filter customer=NAME`` matches the display name or the address; the
address has its unique index, the display name had none, so every customer
filter read the whole customers table (one customer per chat or so on a
large desk).  With both columns indexed the OR becomes a BitmapOr of two
index scans.
"""

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index('ix_customers_display_name', ['display_name'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_display_name')
