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

A selection by filter (``close --where``) walks the ticket ids by keyset
(``id > last ORDER BY id LIMIT n``), so a million matches never sit in memory
and each batch is its own short transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, bindparam, case, func, literal, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ColumnElement

from chatctl.domain.audit import writer as audit
from chatctl.domain.batches import ItemResult
from chatctl.domain.changes import Ids, Outcome
from chatctl.domain.tickets import transitions as ticket_transitions
from chatctl.storage.dialects import dialect
from chatctl.storage.models import Ticket
from chatctl.storage.sql import ids_match

if TYPE_CHECKING:
    from chatctl.domain.actors import Actor

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


def _integer(value: int):
    return bindparam(None, value, type_=BigInteger())


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
    where: ColumnElement[bool] | None = None,
) -> list[ItemResult]:
    """Apply ``action`` to one batch of ticket ids in the caller's transaction.

    ``where`` (a compiled filter) narrows the batch further and is re-checked
    under the lock: a ticket that stopped matching is ``skipped``.
    Returns one result per id, in input order.
    """
    if not ids:
        return []
    todo = ids
    if where is not None and action.change is not None:
        # Lock the batch, then keep what still matches: the transition changes only those.
        query = select(Ticket.id).where(ids_match(connection, Ticket.id, ids), where).order_by(Ticket.id)
        todo = list(connection.execute(dialect(connection).locked(query, of=Ticket)).scalars())
    changed = []
    if action.change is not None and todo:
        stamp = audit.Stamp(actor, at, operation_id, f"tickets.{action.name}")
        changed = action.change(connection, Ids(todo), stamp, action.reason).changed
    results = {ticket_id: ItemResult(ticket_id, "changed") for ticket_id in changed}
    rest = [ticket_id for ticket_id in ids if ticket_id not in results]
    if rest:
        results.update(_explain(connection, rest, action, where))
    return [results.get(ticket_id, ItemResult(ticket_id, "not_found", "no such ticket")) for ticket_id in ids]


def _explain(connection: Connection, ids: list[int], action: Action,
             where: ColumnElement[bool] | None) -> dict[int, ItemResult]:
    """Why each of these existing tickets was left alone (missing ids are simply absent)."""


    matches = case((where, 1), else_=0) if where is not None else literal(1)
    results = {}
    for row in connection.execute(
        select(Ticket.id, Ticket.status, Ticket.agent_id, Ticket.closed_at, Ticket.archived_at,
               matches.label("matches")).where(ids_match(connection, Ticket.id, ids))
    ):
        verdict = action.classify(row)
        if verdict is None and not row.matches:
            verdict = ("skipped", "no longer matches the filter")
        if verdict is None:
            # Only possible if the row changed between the batch and this read.
            verdict = ("skipped", "changed by someone else meanwhile")
        results[row.id] = ItemResult(row.id, *verdict)
    return results


# -- selection by filter ---------------------------------------------------------------------
class TicketSelection:
    """The open, unarchived tickets a filter matches, replayed as id batches by keyset.

    It is ``batches.Items`` (``count``, ``batches(size)``, ``close()``), so
    the one batch runner runs it: progress, dry run, Ctrl-C and the summary
    behave exactly as for ids from standard input.  Each batch is read in its
    own short transaction on the primary; the action re-checks everything
    under the row lock, so a ticket changed in between is reported, not lost.
    """

    def __init__(self, engine: Engine, where: ColumnElement[bool]) -> None:
        self.engine = engine
        self.where = where
        self.count: int | None = None

    def _condition(self):
        return self.where & (Ticket.status == "open") & Ticket.archived_at.is_(None)

    def counted(self) -> int:
        """How many tickets the filter selects now (for the prompt and the progress bar)."""


        with self.engine.connect() as connection:
            self.count = connection.execute(
                select(func.count()).select_from(Ticket).where(self._condition())).scalar_one()
        return self.count

    def batches(self, size: int) -> Iterator[list[int]]:
        last = 0
        while True:
            with self.engine.connect() as connection:
                ids = connection.execute(
                    select(Ticket.id).where(Ticket.id > _integer(last), self._condition())
                    .order_by(Ticket.id).limit(size)).scalars().all()
            if ids:
                yield ids
            if len(ids) < size:
                return
            last = ids[-1]

    def close(self) -> None:
        pass
