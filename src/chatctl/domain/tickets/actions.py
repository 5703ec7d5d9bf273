"""Changing tickets (R13, R14, R15): the set-based bulk actions close,
reopen, archive, unarchive and assign.  Reading them (the tickets list, one
ticket in full) is ``chatctl.domain.tickets.views``.

Every action works on a batch of ids in the caller's transaction: the
change itself is a transition of ``tickets.transitions`` (on PostgreSQL one
statement that locks the batch in id order, updates what is still eligible
and writes one audit event per changed ticket, R15).  Only the ids left
unchanged are read again, to say why (already closed, archived, ...).

Rules applied here:

* R13: tickets never expire (no sweep closes one).  An archived ticket is
  read-only: close, reopen and assign are refused until it is unarchived.
  An action that would change nothing (closing a closed ticket) is
  ``skipped``, never refused.
* R14: an actor with role ``agent`` cannot assign a ticket to another agent.
  An agent may take an *unassigned* ticket for themselves; taking one that is
  assigned to someone else is a transfer and is refused as well.  Supervisors
  and admins assign freely.

A selection by filter (``--where``) is a ``batches.Selection`` of the
tickets the action can change (``tickets_matching``): walked by keyset, each
batch its own short transaction, the filter re-checked under the lock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, bindparam, case, func, literal, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ColumnElement

from chatctl.domain.audit import writer as audit
from chatctl.domain.batches import ItemResult
from chatctl.domain.changes import Ids, Outcome
from chatctl.domain.tickets import transitions as ticket_transitions
from chatctl.storage.models import Ticket
from chatctl.storage.sql import ids_match

if TYPE_CHECKING:
    from chatctl.domain.actors import Actor
    from chatctl.domain.batches import Selection

ENTITY = "ticket"
READ_ONLY = "ticket is archived and read-only until unarchived"
NO_TRANSFER = "agents cannot transfer tickets"


# -- changing ----------------------------------------------------------------------------
Change = Callable[[Connection, Ids, audit.Stamp, "str | None"], Outcome]


@dataclass
class Action:
    """One ticket action over a batch.

    ``change`` is the transition (``tickets.transitions``) that changes the
    tickets still eligible, or None when the actor may change none of them;
    ``classify(row)`` says in words why a ticket that did not change was left
    alone, as ``(result, reason)``, or ``None`` when it looks eligible.
    """

    name: str
    change: Change | None
    classify: Callable[[Any], tuple[str, str] | None]
    reason: str | None = None


def _archived_refusal(row) -> tuple[str, str] | None:
    return ("refused", READ_ONLY) if row.archived_at is not None else None


def close_action(at: dt.datetime, *, reason: str | None = None) -> Action:
    def classify(row):
        if row.status == "closed":
            return ("skipped", "already closed")
        return _archived_refusal(row)

    return Action("close", lambda c, batch, stamp, why: ticket_transitions.close(c, batch, stamp, reason=why),
                  classify, reason)


def reopen_action(at: dt.datetime) -> Action:
    def classify(row):
        if row.status == "open":
            return ("skipped", "already open")
        return _archived_refusal(row)

    return Action("reopen", lambda c, batch, stamp, why: ticket_transitions.reopen(c, batch, stamp, reason=why),
                  classify)


def archive_action(at: dt.datetime) -> Action:
    def classify(row):
        return ("skipped", "already archived") if row.archived_at is not None else None

    return Action("archive", lambda c, batch, stamp, why: ticket_transitions.archive(c, batch, stamp, reason=why),
                  classify)


def unarchive_action(at: dt.datetime) -> Action:
    def classify(row):
        return ("skipped", "not archived") if row.archived_at is None else None

    return Action("unarchive",
                  lambda c, batch, stamp, why: ticket_transitions.unarchive(c, batch, stamp, reason=why), classify)


def assign_action(agent_id: int, handle: str, actor: Actor) -> Action:
    """Assign to ``agent_id``; R14 decides what an actor with role ``agent`` may do."""
    own = actor.is_agent_role
    taking = own and actor.agent_id == agent_id

    def classify(row):
        if row.agent_id == agent_id:
            return ("skipped", f"already assigned to {handle}")
        if own and not taking:
            return ("refused", NO_TRANSFER)
        refusal = _archived_refusal(row)
        if refusal:
            return refusal
        if taking and row.agent_id is not None:
            return ("refused", f"{NO_TRANSFER}: the ticket is another agent's")
        return None

    def change(connection, batch, stamp, why):
        return ticket_transitions.assign(connection, batch, stamp, agent_id=agent_id, only_unassigned=taking,
                                         reason=why)

    return Action("assign", None if own and not taking else change, classify)


def apply_action(
    connection: Connection,
    ids: list[int],
    action: Action,
    *,
    at: dt.datetime,
    actor: str,
    operation_id: str,
) -> list[ItemResult]:
    """Apply ``action`` to one batch of ticket ids in the caller's transaction.

    Returns one result per id, in input order.
    """
    if not ids:
        return []
    changed = []
    if action.change is not None:
        stamp = audit.Stamp(actor, at, operation_id, f"tickets.{action.name}")
        changed = action.change(connection, Ids(ids), stamp, action.reason).changed
    results = {ticket_id: ItemResult(ticket_id, "changed") for ticket_id in changed}
    rest = [ticket_id for ticket_id in ids if ticket_id not in results]
    if rest:
        results.update(_explain(connection, rest, action))
    return [results.get(ticket_id, ItemResult(ticket_id, "not_found", "no such ticket")) for ticket_id in ids]


def _explain(connection: Connection, ids: list[int], action: Action) -> dict[int, ItemResult]:
    """Why each of these existing tickets was left alone (missing ids are simply absent)."""
    results = {}
    for row in connection.execute(
        select(Ticket.id, Ticket.status, Ticket.agent_id, Ticket.closed_at, Ticket.archived_at)
        .where(ids_match(connection, Ticket.id, ids))
    ):
        verdict = action.classify(row)
        if verdict is None:
            # Only possible if the row changed between the batch and this read.
            verdict = ("skipped", "changed by someone else meanwhile")
        results[row.id] = ItemResult(row.id, *verdict)
    return results


# -- selection by filter ---------------------------------------------------------------------
# The tickets each action can change, and what to call them: ``--where`` selects among these.
SELECTABLE: dict[str, tuple[str, Callable[[], ColumnElement[bool]]]] = {
    "close": ("open tickets", lambda: (Ticket.status == "open") & Ticket.archived_at.is_(None)),
    "reopen": ("closed tickets", lambda: (Ticket.status == "closed") & Ticket.archived_at.is_(None)),
    "archive": ("unarchived tickets", lambda: Ticket.archived_at.is_(None)),
    "unarchive": ("archived tickets", lambda: Ticket.archived_at.is_not(None)),
    "assign": ("unarchived tickets", lambda: Ticket.archived_at.is_(None)),
}


def tickets_matching(engine: Engine, where: ColumnElement[bool], action: str) -> tuple[Selection, str]:
    """The tickets a filter matches that ``action`` can change, as a selection the one bulk
    engine runs, and what they are called ("open tickets")."""
    from chatctl.domain.batches import Selection

    noun, eligible = SELECTABLE[action]
    return Selection(engine, Ticket.id, where & eligible()), noun
