"""Every change of a chat, each in one place, over a whole batch of chats.

Each function here is the only code that makes its change: the bulk commands
(``chats.actions``), the sweeps (``sweeps.jobs``), ``agents drain`` and
events ingest all call it.  The callers choose the chats and say why they
skip or refuse some; the function changes the chats that still qualify - its
own condition (a close needs a live or pending chat) and the caller's
``guard`` (a sweep's eligibility) are re-checked in the UPDATE - and writes
their audit events (R15), in the caller's transaction, with the engine of
``domain.changes``: a few set-based statements per batch, or one statement
on PostgreSQL.

The values are SQL over the chat before the change; the instant of a change
is its stamp's ``at`` (``:audit_at``).

* ``end`` closes a chat or converts it to a ticket (``Close``, ``Convert``):
  either way it purges what R9 says is ephemeral (``Purge``); a conversion
  opens the ticket (``Tickets``).
* ``purge`` is R9 alone, for chats that already ended (the clean-up sweep).
* ``reopen`` (R10), ``mark_pending`` (R6), ``flag``/``unflag`` (R3),
  ``assign`` (a person's choice, R5's reassignment, ``agents drain``),
  ``mark_seen`` (R2), ``reply`` (R8, R11) and ``comment`` (R7).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, union, update
from sqlalchemy.engine import Connection

from chatctl.domain.audit import writer as audit
from chatctl.domain.changes import (ANY_ROW, CHATS, Change, Claim, Guard, Ids, Outcome, Portable, Row, Step,
                                    StepResult, StepSQL, TextStepSQL, run, sql_list)
from chatctl.storage.dialects import Dialect, dialect
from chatctl.storage.models import Comment, CommentMention, Message, Notification, Ticket
from chatctl.storage.sql import ids_match, json_param

OPEN = ("live", "pending")
IS_OPEN = f"chats.status IN {sql_list(OPEN)}"
NO_TICKET_YET = "NOT EXISTS (SELECT 1 FROM tickets existing WHERE existing.chat_id = chats.id)"
PURGE_COUNTS = ("comments_removed", "tags_removed", "notifications_read")

Batch = Ids | Claim


# -- R9: what a chat loses when it ends -------------------------------------------------
# A tag notification not read yet: the purge marks it read (in SQL, both forms).
_UNREAD_TAG = "notifications.read_at IS NULL AND notifications.kind = 'tagged'"


class Purge(Step):
    """R9 for the chats a transition ended: their counts go into the audit event's ``after``."""

    name = "purge"

    def apply(self, connection: Connection, rows: list[Row], stamp: audit.Stamp,
              params: Mapping[str, Any]) -> StepResult:
        """Delete the comments and tags of the chats, mark their unread tag notifications read.

        The audit events get ``{"comments_removed": n, "tags_removed": n,
        "notifications_read": n}`` for the chats that had any.  Most chats end
        without comments: one cheap look-up on the chat indexes keeps the three
        purge statements to the few chats that need them.
        """
        chat_ids = [row.id for row in rows]
        having = union(
            select(Comment.chat_id).where(ids_match(connection, Comment.chat_id, chat_ids)),
            select(CommentMention.chat_id).where(ids_match(connection, CommentMention.chat_id, chat_ids)),
            select(Notification.chat_id).where(ids_match(connection, Notification.chat_id, chat_ids),
                                               Notification.read_at.is_(None), Notification.kind == "tagged"),
        )
        ids = sorted(connection.execute(having).scalars())
        counts: dict[int, dict[str, int]] = {}
        if not ids:
            return StepResult()

        def bump(chat_id: int, key: str) -> None:
            counts.setdefault(chat_id, dict.fromkeys(PURGE_COUNTS, 0))[key] += 1

        for (chat_id,) in connection.execute(
            update(Notification)
            .where(Notification.chat_id.in_(ids), Notification.read_at.is_(None), Notification.kind == "tagged")
            .values(read_at=stamp.at)
            .returning(Notification.chat_id)
        ):
            bump(chat_id, "notifications_read")
        for (chat_id,) in connection.execute(
            delete(CommentMention).where(CommentMention.chat_id.in_(ids)).returning(CommentMention.chat_id)
        ):
            bump(chat_id, "tags_removed")
        for (chat_id,) in connection.execute(delete(Comment).where(Comment.chat_id.in_(ids))
                                             .returning(Comment.chat_id)):
            bump(chat_id, "comments_removed")
        return StepResult(after=counts)

    def sql(self) -> StepSQL:
        # = ANY(ARRAY(...)): looked up through the chat_id indexes; joined with a CTE the
        # planner cannot size, a whole table could be hash-joined once per batch.
        changed = "ANY(ARRAY(SELECT id FROM changed))"
        return StepSQL(
            ctes=(
                ("read_notes", "UPDATE notifications SET read_at = :audit_at "
                               f"WHERE notifications.chat_id = {changed} AND {_UNREAD_TAG} "
                               "RETURNING notifications.chat_id"),
                ("gone_tags", f"DELETE FROM comment_mentions WHERE comment_mentions.chat_id = {changed} "
                              "RETURNING comment_mentions.chat_id"),
                ("gone_comments", f"DELETE FROM comments WHERE comments.chat_id = {changed} "
                                  "RETURNING comments.chat_id"),
                ("purged", "SELECT chat_id, count(*) FILTER (WHERE kind = 'comment') AS comments_removed, "
                           "count(*) FILTER (WHERE kind = 'tag') AS tags_removed, "
                           "count(*) FILTER (WHERE kind = 'note') AS notifications_read FROM ("
                           "SELECT chat_id, 'comment' AS kind FROM gone_comments "
                           "UNION ALL SELECT chat_id, 'tag' FROM gone_tags "
                           "UNION ALL SELECT chat_id, 'note' FROM read_notes) AS removed GROUP BY chat_id"),
            ),
            join=" LEFT JOIN purged ON purged.chat_id = changed.id",
            after="CASE WHEN purged.chat_id IS NULL THEN CAST('{}' AS jsonb) ELSE jsonb_build_object("
                  + ", ".join(f"'{key}', purged.{key}" for key in PURGE_COUNTS) + ") END",
        )

    def text_sql(self, spelling: Dialect) -> TextStepSQL:
        # The counts from the rows as they are before the purge; EXISTS first, as most chats
        # end without comments, tags or unread tag notifications.
        kinds = {"comments_removed": "comments WHERE comments.chat_id = chats.id",
                 "tags_removed": "comment_mentions WHERE comment_mentions.chat_id = chats.id",
                 "notifications_read": f"notifications WHERE notifications.chat_id = chats.id AND {_UNREAD_TAG}"}
        there = "(" + " OR ".join(f"EXISTS (SELECT 1 FROM {rows})" for rows in kinds.values()) + ")"
        return TextStepSQL(
            after={key: (there, f"(SELECT count(*) FROM {rows})") for key, rows in kinds.items()},
            statements=(
                "UPDATE notifications SET read_at = :audit_at "
                f"WHERE {spelling.ids_in('notifications.chat_id', 'changed')} AND {_UNREAD_TAG}",
                f"DELETE FROM comment_mentions WHERE {spelling.ids_in('comment_mentions.chat_id', 'changed')}",
                f"DELETE FROM comments WHERE {spelling.ids_in('comments.chat_id', 'changed')}",
            ),
        )


PURGE = Purge()


# -- tickets -------------------------------------------------------------------------------
def opened_ticket(chat_id: int, agent_id: int | None, reason: str, at: dt.datetime) -> dict[str, Any]:
    """A new ticket's values, as its audit event's ``after`` records them."""
    return {"chat_id": chat_id, "status": "open", "reason": reason, "agent_id": agent_id, "created_at": at}


TICKET_COLUMNS = ("chat_id", "status", "reason", "agent_id", "created_at")


def open_tickets(connection: Connection, tickets: Sequence[tuple[int, int | None, str, dt.datetime]]) -> dict[int, int]:
    """One open ticket per ``(chat_id, agent_id, reason, created_at)``, one statement for the batch.

    Returns chat id -> ticket id.  (Events ingest opens the tickets of chats
    that arrive out of hours with it, each at its event's time.)
    """
    rows = [(chat_id, "open", reason, agent_id, at) for chat_id, agent_id, reason, at in tickets]
    return dict(dialect(connection).insert_returning(connection, Ticket.__table__, TICKET_COLUMNS, rows,
                                                     ("chat_id", "id")))


class Tickets(Step):
    """The ticket of each chat a conversion ended (R4, R5, R12, a manual convert), given to
    the chat's agent when ``keep_agent``."""

    name = "tickets"
    makes = True

    def __init__(self, reason: str, *, keep_agent: bool) -> None:
        self.reason = reason
        self.keep_agent = keep_agent

    def params(self) -> dict[str, Any]:
        return {"ticket_reason": self.reason}

    def apply(self, connection: Connection, rows: list[Row], stamp: audit.Stamp,
              params: Mapping[str, Any]) -> StepResult:
        agents = {row.id: row.old["agent_id"] if self.keep_agent else None for row in rows}
        made = open_tickets(connection, [(row.id, agents[row.id], self.reason, stamp.at) for row in rows])
        return StepResult(
            after={chat_id: {"ticket_id": ticket_id} for chat_id, ticket_id in made.items()},
            events=[stamp.event("ticket", ticket_id, before=None,
                                after=opened_ticket(chat_id, agents[chat_id], self.reason, stamp.at),
                                reason=f"created from chat {chat_id}")
                    for chat_id, ticket_id in made.items()],
            made=made,
        )

    def sql(self) -> StepSQL:
        agent = "changed.old_agent_id" if self.keep_agent else "CAST(NULL AS integer)"
        after = audit.object_sql({key: f"tickets_made.{key}" for key in ("chat_id", "status", "reason", "agent_id",
                                                                          "created_at")}, ("created_at",))
        return StepSQL(
            ctes=(("tickets_made", "INSERT INTO tickets (chat_id, agent_id, status, reason, created_at) "
                                   f"SELECT changed.id, {agent}, 'open', CAST(:ticket_reason AS text), :audit_at "
                                   "FROM changed ORDER BY changed.id "
                                   "RETURNING id, chat_id, agent_id, status, reason, created_at"),),
            join=" LEFT JOIN tickets_made ON tickets_made.chat_id = changed.id",
            after="jsonb_build_object('ticket_id', tickets_made.id)",
            audit=(audit.events_sql(entity_type="CAST('ticket' AS text)", entity_id="CAST(tickets_made.id AS text)",
                                    before="CAST(NULL AS jsonb)", after=after,
                                    reason="'created from chat ' || tickets_made.chat_id", source="tickets_made",
                                    order=(1, "tickets_made.chat_id")),),
            made="tickets_made.id",
        )


# -- ending a chat ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Close:
    """A chat ends closed: ``closed_by`` is ``system`` for the sweeps, ``agent`` for a person."""

    closed_by: str
    close_reason: str


@dataclass(frozen=True)
class Convert:
    """A chat ends as a ticket (``ticket_reason``); ``keep_agent``: the ticket goes to the chat's agent
    (inactivity, a manual convert), otherwise to nobody (no agent could take the chat)."""

    ticket_reason: str
    keep_agent: bool


def end(connection: Connection, batch: Batch, stamp: audit.Stamp, how: Close | Convert, *,
        guard: Guard = ANY_ROW, reason: str | None = None, form: Portable | None = None) -> Outcome:
    """End the live and pending chats of ``batch`` that meet ``guard``: closed, or converted to tickets.

    Either way R9 purges their comments and tags and marks their unread tag
    notifications read.  A chat is converted only while it has no ticket (one
    per chat); ``outcome.made["tickets"]`` maps each converted chat to its new
    ticket.  This is the one way a chat ends: ``chats close`` and ``chats
    convert``, the inactivity, pending, unattended and agent-timeout sweeps
    and ``agents drain`` all call it.
    """
    if isinstance(how, Close):
        change = Change(CHATS, {"status": "'closed'", "closed_at": ":audit_at", "closed_by": ":closed_by",
                                "close_reason": ":close_reason", "pending_since": "NULL"},
                        eligible=f"{IS_OPEN} AND ({guard.sql})",
                        params={**guard.params, "closed_by": how.closed_by, "close_reason": how.close_reason},
                        reason=reason)
        return run(connection, change, batch, stamp, [PURGE], form=form)
    change = Change(CHATS, {"status": "'converted'", "pending_since": "NULL"},
                    eligible=f"{IS_OPEN} AND {NO_TICKET_YET} AND ({guard.sql})",
                    params=guard.params, reads=("agent_id",), reason=reason)
    return run(connection, change, batch, stamp, [PURGE, Tickets(how.ticket_reason, keep_agent=how.keep_agent)],
               form=form)


def purge(connection: Connection, batch: Batch, stamp: audit.Stamp, *, guard: Guard = ANY_ROW,
          reason: str | None = None, form: Portable | None = None) -> Outcome:
    """R9 alone, for closed or converted chats that still hold comments, tags or unread tag notifications."""
    change = Change(CHATS, {}, eligible=f"chats.status IN {sql_list(('closed', 'converted'))} AND ({guard.sql})",
                    params=guard.params, reason=reason)
    return run(connection, change, batch, stamp, [PURGE], form=form)


# -- the other changes -------------------------------------------------------------------------
def reopen(connection: Connection, batch: Batch, stamp: audit.Stamp, *, agent_id: int, reason: str | None = None,
           form: Portable | None = None) -> Outcome:
    """R10: closed chats become live, assigned to ``agent_id``; the reopen is activity."""
    change = Change(CHATS, {"status": "'live'", "agent_id": ":reopen_agent", "assigned_at": ":audit_at",
                            "reassign_count": "0", "closed_at": "NULL", "closed_by": "NULL", "close_reason": "NULL",
                            "pending_since": "NULL", "last_activity_at": ":audit_at"},
                    eligible="chats.status = 'closed'", params={"reopen_agent": agent_id}, reason=reason)
    return run(connection, change, batch, stamp, form=form)


def mark_pending(connection: Connection, batch: Batch, stamp: audit.Stamp, *,
                 form: Portable | None = None) -> Outcome:
    """R6: live chats become pending, waiting on the customer."""
    change = Change(CHATS, {"status": "'pending'", "pending_since": ":audit_at"}, eligible="chats.status = 'live'")
    return run(connection, change, batch, stamp, form=form)


def flag(connection: Connection, batch: Batch, stamp: audit.Stamp, *, note: str | None,
         form: Portable | None = None) -> Outcome:
    """R3: flag live and pending chats to follow up (the sweeps that close and reassign leave them)."""
    change = Change(CHATS, {"flagged": "true", "flagged_by": ":audit_actor", "flagged_at": ":audit_at",
                            "flag_note": ":flag_note"},
                    eligible=f"chats.flagged = false AND {IS_OPEN}", params={"flag_note": note}, reason=note)
    return run(connection, change, batch, stamp, form=form)


def unflag(connection: Connection, batch: Batch, stamp: audit.Stamp, *, form: Portable | None = None) -> Outcome:
    """R3: flagged chats return to normal treatment from the next sweep on."""
    change = Change(CHATS, {"flagged": "false", "flagged_by": "NULL", "flagged_at": "NULL", "flag_note": "NULL"},
                    eligible="chats.flagged = true")
    return run(connection, change, batch, stamp, form=form)


def assign(connection: Connection, plan: Mapping[int, int], stamp: audit.Stamp, *,
           reassign_counts: Mapping[int, int] | None = None, guard: Guard = ANY_ROW, reason: str | None = None,
           activity: bool = False, form: Portable | None = None) -> Outcome:
    """Give each live or pending chat of ``plan`` (chat id -> agent id) to its agent, from ``:audit_at``.

    ``reassign_counts`` sets ``reassign_count`` per chat (R5's bounce counter);
    without it the count is left as it is.  ``activity``: the assignment is
    activity, like a reopen (D2: a sweep's or a drain's hand-over restarts the
    inactivity clock, so the new agent gets a fair chance).  A chat already
    with its planned agent is left alone.
    """
    counted = reassign_counts is not None
    batch = Ids(sorted(plan), plan={chat_id: {"agent_id": agent_id,
                                              **({"reassign_count": reassign_counts[chat_id]} if counted else {})}
                                    for chat_id, agent_id in plan.items()},
                plan_types={"agent_id": "integer", **({"reassign_count": "integer"} if counted else {})})
    values = {"agent_id": "plan.agent_id", "assigned_at": ":audit_at"}
    if activity:
        values["last_activity_at"] = ":audit_at"
    if counted:
        values["reassign_count"] = "plan.reassign_count"
    change = Change(CHATS, values, eligible=f"{IS_OPEN} AND (chats.agent_id IS NULL OR chats.agent_id <> "
                                            f"plan.agent_id) AND ({guard.sql})",
                    params=guard.params, reason=reason)
    return run(connection, change, batch, stamp, form=form)


def mark_seen(connection: Connection, batch: Batch, stamp: audit.Stamp, *, agent_id: int, reason: str | None = None,
              form: Portable | None = None) -> Outcome:
    """R2: the assigned agent has seen the chat (its unread marker goes)."""
    change = Change(CHATS, {"agent_seen_at": ":audit_at"}, eligible="chats.agent_id = :seen_by",
                    params={"seen_by": agent_id}, reason=reason)
    return run(connection, change, batch, stamp, form=form)


class Messages(Step):
    """One outbound message per chat a reply reached."""

    name = "messages"

    def __init__(self, agent_id: int, kind: str, body: str, template: str | None,
                 template_params: Mapping[str, str] | None) -> None:
        self.values = {"direction": "outbound", "agent_id": agent_id, "kind": kind, "template_name": template,
                       "template_params": dict(template_params) if template else None, "body": body}

    def apply(self, connection: Connection, rows: list[Row], stamp: audit.Stamp,
              params: Mapping[str, Any]) -> StepResult:
        connection.execute(insert(Message), [{"chat_id": row.id, **self.values, "created_at": stamp.at}
                                             for row in rows])
        return StepResult()

    def sql(self) -> StepSQL:
        return StepSQL(ctes=(("sent", "INSERT INTO messages (chat_id, direction, agent_id, kind, template_name, "
                                      "template_params, body, created_at) SELECT changed.id, 'outbound', "
                                      "CAST(:message_agent AS integer), CAST(:message_kind AS text), "
                                      "CAST(:message_template AS text), CAST(:message_params AS jsonb), "
                                      "CAST(:message_body AS text), :audit_at FROM changed ORDER BY changed.id "
                                      "RETURNING 1"),))

    def params(self) -> dict[str, Any]:
        values = self.values
        return {"message_agent": values["agent_id"], "message_kind": values["kind"],
                "message_template": values["template_name"], "message_body": values["body"],
                "message_params": None if values["template_params"] is None else json_param(values["template_params"])}


def reply(connection: Connection, batch: Batch, stamp: audit.Stamp, *, agent_id: int, kind: str, body: str,
          template: str | None = None, template_params: Mapping[str, str] | None = None,
          reason: str | None = None, form: Portable | None = None) -> Outcome:
    """A message to the customer from the chat's assigned agent ``agent_id`` (R8); the status stays."""
    change = Change(CHATS, {"last_agent_message_at": ":audit_at", "last_activity_at": ":audit_at",
                            "agent_seen_at": ":audit_at"},
                    eligible="chats.agent_id = :reply_agent", params={"reply_agent": agent_id}, reason=reason)
    return run(connection, change, batch, stamp, [Messages(agent_id, kind, body, template, template_params)],
               form=form)


class Comments(Step):
    """R7: the comment on each chat, its tags and the tagged agents' notifications."""

    name = "comments"
    makes = True

    def __init__(self, author_id: int, body: str, tagged: Sequence[int]) -> None:
        self.author_id = author_id
        self.body = body
        self.tagged = list(tagged)

    def apply(self, connection: Connection, rows: list[Row], stamp: audit.Stamp,
              params: Mapping[str, Any]) -> StepResult:
        made = {}
        for row in rows:
            made[row.id] = connection.execute(insert(Comment).values(
                chat_id=row.id, agent_id=self.author_id, body=self.body, created_at=stamp.at).returning(Comment.id)
            ).scalar_one()
        if self.tagged:
            connection.execute(insert(CommentMention), [
                {"comment_id": comment_id, "agent_id": agent_id, "chat_id": chat_id}
                for chat_id, comment_id in made.items() for agent_id in self.tagged])
            connection.execute(insert(Notification), [
                {"agent_id": agent_id, "kind": "tagged", "chat_id": chat_id, "comment_id": comment_id,
                 "created_at": stamp.at, "read_at": None}
                for chat_id, comment_id in made.items() for agent_id in self.tagged])
        return StepResult(after={chat_id: {"comment_id": comment_id} for chat_id, comment_id in made.items()},
                          made=made)

    def sql(self) -> StepSQL:
        tagged = "unnest(CAST(string_to_array(CAST(:comment_tagged AS text), ',') AS integer[])) AS tagged(agent_id)"
        return StepSQL(
            ctes=(
                ("new_comments", "INSERT INTO comments (chat_id, agent_id, body, created_at) "
                                 "SELECT changed.id, CAST(:comment_author AS integer), CAST(:comment_body AS text), "
                                 ":audit_at FROM changed ORDER BY changed.id RETURNING id, chat_id"),
                ("new_tags", "INSERT INTO comment_mentions (comment_id, agent_id, chat_id) "
                             f"SELECT new_comments.id, tagged.agent_id, new_comments.chat_id FROM new_comments, {tagged} "
                             "RETURNING 1"),
                ("new_bells", "INSERT INTO notifications (agent_id, kind, chat_id, comment_id, created_at, read_at) "
                              "SELECT tagged.agent_id, 'tagged', new_comments.chat_id, new_comments.id, :audit_at, NULL "
                              f"FROM new_comments, {tagged} RETURNING 1"),
            ),
            join=" LEFT JOIN new_comments ON new_comments.chat_id = changed.id",
            after="jsonb_build_object('comment_id', new_comments.id)",
            made="new_comments.id",
        )

    def params(self) -> dict[str, Any]:
        return {"comment_author": self.author_id, "comment_body": self.body,
                "comment_tagged": ",".join(map(str, self.tagged))}


def comment(connection: Connection, batch: Batch, stamp: audit.Stamp, *, author_id: int, body: str,
            tagged: Sequence[int], reason: str | None = None, form: Portable | None = None) -> Outcome:
    """R7: a comment on each live chat of ``batch``, tagging ``tagged``; a comment is activity (R4).

    ``outcome.made["comments"]`` maps each chat to its new comment.
    """
    change = Change(CHATS, {"last_activity_at": ":audit_at"}, eligible="chats.status = 'live'", reason=reason)
    return run(connection, change, batch, stamp, [Comments(author_id, body, tagged)], form=form)
