"""The audit trail (R15): every change the tool makes writes one audit event
in the same transaction, stamped with the invocation's operation id.

``before`` and ``after`` hold only the columns that changed, keyed by column
name, with timestamps as ISO 8601 UTC strings, so ``audit revert`` can write
them back; beside an ``agent_id`` the writer puts the agent's handle
(``agent``) for people reading the trail.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from chatctl.domain.audit.readable import NAMES, name_agents
from chatctl.storage.dialects import POSTGRESQL, Dialect, dialect
from chatctl.storage.models import AuditEvent
from chatctl.storage.sql import json_param

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
    if value.__class__ is dt.datetime:
        # Values read from the desk are UTC already (the common case: no conversion).
        return (value if value.tzinfo is dt.timezone.utc else value.astimezone(dt.timezone.utc)).isoformat()
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
    """The changed columns only, as (before, after); ``event`` snapshots them."""
    keys = [key for key in after if before.get(key) != after[key]]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


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
    rows = list(events)
    name_agents(connection, rows)
    values = [tuple(row[name] for name in COLUMNS) for row in rows]
    dialect(connection).insert_rows(connection, AuditEvent.__table__, COLUMNS, values)
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
               order: tuple[int, str]) -> str:
    """A SELECT of one audit event per row of ``source`` (a FROM clause), for ``insert_sql``.

    The other arguments are SQL expressions over ``source``: ``before`` and
    ``after`` jsonb (see ``changes_sql``), ``reason`` text, and ``order``, a
    group number and an integer key that place the event among the others
    (the events get their ids in that order, as ``record`` gives them in list
    order).  The stamp's fields are the parameters of ``Stamp.params``.
    """
    return (f"SELECT {order[0]} AS event_group, {order[1]} AS event_key, CAST(:audit_at AS timestamptz) AS at, "
            f"CAST(:audit_actor AS text) AS actor, CAST(:audit_action AS text) AS action, {entity_type} AS "
            f"entity_type, {entity_id} AS entity_id, {before} AS before, {after} AS after, "
            f"CAST(:audit_operation AS text) AS operation_id, {reason} AS reason FROM {source}")


def insert_sql(events: Iterable[str], *, agents: bool = True) -> str:
    """``INSERT INTO audit_events`` the events of the ``events_sql`` SELECTs, in their order: the
    very rows ``record`` writes for the same events.

    ``agents=False`` says no event can name an agent (a close changes no
    ``agent_id``): the agents are then not joined at all, as ``name_agents``
    looks nothing up for such events.
    """
    union = " UNION ALL ".join(f"({select})" for select in events)
    picked = ", ".join(_NAMED_AGENTS.format(side=name) if agents and name in ("before", "after") else name
                       for name in COLUMNS)
    joined = "".join(_AGENT_OF.format(side=side) for side in ("before", "after")) if agents else ""
    return (f"INSERT INTO audit_events ({', '.join(COLUMNS)}) SELECT {picked} FROM ({union} OFFSET 0) AS events"
            f"{joined} ORDER BY event_group, event_key")


# ``name_agents`` in SQL: the agent's handle (``agent``) beside an ``agent_id``, unless already there.  The
# agents are joined, not looked up per event: a lookup per event re-evaluates the event's jsonb per agent.
# OFFSET 0 keeps the events a subquery of their own, so each event's jsonb is built once, not once per use.
_NAMED_AGENTS = ("CASE WHEN events.{side} ? 'agent_id' AND NOT events.{side} ? 'agent' THEN events.{side} || "
                 "jsonb_build_object('agent', {side}_agent.handle) ELSE events.{side} END")
_AGENT_OF = " LEFT JOIN agents AS {side}_agent ON {side}_agent.id = CAST(events.{side} ->> 'agent_id' AS bigint)"


def json_value_sql(expression: str, *, timestamp: bool) -> str:
    """A column's value as ``snapshot`` writes it into JSON (timestamps as ``jsonable`` ISO text)."""
    return POSTGRESQL.iso_utc(expression) if timestamp else expression


def object_sql(values: Mapping[str, str], timestamps: Iterable[str] = ()) -> str:
    """A jsonb object of ``values`` (key -> SQL expression)."""
    stamps = set(timestamps)
    if not values:
        return "CAST('{}' AS jsonb)"
    pairs = ", ".join(f"'{key}', {json_value_sql(value, timestamp=key in stamps)}" for key, value in values.items())
    return f"jsonb_build_object({pairs})"


@dataclass(frozen=True)
class ChangesSQL:
    """``before`` and ``after`` as jsonb SQL over a source joined with ``lateral``."""

    lateral: str
    before: str
    after: str


def changes_sql(columns: Mapping[str, tuple[str, str]], timestamps: Iterable[str] = (), *,
                fixed: Mapping[str, Any] | None = None) -> ChangesSQL:
    """``before`` and ``after`` jsonb SQL holding, like ``diff``, only the columns whose value
    changed (``columns``: name -> (old value SQL, new value SQL)).

    ``fixed`` are new values that every row of the batch gets (a close's
    ``status``, ``closed_at``...): ``after`` takes them from one parameter,
    ``:audit_fixed`` (``fixed_param``), rendered once in Python instead of once
    per row.  Which columns did not change is worked out once per row
    (``lateral``, to join onto the source) and taken out of both objects.
    """
    stamps = set(timestamps)
    fixed = fixed or {}
    if not columns:
        return ChangesSQL("", "CAST('{}' AS jsonb)", "CAST('{}' AS jsonb)")
    same = ", ".join(f"CASE WHEN ({old}) IS NOT DISTINCT FROM ({new}) THEN '{name}' END"
                     for name, (old, new) in columns.items())
    lateral = f" CROSS JOIN LATERAL (SELECT array_remove(CAST(ARRAY[{same}] AS text[]), NULL) AS unchanged) AS diff"
    before = object_sql({name: old for name, (old, _new) in columns.items()}, stamps)
    varying = {name: new for name, (_old, new) in columns.items() if name not in fixed}
    after = " || ".join((["CAST(:audit_fixed AS jsonb)"] if fixed else [])
                        + ([object_sql(varying, stamps)] if varying else []))
    return ChangesSQL(lateral, f"({before} - diff.unchanged)", f"(({after}) - diff.unchanged)")


def fixed_param(fixed: Mapping[str, Any]) -> str:
    """The ``:audit_fixed`` parameter of ``changes_sql``: the values as ``snapshot`` writes them."""
    return json_param(snapshot(fixed))


# -- the same rows written by one INSERT ... SELECT on SQLite ----------------------------------
def select_events_sql(*, entity_type: str, entity_id: str, before: str, after: str, reason: str, source: str,
                      order: str) -> str:
    """SQLite: ``INSERT INTO audit_events`` one event per row of ``source`` (FROM and WHERE), in
    ``order``: the very rows ``record`` writes for the same events, in the same order.

    ``before`` and ``after`` are SQL of their JSON text (``text_changes_sql``),
    ``entity_id`` and ``reason`` SQL over ``source``; the stamp's fields are the
    parameters of ``Stamp.params``.
    """
    values = {"at": ":audit_at", "actor": ":audit_actor", "action": ":audit_action",
              "entity_type": f"'{entity_type}'", "entity_id": f"CAST({entity_id} AS TEXT)", "before": before,
              "after": after, "operation_id": ":audit_operation", "reason": reason}
    return (f"INSERT INTO audit_events ({', '.join(COLUMNS)}) SELECT {', '.join(values[name] for name in COLUMNS)} "
            f"FROM {source} ORDER BY {order}")


def text_changes_sql(spelling: Dialect, columns: Mapping[str, tuple[str, str]], timestamps: Iterable[str] = (),
                     booleans: Iterable[str] = (), *,
                     added: Mapping[str, tuple[str, str]] | None = None) -> tuple[str, str]:
    """SQLite: ``before`` and ``after`` as SQL of the JSON text ``record`` stores for them: like
    ``diff``, only the columns whose value changed (``columns``: name -> (old value SQL, new
    value SQL)), in their order, then what steps add to ``after`` (``added``: key -> (SQL true
    when the key is there, SQL of its value's JSON text)), then, like ``name_agents``, the
    agent's handle beside a changed ``agent_id``.

    The text is put together from ``json_quote`` of each value - the escapes
    ``json_param`` writes too - so no JSON is parsed again to take keys out.
    """
    stamps, flags = set(timestamps), set(booleans)
    changed = {name: f"(({old}) IS NOT ({new}))" for name, (old, new) in columns.items()}
    sides = []
    for side in (0, 1):
        kept = {name: (changed[name], json_text_sql(spelling, values[side], timestamp=name in stamps,
                                                    boolean=name in flags))
                for name, values in columns.items()}
        if side == 1:
            kept.update(added or {})
        for key, name in NAMES.items():
            if key in columns:
                kept[name] = (changed[key], f"json_quote((SELECT handle FROM agents WHERE agents.id = "
                                            f"{columns[key][side]}))")
        sides.append(object_text_sql(kept))
    return sides[0], sides[1]


def json_text_sql(spelling: Dialect, expression: str, *, timestamp: bool, boolean: bool) -> str:
    """SQLite: the JSON text of a column's value as ``snapshot`` writes it: a timestamp as ``jsonable``
    ISO text, a boolean (SQLite holds 1 or 0) as ``true`` or ``false``."""
    if timestamp:
        return f"json_quote({spelling.iso_utc(expression)})"
    if boolean:
        return f"(CASE WHEN ({expression}) IS NULL THEN 'null' WHEN ({expression}) THEN 'true' ELSE 'false' END)"
    return f"json_quote({expression})"


def object_text_sql(kept: Mapping[str, tuple[str, str]]) -> str:
    """SQLite: the text of a JSON object with, in order, each key of ``kept`` (key -> (SQL true
    when the key is there, SQL of its value's JSON text)) - as ``json_param`` writes it."""
    if not kept:
        return "'{}'"
    members = " || ".join(f"""CASE WHEN {there} THEN ',"{key}":' || {value} ELSE '' END"""
                          for key, (there, value) in kept.items())
    return f"('{{' || substr({members}, 2) || '}}')"


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
