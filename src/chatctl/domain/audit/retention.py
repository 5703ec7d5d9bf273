"""Audit retention (SPEC D17): remove the audit events older than a cutoff.

One invocation is one operation.  It deletes in batches of one transaction
each, oldest first, by keyset on ``at`` (the ``ix_audit_at`` index): each
batch starts where the last one stopped, so it never walks again over the
index entries it has just deleted.  Each batch writes one audit event of its
own (``audit.prune``: how many events, of how many operations, up to which
instant) in the same transaction, so the prune is itself on the record.

Never removed: the events of an operation still ``running`` (a sweep run,
or any operation of the operations record), asked afresh for every batch --
a revert or an undo may still need them.  Reverting an operation whose
events were pruned is refused (``pruned``).

Why batched deletes and not monthly partitions of ``audit_events``: see
docs/scaling.md, section 5 (decided by bench/audit_prune.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatctl.batch_sizes import PRUNE

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine



@dataclass
class PruneResult:
    cutoff: dt.datetime
    dry_run: bool
    removed: int = 0
    kept_running: int = 0
    batches: int = 0
    operations: set[str] = field(default_factory=set)

    def as_json(self, operation_id: str | None) -> dict[str, Any]:
        counted = "would_remove" if self.dry_run else "removed"
        return {"operation": operation_id, "dry_run": self.dry_run, "before": self.cutoff,
                counted: self.removed, "operations": len(self.operations),
                "kept_running": self.kept_running}


def running_operations(connection: Connection) -> list[str]:
    """Ids of the operations whose events must stay: sweep runs and recorded operations still running."""
    from sqlalchemy import select

    from chatctl.storage.models import SweepRun

    return sorted(connection.execute(select(SweepRun.id).where(SweepRun.status == "running")).scalars())


def _older(cutoff: dt.datetime, keep: list[str], since: dt.datetime | None = None):
    from chatctl.storage.models import AuditEvent

    conditions = [AuditEvent.at < cutoff]
    if since is not None:
        conditions.append(AuditEvent.at >= since)
    if keep:
        conditions.append(AuditEvent.operation_id.not_in(keep))
    return conditions


def count_prunable(connection: Connection, cutoff: dt.datetime) -> tuple[int, int]:
    """(events older than ``cutoff`` that a prune would remove, those it keeps for running operations)."""
    from sqlalchemy import func, select

    from chatctl.storage.models import AuditEvent

    keep = running_operations(connection)
    removable = connection.execute(select(func.count()).select_from(AuditEvent)
                                   .where(*_older(cutoff, keep))).scalar_one()
    kept = 0
    if keep:
        kept = connection.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.at < cutoff, AuditEvent.operation_id.in_(keep))).scalar_one()
    return removable, kept


def prune(
    engine: Engine,
    cutoff: dt.datetime,
    *,
    operation_id: str | None,
    actor: str,
    now: dt.datetime,
    batch_size: int = PRUNE,
    dry_run: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> PruneResult:
    """Remove the audit events older than ``cutoff`` (see the module docstring)."""
    from chatctl.storage.retry import retry_serialization

    result = PruneResult(cutoff=cutoff, dry_run=dry_run)
    if dry_run:
        with engine.connect() as connection:
            result.removed, result.kept_running = count_prunable(connection, cutoff)
            connection.rollback()
        return result
    since: dt.datetime | None = None
    while True:
        def one_batch(since=since):
            with engine.begin() as connection:
                return _prune_batch(connection, cutoff, since, batch_size, operation_id=operation_id,
                                    actor=actor, now=now)

        removed, last_at, operations = retry_serialization(one_batch)
        if not removed:
            break
        result.removed += removed
        result.batches += 1
        result.operations.update(operations)
        if on_batch is not None:
            on_batch(removed)
        if removed < batch_size:
            break
        since = last_at
    with engine.connect() as connection:
        result.kept_running = count_prunable(connection, cutoff)[1]
        connection.rollback()
    return result


def _prune_batch(connection: Connection, cutoff: dt.datetime, since: dt.datetime | None, batch_size: int, *,
                 operation_id: str | None, actor: str, now: dt.datetime) -> tuple[int, dt.datetime | None, set[str]]:
    """Delete the next ``batch_size`` oldest prunable events and audit the deletion; one transaction."""
    from sqlalchemy import delete, select

    from chatctl.domain.audit.writer import event, record
    from chatctl.storage.models import AuditEvent

    keep = running_operations(connection)
    oldest = (select(AuditEvent.id).where(*_older(cutoff, keep, since))
              .order_by(AuditEvent.at).limit(batch_size).scalar_subquery())
    gone = connection.execute(delete(AuditEvent).where(AuditEvent.id.in_(oldest))
                              .returning(AuditEvent.at, AuditEvent.operation_id)).all()
    if not gone:
        return 0, None, set()
    last_at = max(row.at for row in gone)
    operations = {row.operation_id for row in gone}
    record(connection, [event(
        at=now, actor=actor, action="audit.prune", entity_type="audit", entity_id=cutoff.isoformat(),
        operation_id=operation_id or "", after={"removed": len(gone), "operations": len(operations),
                                                "through": last_at},
        reason=f"older than {cutoff.isoformat()}")])
    return len(gone), last_at, operations
