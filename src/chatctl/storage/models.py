"""The desk's tables (SPEC 1.1), as SQLAlchemy 2 models.

The schema is created and changed only by the Alembic revisions in
``chatctl/storage/migrations``; these models describe it for queries.
Every timestamp is stored timezone-aware in UTC (``UTCDateTime``), so that
comparisons with cutoffs computed in Python are plain index range scans on
both PostgreSQL and SQLite.  Why each index exists: ``docs/schema.md``.
The values a status, role or kind column takes are listed once, in
``chatctl.vocabulary``; ``db check`` reports rows holding anything else.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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


JSONValue = JSON().with_variant(JSONB(), "postgresql")
ChatId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handle: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="agent")
    presence: Mapped[str] = mapped_column(String(16), default="offline")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    presence_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(ChatId, primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    # chats filter customer=NAME matches the display name or the address (revision 0002).
    __table_args__ = (Index("ix_customers_display_name", "display_name"),)


class Chat(Base):
    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(ChatId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    assigned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reassign_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    flagged_by: Mapped[str | None] = mapped_column(String(100))
    flagged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    flag_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_customer_message_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_agent_message_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_activity_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    agent_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    pending_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(16))
    close_reason: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        # live view sorted by new customer activity / by new chat, and the
        # inactivity, agent-timeout and pending sweeps: all start from status.
        Index("ix_chats_status_last_customer", "status", "last_customer_message_at", "id"),
        Index("ix_chats_status_created", "status", "created_at", "id"),
        Index("ix_chats_status_activity", "status", "last_activity_at", "id"),
        Index("ix_chats_status_pending", "status", "pending_since", "id"),
        Index("ix_chats_agent_status", "agent_id", "status"),
        # one agent's live view by customer activity (revision 0004)
        Index("ix_chats_agent_status_last_customer", "agent_id", "status", "last_customer_message_at", "id"),
        Index("ix_chats_customer", "customer_id"),
        Index("ix_chats_closed_at", "closed_at"),
    )


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(ChatId, primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    kind: Mapped[str] = mapped_column(String(16), default="text")
    template_name: Mapped[str | None] = mapped_column(String(200))
    template_params: Mapped[dict | None] = mapped_column(JSONValue)
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    # chats show (by chat, in time order), and each chat's first customer and agent
    # message for response times, from the index alone (revision 0005)
    __table_args__ = (Index("ix_messages_chat_created_direction", "chat_id", "created_at", "direction"),)


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(ChatId, primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_comments_chat", "chat_id"),)


class CommentMention(Base):
    """A tag: ``@handle`` in a comment.  Puts the chat in that agent's tagged view."""

    __tablename__ = "comment_mentions"

    comment_id: Mapped[int] = mapped_column(
        ForeignKey("comments.id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    # Denormalised so the tagged view and the R9 clean-up need no join.
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))

    __table_args__ = (
        Index("ix_mentions_agent_chat", "agent_id", "chat_id"),
        Index("ix_mentions_chat", "chat_id"),
    )


class Notification(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(ChatId, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    kind: Mapped[str] = mapped_column(String(32), default="tagged")
    chat_id: Mapped[int | None] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    # Comments are ephemeral (R9); the bell keeps the notification, read.
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_notifications_agent_read", "agent_id", "read_at", "id"),
        Index("ix_notifications_chat", "chat_id"),
        # ON DELETE SET NULL from comments: the R9 purge finds them by index (revision 0003)
        Index("ix_notifications_comment", "comment_id"),
    )


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(ChatId, primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    reason: Mapped[str] = mapped_column(String(32))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    archived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_tickets_status_created", "status", "created_at", "id"),
        Index("ix_tickets_archived_created", "archived_at", "created_at", "id"),
        Index("ix_tickets_created", "created_at", "id"),
        Index("ix_tickets_agent", "agent_id"),
    )


class Preference(Base):
    __tablename__ = "preferences"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(100))


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(ChatId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict | None] = mapped_column(JSONValue)
    after: Mapped[dict | None] = mapped_column(JSONValue)
    operation_id: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_audit_entity", "entity_type", "entity_id", "id"),
        Index("ix_audit_operation", "operation_id", "id"),
        Index("ix_audit_at", "at"),
    )


class SweepRun(Base):
    __tablename__ = "sweep_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    jobs: Mapped[str] = mapped_column(String(200))
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    dry_run: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    counts: Mapped[dict | None] = mapped_column(JSONValue)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    shard: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100), default="system")

    __table_args__ = (Index("ix_sweep_runs_started", "started_at"),)


class Operation(Base):
    """One invocation that changed data (D10); its id is the operation id of its audit events."""

    __tablename__ = "operations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    command: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    counts: Mapped[dict | None] = mapped_column(JSONValue)
    pruned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    pruned_by: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_operations_started", "started_at", "id"),
        Index("ix_operations_actor_started", "actor", "started_at", "id"),
        # the few `running` rows, looked for by every new operation (dead ones are marked failed)
        Index("ix_operations_status", "status"),
    )


class SweepLease(Base):
    """A run lock with an expiry: works on SQLite and on engines without advisory locks."""

    __tablename__ = "sweep_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
