"""Reading tickets: the tickets list (R1, R13), one ticket in full, and the
ticket object of SPEC 2.3.  Nothing here writes; the actions live in
``chatctl.domain.tickets.actions``.

``tickets list`` and the tickets view of ``chats list`` are one list: the
same query, newest first, paged by the one keyset pager, so a cursor of one
continues the other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from chatctl.domain.audit.writer import audit_json
from chatctl.errors import NotFound
from chatctl.storage.models import Agent, AuditEvent, Chat, Customer, Ticket
from chatctl.storage.paging import Ordering, Page, keyset_page

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# The JSON keys of a ticket, in order (SPEC 2.3).
TICKET_KEYS = ("id", "chat_id", "status", "reason", "agent", "created_at", "closed_at", "archived_at")
LIST_NAME = "tickets"
NEWEST_FIRST = Ordering("new", Ticket.created_at, Ticket.id)


def ticket_query():
    """Tickets with their agent's handle, in the columns of ``ticket_json``."""
    return (
        select(Ticket.id, Ticket.chat_id, Ticket.status, Ticket.reason, Agent.handle.label("agent"),
               Ticket.created_at, Ticket.closed_at, Ticket.archived_at)
        .select_from(Ticket)
        .outerjoin(Agent, Agent.id == Ticket.agent_id)
    )


def ticket_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ticket in the JSON shape of SPEC 2.3, keys in that order."""
    return {key: row[key] for key in TICKET_KEYS}


@dataclass(frozen=True)
class TicketQuery:
    """Which tickets a list shows.  Times are aware UTC instants.

    ``archived``: ``exclude`` (the tickets view, R13), ``only`` or ``include``.
    """

    status: str | None = None
    archived: str = "exclude"
    agent_id: int | None = None
    reason: str | None = None
    channel: str | None = None
    created_before: dt.datetime | None = None
    created_after: dt.datetime | None = None


def list_tickets(connection: Connection, query: TicketQuery, *, limit: int | None, after: str | None) -> Page:
    """Tickets newest first (``created_at``, then id), as ticket objects.

    ``limit=None`` streams every match; otherwise a full page sets the
    cursor of the next one.
    """
    statement = ticket_query()
    if query.archived == "exclude":
        statement = statement.where(Ticket.archived_at.is_(None))
    elif query.archived == "only":
        statement = statement.where(Ticket.archived_at.is_not(None))
    if query.status:
        statement = statement.where(Ticket.status == query.status)
    if query.agent_id is not None:
        statement = statement.where(Ticket.agent_id == query.agent_id)
    if query.reason:
        statement = statement.where(Ticket.reason == query.reason)
    if query.channel is not None:
        statement = statement.where(Ticket.chat_id.in_(select(Chat.id).where(Chat.channel == query.channel)))
    if query.created_before is not None:
        statement = statement.where(Ticket.created_at < query.created_before)
    if query.created_after is not None:
        statement = statement.where(Ticket.created_at >= query.created_after)
    return keyset_page(connection, statement, NEWEST_FIRST, list_name=LIST_NAME, after=after, limit=limit,
                       decorate=lambda _connection, batch: [ticket_json(row._mapping) for row in batch])


def show_ticket(connection: Connection, ticket_id: int) -> dict[str, Any]:
    """The ticket, a brief of its source chat, and its audit history (oldest first)."""
    row = connection.execute(ticket_query().where(Ticket.id == ticket_id)).first()
    if row is None:
        raise NotFound(f"no ticket {ticket_id}")
    record = ticket_json(row._mapping)
    chat = connection.execute(
        select(Chat.id, Chat.status, Chat.channel, Customer.display_name.label("customer"),
               Agent.handle.label("agent"), Chat.created_at, Chat.last_activity_at, Chat.closed_at)
        .select_from(Chat)
        .join(Customer, Customer.id == Chat.customer_id)
        .outerjoin(Agent, Agent.id == Chat.agent_id)
        .where(Chat.id == row.chat_id)
    ).first()
    record["chat"] = dict(chat._mapping) if chat is not None else None
    history = connection.execute(
        select(AuditEvent.__table__)
        .where(AuditEvent.entity_type == "ticket", AuditEvent.entity_id == str(ticket_id))
        .order_by(AuditEvent.id)
    )
    record["history"] = [audit_json(event._mapping) for event in history]
    return record
