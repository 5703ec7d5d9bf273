"""``db check``: the desk's invariants, each as one query that finds violators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

EXAMPLES = 5


def _checks():
    from sqlalchemy import and_, not_, or_, select

    from chatctl.storage.models import Chat, Comment, CommentMention, Notification, Ticket

    finished = Chat.status.in_(("closed", "converted"))
    return [
        ("comments on closed or converted chats (R9)",
         select(Comment.id).join(Chat, Chat.id == Comment.chat_id).where(finished)),
        ("tags on closed or converted chats (R9)",
         select(CommentMention.comment_id).join(Chat, Chat.id == CommentMention.chat_id).where(finished)),
        ("unread tag notifications on closed or converted chats (R9)",
         select(Notification.id).join(Chat, Chat.id == Notification.chat_id)
         .where(finished, Notification.read_at.is_(None), Notification.kind == "tagged")),
        ("tickets without their chat",
         select(Ticket.id).outerjoin(Chat, Chat.id == Ticket.chat_id).where(Chat.id.is_(None))),
        ("converted chats without a ticket",
         select(Chat.id).outerjoin(Ticket, Ticket.chat_id == Chat.id)
         .where(Chat.status == "converted", Ticket.id.is_(None))),
        ("closed chats without closed_at or closed_by",
         select(Chat.id).where(Chat.status == "closed", or_(Chat.closed_at.is_(None), Chat.closed_by.is_(None)))),
        ("pending chats without pending_since",
         select(Chat.id).where(Chat.status == "pending", Chat.pending_since.is_(None))),
        ("chats in an unknown status",
         select(Chat.id).where(not_(Chat.status.in_(("live", "pending", "closed", "converted"))))),
        ("closed tickets without closed_at",
         select(Ticket.id).where(Ticket.status == "closed", Ticket.closed_at.is_(None))),
        ("open tickets with closed_at",
         select(Ticket.id).where(and_(Ticket.status == "open", Ticket.closed_at.is_not(None)))),
    ]


def check(connection: Connection) -> list[dict[str, Any]]:
    """Every invariant with its violation count and a few example ids."""
    from sqlalchemy import func, select

    rows = []
    for name, query in _checks():
        count = connection.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        examples = [row[0] for row in connection.execute(query.limit(EXAMPLES))] if count else []
        rows.append({"check": name, "violations": count, "examples": examples, "ok": count == 0})
    return rows
