"""The audit trail (R15): every change the tool makes writes one audit event
in the same transaction, stamped with the invocation's operation id.

``before`` and ``after`` hold only the columns that changed, keyed by column
name, with timestamps as ISO 8601 UTC strings, so ``audit revert`` can write
them back.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_operation_id(now: dt.datetime | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, sortable by time."""
    millis = int((now.timestamp() if now else time.time()) * 1000)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))


def jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def snapshot(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: jsonable(value) for key, value in values.items()}


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[dict, dict]:
    """The changed columns only, as (before, after) snapshots."""
    keys = [key for key in after if before.get(key) != after[key]]
    return snapshot({k: before.get(k) for k in keys}), snapshot({k: after[k] for k in keys})


def event(
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: Any,
    operation_id: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "at": at,
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "before": snapshot(before) if before is not None else None,
        "after": snapshot(after) if after is not None else None,
        "operation_id": operation_id,
        "reason": reason,
    }


def record(connection: Connection, events: Iterable[dict[str, Any]]) -> int:
    """Insert audit events (one executemany: SQLAlchemy batches it into multi-row VALUES)."""
    from sqlalchemy import insert

    from chatctl.storage.models import AuditEvent

    rows = list(events)
    if rows:
        connection.execute(insert(AuditEvent), rows)
    return len(rows)


def audit_json(event_row: Mapping[str, Any]) -> dict[str, Any]:
    """An audit event in the JSON shape of SPEC 2.3."""
    return {
        "id": event_row["id"],
        "at": event_row["at"],
        "actor": event_row["actor"],
        "action": event_row["action"],
        "entity": event_row["entity_type"],
        "entity_id": event_row["entity_id"],
        "operation": event_row["operation_id"],
        "before": event_row["before"],
        "after": event_row["after"],
        "reason": event_row["reason"],
    }
