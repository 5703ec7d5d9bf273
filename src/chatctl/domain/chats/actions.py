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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from chatctl.domain.audit import writer as audit
from chatctl.domain.batches import Apply, ItemResult
from chatctl.domain.changes import ANY_ROW, Guard, Ids
from chatctl.domain.chats import transitions
from chatctl.domain.chats.transitions import OPEN
from chatctl.domain.chats.views import reply_window
from chatctl.domain.prefs import get_preference
from chatctl.errors import UsageError
from chatctl.storage.dialects import dialect
from chatctl.storage.models import Agent, Chat, CommentMention, Ticket
from chatctl.storage.sql import ids_match

if TYPE_CHECKING:
    from chatctl.domain.actors import Actor

MENTION = re.compile(r"(?<![\w.@])@([A-Za-z0-9][A-Za-z0-9_.-]*)")


@dataclass(frozen=True)
class Acting:
    """Who acts, when, and under which operation id (stamped on every audit row); with
    ``--where``, the filter that selected the items (an audit reason where the action keeps one)."""

    actor: Actor
    now: dt.datetime
    operation_id: str
    selected_by: str | None = None


@dataclass(frozen=True)
class Person:
    id: int
    handle: str
    role: str


# -- shared pieces -------------------------------------------------------------------
def _read(connection: Connection, ids: Sequence[int], *columns: Any) -> dict[int, Any]:
    """The batch's chats, locked against concurrent writers until the transaction ends."""
    query = select(Chat.id, *columns).where(ids_match(connection, Chat.id, ids))
    return {row.id: row for row in connection.execute(dialect(connection).locked(query, of=Chat)).all()}


def _stamp(acting: Acting, action: str) -> audit.Stamp:
    return audit.Stamp(acting.actor.name, acting.now, acting.operation_id, action)


def _todo(decided: Mapping[int, ItemResult]) -> Ids:
    """The chats judged changeable, for the transition (which checks again, under the lock)."""
    return Ids([chat_id for chat_id, result in decided.items() if result.result == "changed"])


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
    row = connection.execute(select(Agent.id, Agent.handle, Agent.role, Agent.active)
                             .where(Agent.handle == handle.lower())).first()
    if row is None:
        raise UsageError(f"unknown {what} '{handle}': give the handle of an active agent (chatctl agents list)")
    if not row.active:
        raise UsageError(f"{what} '{handle}' is deactivated")
    return Person(row.id, row.handle, row.role)


# -- flag / unflag (R3) -----------------------------------------------------------------
_NOT_FLAGGABLE = "{state}: flags are for live and pending chats"


def flag(acting: Acting, note: str | None) -> Apply:
    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status, Chat.flagged)
        decided = {}
        for chat_id, row in rows.items():
            if row.status not in OPEN:  # D7: a refusal, not an "already so"
                decided[chat_id] = ItemResult(chat_id, "refused", _NOT_FLAGGABLE.format(state=_state(row)))
            elif row.flagged:
                decided[chat_id] = ItemResult(chat_id, "skipped", "already flagged")
            else:
                decided[chat_id] = ItemResult(chat_id, "changed", None)
        outcome = transitions.flag(connection, _todo(decided), _stamp(acting, "chats.flag"), note=note)
        return _results(ids, decided, set(outcome.changed))

    return apply


def unflag(acting: Acting) -> Apply:
    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status, Chat.flagged)
        decided = {chat_id: ItemResult(chat_id, "refused", _NOT_FLAGGABLE.format(state=_state(row)))
                   if row.status not in OPEN  # D7
                   else ItemResult(chat_id, "changed") if row.flagged
                   else ItemResult(chat_id, "skipped", "not flagged") for chat_id, row in rows.items()}
        outcome = transitions.unflag(connection, _todo(decided), _stamp(acting, "chats.unflag"))
        return _results(ids, decided, set(outcome.changed))

    return apply


# -- pending (R6) -----------------------------------------------------------------------
def pending(acting: Acting) -> Apply:
    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status)
        decided = {}
        for chat_id, row in rows.items():
            if row.status == "pending":
                decided[chat_id] = ItemResult(chat_id, "skipped", "already pending")
            elif row.status != "live":
                decided[chat_id] = ItemResult(chat_id, "refused",
                                              f"only a live chat can be marked pending ({_state(row)})")
            else:
                decided[chat_id] = ItemResult(chat_id, "changed")
        outcome = transitions.mark_pending(connection, _todo(decided), _stamp(acting, "chats.pending"))
        return _results(ids, decided, set(outcome.changed))

    return apply


# -- close (R9) ---------------------------------------------------------------------------
def closed_by_for(actor: Actor) -> str:
    """A person closing by hand closes as ``agent``; only sweeps close as ``system``."""
    return "system" if actor.name == "system" else "agent"


def close(acting: Acting, reason: str | None, *, include_flagged: bool = False) -> Apply:
    guard = ANY_ROW if include_flagged else Guard("chats.flagged = false")

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status, Chat.flagged)
        decided = {}
        for chat_id, row in rows.items():
            if row.status == "closed":
                decided[chat_id] = ItemResult(chat_id, "skipped", "already closed")
            elif row.status == "converted":
                decided[chat_id] = ItemResult(chat_id, "refused", "a converted chat carries on as its ticket: "
                                              "close the ticket instead")
            elif row.flagged and not include_flagged:
                decided[chat_id] = ItemResult(chat_id, "skipped", "flagged (unflag it, or pass --include-flagged)")
            else:
                decided[chat_id] = ItemResult(chat_id, "changed")
        outcome = transitions.end(connection, _todo(decided), _stamp(acting, "chats.close"),
                                  transitions.Close(closed_by_for(acting.actor), reason or "manual"), guard=guard)
        return _results(ids, decided, set(outcome.changed))

    return apply


# -- reopen (R10) ---------------------------------------------------------------------------
def reopen(acting: Acting, agent: Person) -> Apply:
    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status)
        decided = {}
        for chat_id, row in rows.items():
            if row.status == "closed":
                decided[chat_id] = ItemResult(chat_id, "changed")
            elif row.status == "converted":
                decided[chat_id] = ItemResult(chat_id, "refused", "only closed chats can be reopened; this "
                                              "one became a ticket (chatctl tickets reopen)")
            else:
                decided[chat_id] = ItemResult(chat_id, "skipped", f"already {row.status}")
        outcome = transitions.reopen(connection, _todo(decided), _stamp(acting, "chats.reopen"), agent_id=agent.id,
                                     reason=f"reopened for {agent.handle}")
        return _results(ids, decided, set(outcome.changed))

    return apply


def reopening_agent(connection: Connection, actor: Actor, handle: str | None) -> Person:
    """the chat goes to the agent reopening it, or to ``--agent``."""
    if handle is not None:
        return find_person(connection, handle)
    if actor.agent_id is None:
        raise UsageError(f"give --agent HANDLE: a reopened chat is assigned to an agent, and "
                         f"{actor.name} is not one")
    return find_person(connection, actor.name)


# -- convert --------------------------------------------------------------------------------
def convert(acting: Acting) -> Apply:
    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status)
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
        outcome = transitions.end(connection, _todo(decided), _stamp(acting, "chats.convert"),
                                  transitions.Convert("manual", keep_agent=True))
        created = outcome.made.get("tickets", {})
        for chat_id in outcome.changed:
            decided[chat_id] = ItemResult(chat_id, "changed", f"ticket {created[chat_id]}")
        return _results(ids, decided, set(outcome.changed))

    return apply


# -- assign ---------------------------------------------------------------------------------
def assign(acting: Acting, agent: Person) -> Apply:
    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status, Chat.agent_id)
        decided = {}
        for chat_id, row in rows.items():
            if row.status not in OPEN:
                decided[chat_id] = ItemResult(chat_id, "refused", f"only live or pending chats can be assigned "
                                              f"({_state(row)})")
            elif row.agent_id == agent.id:
                decided[chat_id] = ItemResult(chat_id, "skipped", f"already assigned to {agent.handle}")
            else:
                decided[chat_id] = ItemResult(chat_id, "changed")
        outcome = transitions.assign(connection, dict.fromkeys(_todo(decided).ids, agent.id),
                                     _stamp(acting, "chats.assign"), reason=f"assigned to {agent.handle}")
        return _results(ids, decided, set(outcome.changed))

    return apply


# -- seen (R2) ------------------------------------------------------------------------------
def seen(acting: Acting, person: Person) -> Apply:
    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.agent_id)
        decided = {}
        for chat_id, row in rows.items():
            if row.agent_id != person.id:
                decided[chat_id] = ItemResult(chat_id, "refused", "the seen mark belongs to the assigned "
                                              f"agent, and {person.handle} is not assigned to this chat")
            else:
                decided[chat_id] = ItemResult(chat_id, "changed")
        outcome = transitions.mark_seen(connection, _todo(decided), _stamp(acting, "chats.seen"), agent_id=person.id,
                                        reason=f"seen by {person.handle}")
        return _results(ids, decided, set(outcome.changed))

    return apply


# -- reply (R8, R11) --------------------------------------------------------------------------
def reply(acting: Acting, person: Person, *, text: str | None, template: str | None,
          params: Mapping[str, str]) -> Apply:
    """Send a message to the customer as ``person`` (the chat's status does not change): a
    non-empty ``text`` or a ``template`` with its ``params``, as the command checked."""
    kind = "text" if text is not None else "template"
    what = "text message" if text is not None else f"template {template}"

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status, Chat.channel, Chat.agent_id, Chat.closed_at,
                     Chat.last_customer_message_at)
        window_length = get_preference(connection, "closed_reply_window")
        tagged = set(connection.execute(select(CommentMention.chat_id).where(
            CommentMention.agent_id == person.id, ids_match(connection, CommentMention.chat_id, ids))).scalars())
        assigned = dict(connection.execute(select(Chat.id, Agent.handle).join(Agent, Agent.id == Chat.agent_id)
                                           .where(ids_match(connection, Chat.id, ids))).all())
        decided = {}
        for chat_id, row in rows.items():
            decided[chat_id] = _may_reply(row, chat_id, person, kind, tagged, assigned,
                                          reply_window(row, now=acting.now, closed_reply_window=window_length))
        outcome = transitions.reply(connection, _todo(decided), _stamp(acting, "chats.reply"), agent_id=person.id,
                                    kind=kind, body=text if text is not None else "", template=template,
                                    template_params=params, reason=f"{what} sent by {person.handle}")
        return _results(ids, decided, set(outcome.changed))

    return apply


def _may_reply(row: Any, chat_id: int, person: Person, kind: str, tagged: set[int], assigned: dict[int, str],
               window: Any) -> ItemResult:
    if row.agent_id != person.id:
        if chat_id in tagged:
            return ItemResult(chat_id, "refused", "tagged agents cannot message the customer "
                              f"({person.handle} is tagged, not assigned)")
        if row.agent_id is None:
            return ItemResult(chat_id, "refused", "only the assigned agent messages the customer, and this "
                              "chat has none (chatctl chats assign ID --agent H)")
        return ItemResult(chat_id, "refused", "only the assigned agent messages the customer "
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
    person = find_person(connection, author, what="author")
    handles = mentioned_handles(text)
    found = {row.handle: row for row in connection.execute(
        select(Agent.id, Agent.handle, Agent.role, Agent.active).where(Agent.handle.in_(handles)))} if handles else {}
    unknown = [h for h in handles if h not in found or not found[h].active]
    if unknown:
        raise UsageError("unknown or deactivated agent " + ", ".join(f"@{h}" for h in unknown)
                         + ": nothing was written (chatctl agents list shows the handles)")
    return person, [Person(found[h].id, h, found[h].role) for h in handles]


def comment(acting: Acting, author: Person, mentions: Sequence[Person], text: str) -> Apply:
    tags = ", ".join(f"@{person.handle}" for person in mentions) or "nobody"

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = _read(connection, ids, Chat.status)
        decided = {}
        for chat_id, row in rows.items():
            if row.status != "live":
                decided[chat_id] = ItemResult(chat_id, "refused", f"comments exist only on live chats "
                                              f"({_state(row)})")
            else:
                decided[chat_id] = ItemResult(chat_id, "changed")
        outcome = transitions.comment(connection, _todo(decided), _stamp(acting, "chats.comment"),
                                      author_id=author.id, body=text, tagged=[person.id for person in mentions],
                                      reason=f"comment by {author.handle}, tagging {tags}")
        for chat_id, comment_id in outcome.made.get("comments", {}).items():
            decided[chat_id] = ItemResult(chat_id, "changed", f"comment {comment_id}")
        return _results(ids, decided, set(outcome.changed))

    return apply
