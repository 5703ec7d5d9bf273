"""``db check``: the desk's invariants, each as one query that finds violators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, not_, or_, select

from chatctl.storage.models import Agent, Chat, Comment, CommentMention, Message, Notification, Ticket
from chatctl.vocabulary import (CHAT_STATUSES, CLOSED_BY, FINISHED_CHAT_STATUSES, MESSAGE_DIRECTIONS, MESSAGE_KINDS,
                                PRESENCES, ROLES, TICKET_REASONS, TICKET_STATUSES)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

EXAMPLES = 5


def _outside(column, values):
    """Rows whose ``column`` holds a word the desk does not know (NULL is not such a word)."""
    return column.is_not(None) & not_(column.in_(values))


def _checks():
    finished = Chat.status.in_(FINISHED_CHAT_STATUSES)
    return [
        ("comments on closed or converted chats",
         select(Comment.id).join(Chat, Chat.id == Comment.chat_id).where(finished)),
        ("tags on closed or converted chats",
         select(CommentMention.comment_id).join(Chat, Chat.id == CommentMention.chat_id).where(finished)),
        ("unread tag notifications on closed or converted chats",
         select(Notification.id).join(Chat, Chat.id == Notification.chat_id)
         .where(finished, Notification.read_at.is_(None), Notification.kind == "tagged")),
        ("tickets without their chat",
         select(Ticket.id).outerjoin(Chat, Chat.id == Ticket.chat_id).where(Chat.id.is_(None))),
        # a ticket carries a conversation on from its chat: the chat cannot be live or pending as well
        ("live or pending chats with an open ticket",
         select(Chat.id).join(Ticket, Ticket.chat_id == Chat.id)
         .where(Chat.status.in_(("live", "pending")), Ticket.status == "open")),
        ("converted chats without a ticket",
         select(Chat.id).outerjoin(Ticket, Ticket.chat_id == Chat.id)
         .where(Chat.status == "converted", Ticket.id.is_(None))),
        ("closed chats without closed_at or closed_by",
         select(Chat.id).where(Chat.status == "closed", or_(Chat.closed_at.is_(None), Chat.closed_by.is_(None)))),
        ("pending chats without pending_since",
         select(Chat.id).where(Chat.status == "pending", Chat.pending_since.is_(None))),
        ("chats in an unknown status", select(Chat.id).where(_outside(Chat.status, CHAT_STATUSES))),
        ("chats closed by an unknown party", select(Chat.id).where(_outside(Chat.closed_by, CLOSED_BY))),
        ("tickets in an unknown status or with an unknown reason",
         select(Ticket.id).where(or_(_outside(Ticket.status, TICKET_STATUSES),
                                     _outside(Ticket.reason, TICKET_REASONS)))),
        ("agents with an unknown role or presence",
         select(Agent.id).where(or_(_outside(Agent.role, ROLES), _outside(Agent.presence, PRESENCES)))),
        ("messages with an unknown direction or kind",
         select(Message.id).where(or_(_outside(Message.direction, MESSAGE_DIRECTIONS),
                                      _outside(Message.kind, MESSAGE_KINDS)))),
        ("closed tickets without closed_at",
         select(Ticket.id).where(Ticket.status == "closed", Ticket.closed_at.is_(None))),
        ("open tickets with closed_at",
         select(Ticket.id).where(and_(Ticket.status == "open", Ticket.closed_at.is_not(None)))),
    ]


def check(connection: Connection) -> list[dict[str, Any]]:
    """Every invariant with its violation count and a few example ids."""
    rows = []
    for name, query in _checks():
        count = connection.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        examples = [row[0] for row in connection.execute(query.limit(EXAMPLES))] if count else []
        rows.append({"check": name, "violations": count, "examples": examples, "ok": count == 0})
    return rows
