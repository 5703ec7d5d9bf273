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


_FROM_JSON = """
INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, reason)
SELECT e.at, e.actor, e.action, e.entity_type, e.entity_id, e.before, e.after, e.operation_id, e.reason
  FROM jsonb_to_recordset(CAST(:events AS jsonb))
    AS e(at timestamptz, actor text, action text, entity_type text, entity_id text, before jsonb, after jsonb,
         operation_id text, reason text)
"""


def record(connection: Connection, events: Iterable[dict[str, Any]]) -> int:
    """Insert a batch's audit events in one statement; returns how many.

    On PostgreSQL the batch travels as one JSON document unpacked by
    ``jsonb_to_recordset``: a plain executemany is one INSERT per row, and a
    multi-row VALUES list with thousands of placeholders costs more to build
    and parse on the client than to run (docs/benchmarks.md, bulk chat close).
    SQLite has no round trip to save: executemany.
    """
    import json

    from sqlalchemy import insert, text

    from chatctl.storage.models import AuditEvent

    rows = list(events)
    if not rows:
        return 0
    if connection.dialect.name == "postgresql":
        document = json.dumps([{**row, "at": jsonable(row["at"])} for row in rows])
        connection.execute(text(_FROM_JSON), {"events": document})
    else:
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
