"""Every change of a ticket, each in one place, over a whole batch of tickets.

The bulk commands (``tickets.actions``) and the archive sweep call these; the
callers choose the tickets and say why they skip or refuse some, and the
function changes the tickets that still qualify (its condition re-checked in
the UPDATE) and writes their audit events (R15), with the engine of
``domain.changes``: a few set-based statements per batch, one statement on
PostgreSQL.

R13: an archived ticket is read-only - close, reopen and assign need
``archived_at IS NULL`` - until it is unarchived.  (Opening a ticket is part
of converting its chat: ``chats.transitions.end``.)
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from chatctl.domain.audit import writer as audit
from chatctl.domain.changes import ANY_ROW, TICKETS, Change, Claim, Guard, Ids, Outcome, Portable, run

Batch = Ids | Claim
WRITABLE = "tickets.archived_at IS NULL"


def close(connection: Connection, batch: Batch, stamp: audit.Stamp, *, reason: str | None = None,
          form: Portable | None = None) -> Outcome:
    """Close the open, unarchived tickets of ``batch`` (R13: tickets never expire; people close them)."""
    change = Change(TICKETS, {"status": "'closed'", "closed_at": ":audit_at"},
                    eligible=f"tickets.status = 'open' AND {WRITABLE}", reason=reason)
    return run(connection, change, batch, stamp, form=form)


def reopen(connection: Connection, batch: Batch, stamp: audit.Stamp, *, reason: str | None = None,
           form: Portable | None = None) -> Outcome:
    """Reopen the closed, unarchived tickets of ``batch``."""
    change = Change(TICKETS, {"status": "'open'", "closed_at": "NULL"},
                    eligible=f"tickets.status = 'closed' AND {WRITABLE}", reason=reason)
    return run(connection, change, batch, stamp, form=form)


def archive(connection: Connection, batch: Batch, stamp: audit.Stamp, *, guard: Guard = ANY_ROW,
            reason: str | None = None, form: Portable | None = None) -> Outcome:
    """R13: archive the tickets of ``batch`` not archived yet, open or closed (the archive sweep, by hand)."""
    change = Change(TICKETS, {"archived_at": ":audit_at"}, eligible=f"{WRITABLE} AND ({guard.sql})",
                    params=guard.params, reason=reason)
    return run(connection, change, batch, stamp, form=form)


def unarchive(connection: Connection, batch: Batch, stamp: audit.Stamp, *, reason: str | None = None,
              form: Portable | None = None) -> Outcome:
    """Make archived tickets writable and listed again; the archive sweep counts their age
    from now on (D3: an unarchive sticks)."""
    change = Change(TICKETS, {"archived_at": "NULL", "unarchived_at": ":audit_at"},
                    eligible="tickets.archived_at IS NOT NULL", reason=reason)
    return run(connection, change, batch, stamp, form=form)


def assign(connection: Connection, batch: Batch, stamp: audit.Stamp, *, agent_id: int,
           only_unassigned: bool = False, reason: str | None = None, form: Portable | None = None) -> Outcome:
    """Give the unarchived tickets of ``batch`` to ``agent_id``; ``only_unassigned``: only tickets
    nobody has (R14: what an agent may take for themselves)."""
    whose = "tickets.agent_id IS NULL" if only_unassigned else \
        "(tickets.agent_id IS NULL OR tickets.agent_id <> :ticket_agent)"
    change = Change(TICKETS, {"agent_id": ":ticket_agent"}, eligible=f"{WRITABLE} AND {whose}",
                    params={"ticket_agent": agent_id}, reason=reason)
    return run(connection, change, batch, stamp, form=form)
