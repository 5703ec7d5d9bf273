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
docs/scaling.md, section 6, decided by the benchmark section
``audit-retention`` (``bench/audit_retention.py``; figures in
docs/benchmarks.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, union

from chatctl.batch_sizes import PRUNE
from chatctl.domain.audit.operations import mark_pruned
from chatctl.domain.audit.writer import event, record
from chatctl.storage.models import AuditEvent, Operation, SweepRun
from chatctl.storage.retry import retry_serialization

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

    return sorted(connection.execute(union(select(SweepRun.id).where(SweepRun.status == "running"),
                                           select(Operation.id).where(Operation.status == "running"))).scalars())


def _older(cutoff: dt.datetime, keep: list[str], after: dt.datetime | None = None,
           through: dt.datetime | None = None):
    conditions = [AuditEvent.at < cutoff]
    if after is not None:
        conditions.append(AuditEvent.at > after)
    if through is not None:
        conditions.append(AuditEvent.at <= through)
    if keep:
        conditions.append(AuditEvent.operation_id.not_in(keep))
    return conditions


def count_prunable(connection: Connection, cutoff: dt.datetime) -> tuple[int, int]:
    """(events older than ``cutoff`` that a prune would remove, those it keeps for running operations)."""

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

    result = PruneResult(cutoff=cutoff, dry_run=dry_run)
    if dry_run:
        with engine.connect() as connection:
            result.removed, result.kept_running = count_prunable(connection, cutoff)
            connection.rollback()
        return result
    after: dt.datetime | None = None
    while True:
        def one_batch(after=after):
            with engine.begin() as connection:
                return _prune_batch(connection, cutoff, after, batch_size, operation_id=operation_id,
                                    actor=actor, now=now)

        removed, through, operations = retry_serialization(one_batch)
        if removed:
            result.removed += removed
            result.batches += 1
            result.operations.update(operations)
            if on_batch is not None:
                on_batch(removed)
        if through is None:
            break
        after = through
    with engine.connect() as connection:
        result.kept_running = count_prunable(connection, cutoff)[1]
        connection.rollback()
    return result


def _prune_batch(connection: Connection, cutoff: dt.datetime, after: dt.datetime | None, batch_size: int, *,
                 operation_id: str | None, actor: str, now: dt.datetime
                 ) -> tuple[int, dt.datetime | None, set[str]]:
    """Delete the next range of about ``batch_size`` oldest events after ``after`` and audit it; one transaction.

    Returns (events removed, the end of the range -- None when it was the last --, their operations).  The
    range is bounded by the ``at`` of the ``batch_size``-th next event (an index-only step along
    ``ix_audit_at``), so nothing but counts crosses the wire: a delete by a list of ids, or a
    ``WHERE id IN (subquery)`` that PostgreSQL plans as a hash join over the whole table, cost many times
    more (bench/audit_retention.py).
    """

    keep = running_operations(connection)
    through = connection.execute(select(AuditEvent.at).where(*_older(cutoff, [], after))
                                 .order_by(AuditEvent.at).offset(batch_size - 1).limit(1)).scalar()
    batch = _older(cutoff, keep, after, through)
    operations = set(connection.execute(select(AuditEvent.operation_id).where(*batch).distinct()).scalars())
    removed = connection.execute(delete(AuditEvent).where(*batch)).rowcount if operations else 0
    if removed:
        # Their operations can no longer be reverted: the record says so (D17).
        mark_pruned(connection, sorted(operations), pruned_by=operation_id or "", now=now)
        record(connection, [event(
            at=now, actor=actor, action="audit.prune", entity_type="audit", entity_id=cutoff.isoformat(),
            operation_id=operation_id or "", after={"removed": removed, "operations": len(operations),
                                                    "through": through or cutoff},
            reason=f"older than {cutoff.isoformat()}")])
    return removed, through, operations
