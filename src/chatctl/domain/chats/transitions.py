"""Set-based building blocks shared by chat actions, events and sweeps.

* ``purge_ephemeral`` is R9: when chats close or convert, their comments and
  tags are deleted and their unread tag notifications marked read, in the
  caller's transaction.
* ``create_tickets`` turns chats into tickets (R4, R5, R12, manual convert).

Both take a whole batch of chat ids and issue a constant number of
statements, whatever the batch size.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def purge_ephemeral(connection: Connection, chat_ids: Sequence[int], *, at: dt.datetime) -> dict[int, dict[str, int]]:
    """Delete comments and tags of ``chat_ids``; mark their unread tag notifications read at ``at``.

    Returns per chat ``{"comments_removed": n, "tags_removed": n, "notifications_read": n}``
    for the chats that had any (the audit event records these counts).
    """
    from sqlalchemy import delete, update

    from chatctl.storage.models import Comment, CommentMention, Notification

    if not chat_ids:
        return {}
    ids = list(chat_ids)
    counts: dict[int, dict[str, int]] = {}

    def bump(chat_id: int, key: str) -> None:
        counts.setdefault(chat_id, {"comments_removed": 0, "tags_removed": 0, "notifications_read": 0})
        counts[chat_id][key] += 1

    for (chat_id,) in connection.execute(
        update(Notification)
        .where(Notification.chat_id.in_(ids), Notification.read_at.is_(None), Notification.kind == "tagged")
        .values(read_at=at)
        .returning(Notification.chat_id)
    ):
        bump(chat_id, "notifications_read")
    for (chat_id,) in connection.execute(
        delete(CommentMention).where(CommentMention.chat_id.in_(ids)).returning(CommentMention.chat_id)
    ):
        bump(chat_id, "tags_removed")
    for (chat_id,) in connection.execute(
        delete(Comment).where(Comment.chat_id.in_(ids)).returning(Comment.chat_id)
    ):
        bump(chat_id, "comments_removed")
    return counts


def create_tickets(
    connection: Connection, chats: Sequence[tuple[int, int | None]], *, reason: str, at: dt.datetime
) -> dict[int, int]:
    """One open ticket per ``(chat_id, agent_id)``, created at ``at``.  Returns chat id -> ticket id."""
    from sqlalchemy import insert

    from chatctl.storage.models import Ticket

    if not chats:
        return {}
    rows = [{"chat_id": chat_id, "agent_id": agent_id, "status": "open", "reason": reason, "created_at": at}
            for chat_id, agent_id in chats]
    result = connection.execute(insert(Ticket).returning(Ticket.chat_id, Ticket.id, sort_by_parameter_order=True),
                                rows)
    return {chat_id: ticket_id for chat_id, ticket_id in result}


def create_tickets_each(
    connection: Connection, tickets: Sequence[tuple[int, int | None, str, dt.datetime]]
) -> dict[int, int]:
    """Like ``create_tickets`` for ``(chat_id, agent_id, reason, created_at)`` rows that differ in
    reason and time (events ingest: each ticket is created at its event's ``at``).  One statement
    per batch.  Returns chat id -> ticket id."""
    from sqlalchemy import insert

    from chatctl.storage.models import Ticket

    if not tickets:
        return {}
    rows = [{"chat_id": chat_id, "agent_id": agent_id, "status": "open", "reason": reason, "created_at": at}
            for chat_id, agent_id, reason, at in tickets]
    result = connection.execute(insert(Ticket).returning(Ticket.chat_id, Ticket.id, sort_by_parameter_order=True),
                                rows)
    return {chat_id: ticket_id for chat_id, ticket_id in result}
