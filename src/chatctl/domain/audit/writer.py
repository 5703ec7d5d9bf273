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
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from chatctl.storage.dialects import dialect
from chatctl.storage.models import AuditEvent
from chatctl.storage.sql import iso_utc

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


COLUMNS = ("at", "actor", "action", "entity_type", "entity_id", "before", "after", "operation_id", "reason")


def record(connection: Connection, events: Iterable[dict[str, Any]]) -> int:
    """Insert a batch's audit events (dicts from ``event``) at once; returns how many.

    COPY on PostgreSQL, executemany on SQLite (``Dialect.insert_rows``).
    """
    rows = [tuple(row[name] for name in COLUMNS) for row in events]
    dialect(connection).insert_rows(connection, AuditEvent.__table__, COLUMNS, rows)
    return len(rows)


@dataclass(frozen=True)
class Stamp:
    """What every audit event of one change of a batch shares: who, when, which action, which operation."""

    actor: str
    at: dt.datetime
    operation_id: str
    action: str

    def event(self, entity_type: str, entity_id: Any, *, before: Mapping[str, Any] | None,
              after: Mapping[str, Any] | None, reason: str | None = None) -> dict[str, Any]:
        return event(at=self.at, actor=self.actor, action=self.action, entity_type=entity_type,
                     entity_id=entity_id, operation_id=self.operation_id, before=before, after=after,
                     reason=reason)

    def params(self) -> dict[str, Any]:
        """The bound parameters of ``insert_sql``."""
        return {"audit_at": self.at, "audit_actor": self.actor, "audit_action": self.action,
                "audit_operation": self.operation_id}


# -- the same rows written from inside one PostgreSQL statement -----------------------------
def events_sql(*, entity_type: str, entity_id: str, before: str, after: str, reason: str, source: str,
               order: str) -> str:
    """A SELECT of one audit event per row of ``source`` (a FROM clause), for ``insert_sql``.

    The other arguments are SQL expressions over ``source``: ``before`` and
    ``after`` jsonb (see ``changes_sql``), ``reason`` text, ``order`` where the
    event goes among the others (the events get their ids in that order, as
    ``record`` gives them in list order).  The stamp's fields are the
    parameters of ``Stamp.params``.
    """
    return (f"SELECT {order} AS event_order, CAST(:audit_at AS timestamptz) AS at, CAST(:audit_actor AS text) "
            f"AS actor, CAST(:audit_action AS text) AS action, {entity_type} AS entity_type, {entity_id} AS "
            f"entity_id, {before} AS before, {after} AS after, CAST(:audit_operation AS text) AS operation_id, "
            f"{reason} AS reason FROM {source}")


def insert_sql(events: Iterable[str]) -> str:
    """``INSERT INTO audit_events`` the events of the ``events_sql`` SELECTs, in their order: the
    very rows ``record`` writes for the same events."""
    union = " UNION ALL ".join(f"({select})" for select in events)
    return (f"INSERT INTO audit_events ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM ({union}) AS events "
            "ORDER BY event_order")


def json_value_sql(expression: str, *, timestamp: bool) -> str:
    """A column's value as ``snapshot`` writes it into JSON (timestamps as ``jsonable`` ISO text)."""
    return iso_utc(expression) if timestamp else expression


def object_sql(values: Mapping[str, str], timestamps: Iterable[str] = ()) -> str:
    """A jsonb object of ``values`` (key -> SQL expression)."""
    stamps = set(timestamps)
    if not values:
        return "CAST('{}' AS jsonb)"
    pairs = ", ".join(f"'{key}', {json_value_sql(value, timestamp=key in stamps)}" for key, value in values.items())
    return f"jsonb_build_object({pairs})"


def changes_sql(columns: Mapping[str, tuple[str, str]], timestamps: Iterable[str] = ()) -> tuple[str, str]:
    """``(before, after)`` jsonb SQL expressions holding, like ``diff``, only the columns whose
    value changed (``columns``: name -> (old value SQL, new value SQL))."""
    stamps = set(timestamps)
    if not columns:
        return "CAST('{}' AS jsonb)", "CAST('{}' AS jsonb)"
    before, after = [], []
    for name, (old, new) in columns.items():
        differs = f"({old}) IS DISTINCT FROM ({new})"
        for side, value in ((before, old), (after, new)):
            side.append(f"CASE WHEN {differs} THEN jsonb_build_object('{name}', "
                        f"{json_value_sql(value, timestamp=name in stamps)}) ELSE CAST('{{}}' AS jsonb) END")
    return "(" + " || ".join(before) + ")", "(" + " || ".join(after) + ")"


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
