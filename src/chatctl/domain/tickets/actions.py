"""Changing tickets (R13, R14, R15): the set-based bulk actions close,
reopen, archive, unarchive and assign.  Reading them (the tickets list, one
ticket in full) is ``chatctl.domain.tickets.views``.

Every action works on a batch of ids in the caller's transaction with a
constant number of statements, whatever the batch size.  On PostgreSQL that
is one statement: a CTE locks the batch's rows (``FOR UPDATE``, in id order
so two bulk commands never deadlock) and reads the values the audit records,
an ``UPDATE ... RETURNING`` re-checks the eligibility (and the filter) in its
own ``WHERE``, and an ``INSERT ... SELECT`` writes one audit event per changed
row (R15).  On SQLite, whose ``BEGIN IMMEDIATE`` already serialises writers,
it is a read, the same ``UPDATE`` and one audit ``INSERT``.  Only the ids left
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatctl.domain.audit import writer as audit
from chatctl.domain.batches import ItemResult
from chatctl.storage.sql import ids_match

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.sql import ColumnElement

    from chatctl.domain.actors import Actor

ENTITY = "ticket"
READ_ONLY = "ticket is archived and read-only until unarchived (R13)"
NO_TRANSFER = "agents cannot transfer tickets (R14)"


# -- changing ----------------------------------------------------------------------------
@dataclass
class Action:
    """One ticket action over a batch.

    ``eligible()`` is the SQL condition a ticket must meet to change (checked
    inside the UPDATE); ``classify(row)`` says in words why a ticket that did
    not change was left alone, as ``(result, reason)``, or ``None`` when it
    looks eligible.  ``values`` are the new column values and ``columns`` the
    ones whose old values the audit event records.
    """

    name: str
    columns: tuple[str, ...]
    eligible: Callable[[], ColumnElement[bool]]
    classify: Callable[[Any], tuple[str, str] | None]
    values: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


def _integer(value: int):
    from sqlalchemy import BigInteger, bindparam

    return bindparam(None, value, type_=BigInteger())


def _archived_refusal(row) -> tuple[str, str] | None:
    return ("refused", READ_ONLY) if row.archived_at is not None else None


def close_action(at: dt.datetime, *, reason: str | None = None) -> Action:
    from chatctl.storage.models import Ticket

    def classify(row):
        if row.status == "closed":
            return ("skipped", "already closed")
        return _archived_refusal(row)

    return Action("close", ("status", "closed_at"),
                  lambda: (Ticket.status == "open") & Ticket.archived_at.is_(None),
                  classify, {"status": "closed", "closed_at": at}, reason)


def reopen_action(at: dt.datetime) -> Action:
    from chatctl.storage.models import Ticket

    def classify(row):
        if row.status == "open":
            return ("skipped", "already open")
        return _archived_refusal(row)

    return Action("reopen", ("status", "closed_at"),
                  lambda: (Ticket.status == "closed") & Ticket.archived_at.is_(None),
                  classify, {"status": "open", "closed_at": None})


def archive_action(at: dt.datetime) -> Action:
    from chatctl.storage.models import Ticket

    def classify(row):
        return ("skipped", "already archived") if row.archived_at is not None else None

    return Action("archive", ("archived_at",), lambda: Ticket.archived_at.is_(None), classify,
                  {"archived_at": at})


def unarchive_action(at: dt.datetime) -> Action:
    from chatctl.storage.models import Ticket

    def classify(row):
        return ("skipped", "not archived") if row.archived_at is None else None

    return Action("unarchive", ("archived_at",), lambda: Ticket.archived_at.is_not(None), classify,
                  {"archived_at": None})


def assign_action(agent_id: int, handle: str, actor: Actor) -> Action:
    """Assign to ``agent_id``; R14 decides what an actor with role ``agent`` may do."""
    from sqlalchemy import false

    from chatctl.storage.models import Ticket

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

    def eligible():
        if own and not taking:
            return false()
        condition = Ticket.archived_at.is_(None) & ((Ticket.agent_id != agent_id) | Ticket.agent_id.is_(None))
        if taking:
            condition = Ticket.archived_at.is_(None) & Ticket.agent_id.is_(None)
        return condition

    return Action("assign", ("agent_id",), eligible, classify, {"agent_id": agent_id})


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
    from chatctl.storage.engine import is_postgres

    if not ids:
        return []
    from sqlalchemy.sql.elements import False_

    change = _change_postgres if is_postgres(connection) else _change_sqlite
    changed = [] if isinstance(action.eligible(), False_) else change(
        connection, ids, action, at=at, actor=actor, operation_id=operation_id, where=where)
    results = {ticket_id: ItemResult(ticket_id, "changed") for ticket_id in changed}
    rest = [ticket_id for ticket_id in ids if ticket_id not in results]
    if rest:
        results.update(_explain(connection, rest, action, where))
    return [results.get(ticket_id, ItemResult(ticket_id, "not_found", "no such ticket")) for ticket_id in ids]


def _eligible(action: Action, where: ColumnElement[bool] | None):
    return action.eligible() if where is None else action.eligible() & where


def _change_postgres(connection: Connection, ids: list[int], action: Action, *, at: dt.datetime, actor: str,
                     operation_id: str, where: ColumnElement[bool] | None) -> list[int]:
    """Lock, update and audit the batch in one statement; returns the changed ids.

    ``locked`` takes the batch's row locks in id order (two bulk commands
    never deadlock) and reads the values the audit records as "before";
    the UPDATE re-checks the eligibility and the filter on the locked rows;
    the INSERT writes one audit event per changed ticket (R15).
    """
    import json

    from sqlalchemy import Text, bindparam, cast, func, insert, literal, select, update
    from sqlalchemy.dialects.postgresql import JSONB

    from chatctl.storage.models import AuditEvent, Ticket, UTCDateTime

    locked = (
        select(Ticket.id, *(getattr(Ticket, column) for column in action.columns))
        .where(ids_match(connection, Ticket.id, ids))
        .order_by(Ticket.id)
        .with_for_update(of=Ticket.__table__)
        .cte("locked")
    )
    changed = (
        update(Ticket)
        .where(Ticket.id == locked.c.id, _eligible(action, where))
        .values(**action.values)
        .returning(Ticket.id.label("id"), *(locked.c[column].label(f"old_{column}") for column in action.columns))
        .cte("changed")
    )
    before = func.jsonb_build_object(*(
        part for column in action.columns
        for part in (cast(literal(column), Text), _json_value(changed.c[f"old_{column}"], column))))
    after = json.dumps(audit.snapshot(action.values))

    def text_value(value: str | None):
        return cast(literal(value), Text)

    audited = insert(AuditEvent).from_select(
        ["at", "actor", "action", "entity_type", "entity_id", "before", "after", "operation_id", "reason"],
        select(bindparam("audit_at", at, type_=UTCDateTime()), text_value(actor),
               text_value(f"tickets.{action.name}"), text_value(ENTITY), cast(changed.c.id, Text), before,
               cast(text_value(after), JSONB), text_value(operation_id), text_value(action.reason))
        .order_by(changed.c.id),
    ).cte("audited")
    return list(connection.execute(select(changed.c.id).add_cte(audited)).scalars())


def _json_value(column, name: str):
    """A column's old value as the audit snapshot writes it (timestamps: Python's ISO 8601 in UTC)."""
    from sqlalchemy import Text, case, cast, func, literal

    from chatctl.storage.models import Ticket, UTCDateTime

    if not isinstance(Ticket.__table__.c[name].type, UTCDateTime):
        return column
    utc = func.timezone(cast(literal("UTC"), Text), column)
    seconds = func.to_char(utc, cast(literal('YYYY-MM-DD"T"HH24:MI:SS'), Text))
    micros = func.to_char(utc, cast(literal("US"), Text))
    iso = case((micros == "000000", seconds), else_=seconds + "." + micros) + "+00:00"
    return case((column.is_(None), None), else_=iso)


def _change_sqlite(connection: Connection, ids: list[int], action: Action, *, at: dt.datetime, actor: str,
                   operation_id: str, where: ColumnElement[bool] | None) -> list[int]:
    """Read the before-values, update, audit: ``BEGIN IMMEDIATE`` already holds the write lock."""
    from sqlalchemy import select, update

    from chatctl.storage.models import Ticket

    condition = _eligible(action, where)
    before = {
        row.id: {column: getattr(row, column) for column in action.columns}
        for row in connection.execute(
            select(Ticket.id, *(getattr(Ticket, column) for column in action.columns))
            .where(ids_match(connection, Ticket.id, ids), condition))
    }
    if not before:
        return []
    changed = list(connection.execute(
        update(Ticket).where(ids_match(connection, Ticket.id, list(before)), condition)
        .values(**action.values).returning(Ticket.id)).scalars())
    name = f"tickets.{action.name}"
    events = []
    for ticket_id in sorted(changed):
        old, new = audit.diff(before[ticket_id], action.values)
        events.append(audit.event(at=at, actor=actor, action=name, entity_type=ENTITY, entity_id=ticket_id,
                                  operation_id=operation_id, before=old, after=new, reason=action.reason))
    audit.record(connection, events)
    return changed


def _explain(connection: Connection, ids: list[int], action: Action,
             where: ColumnElement[bool] | None) -> dict[int, ItemResult]:
    """Why each of these existing tickets was left alone (missing ids are simply absent)."""
    from sqlalchemy import case, literal, select

    from chatctl.storage.models import Ticket

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

    Quacks like ``bulk.IdSpool`` (``count``, ``batches(size)``, ``close()``) so
    the one bulk engine runs it: progress, dry run, Ctrl-C and the summary
    behave exactly as for ids from standard input.  Each batch is read in its
    own short transaction on the primary; the action re-checks everything
    under the row lock, so a ticket changed in between is reported, not lost.
    """

    def __init__(self, engine: Engine, where: ColumnElement[bool]) -> None:
        self.engine = engine
        self.where = where
        self.count: int | None = None

    def _condition(self):
        from chatctl.storage.models import Ticket

        return self.where & (Ticket.status == "open") & Ticket.archived_at.is_(None)

    def counted(self) -> int:
        """How many tickets the filter selects now (for the prompt and the progress bar)."""
        from sqlalchemy import func, select

        from chatctl.storage.models import Ticket

        with self.engine.connect() as connection:
            self.count = connection.execute(
                select(func.count()).select_from(Ticket).where(self._condition())).scalar_one()
        return self.count

    def batches(self, size: int) -> Iterator[list[int]]:
        from sqlalchemy import select

        from chatctl.storage.models import Ticket

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
