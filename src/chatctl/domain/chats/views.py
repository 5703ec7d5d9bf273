"""Reading chats: the five views (R1, R2), filters, ``chats show`` and the
reply window (R11), and the JSON shapes of SPEC 2.3.

Lists page by keyset on the columns of an index (``chatctl.storage.paging``)
and stream in keyset batches, so memory stays flat on any desk size.
Nothing here writes; the actions live in ``chatctl.domain.chats.actions``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, and_, any_, func, or_, select, type_coerce

from chatctl.batch_sizes import READ
from chatctl.domain.audit.writer import audit_json
from chatctl.domain.prefs import get_preference
from chatctl.domain.tickets.views import TicketQuery, list_tickets, ticket_json, ticket_query
from chatctl.errors import NotFound, UsageError
from chatctl.parsing.timeparse import format_duration
from chatctl.storage.models import Agent, AuditEvent, Chat, Comment, CommentMention, Customer, Message, Ticket
from chatctl.storage.paging import Ordering, Page, keyset_page
from chatctl.vocabulary import OPEN_CHAT_STATUSES, SORTS, VIEWS, check_channel

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# The JSON keys of a chat, in order (SPEC 2.3).
CHAT_KEYS = ("id", "status", "channel", "customer", "agent", "flagged", "new", "unread", "created_at",
             "last_activity_at", "last_customer_message_at", "last_agent_message_at", "pending_since",
             "closed_at", "closed_by", "close_reason", "ticket_id")
# WhatsApp lets a business send free text only within 24 hours of the
# customer's last message (its "customer-service window"); after that only
# pre-approved templates are delivered.
WHATSAPP_WINDOW = dt.timedelta(hours=24)
# How each chat view can be sorted: newest first by one of these columns (R2).
ORDERINGS = {
    "activity": Ordering("activity", Chat.last_customer_message_at, Chat.id, nullable=True),
    "new": Ordering("new", Chat.created_at, Chat.id),
    "closed": Ordering("closed", Chat.closed_at, Chat.id, nullable=True),
}


# -- the chat object of SPEC 2.3 ----------------------------------------------------
def waiting_since(chat: Mapping[str, Any]) -> dt.datetime | None:
    """Since when the customer has waited for an answer (R5's unanswered), or None.

    ``chat`` is a chat object (``chat_json``): its last customer message when no
    agent message came after it.
    """
    last_customer, last_agent = chat["last_customer_message_at"], chat["last_agent_message_at"]
    if last_customer is None or (last_agent is not None and last_agent >= last_customer):
        return None
    return last_customer


# R2 lives in SQL: the same conditions mark each listed chat (chat_query), filter the
# views (--new, --unread) and count the desk (status).
def new_condition(chat):
    """R2: no agent has replied yet (``chat``: the Chat table or an alias)."""
    return chat.last_agent_message_at.is_(None)


def unread_condition(chat):
    """R2: the customer wrote after the agent last saw the chat (never seen counts as unseen)."""
    return and_(chat.last_customer_message_at.is_not(None),
                or_(chat.agent_seen_at.is_(None), chat.last_customer_message_at > chat.agent_seen_at))


def chat_query():
    """A chat object per row: exactly ``CHAT_KEYS`` in order, customer, agent handle and ticket joined.

    The database computes ``new`` and ``unread``, so a row becomes its JSON
    object by pairing it with ``CHAT_KEYS``: exports of a million chats spend
    their time in the driver, not in building dictionaries.
    """
    return (
        select(Chat.id, Chat.status, Chat.channel, Customer.address.label("customer"),
               Agent.handle.label("agent"), Chat.flagged, type_coerce(new_condition(Chat), Boolean).label("new"),
               type_coerce(unread_condition(Chat), Boolean).label("unread"), Chat.created_at, Chat.last_activity_at,
               Chat.last_customer_message_at, Chat.last_agent_message_at, Chat.pending_since, Chat.closed_at,
               Chat.closed_by, Chat.close_reason, Ticket.id.label("ticket_id"))
        .select_from(Chat)
        .join(Customer, Customer.id == Chat.customer_id)
        .outerjoin(Agent, Agent.id == Chat.agent_id)
        .outerjoin(Ticket, Ticket.chat_id == Chat.id)
    )


def chat_json(row: Any) -> dict[str, Any]:
    """A row of ``chat_query`` in the JSON shape of SPEC 2.3 (exactly ``CHAT_KEYS``, in that order)."""
    return dict(zip(CHAT_KEYS, row))


# -- the views (R1, R2) -------------------------------------------------------------
@dataclass(frozen=True)
class ViewOptions:
    view: str = "live"
    agent: str | None = None
    channel: str | None = None
    flagged: bool | None = None
    new: bool = False
    unread: bool = False
    sort: str | None = None
    limit: int | None = 50
    after: str | None = None


def default_sort(view: str) -> str:
    return "closed" if view == "closed" else "activity"


def _agent_id(connection: Connection, handle: str) -> int:
    from chatctl.domain.agents.roster import require_agent_id

    return require_agent_id(connection, handle, active_only=False)


def list_view(connection: Connection, options: ViewOptions, *, flat: bool = False) -> Page:
    """Rows of one of the five views (R1), as chat (or ticket) JSON objects.

    The tagged view lists the open chats ``options.agent`` is tagged in.
    ``flat`` writes the tagged people of the tagged view as one text cell
    ("bob (online), carol (offline)") for tables and tsv.
    """
    if options.view not in VIEWS:
        raise UsageError(f"unknown view '{options.view}': use one of {', '.join(VIEWS)}")
    if options.channel is not None:
        try:
            check_channel(options.channel)  # any channel ingest accepts, known or not (D5)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if options.view == "tickets":
        return _list_tickets(connection, options)
    sort = options.sort or default_sort(options.view)
    if sort not in SORTS:
        raise UsageError(f"unknown sort '{sort}': use one of {', '.join(SORTS)}")
    query = chat_query()
    if options.view == "tagged":
        if options.agent is None:
            raise UsageError("the tagged view lists one agent's tags: name the agent")
        query = query.where(Chat.status.in_(OPEN_CHAT_STATUSES),
                            _in_tagged_chats(connection, Chat.id, _agent_id(connection, options.agent)))
    else:
        query = query.where(Chat.status == options.view)
        if options.agent is not None:
            query = query.where(Chat.agent_id == _agent_id(connection, options.agent))
    if options.channel is not None:
        query = query.where(Chat.channel == options.channel)
    if options.flagged is not None:
        query = query.where(Chat.flagged.is_(options.flagged))
    if options.new:
        query = query.where(new_condition(Chat))
    if options.unread:
        query = query.where(unread_condition(Chat))

    def decorate(conn: Connection, batch: Sequence[Any]) -> list[dict[str, Any]]:
        rows = [chat_json(row) for row in batch]
        if options.view == "tagged":
            people = tagged_people(conn, [row["id"] for row in rows])
            for row in rows:
                tagged = people.get(row["id"], [])
                row["tagged"] = ", ".join(f"{p['handle']} ({p['presence']})" for p in tagged) if flat else tagged
        return rows

    return keyset_page(connection, query, ORDERINGS[sort], list_name=options.view, after=options.after,
                       limit=options.limit, decorate=decorate)


def _in_tagged_chats(connection: Connection, chat_id, agent_id: int):
    """``chat_id`` is one the agent is tagged in.

    On PostgreSQL as ``= ANY(ARRAY(subquery))``: the agent's few tags are read
    first and each chat fetched by primary key.  A plain ``IN (subquery)``
    lets the planner hash-join against every live and pending chat instead,
    which grows with the desk rather than with the agent's tags.
    """
    tagged = select(CommentMention.chat_id).where(CommentMention.agent_id == agent_id)
    if connection.dialect.name == "postgresql":
        return chat_id == any_(func.array(tagged.scalar_subquery()))
    return chat_id.in_(tagged)


def tagged_people(connection: Connection, chat_ids: Sequence[int]) -> dict[int, list[dict[str, str]]]:
    """Who is tagged in each chat, with their presence (R7: online or offline)."""
    if not chat_ids:
        return {}
    people: dict[int, list[dict[str, str]]] = {}
    query = (select(CommentMention.chat_id, Agent.handle, Agent.presence).distinct()
             .join(Agent, Agent.id == CommentMention.agent_id)
             .where(CommentMention.chat_id.in_(list(chat_ids)))
             .order_by(CommentMention.chat_id, Agent.handle))
    for chat_id, handle, presence in connection.execute(query):
        people.setdefault(chat_id, []).append({"handle": handle, "presence": presence})
    return people


def _list_tickets(connection: Connection, options: ViewOptions) -> Page:
    """The tickets view (R1): tickets, open and closed, not archived, newest first."""
    if options.flagged is not None or options.new or options.unread:
        raise UsageError("only chats are flagged, new or unread: the tickets view lists tickets")
    if options.sort not in (None, "new"):
        raise UsageError("the tickets view is always sorted newest first")
    query = TicketQuery(agent_id=_agent_id(connection, options.agent) if options.agent is not None else None,
                        channel=options.channel)
    return list_tickets(connection, query, limit=options.limit, after=options.after)


# -- chats filter ---------------------------------------------------------------------
def filter_chats(connection: Connection, words: Sequence[str], *, now: dt.datetime, tz: dt.tzinfo | None,
                 count: bool = False) -> Iterator[dict[str, Any]] | int:
    """Chats matching every expression, oldest id first (streamed), or their number."""
    if not words:
        raise UsageError("give at least one expression, e.g. status=live idle>2h")
    from chatctl.parsing.filters import (  # not on the views' start-up path
        compile_chat_filter, mentioned_agents, parse_expressions)

    conditions = parse_expressions(words)
    for handle in mentioned_agents(conditions):
        _agent_id(connection, handle)
    clauses = compile_chat_filter(conditions, now, tz)
    if count:
        # Every clause is on Chat (customer and agent are subqueries): no join needed to count.
        return connection.execute(select(func.count()).select_from(Chat).where(*clauses)).scalar_one()
    query = chat_query().where(*clauses)

    def generate() -> Iterator[dict[str, Any]]:
        last_id = 0
        while True:
            batch = connection.execute(query.where(Chat.id > last_id).order_by(Chat.id).limit(READ)).all()
            yield from (chat_json(row) for row in batch)
            if len(batch) < READ:
                return
            last_id = batch[-1].id

    return generate()


# -- R11: what can be sent now ---------------------------------------------------------
@dataclass(frozen=True)
class ReplyWindow:
    text: bool
    template: bool
    reason: str

    def as_json(self) -> dict[str, Any]:
        can = "text and templates" if self.text and self.template else (
            "text" if self.text else ("template only" if self.template else "nothing"))
        return {"can_send": can, "text": self.text, "template": self.template, "reason": self.reason}


def reply_window(chat: Any, *, now: dt.datetime, closed_reply_window: dt.timedelta | None) -> ReplyWindow:
    """What may be sent to the customer of ``chat`` at ``now``, and why (R11).

    ``chat`` needs status, channel, closed_at and last_customer_message_at;
    ``closed_reply_window`` matters for a closed chat only (None will do for another).
    Who may send (R8) is checked separately, by ``chatctl.domain.chats.actions.reply``.
    """
    whatsapp = chat.channel == "whatsapp"
    if chat.status == "converted":
        return ReplyWindow(False, False, "converted to a ticket: the ticket carries on from here")
    if chat.status == "closed":
        closed_at = chat.closed_at
        if closed_at is None or now - closed_at <= closed_reply_window:
            text, why = True, (f"closed {_ago(now, closed_at)} ago, within the "
                               f"{format_duration(closed_reply_window)} closed-reply window; the chat stays closed")
        elif whatsapp:
            return ReplyWindow(False, True, f"closed {_ago(now, closed_at)} ago, beyond the "
                               f"{format_duration(closed_reply_window)} closed-reply window: only a WhatsApp template "
                               "may be sent; the chat stays closed")
        else:
            return ReplyWindow(False, False, f"closed {_ago(now, closed_at)} ago, beyond the "
                               f"{format_duration(closed_reply_window)} closed-reply window, and templates exist only "
                               f"on whatsapp, not on {chat.channel}: nothing can be sent")
    else:
        text, why = True, f"the chat is {chat.status}"
    if whatsapp:
        last = chat.last_customer_message_at
        if last is None or now - last > WHATSAPP_WINDOW:
            since = "the customer has not written" if last is None else f"the customer last wrote {_ago(now, last)} ago"
            return ReplyWindow(False, True, f"WhatsApp's 24-hour customer-service window is closed ({since}): "
                               "only a template may be sent")
        return ReplyWindow(text, True, why + "; WhatsApp's 24-hour customer-service window is open")
    return ReplyWindow(text, False, why + f"; templates exist only on whatsapp, not on {chat.channel}")


def _ago(now: dt.datetime, then: dt.datetime | None) -> str:
    if then is None:
        return "an unknown time"
    seconds = max(0, int((now - then).total_seconds()))
    return format_duration(dt.timedelta(seconds=seconds)) if seconds else "0s"


# -- chats show -----------------------------------------------------------------------
def show_chat(connection: Connection, chat_id: int, *, now: dt.datetime) -> dict[str, Any]:
    """The chat object plus messages, comments (with mentions), ticket, reply window and history."""
    row = connection.execute(chat_query().where(Chat.id == chat_id)).first()
    if row is None:
        raise NotFound(f"no chat {chat_id}")
    record = chat_json(row)
    messages = connection.execute(
        select(Message.id, Message.direction, Agent.handle.label("agent"), Message.kind, Message.template_name,
               Message.template_params, Message.body, Message.created_at)
        .outerjoin(Agent, Agent.id == Message.agent_id)
        .where(Message.chat_id == chat_id).order_by(Message.created_at, Message.id))
    record["messages"] = [
        {"id": m.id, "direction": m.direction,
         "author": m.agent if m.direction == "outbound" else "customer",
         "kind": m.kind, "template": m.template_name, "params": m.template_params, "body": m.body,
         "created_at": m.created_at}
        for m in messages
    ]
    comments = connection.execute(
        select(Comment.id, Agent.handle.label("author"), Comment.body, Comment.created_at)
        .join(Agent, Agent.id == Comment.agent_id)
        .where(Comment.chat_id == chat_id).order_by(Comment.created_at, Comment.id)).all()
    # A tag belongs to a comment: a chat without comments has none, and most chats have none.
    # One query gives each comment its mentions and the chat its tagged people (as tagged_people
    # orders them: by handle, each once).
    mentions: dict[int, list[str]] = {}
    tagged: dict[str, str] = {}
    if comments:
        for comment_id, handle, presence in connection.execute(
                select(CommentMention.comment_id, Agent.handle, Agent.presence)
                .join(Agent, Agent.id == CommentMention.agent_id)
                .where(CommentMention.chat_id == chat_id).order_by(Agent.handle)):
            mentions.setdefault(comment_id, []).append(handle)
            tagged.setdefault(handle, presence)
    record["comments"] = [
        {"id": c.id, "author": c.author, "body": c.body, "created_at": c.created_at,
         "mentions": mentions.get(c.id, [])}
        for c in comments
    ]
    record["tagged"] = [{"handle": handle, "presence": presence} for handle, presence in tagged.items()]
    ticket = None
    if record["ticket_id"] is not None:  # chat_query joins the chat's ticket (one per chat)
        ticket = connection.execute(ticket_query().where(Ticket.chat_id == chat_id)).first()
    record["ticket"] = ticket_json(ticket._mapping) if ticket is not None else None
    # Only a closed chat's window depends on the preference: no query for the others.
    window = reply_window(row, now=now, closed_reply_window=get_preference(connection, "closed_reply_window")
                          if row.status == "closed" else None)
    record["reply_window"] = window.as_json()
    record["history"] = [
        audit_json(event._mapping) for event in connection.execute(
            select(AuditEvent.__table__).where(AuditEvent.entity_type == "chat",
                                               AuditEvent.entity_id == str(chat_id))
            .order_by(AuditEvent.id))
    ]
    return record
