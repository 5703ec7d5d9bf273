"""Chat actions (R3, R6-R11, R15): flag, unflag, pending, close, reopen,
convert, assign, seen, reply, comment.

Each bulk action is a function ``(connection, batch_ids) -> [ItemResult]``
run by ``run_mutation`` once per batch in one transaction.  A batch costs a
constant number of statements whatever its size: the rows are read (and
locked with ``FOR UPDATE`` on PostgreSQL) in one SELECT, judged in Python
against the rule, changed by one UPDATE ... RETURNING that re-checks the
rule's condition, and audited by one multi-row INSERT.  Who acts is the
invocation's actor; ``--as`` names the agent for reply, comment and seen.

Decisions the SPEC leaves open:

* A person closing a chat by hand (an agent, or ops acting as admin) closes
  it with ``closed_by=agent``: ``system`` is reserved for the sweeps and
  ``customer`` for the customer.  The audit event names the actual actor.
* ``close`` skips flagged chats (someone marked them to follow up) unless
  ``--include-flagged`` is given.
* Only the assigned agent's ``seen`` moves the unread marker, and only the
  assigned agent may message the customer (R8); an unassigned chat is
  assigned first.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatctl.domain.audit import writer as audit
from chatctl.domain.batches import Apply, ItemResult
from chatctl.storage.sql import ids_match
from chatctl.errors import UsageError
from chatctl.vocabulary import OPEN_CHAT_STATUSES

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from chatctl.domain.actors import Actor

OPEN = OPEN_CHAT_STATUSES
MENTION = re.compile(r"(?<![\w.@])@([A-Za-z0-9][A-Za-z0-9_.-]*)")


@dataclass(frozen=True)
class Acting:
    """Who acts, when, and under which operation id (stamped on every audit row)."""

    actor: Actor
    now: dt.datetime
    operation_id: str


@dataclass(frozen=True)
class Person:
    id: int
    handle: str
    role: str


# -- shared pieces -------------------------------------------------------------------
def _read(connection: Connection, ids: Sequence[int], *columns: Any) -> dict[int, Any]:
    """The batch's chats, locked against concurrent writers until the transaction ends."""
    from sqlalchemy import select

    from chatctl.storage.models import Chat

    query = select(Chat.id, *columns).where(ids_match(connection, Chat.id, ids))
    if connection.dialect.name == "postgresql":
        # SQLite writers already hold the database lock (BEGIN IMMEDIATE).
        query = query.with_for_update(of=Chat)
    return {row.id: row for row in connection.execute(query)}


def _update(connection: Connection, ids: Sequence[int], values: Mapping[str, Any], *guard: Any) -> set[int]:
    """One UPDATE for the batch; ``guard`` re-checks the rule inside the statement."""
    from sqlalchemy import update

    from chatctl.storage.models import Chat

    if not ids:
        return set()
    statement = (update(Chat).where(ids_match(connection, Chat.id, ids), *guard).values(**values)
                 .returning(Chat.id))
    return set(connection.execute(statement).scalars())


def _audit_rows(acting: Acting, action: str, before: Mapping[int, Any], values: Mapping[str, Any],
                changed: Iterable[int], *, extra: Mapping[int, Mapping[str, Any]] | None = None,
                reason: str | None = None) -> list[dict[str, Any]]:
    """One audit event per changed chat: the columns that changed, before and after (R15).

    Every chat of a batch gets the same new values, so they are serialised once.
    """
    after_all = audit.snapshot(values)
    keys = list(values)
    new_values = [values[key] for key in keys]
    positions: list[int] | None = None
    rows = []
    for chat_id in changed:
        old = before[chat_id]
        if positions is None:
            # Rows are tuples: reading by position is much cheaper than by name at 100,000 rows.
            positions = [old._fields.index(key) for key in keys]
        old_values = [old[position] for position in positions]
        changed_keys = [(key, value) for key, value, new in zip(keys, old_values, new_values) if value != new]
        after = {key: after_all[key] for key, _value in changed_keys}
        if extra and chat_id in extra:
            after.update(extra[chat_id])
        rows.append({"at": acting.now, "actor": acting.actor.name, "action": action, "entity_type": "chat",
                     "entity_id": str(chat_id), "before": {key: audit.jsonable(value) for key, value in changed_keys},
                     "after": after, "operation_id": acting.operation_id, "reason": reason})
    return rows


def purge(connection: Connection, chat_ids: Sequence[int], *, at: dt.datetime) -> dict[int, dict[str, int]]:
    """R9 for the chats of a batch that have anything to purge.

    Most chats close without comments: one cheap look-up on the chat indexes
    keeps the three purge statements to the few chats that need them.
    """
    from sqlalchemy import select, union

    from chatctl.domain.chats.transitions import purge_ephemeral
    from chatctl.storage.models import Comment, CommentMention, Notification

    if not chat_ids:
        return {}
    having = union(
        select(Comment.chat_id).where(ids_match(connection, Comment.chat_id, chat_ids)),
        select(CommentMention.chat_id).where(ids_match(connection, CommentMention.chat_id, chat_ids)),
        select(Notification.chat_id).where(ids_match(connection, Notification.chat_id, chat_ids),
                                           Notification.read_at.is_(None), Notification.kind == "tagged"),
    )
    candidates = sorted(connection.execute(having).scalars())
    return purge_ephemeral(connection, candidates, at=at) if candidates else {}


def _results(ids: Sequence[int], decided: dict[int, ItemResult], changed: set[int]) -> list[ItemResult]:
    """Input order; an item judged changeable that the UPDATE's guard left alone was raced."""
    results = []
    for chat_id in ids:
        result = decided.get(chat_id)
        if result is None:
            result = ItemResult(chat_id, "not_found", "no such chat")
        elif result.result == "changed" and chat_id not in changed:
            result = ItemResult(chat_id, "skipped", "changed by someone else meanwhile")
        results.append(result)
    return results


def _state(row: Any) -> str:
    return f"chat is {row.status}"


def find_person(connection: Connection, handle: str, *, what: str = "agent") -> Person:
    """An active desk user by handle, or a usage error (bad input: nothing is written)."""
    from sqlalchemy import select

    from chatctl.storage.models import Agent

    row = connection.execute(select(Agent.id, Agent.handle, Agent.role, Agent.active)
                             .where(Agent.handle == handle.lower())).first()
    if row is None:
        raise UsageError(f"unknown {what} '{handle}': give the handle of an active agent (chatctl agents list)")
    if not row.active:
        raise UsageError(f"{what} '{handle}' is deactivated")
    return Person(row.id, row.handle, row.role)


# -- flag / unflag (R3) -----------------------------------------------------------------
def flag(acting: Acting, note: str | None) -> Apply:
    from chatctl.storage.models import Chat

    values = {"flagged": True, "flagged_by": acting.actor.name, "flagged_at": acting.now, "flag_note": note}

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status, Chat.flagged, Chat.flagged_by, Chat.flagged_at, Chat.flag_note)
        decided = {}
        for chat_id, row in rows.items():
            if row.flagged:
                decided[chat_id] = ItemResult(chat_id, "skipped", "already flagged")
            elif row.status not in OPEN:
                decided[chat_id] = ItemResult(chat_id, "skipped", f"{_state(row)}: flags are for live and "
                                              "pending chats")
            else:
                decided[chat_id] = ItemResult(chat_id, "changed", None)
        todo = [i for i, r in decided.items() if r.result == "changed"]
        changed = _update(connection, todo, values, Chat.flagged.is_(False), Chat.status.in_(OPEN))
        audit.record(connection, _audit_rows(acting, "chats.flag", rows, values, changed, reason=note))
        return _results(ids, decided, changed)

    return apply


def unflag(acting: Acting) -> Apply:
    from chatctl.storage.models import Chat

    values = {"flagged": False, "flagged_by": None, "flagged_at": None, "flag_note": None}

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.flagged, Chat.flagged_by, Chat.flagged_at, Chat.flag_note)
        decided = {chat_id: ItemResult(chat_id, "changed") if row.flagged
                   else ItemResult(chat_id, "skipped", "not flagged") for chat_id, row in rows.items()}
        todo = [i for i, r in decided.items() if r.result == "changed"]
        changed = _update(connection, todo, values, Chat.flagged.is_(True))
        audit.record(connection, _audit_rows(acting, "chats.unflag", rows, values, changed))
        return _results(ids, decided, changed)

    return apply


# -- pending (R6) -----------------------------------------------------------------------
def pending(acting: Acting) -> Apply:
    from chatctl.storage.models import Chat

    values = {"status": "pending", "pending_since": acting.now}

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status, Chat.pending_since)
        decided = {}
        for chat_id, row in rows.items():
            if row.status == "pending":
                decided[chat_id] = ItemResult(chat_id, "skipped", "already pending")
            elif row.status != "live":
                decided[chat_id] = ItemResult(chat_id, "refused",
                                              f"R6: only a live chat can be marked pending ({_state(row)})")
            else:
                decided[chat_id] = ItemResult(chat_id, "changed")
        todo = [i for i, r in decided.items() if r.result == "changed"]
        changed = _update(connection, todo, values, Chat.status == "live")
        audit.record(connection, _audit_rows(acting, "chats.pending", rows, values, changed))
        return _results(ids, decided, changed)

    return apply


# -- close (R9) ---------------------------------------------------------------------------
def closed_by_for(actor: Actor) -> str:
    """A person closing by hand closes as ``agent``; only sweeps close as ``system``."""
    return "system" if actor.name == "system" else "agent"


def close(acting: Acting, reason: str | None, *, include_flagged: bool = False) -> Apply:
    from chatctl.storage.models import Chat

    values = {"status": "closed", "closed_at": acting.now, "closed_by": closed_by_for(acting.actor),
              "close_reason": reason or "manual", "pending_since": None}
    guard = [Chat.status.in_(OPEN)] + ([] if include_flagged else [Chat.flagged.is_(False)])

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status, Chat.flagged, Chat.closed_at, Chat.closed_by,
                     Chat.close_reason, Chat.pending_since)
        decided = {}
        for chat_id, row in rows.items():
            if row.status == "closed":
                decided[chat_id] = ItemResult(chat_id, "skipped", "already closed")
            elif row.status == "converted":
                decided[chat_id] = ItemResult(chat_id, "skipped", "converted to a ticket")
            elif row.flagged and not include_flagged:
                decided[chat_id] = ItemResult(chat_id, "skipped", "flagged (unflag it, or pass --include-flagged)")
            else:
                decided[chat_id] = ItemResult(chat_id, "changed")
        todo = [i for i, r in decided.items() if r.result == "changed"]
        changed = _update(connection, todo, values, *guard)
        purged = purge(connection, sorted(changed), at=acting.now)
        audit.record(connection, _audit_rows(acting, "chats.close", rows, values, changed, extra=purged))
        return _results(ids, decided, changed)

    return apply


# -- reopen (R10) ---------------------------------------------------------------------------
def reopen(acting: Acting, agent: Person) -> Apply:
    from chatctl.storage.models import Chat

    values = {"status": "live", "agent_id": agent.id, "assigned_at": acting.now, "reassign_count": 0,
              "closed_at": None, "closed_by": None, "close_reason": None, "pending_since": None,
              # R10: the reopen is activity; the inactivity clock starts again from it.
              "last_activity_at": acting.now}

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, *(getattr(Chat, key) for key in values if key != "status"), Chat.status)
        decided = {}
        for chat_id, row in rows.items():
            if row.status == "closed":
                decided[chat_id] = ItemResult(chat_id, "changed")
            elif row.status == "converted":
                decided[chat_id] = ItemResult(chat_id, "refused", "R10: only closed chats can be reopened; this "
                                              "one became a ticket (chatctl tickets reopen)")
            else:
                decided[chat_id] = ItemResult(chat_id, "skipped", f"already {row.status}")
        todo = [i for i, r in decided.items() if r.result == "changed"]
        changed = _update(connection, todo, values, Chat.status == "closed")
        audit.record(connection, _audit_rows(acting, "chats.reopen", rows, values, changed,
                                             reason=f"reopened for {agent.handle}"))
        return _results(ids, decided, changed)

    return apply


def reopening_agent(connection: Connection, actor: Actor, handle: str | None) -> Person:
    """R10: the chat goes to the agent reopening it, or to ``--agent``."""
    if handle is not None:
        return find_person(connection, handle)
    if actor.agent_id is None:
        raise UsageError(f"give --agent HANDLE: a reopened chat is assigned to an agent (R10), and "
                         f"{actor.name} is not one")
    return find_person(connection, actor.name)


# -- convert --------------------------------------------------------------------------------
def convert(acting: Acting) -> Apply:
    from sqlalchemy import select

    from chatctl.domain.chats.transitions import create_tickets
    from chatctl.storage.models import Chat, Ticket

    values = {"status": "converted", "pending_since": None}

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status, Chat.agent_id, Chat.pending_since)
        tickets = dict(connection.execute(select(Ticket.chat_id, Ticket.id)
                                          .where(ids_match(connection, Ticket.chat_id, ids))).all())
        decided = {}
        for chat_id, row in rows.items():
            if row.status == "converted":
                decided[chat_id] = ItemResult(chat_id, "skipped", f"already converted (ticket {tickets.get(chat_id)})")
            elif chat_id in tickets:
                decided[chat_id] = ItemResult(chat_id, "skipped", f"already has ticket {tickets[chat_id]}")
            elif row.status not in OPEN:
                decided[chat_id] = ItemResult(chat_id, "refused", f"only live or pending chats can be converted "
                                              f"({_state(row)}; reopen it first)")
            else:
                decided[chat_id] = ItemResult(chat_id, "changed")
        todo = [i for i, r in decided.items() if r.result == "changed"]
        changed = _update(connection, todo, values, Chat.status.in_(OPEN))
        created = create_tickets(connection, [(i, rows[i].agent_id) for i in sorted(changed)], reason="manual",
                                 at=acting.now)
        purged = purge(connection, sorted(changed), at=acting.now)
        extra = {i: {"ticket_id": created[i], **purged.get(i, {})} for i in changed}
        events = _audit_rows(acting, "chats.convert", rows, values, changed, extra=extra)
        events += [audit.event(at=acting.now, actor=acting.actor.name, action="chats.convert", entity_type="ticket",
                               entity_id=ticket_id, operation_id=acting.operation_id, before=None,
                               after={"chat_id": chat_id, "status": "open", "reason": "manual",
                                      "agent_id": rows[chat_id].agent_id, "created_at": acting.now})
                   for chat_id, ticket_id in created.items()]
        audit.record(connection, events)
        for chat_id in changed:
            decided[chat_id] = ItemResult(chat_id, "changed", f"ticket {created[chat_id]}")
        return _results(ids, decided, changed)

    return apply


# -- assign ---------------------------------------------------------------------------------
def assign(acting: Acting, agent: Person) -> Apply:
    from chatctl.storage.models import Chat

    values = {"agent_id": agent.id, "assigned_at": acting.now}

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status, Chat.agent_id, Chat.assigned_at)
        decided = {}
        for chat_id, row in rows.items():
            if row.status not in OPEN:
                decided[chat_id] = ItemResult(chat_id, "refused", f"only live or pending chats can be assigned "
                                              f"({_state(row)})")
            elif row.agent_id == agent.id:
                decided[chat_id] = ItemResult(chat_id, "skipped", f"already assigned to {agent.handle}")
            else:
                decided[chat_id] = ItemResult(chat_id, "changed")
        todo = [i for i, r in decided.items() if r.result == "changed"]
        changed = _update(connection, todo, values, Chat.status.in_(OPEN))
        audit.record(connection, _audit_rows(acting, "chats.assign", rows, values, changed,
                                             reason=f"assigned to {agent.handle}"))
        return _results(ids, decided, changed)

    return apply


# -- seen (R2) ------------------------------------------------------------------------------
def seen(acting: Acting, person: Person) -> Apply:
    from chatctl.storage.models import Chat

    values = {"agent_seen_at": acting.now}

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.agent_id, Chat.agent_seen_at)
        decided = {}
        for chat_id, row in rows.items():
            if row.agent_id != person.id:
                decided[chat_id] = ItemResult(chat_id, "refused", "R2: the seen mark belongs to the assigned "
                                              f"agent, and {person.handle} is not assigned to this chat")
            else:
                decided[chat_id] = ItemResult(chat_id, "changed")
        todo = [i for i, r in decided.items() if r.result == "changed"]
        changed = _update(connection, todo, values, Chat.agent_id == person.id)
        audit.record(connection, _audit_rows(acting, "chats.seen", rows, values, changed,
                                             reason=f"seen by {person.handle}"))
        return _results(ids, decided, changed)

    return apply


# -- reply (R8, R11) --------------------------------------------------------------------------
def parse_params(words: Sequence[str]) -> dict[str, str]:
    params = {}
    for word in words:
        key, equals, value = word.partition("=")
        if not equals or not key.strip():
            raise UsageError(f"bad --param '{word}': write KEY=VALUE")
        params[key.strip()] = value
    return params


def reply(acting: Acting, person: Person, *, text: str | None, template: str | None,
          params: Mapping[str, str]) -> Apply:
    """Send a message to the customer as ``person`` (the chat's status does not change)."""
    from sqlalchemy import insert, select

    from chatctl.domain.chats.views import reply_window
    from chatctl.domain.prefs import get_preference
    from chatctl.storage.models import Agent, Chat, CommentMention, Message

    if (text is None) == (template is None):
        raise UsageError("give either --text or --template")
    if text is not None and not text.strip():
        raise UsageError("--text is empty")
    if params and template is None:
        raise UsageError("--param goes with --template")
    values = {"last_agent_message_at": acting.now, "last_activity_at": acting.now, "agent_seen_at": acting.now}
    kind = "text" if text is not None else "template"

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status, Chat.channel, Chat.agent_id, Chat.closed_at,
                     Chat.last_customer_message_at, *(getattr(Chat, key) for key in values))
        window_length = get_preference(connection, "closed_reply_window")
        tagged = set(connection.execute(select(CommentMention.chat_id).where(
            CommentMention.agent_id == person.id, ids_match(connection, CommentMention.chat_id, ids))).scalars())
        assigned = dict(connection.execute(select(Chat.id, Agent.handle).join(Agent, Agent.id == Chat.agent_id)
                                           .where(ids_match(connection, Chat.id, ids))).all())
        decided = {}
        for chat_id, row in rows.items():
            decided[chat_id] = _may_reply(row, chat_id, person, kind, tagged, assigned,
                                          reply_window(row, now=acting.now, closed_reply_window=window_length))
        todo = [i for i, r in decided.items() if r.result == "changed"]
        changed = _update(connection, todo, values, Chat.agent_id == person.id)
        if changed:
            connection.execute(insert(Message), [
                {"chat_id": chat_id, "direction": "outbound", "agent_id": person.id, "kind": kind,
                 "template_name": template, "template_params": dict(params) if template else None,
                 "body": text if text is not None else "", "created_at": acting.now}
                for chat_id in sorted(changed)])
        what = "text message" if text is not None else f"template {template}"
        audit.record(connection, _audit_rows(acting, "chats.reply", rows, values, changed,
                                             reason=f"{what} sent by {person.handle}"))
        return _results(ids, decided, changed)

    return apply


def _may_reply(row: Any, chat_id: int, person: Person, kind: str, tagged: set[int], assigned: dict[int, str],
               window: Any) -> ItemResult:
    if row.agent_id != person.id:
        if chat_id in tagged:
            return ItemResult(chat_id, "refused", "R8: tagged agents cannot message the customer "
                              f"({person.handle} is tagged, not assigned)")
        if row.agent_id is None:
            return ItemResult(chat_id, "refused", "R8: only the assigned agent messages the customer, and this "
                              "chat has none (chatctl chats assign ID --agent H)")
        return ItemResult(chat_id, "refused", "R8: only the assigned agent messages the customer "
                          f"(assigned to {assigned.get(chat_id)})")
    allowed = window.text if kind == "text" else window.template
    if not allowed:
        return ItemResult(chat_id, "refused", window.reason)
    return ItemResult(chat_id, "changed")


# -- comment (R7) ------------------------------------------------------------------------------
def mentioned_handles(text: str) -> list[str]:
    """``@handle`` words, in order, once each; a trailing '.' or '-' ends the sentence, not the handle."""
    handles = []
    for match in MENTION.finditer(text):
        handle = match.group(1).rstrip(".-").lower()
        if handle and handle not in handles:
            handles.append(handle)
    return handles


def prepare_comment(connection: Connection, author: str, text: str) -> tuple[Person, list[Person]]:
    """R7, checked before anything is written: the author and every tagged handle must exist."""
    from sqlalchemy import select

    from chatctl.storage.models import Agent

    if not text.strip():
        raise UsageError("--text is empty")
    person = find_person(connection, author, what="author")
    handles = mentioned_handles(text)
    found = {row.handle: row for row in connection.execute(
        select(Agent.id, Agent.handle, Agent.role, Agent.active).where(Agent.handle.in_(handles)))} if handles else {}
    unknown = [h for h in handles if h not in found or not found[h].active]
    if unknown:
        raise UsageError("R7: unknown or deactivated agent " + ", ".join(f"@{h}" for h in unknown)
                         + ": nothing was written (chatctl agents list shows the handles)")
    return person, [Person(found[h].id, h, found[h].role) for h in handles]


def comment(acting: Acting, author: Person, mentions: Sequence[Person], text: str) -> Apply:
    from sqlalchemy import insert

    from chatctl.storage.models import Chat, Comment, CommentMention, Notification

    values = {"last_activity_at": acting.now}

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status, Chat.last_activity_at)
        decided = {}
        for chat_id, row in rows.items():
            if row.status != "live":
                decided[chat_id] = ItemResult(chat_id, "refused", f"R7: comments exist only on live chats "
                                              f"({_state(row)})")
            else:
                decided[chat_id] = ItemResult(chat_id, "changed")
        todo = [i for i, r in decided.items() if r.result == "changed"]
        # A comment is activity (R4): it moves the inactivity clock.
        changed = _update(connection, todo, values, Chat.status == "live")
        reasons = {}
        for chat_id in sorted(changed):
            comment_id = connection.execute(insert(Comment).values(
                chat_id=chat_id, agent_id=author.id, body=text, created_at=acting.now).returning(Comment.id)
            ).scalar_one()
            if mentions:
                connection.execute(insert(CommentMention), [
                    {"comment_id": comment_id, "agent_id": person.id, "chat_id": chat_id} for person in mentions])
                connection.execute(insert(Notification), [
                    {"agent_id": person.id, "kind": "tagged", "chat_id": chat_id, "comment_id": comment_id,
                     "created_at": acting.now, "read_at": None} for person in mentions])
            tags = ", ".join(f"@{p.handle}" for p in mentions) or "nobody"
            reasons[chat_id] = f"comment {comment_id} by {author.handle}, tagging {tags}"
            decided[chat_id] = ItemResult(chat_id, "changed", f"comment {comment_id}")
        events = []
        for chat_id in sorted(changed):
            events += _audit_rows(acting, "chats.comment", rows, values, [chat_id], reason=reasons[chat_id])
        audit.record(connection, events)
        return _results(ids, decided, changed)

    return apply
