"""The operations record (D10): one row per invocation that changes data.

The row is written when the invocation first asks for its operation id (so
every command that changes data has one, and read commands and dry runs have
none) and finished by the CLI's error boundary with the outcome:

* ``running`` while it works, with a lease renewed as batches commit;
* ``done`` when it finished (exit 0, or 1 when some items were refused);
* ``interrupted`` after Ctrl-C or SIGTERM (exit 130 or 143);
* ``failed`` for any other exit (a command refused as bad input before it
  wrote anything leaves no record), and for a ``running`` row whose process died
  (D11): the pid is gone on the same host, or the lease expired.  Every new
  operation and ``audit operations`` look for such rows and mark them.

``audit prune`` marks the operations whose events it removed
(``mark_pruned``); ``audit revert`` refuses those with reason ``pruned``
(D17).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update

from chatctl.config import redact
from chatctl.storage.models import AuditEvent, Operation

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

STATUSES = ("running", "done", "interrupted", "failed")
# A running operation renews its lease as its batches commit; one that has not
# for this long is taken for dead by commands on other hosts.
LEASE = dt.timedelta(minutes=10)
RENEW_AFTER = LEASE / 5
COMMAND_LIMIT = 2000
INTERRUPTED_EXITS = (130, 143)
USAGE_EXIT = 2


@dataclass(frozen=True)
class Process:
    """Where an operation runs: the host name and the process id."""

    host: str
    pid: int

    @classmethod
    def current(cls) -> Process:
        return cls(socket.gethostname()[:200], os.getpid())


def command_line(argv: Sequence[str]) -> str:
    """The invocation as one line, passwords redacted, long texts cut."""
    import shlex  # only a change records its command line: reads never load it

    line = redact(" ".join(["chatctl", *(shlex.quote(str(arg)) for arg in argv)]))
    return line if len(line) <= COMMAND_LIMIT else line[:COMMAND_LIMIT - 1] + "…"


def start(connection: Connection, operation_id: str, *, command: str, actor: str, now: dt.datetime,
          process: Process) -> None:
    """Record a new ``running`` operation (and mark the dead ones found on the way)."""

    mark_dead(connection, now=now, process=process)
    connection.execute(insert(Operation).values(
        id=operation_id, command=command, actor=actor, host=process.host, pid=process.pid, started_at=now,
        finished_at=None, lease_expires_at=now + LEASE, status="running", counts=None))


def renew(connection: Connection, operation_id: str, *, now: dt.datetime) -> None:
    connection.execute(update(Operation).where(Operation.id == operation_id, Operation.status == "running")
                       .values(lease_expires_at=now + LEASE))


def status_for_exit(exit_code: int) -> str:
    if exit_code in INTERRUPTED_EXITS:
        return "interrupted"
    return "done" if exit_code in (0, 1) else "failed"


def finish(connection: Connection, operation_id: str, *, exit_code: int, now: dt.datetime,
           counts: Mapping[str, Any] | None = None) -> None:
    """Close the row with the outcome, the exit code and the counts (audit events written, item results)."""

    events = connection.execute(select(func.count()).select_from(AuditEvent)
                                .where(AuditEvent.operation_id == operation_id)).scalar_one()
    if exit_code == USAGE_EXIT and not events:
        # Refused as bad input before anything was written: nothing happened to record.
        connection.execute(delete(Operation).where(Operation.id == operation_id))
        return
    record = {"audit_events": events, **(counts or {}), "exit_code": exit_code}
    connection.execute(update(Operation).where(Operation.id == operation_id).values(
        status=status_for_exit(exit_code), finished_at=now, lease_expires_at=None, counts=record))


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still exists (signal 0 checks without sending).

    The one liveness check: dead operations here, dead sweep runs and lease
    holders in ``chatctl.domain.sweeps``.  When unsure it says alive: a live
    process taken for dead would have its work marked failed under it.
    """
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: someone else's process; anything else: cannot tell
        return True
    return True


def mark_dead(connection: Connection, *, now: dt.datetime, process: Process) -> list[str]:
    """Mark ``failed`` every running operation whose process died (D11); returns their ids.

    Dead means: on this host with no such pid, or (any host) a lease that expired.
    """

    running = connection.execute(select(Operation.id, Operation.host, Operation.pid, Operation.lease_expires_at)
                                 .where(Operation.status == "running")).all()
    dead = [row.id for row in running
            if (row.host == process.host and row.pid != process.pid and not pid_alive(row.pid))
            or (row.lease_expires_at is not None and row.lease_expires_at < now)]
    if dead:
        connection.execute(update(Operation).where(Operation.id.in_(dead), Operation.status == "running").values(
            status="failed", finished_at=now, lease_expires_at=None,
            counts={"error": "the process running it died"}))
    return dead


def mark_pruned(connection: Connection, operation_ids: Sequence[str], *, pruned_by: str, now: dt.datetime) -> None:
    """``audit prune`` removed events of these operations: they can no longer be reverted (D17)."""

    if operation_ids:
        connection.execute(update(Operation).where(Operation.id.in_(list(operation_ids)))
                           .values(pruned_at=now, pruned_by=pruned_by))


def find(connection: Connection, operation_id: str) -> Mapping[str, Any] | None:
    return connection.execute(select(Operation.__table__).where(Operation.id == operation_id)).mappings().first()


def list_operations(connection: Connection, *, limit: int | None, since: dt.datetime | None = None,
                    actor: str | None = None) -> Iterator[dict[str, Any]]:
    """Operations newest first, as JSON-ready dicts."""

    query = select(Operation.__table__).order_by(Operation.started_at.desc(), Operation.id.desc())
    if since is not None:
        query = query.where(Operation.started_at >= since)
    if actor is not None:
        query = query.where(Operation.actor == actor)
    if limit is not None:
        query = query.limit(limit)
    for row in connection.execution_options(stream_results=True, yield_per=1000).execute(query).mappings():
        yield operation_json(row)


def operation_json(row: Mapping[str, Any]) -> dict[str, Any]:
    counts = dict(row["counts"] or {})
    return {
        "id": row["id"], "status": row["status"], "actor": row["actor"], "command": row["command"],
        "started_at": row["started_at"], "finished_at": row["finished_at"],
        "changes": counts.get("audit_events"), "exit_code": counts.get("exit_code"),
        "counts": counts, "host": row["host"], "pid": row["pid"], "pruned_at": row["pruned_at"],
    }
