"""The desk's tables (SPEC 1.1), as SQLAlchemy Core tables.

The schema is created and changed only by the Alembic revisions in
``chatctl/storage/migrations``; these tables describe it for queries.
Every timestamp is stored timezone-aware in UTC (``UTCDateTime``), so that
comparisons with cutoffs computed in Python are plain index range scans on
both PostgreSQL and SQLite.  Why each index exists: ``docs/schema.md``.
The values a status, role or kind column takes are listed once, in
``chatctl.vocabulary``; ``db check`` reports rows holding anything else.

Core, not the ORM: chatctl changes rows with set-based statements and never
loads objects, and mapping classes cost every command about a fifth of a
second before its first query.  ``Chat.status`` reads as it would on a mapped
class (a ``Table`` with attribute access to its columns), ``Chat.__table__``
is the table, and ``select(Chat)`` selects every column.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime in, an aware UTC datetime out, on every backend.

    SQLite has no time zone type: values are stored as naive UTC text of one
    fixed width, which keeps lexical order equal to time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the database layer")
        value = value.astimezone(dt.timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        """The conversion for each value read, chosen once per query and database.

        What the driver hands over is known: SQLite gives the stored text,
        PostgreSQL an aware datetime already in UTC (sessions run with
        ``TimeZone=UTC``).  Exports read millions of timestamps, so the common
        case is one call, not SQLAlchemy's text parsing followed by
        ``process_result_value``.
        """
        utc = dt.timezone.utc
        general = self.process_result_value
        if dialect.name == "sqlite":
            parse = dt.datetime.fromisoformat

            def from_text(value: Any) -> Any:
                if value.__class__ is str:
                    try:
                        # Stored naive UTC: read it as UTC in one step (parsing is cheaper than replace()).
                        return parse(value + "+00:00")
                    except ValueError:  # text with an offset of its own
                        pass
                return None if value is None else general(value, dialect)

            return from_text

        def from_datetime(value: Any) -> Any:
            if value is None or value.tzinfo is utc:
                return value
            return general(value, dialect)

        return from_datetime


class JSONValue(TypeDecorator):
    """JSON, stored as ``jsonb`` on PostgreSQL (imported only there: SQLite never pays for it)."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


ChatId = BigInteger().with_variant(Integer(), "sqlite")
metadata = MetaData()


class _Columns:
    """A table whose columns read as attributes: ``Chat.status`` is ``chats.c.status``."""

    def __init__(self, table: Table) -> None:
        self.__table__ = table

    def __getattr__(self, name: str) -> Column:
        try:
            return self.__table__.c[name]
        except KeyError:
            raise AttributeError(f"table {self.__table__.name} has no column {name!r}") from None

    def __clause_element__(self) -> Table:
        return self.__table__

    def __repr__(self) -> str:
        return f"<table {self.__table__.name}>"


def _table(name: str, *columns: Any) -> _Columns:
    return _Columns(Table(name, metadata, *columns))


def _required(name: str, type_: Any, *args: Any, **kwargs: Any) -> Column:
    return Column(name, type_, *args, nullable=False, **kwargs)


def _optional(name: str, type_: Any, *args: Any, **kwargs: Any) -> Column:
    return Column(name, type_, *args, nullable=True, **kwargs)


# The condition of the indexes of open chats, spelled so that SQLite uses them: it takes a
# partial index only when a term of the query's condition is a term of the index's (so a
# query reads open chats as ``(status = 'live' OR status = 'pending')``, not with IN).
OPEN_CHATS = "status = 'live' OR status = 'pending'"


def _partial(name: str, columns: list[str], where: str, *, only: str | None = None) -> Index:
    """An index of the rows matching ``where`` only; ``only``: the one database whose revisions
    create it (``"postgresql"``), None for both.

    The condition is kept as ``info``, not as ``postgresql_where`` and
    ``sqlite_where``: those make SQLAlchemy import every dialect they name
    when this module loads (PostgreSQL's costs a SQLite command 50 ms).  The
    revisions create the indexes; tests/test_db.py checks each condition here
    against the database's own, which Alembic's comparison does not look at,
    and leaves an ``only`` index out of the other database's comparison.
    """
    return Index(name, *columns, info={"where": where, **({"only": only} if only else {})})


Agent = _table(
    "agents",
    Column("id", Integer, primary_key=True),
    _required("handle", String(64), unique=True),
    _required("name", String(200)),
    _required("role", String(16), default="agent"),
    _required("presence", String(16), default="offline"),
    _required("active", Boolean, default=True),
    _required("created_at", UTCDateTime),
    _optional("presence_changed_at", UTCDateTime),
)

Customer = _table(
    "customers",
    Column("id", ChatId, primary_key=True),
    _required("display_name", String(200)),
    _required("address", String(200), unique=True),
    _required("created_at", UTCDateTime),
    # chats filter customer=NAME matches the display name or the address (revision 0002).
    Index("ix_customers_display_name", "display_name"),
)

Chat = _table(
    "chats",
    Column("id", ChatId, primary_key=True),
    _required("customer_id", ChatId, ForeignKey("customers.id")),
    _required("channel", String(32)),
    _required("status", String(16)),
    _optional("agent_id", Integer, ForeignKey("agents.id")),
    _optional("assigned_at", UTCDateTime),
    _required("reassign_count", Integer, default=0, server_default=text("0")),
    _required("flagged", Boolean, default=False, server_default=text("false")),
    _optional("flagged_by", String(100)),
    _optional("flagged_at", UTCDateTime),
    _optional("flag_note", Text),
    _required("created_at", UTCDateTime),
    _optional("last_customer_message_at", UTCDateTime),
    _optional("last_agent_message_at", UTCDateTime),
    _required("last_activity_at", UTCDateTime),
    _optional("agent_seen_at", UTCDateTime),
    _optional("pending_since", UTCDateTime),
    _optional("closed_at", UTCDateTime),
    _optional("closed_by", String(16)),
    _optional("close_reason", String(200)),
    # Each index that serves one status holds only that status's chats (revision 0007):
    # a chat that closes leaves them, so a status change writes fewer index entries.
    # live and pending views by customer activity, --unread, the agent-timeout sweep
    _partial("ix_chats_open_last_customer", ["status", "last_customer_message_at", "id"],
             OPEN_CHATS),
    # the inactivity sweep and idle filters; the pending sweep
    _partial("ix_chats_live_activity", ["last_activity_at", "id"], "status = 'live'"),
    _partial("ix_chats_pending_since", ["pending_since", "id"], "status = 'pending'"),
    # the closed view and closed filters
    _partial("ix_chats_closed", ["closed_at", "id"], "closed_at IS NOT NULL"),
    # status: every figure of the open chats from the index alone, tagged chats merged in id
    # order (revision 0009; PostgreSQL only: SQLite's planner does not use it)
    _partial("ix_chats_open_glance", ["id", "created_at", "last_activity_at", "last_customer_message_at",
                                      "last_agent_message_at", "agent_seen_at", "agent_id", "flagged", "status"],
             OPEN_CHATS, only="postgresql"),
    # every view sorted by new chat, age and created filters
    Index("ix_chats_status_created", "status", "created_at", "id"),
    # one agent's open chats, by customer activity; agent load, unassigned chats (revision 0010;
    # one agent's closed chats: ix_chats_closed)
    _partial("ix_chats_open_agent_last_customer", ["agent_id", "status", "last_customer_message_at", "id"],
             OPEN_CHATS),
    Index("ix_chats_customer", "customer_id"),
)

Message = _table(
    "messages",
    Column("id", ChatId, primary_key=True),
    _required("chat_id", ChatId, ForeignKey("chats.id", ondelete="CASCADE")),
    _required("direction", String(16)),
    _optional("agent_id", Integer, ForeignKey("agents.id")),
    _required("kind", String(16), default="text"),
    _optional("template_name", String(200)),
    _optional("template_params", JSONValue),
    _required("body", Text, default=""),
    _required("created_at", UTCDateTime),
    Index("ix_messages_chat_created_direction", "chat_id", "created_at", "direction"),
)

Comment = _table(
    "comments",
    Column("id", ChatId, primary_key=True),
    _required("chat_id", ChatId, ForeignKey("chats.id", ondelete="CASCADE")),
    _required("agent_id", Integer, ForeignKey("agents.id")),
    _required("body", Text),
    _required("created_at", UTCDateTime),
    Index("ix_comments_chat", "chat_id"),
)

# A tag: ``@handle`` in a comment.  Puts the chat in that agent's tagged view.
CommentMention = _table(
    "comment_mentions",
    Column("comment_id", ChatId, ForeignKey("comments.id", ondelete="CASCADE"), primary_key=True),
    Column("agent_id", Integer, ForeignKey("agents.id"), primary_key=True),
    # Denormalised so the tagged view and the R9 clean-up need no join.
    _required("chat_id", ChatId, ForeignKey("chats.id", ondelete="CASCADE")),
    Index("ix_mentions_agent_chat", "agent_id", "chat_id"),
    Index("ix_mentions_chat", "chat_id"),
)

Notification = _table(
    "notifications",
    Column("id", ChatId, primary_key=True),
    _required("agent_id", Integer, ForeignKey("agents.id")),
    _required("kind", String(32), default="tagged"),
    _optional("chat_id", ChatId, ForeignKey("chats.id", ondelete="CASCADE")),
    # Comments are ephemeral (R9); the bell keeps the notification, read.
    _optional("comment_id", ChatId, ForeignKey("comments.id", ondelete="SET NULL")),
    _required("created_at", UTCDateTime),
    _optional("read_at", UTCDateTime),
    Index("ix_notifications_agent_read", "agent_id", "read_at", "id"),
    Index("ix_notifications_chat", "chat_id"),
    # ON DELETE SET NULL from comments: the R9 purge finds them by index (revision 0003)
    Index("ix_notifications_comment", "comment_id"),
)

Ticket = _table(
    "tickets",
    Column("id", ChatId, primary_key=True),
    _required("chat_id", ChatId, ForeignKey("chats.id"), unique=True),
    _required("status", String(16), default="open"),
    _required("reason", String(32)),
    _optional("agent_id", Integer, ForeignKey("agents.id")),
    _required("created_at", UTCDateTime),
    _optional("closed_at", UTCDateTime),
    _optional("archived_at", UTCDateTime),
    # The last unarchive: the archive sweep counts from it when it is later than created_at (D3).
    _optional("unarchived_at", UTCDateTime),
    Index("ix_tickets_status_created", "status", "created_at", "id"),
    Index("ix_tickets_archived_created", "archived_at", "created_at", "id"),
    Index("ix_tickets_created", "created_at", "id"),
    Index("ix_tickets_agent", "agent_id"),
)

Preference = _table(
    "preferences",
    Column("key", String(64), primary_key=True),
    _required("value", Text),
    _required("updated_at", UTCDateTime),
    _required("updated_by", String(100)),
)

AuditEvent = _table(
    "audit_events",
    Column("id", ChatId, primary_key=True),
    _required("at", UTCDateTime),
    _required("actor", String(100)),
    _required("action", String(64)),
    _required("entity_type", String(32)),
    _required("entity_id", String(64)),
    _optional("before", JSONValue),
    _optional("after", JSONValue),
    _required("operation_id", String(32)),
    _optional("reason", Text),
    Index("ix_audit_entity", "entity_type", "entity_id", "id"),
    Index("ix_audit_operation", "operation_id", "id"),
    Index("ix_audit_at", "at"),
)

SweepRun = _table(
    "sweep_runs",
    Column("id", String(32), primary_key=True),
    _required("jobs", String(200)),
    _required("as_of", UTCDateTime),
    _required("dry_run", Boolean),
    _required("started_at", UTCDateTime),
    _optional("finished_at", UTCDateTime),
    _required("status", String(16)),
    _optional("counts", JSONValue),
    _required("host", String(200)),
    _required("pid", Integer),
    _optional("shard", String(16)),
    _required("actor", String(100), default="system"),
    Index("ix_sweep_runs_started", "started_at"),
)

# One invocation that changed data (D10); its id is the operation id of its audit events.
Operation = _table(
    "operations",
    Column("id", String(32), primary_key=True),
    _required("command", Text),
    _required("actor", String(100)),
    _required("host", String(200)),
    _required("pid", Integer),
    _required("started_at", UTCDateTime),
    _optional("finished_at", UTCDateTime),
    _optional("lease_expires_at", UTCDateTime),
    _required("status", String(16)),
    _optional("counts", JSONValue),
    _optional("pruned_at", UTCDateTime),
    _optional("pruned_by", String(32)),
    Index("ix_operations_started", "started_at", "id"),
    Index("ix_operations_actor_started", "actor", "started_at", "id"),
    # the few `running` rows, looked for by every new operation (dead ones are marked failed)
    Index("ix_operations_status", "status"),
)

# A run lock with an expiry: works on SQLite and on engines without advisory locks.
SweepLease = _table(
    "sweep_leases",
    Column("name", String(100), primary_key=True),
    _required("holder", String(200)),
    _required("acquired_at", UTCDateTime),
    _required("expires_at", UTCDateTime),
)
